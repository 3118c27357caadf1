package salesforce

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestCursorRoundTrip(t *testing.T) {
	c := &pollCursor{Version: cursorVersion, Kind: tandemv1.RecordKind_RECORD_KIND_EVENT.String(), Watermark: 1_780_000_000_123,
		Seen:     []seenGroup{{Modstamp: 1_780_000_000_000, IDs: []string{"00U000000000001AAA", "00U000000000002AAA"}}, {Modstamp: 1_780_000_000_123, IDs: []string{"00U000000000003AAA"}}},
		PolledAt: 1_780_000_100_000, FullAt: 1_779_990_000_000, Users: map[string]string{"005000000000001AAA": "0123456789abcdef"}}
	s, err := encodeCursor(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, cursorPrefix) || strings.ContainsAny(s, "+/= \n") {
		t.Errorf("cursor %q is not URL- and log-safe", s)
	}
	got, why := decodeCursor(s, tandemv1.RecordKind_RECORD_KIND_EVENT)
	if got == nil {
		t.Fatal(why)
	}
	if d := cmp.Diff(c, got); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	tests := []struct{ name, cursor string }{
		{"other kind", s},
		{"empty", ""},
		{"foreign format", "eyJ3bSI6MX0"},
		{"truncated", s[:len(s)-10]},
		{"not base64", cursorPrefix + "!!"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, why := decodeCursor(tt.cursor, tandemv1.RecordKind_RECORD_KIND_CONTACT); got != nil || why == "" {
				t.Errorf("decodeCursor accepted %q", tt.cursor)
			}
		})
	}
}

func TestCursorStaysCompact(t *testing.T) {
	c := &pollCursor{Version: cursorVersion, Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT.String(), Users: map[string]string{}}
	for i := range 5000 {
		c.Users[fmt.Sprintf("005%012dAAA", i)] = fmt.Sprintf("%016x", i*7919)
	}
	group := seenGroup{Modstamp: 1_780_000_000_000}
	for i := range 2000 {
		group.IDs = append(group.IDs, fmt.Sprintf("003%012dAAA", i))
	}
	c.Seen = []seenGroup{group}
	s, err := encodeCursor(c)
	if err != nil {
		t.Fatal(err)
	}
	// 5,000 users and 2,000 overlap records are ~190 kB of JSON.
	if len(s) > 150_000 {
		t.Errorf("cursor for 5,000 users and 2,000 overlap records is %d bytes", len(s))
	}
}
