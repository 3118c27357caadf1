package store

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// ErrInvalid is matched (errors.Is) by every *ValidationError.
var ErrInvalid = errors.New("invalid argument")

// FieldViolation is one problem with one field of a request.
type FieldViolation struct {
	// Field is the field's path, e.g. "contacts.filters[0].operator".
	Field string
	// Description says what is wrong, for the admin.
	Description string
}

// ValidationError lists everything wrong with a value the store was asked to write; the API
// maps it to InvalidArgument with one violation per field.
type ValidationError struct {
	Violations []FieldViolation
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Violations))
	for _, v := range e.Violations {
		parts = append(parts, v.Field+": "+v.Description)
	}
	return "invalid: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// violations collects FieldViolations.
type violations []FieldViolation

func (v *violations) add(field, description string) {
	*v = append(*v, FieldViolation{Field: field, Description: description})
}

func (v violations) err() error {
	if len(v) == 0 {
		return nil
	}
	return &ValidationError{Violations: v}
}

const idRule = "must be 1 to 128 letters, digits, '_' or '-'"

// DefaultWorkerPool is the worker pool of an org whose worker_pool is empty, and the pool a
// worker serves when it is started without one.
const DefaultWorkerPool = "shared"

// maxWorkerPoolLen is a DNS label's limit, so a pool can name the workers' Deployment
// (exchange-worker-<pool>) and appear as one token in subjects and consumer names.
const maxWorkerPoolLen = 63

const workerPoolRule = "must be 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit (a DNS label), or empty for the default pool \"" + DefaultWorkerPool + "\""

// ValidWorkerPool reports whether name is a worker pool's name: a DNS label (RFC 1123), which
// also makes it a valid NATS subject token and part of a durable consumer's name.
func ValidWorkerPool(name string) bool {
	if name == "" || len(name) > maxWorkerPoolLen || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '-' {
			continue
		}
		return false
	}
	return true
}

// WorkerPool returns the pool of workers that serves org: its worker_pool, or the default pool.
func WorkerPool(org *tandemv1.Org) string { return PoolOrDefault(org.GetWorkerPool()) }

// PoolOrDefault is the pool name, or the default pool for an empty name (an org without a
// worker_pool, a worker started without --pool).
func PoolOrDefault(name string) string {
	if name == "" {
		return DefaultWorkerPool
	}
	return name
}

// Org ids. Salesforce names an org by its Organization record's id: 15 case-sensitive letters
// and digits starting with the key prefix 00D, which Setup shows, or the same followed by a
// 3-character suffix that says which of the 15 are upper case, which the API returns. Tandem
// keys everything of an org by one form of it, the 18-character one, so that an id copied from
// Setup and one read from the API name the same org.

// orgIDPrefix is the key prefix of the Organization object's ids.
const orgIDPrefix = "00D"

// caseSafeAlphabet encodes which 5 characters of a chunk of 5 are upper case (bit i for the
// i-th) as one character of an 18-character id's suffix.
const caseSafeAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

// CaseSafeOrgID returns the 18-character form of a Salesforce org id given in either form, and
// false if id is neither: 15 letters and digits starting with 00D, or those followed by the
// suffix that encodes their case. An 18-character id is read case-insensitively, as Salesforce
// reads it: its suffix restores the case of its letters.
func CaseSafeOrgID(id string) (string, bool) {
	if len(id) != 15 && len(id) != 18 {
		return "", false
	}
	for i := 0; i < len(id); i++ {
		if !isAlnum(id[i]) {
			return "", false
		}
	}
	id15 := []byte(id[:15])
	if len(id) == 18 {
		for chunk := 0; chunk < 3; chunk++ {
			mask := strings.IndexByte(caseSafeAlphabet, upper(id[15+chunk]))
			if mask < 0 {
				return "", false
			}
			for j := 0; j < 5; j++ {
				c := &id15[chunk*5+j]
				switch {
				case mask&(1<<j) == 0:
					*c = lower(*c)
				case isLetter(*c):
					*c = upper(*c)
				default:
					return "", false // upper-case digit: the suffix does not belong to the id
				}
			}
		}
	}
	if string(id15[:len(orgIDPrefix)]) != orgIDPrefix {
		return "", false
	}
	return string(id15) + caseSafeSuffix(id15), true
}

// caseSafeSuffix is the suffix of the 18-character form of a 15-character id.
func caseSafeSuffix(id15 []byte) string {
	var out [3]byte
	for chunk := range out {
		mask := 0
		for j := 0; j < 5; j++ {
			if c := id15[chunk*5+j]; 'A' <= c && c <= 'Z' {
				mask |= 1 << j
			}
		}
		out[chunk] = caseSafeAlphabet[mask]
	}
	return string(out[:])
}

func isLetter(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }
func isAlnum(c byte) bool  { return isLetter(c) || ('0' <= c && c <= '9') }

// upper and lower change the case of an ASCII letter, and leave anything else as it is.
func upper(c byte) byte { return byte(unicode.ToUpper(rune(c))) }
func lower(c byte) byte { return byte(unicode.ToLower(rune(c))) }

// findOrgID tells an admin what to enter for an org id, and where to find it.
const findOrgID = "enter the org's 18-character Salesforce org id, which starts with 00D (Setup → Company Information " +
	"in Salesforce shows its first 15 characters as the Salesforce.com Organization ID: entered alone, they are answered " +
	"with all 18)"

// orgIDProblem says what is wrong with id as an org's id and what to enter instead; "" if
// nothing is.
func orgIDProblem(id string) string {
	if id == "" {
		return "is required: " + findOrgID
	}
	canonical, ok := CaseSafeOrgID(id)
	switch {
	case ok && canonical == id:
		return ""
	case ok && len(id) == 15:
		return fmt.Sprintf("%q is the 15-character form of the org id: enter its 18-character form, %s", id, canonical)
	case ok:
		return fmt.Sprintf("%q is the org id with letters in another case: enter it as %s", id, canonical)
	case len(id) == 18 && strings.EqualFold(id[:len(orgIDPrefix)], orgIDPrefix):
		return fmt.Sprintf("%q is not an org id: its last three characters do not match the first 15 (is a character mistyped?); %s", id, findOrgID)
	default:
		return fmt.Sprintf("%q is not a Salesforce org id: %s", clip(id, 40), findOrgID)
	}
}

// clip shortens s to n bytes, marking the cut, so that a message does not echo a whole paste.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// endpoint is one URL of an org's connections that Tandem sends credentials to, or asks for a
// token for.
type endpoint struct {
	field string
	get   func(*tandemv1.Org) string
	// enter says what to enter: an example, and what leaving it empty means.
	enter string
}

// endpoints lists the URLs of an org's connections.
func endpoints() []endpoint {
	return []endpoint{
		{
			field: "exchange.ews_url", get: func(o *tandemv1.Org) string { return o.GetExchange().GetEwsUrl() },
			enter: "the https URL of the EWS endpoint, such as https://mail.example.com/EWS/Exchange.asmx, or nothing to find it with Autodiscover",
		},
		{
			field: "exchange.autodiscover_url", get: func(o *tandemv1.Org) string { return o.GetExchange().GetAutodiscoverUrl() },
			enter: "the https URL of the Autodiscover endpoint, such as https://autodiscover.example.com/autodiscover/autodiscover.svc, or nothing to derive it from each user's email domain",
		},
		{
			field: "exchange.token_url", get: func(o *tandemv1.Org) string { return o.GetExchange().GetTokenUrl() },
			enter: "the https URL of the OAuth token endpoint, such as https://login.microsoftonline.com/<tenant id>/oauth2/v2.0/token, or nothing for the Microsoft identity platform's",
		},
		{
			field: "salesforce.my_domain_url", get: func(o *tandemv1.Org) string { return o.GetSalesforce().GetMyDomainUrl() },
			enter: "the org's My Domain URL, such as https://acme.my.salesforce.com (Setup → My Domain)",
		},
		{
			field: "salesforce.audience", get: func(o *tandemv1.Org) string { return o.GetSalesforce().GetAudience() },
			enter: "the https login URL the JWT is for: https://login.salesforce.com, https://test.salesforce.com for a sandbox, or nothing for login.salesforce.com",
		},
	}
}

// OrgRules are the rules an org's settings must keep where they enter through the API, beyond
// what the store needs to keep them (PutOrg checks that): the org id is the org's 18-character
// Salesforce org id, and every URL of its connections is an https URL without credentials in it.
type OrgRules struct {
	// AllowHTTP accepts plain-http URLs: for simulators and lab servers only (a service's
	// --allow-http).
	AllowHTTP bool
}

// Check returns a *ValidationError with one violation for each field of org that breaks the
// rules, saying what was given (never a credential) and what to enter; nil if none does.
func (r OrgRules) Check(org *tandemv1.Org) error {
	var v violations
	if org == nil {
		v.add("org", "is required")
		return v.err()
	}
	if p := orgIDProblem(org.GetOrgId()); p != "" {
		v.add("org_id", p)
	}
	for _, e := range endpoints() {
		if raw := e.get(org); raw != "" {
			if p := r.urlProblem(raw, e.enter); p != "" {
				v.add(e.field, p)
			}
		}
	}
	return v.err()
}

// urlProblem says what is wrong with raw as the URL of an endpoint and what to enter instead; ""
// if nothing is.
func (r OrgRules) urlProblem(raw, enter string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return fmt.Sprintf("%s is not an absolute URL: enter %s", showURL(raw), enter)
	}
	if u.User != nil {
		return fmt.Sprintf("%s carries a user name or password, which would be stored unsealed: put credentials in the "+
			"connection's own fields, which are sealed, and enter %s", showURL(raw), enter)
	}
	switch {
	case u.Scheme == "https", u.Scheme == "http" && r.AllowHTTP:
		return ""
	case u.Scheme == "http":
		return fmt.Sprintf("%s is plain http, which would send credentials in clear: enter %s "+
			"(plain http is accepted only when Tandem runs with --allow-http, TANDEM_ALLOW_HTTP, for simulators and lab servers)", showURL(raw), enter)
	default:
		return fmt.Sprintf("%s is not an http URL: enter %s", showURL(raw), enter)
	}
}

// showURL is raw as an error message may quote it: without a user name, password, query or
// fragment, which may hold credentials; not at all if it cannot be told apart from them.
func showURL(raw string) string {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Host == "" {
		if strings.ContainsAny(raw, "@?#") {
			return "the URL given (not quoted: it may hold a credential)"
		}
		return fmt.Sprintf("%q", clip(raw, 100))
	}
	shown := u.Scheme + "://" + u.Host + u.EscapedPath()
	if u.RawQuery != "" || u.Fragment != "" {
		shown += "?…"
	}
	return fmt.Sprintf("%q", clip(shown, 100))
}
