package sfsim

import (
	"fmt"
	"strings"
)

// Key prefixes of the objects the simulator knows, as Salesforce assigns them.
const (
	PrefixAccount       = "001"
	PrefixContact       = "003"
	PrefixUser          = "005"
	PrefixEvent         = "00U"
	PrefixLead          = "00Q"
	PrefixProfile       = "00e"
	PrefixEventRelation = "0RE"
	PrefixOrg           = "00D"
	prefixQueryLocator  = "01g"
)

// base62 is in ASCII order, so fixed-width ids of one object sort in creation order.
const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// checksumAlphabet maps a 5-bit upper-case mask to the suffix character.
const checksumAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

// makeID builds an 18-character id: the 3-character key prefix, a 2-character instance
// (pod) code, a reserved 0, nine base-62 digits of seq, then the case-safe suffix.
func makeID(prefix, instance string, seq uint64) string {
	var digits [9]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = base62[seq%62]
		seq /= 62
	}
	id15 := prefix + instance + "0" + string(digits[:])
	return id15 + checksum(id15)
}

// checksum computes the three-character suffix that makes a 15-character, case-sensitive id
// unique case-insensitively: one character per five, encoding which of them are upper case.
func checksum(id15 string) string {
	var out [3]byte
	for chunk := 0; chunk < 3; chunk++ {
		mask := 0
		for j := 0; j < 5; j++ {
			c := id15[chunk*5+j]
			if 'A' <= c && c <= 'Z' {
				mask |= 1 << j
			}
		}
		out[chunk] = checksumAlphabet[mask]
	}
	return string(out[:])
}

func isAlnum(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// NormalizeID returns the 18-character form of a 15- or 18-character Salesforce id. An
// 18-character id is case-insensitive: its suffix says which letters are upper case, so a
// lower-cased copy still names the same record. It reports false for anything else, including
// an 18-character id whose suffix contradicts its first 15 characters.
func NormalizeID(id string) (string, bool) {
	if len(id) != 15 && len(id) != 18 {
		return "", false
	}
	for i := 0; i < len(id); i++ {
		if !isAlnum(id[i]) {
			return "", false
		}
	}
	if len(id) == 15 {
		return id + checksum(id), true
	}
	var id15 [15]byte
	for chunk := 0; chunk < 3; chunk++ {
		mask := strings.IndexByte(checksumAlphabet, upper(id[15+chunk]))
		if mask < 0 {
			return "", false
		}
		for j := 0; j < 5; j++ {
			c := id[chunk*5+j]
			upperCase := mask>>j&1 == 1
			switch {
			case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
				if upperCase {
					c = upper(c)
				} else {
					c = lower(c)
				}
			case upperCase:
				return "", false // a digit cannot be upper case
			}
			id15[chunk*5+j] = c
		}
	}
	return string(id15[:]) + checksum(string(id15[:])), true
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c - 'A' + 'a'
	}
	return c
}

// ValidID reports whether id is a well-formed 15- or 18-character Salesforce id.
func ValidID(id string) bool {
	_, ok := NormalizeID(id)
	return ok
}

// instanceOf derives the 2-character instance code ids carry from the org id.
func instanceOf(orgID string) string {
	if len(orgID) >= 5 {
		return orgID[3:5]
	}
	return "5g"
}

func defaultOrgID() string { return makeID(PrefixOrg, "5g", 1) }

func checkOrgID(id string) (string, error) {
	norm, ok := NormalizeID(id)
	if !ok || !strings.HasPrefix(norm, PrefixOrg) {
		return "", fmt.Errorf("org id %q is not a valid Salesforce organization id (00D..., 15 or 18 characters)", id)
	}
	return norm, nil
}
