package salesforce

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	cursorVersion = 2
	cursorPrefix  = "v2."
	// v1Prefix marks cursors of the first format, whose next poll read back a fixed overlap
	// window before the watermark and skipped the (Id, SystemModstamp) pairs it listed. They
	// still decode: as version 2 cursors whose horizon is their watermark, so that the next
	// poll reads back exactly the window they list, and whose records have no content hash.
	v1Prefix = "v1."
)

// pollCursor is what a poll remembers for the next one.
type pollCursor struct {
	Version int    `json:"v"`
	Kind    string `json:"kind"`
	// Watermark is the highest SystemModstamp read (unix ms).
	Watermark int64 `json:"wm"`
	// LastID is the greatest Id among the records read whose SystemModstamp is in the
	// watermark's second: a poll resumes after (watermark second, LastID).
	LastID string `json:"id,omitempty"`
	// Horizon is the org's time when the poll read (unix ms): the earlier of the connector's
	// clock when the poll started and the Date of its first answer. A record the poll could not
	// see yet is stamped after Horizon minus the overlap.
	Horizon int64 `json:"hz,omitempty"`
	// Committed is the org's time before which Salesforce had committed every record when the
	// poll read (getUpdated's latestDateCovered, asked just before the read; unix ms), or zero
	// when the poll did not ask: the next poll reads back no further than it.
	Committed int64 `json:"committed,omitempty"`
	// ReadBackAt is when a poll last read back (connector clock, unix ms; see readBackDue).
	ReadBackAt int64 `json:"rb,omitempty"`
	// AskedAt is when a poll last asked getUpdated (connector clock, unix ms) and Covered its
	// answer, latestDateCovered (unix ms): see Connector.coveredBefore.
	AskedAt int64 `json:"asked,omitempty"`
	Covered int64 `json:"covered,omitempty"`
	// Seen are the records read that are stamped at or after where the next poll reads back
	// from (see readBackFrom), with a hash of their content: the next poll reads them again and
	// reports only what differs.
	Seen []seenGroup `json:"seen,omitempty"`
	// PolledAt is when this poll ran (connector clock, unix ms).
	PolledAt int64 `json:"at"`
	// FullAt is when the whole audience was last read in full (unix ms).
	FullAt int64 `json:"full"`
	// Users maps each covered user to the fingerprint of their scope and filters.
	Users map[string]string `json:"users"`
}

// seenGroup is the records read with one SystemModstamp.
type seenGroup struct {
	Modstamp int64    `json:"t"`
	IDs      []string `json:"ids"`
	// Hashes are the records' content hashes in IDs' order, 8 bytes each, base64url. Cursors
	// of version 1 have none.
	Hashes string `json:"h,omitempty"`
}

// seenKey is one version of a record as the API reports it.
type seenKey struct {
	id       string
	modstamp int64
}

// unknownHash stands for the content of a record a version 1 cursor lists: the record is
// taken as unchanged while its SystemModstamp is, as version 1 took it. contentHash never
// returns it.
const unknownHash = 0

// seenSet maps the record versions a cursor lists to their content hashes.
func (c *pollCursor) seenSet() map[seenKey]uint64 {
	out := map[seenKey]uint64{}
	for _, g := range c.Seen {
		hashes, _ := base64.RawURLEncoding.DecodeString(g.Hashes)
		for i, id := range g.IDs {
			h := uint64(unknownHash)
			if len(hashes) >= 8*(i+1) {
				h = binary.BigEndian.Uint64(hashes[8*i:])
			}
			out[seenKey{id, g.Modstamp}] = h
		}
	}
	return out
}

// seenGroups lists the versions of seen stamped at or after from (unix ms), grouped by
// SystemModstamp.
func seenGroups(seen map[seenKey]uint64, from int64) []seenGroup {
	type entry struct {
		id   string
		hash uint64
	}
	groups := map[int64][]entry{}
	for k, h := range seen {
		if k.modstamp >= from {
			groups[k.modstamp] = append(groups[k.modstamp], entry{k.id, h})
		}
	}
	out := make([]seenGroup, 0, len(groups))
	for t, entries := range groups {
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.id, b.id) })
		g := seenGroup{Modstamp: t, IDs: make([]string, len(entries))}
		hashes := make([]byte, 8*len(entries))
		for i, e := range entries {
			g.IDs[i] = e.id
			binary.BigEndian.PutUint64(hashes[8*i:], e.hash)
		}
		g.Hashes = base64.RawURLEncoding.EncodeToString(hashes)
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b seenGroup) int { return cmp.Compare(a.Modstamp, b.Modstamp) })
	return out
}

// encodeCursor writes a cursor as "v2." + base64url(gzip(JSON)): the records of a busy org's
// last minutes number thousands, and their ids compress well.
func encodeCursor(c *pollCursor) (string, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(c); err != nil {
		return "", fmt.Errorf("encode cursor: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("encode cursor: %w", err)
	}
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(buf.Bytes()), nil
}

// maxCursorJSON bounds a decoded cursor, so that a corrupt one cannot exhaust memory.
const maxCursorJSON = 256 << 20

// decodeCursor reads a cursor of kind, of this version or the first. It returns nil and why
// when there is none or it cannot be used; the poll then reads everything, which is always
// safe.
func decodeCursor(s string, kind tandemv1.RecordKind) (*pollCursor, string) {
	if s == "" {
		return nil, "no cursor"
	}
	var version int
	var body string
	switch {
	case strings.HasPrefix(s, cursorPrefix):
		version, body = cursorVersion, s[len(cursorPrefix):]
	case strings.HasPrefix(s, v1Prefix):
		version, body = 1, s[len(v1Prefix):]
	default:
		return nil, "unknown cursor format"
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, "cursor is not base64"
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, "cursor is not gzip"
	}
	data, err := io.ReadAll(io.LimitReader(zr, maxCursorJSON))
	if err != nil {
		return nil, "cursor is corrupt"
	}
	var c pollCursor
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, "cursor is not JSON"
	}
	if c.Version != version || c.Kind != kind.String() {
		return nil, "cursor is of another version or kind"
	}
	for _, g := range c.Seen {
		if version == 1 && g.Hashes != "" {
			return nil, "cursor is corrupt"
		}
		if hashes, err := base64.RawURLEncoding.DecodeString(g.Hashes); err != nil || (g.Hashes != "" && len(hashes) != 8*len(g.IDs)) {
			return nil, "cursor is corrupt"
		}
	}
	if version == 1 {
		// The first format re-read everything stamped in the overlap before the watermark and
		// listed what it had reported there: the same window, read from a horizon at the
		// watermark.
		c.Version, c.Horizon, c.LastID = cursorVersion, c.Watermark, ""
	}
	if c.Horizon == 0 {
		c.Horizon = c.PolledAt
	}
	if c.Users == nil {
		c.Users = map[string]string{}
	}
	return &c, ""
}
