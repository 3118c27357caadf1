package salesforce

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	cursorVersion = 1
	cursorPrefix  = "v1."
)

// pollCursor is what a poll remembers for the next one.
type pollCursor struct {
	Version int    `json:"v"`
	Kind    string `json:"kind"`
	// Watermark is the highest SystemModstamp seen (unix ms); the next poll reads from it minus
	// the overlap.
	Watermark int64 `json:"wm"`
	// Seen are the records at or after the watermark minus the overlap already reported.
	Seen []seenGroup `json:"seen,omitempty"`
	// PolledAt is when this poll ran (connector clock, unix ms).
	PolledAt int64 `json:"at"`
	// FullAt is when the whole audience was last read in full (unix ms).
	FullAt int64 `json:"full"`
	// Users maps each covered user to the fingerprint of their scope and filters.
	Users map[string]string `json:"users"`
}

type seenGroup struct {
	Modstamp int64    `json:"t"`
	IDs      []string `json:"ids"`
}

// encodeCursor writes a cursor as "v1." + base64url(gzip(JSON)): the overlap set of a busy
// org holds thousands of ids, which compress well.
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

// decodeCursor reads a cursor of kind. It returns nil and why when there is none or it cannot
// be used; the poll then reads everything, which is always safe.
func decodeCursor(s string, kind tandemv1.RecordKind) (*pollCursor, string) {
	if s == "" {
		return nil, "no cursor"
	}
	if !strings.HasPrefix(s, cursorPrefix) {
		return nil, "unknown cursor format"
	}
	raw, err := base64.RawURLEncoding.DecodeString(s[len(cursorPrefix):])
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
	if c.Version != cursorVersion || c.Kind != kind.String() {
		return nil, "cursor is of another version or kind"
	}
	if c.Users == nil {
		c.Users = map[string]string{}
	}
	return &c, ""
}
