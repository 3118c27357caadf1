package salesforce

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestCursorRoundTrip(t *testing.T) {
	seen := map[seenKey]uint64{{"00U000000000001AAA", 1_780_000_000_000}: 7, {"00U000000000002AAA", 1_780_000_000_000}: 1 << 63,
		{"00U000000000003AAA", 1_780_000_000_123}: 42, {"00U000000000004AAA", 1_779_000_000_000}: 9}
	c := &pollCursor{Version: cursorVersion, Kind: tandemv1.RecordKind_RECORD_KIND_EVENT.String(), Watermark: 1_780_000_000_123,
		LastID: "00U000000000003AAA", Horizon: 1_780_000_099_000, Seen: seenGroups(seen, 1_780_000_000_000),
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
	delete(seen, seenKey{"00U000000000004AAA", 1_779_000_000_000}) // before the read-back
	if d := cmp.Diff(seen, got.seenSet(), cmp.AllowUnexported(seenKey{})); d != "" {
		t.Errorf("seen records (-want +got):\n%s", d)
	}
	tests := []struct{ name, cursor string }{
		{"other kind", s},
		{"empty", ""},
		{"foreign format", "eyJ3bSI6MX0"},
		{"truncated", s[:len(s)-10]},
		{"not base64", cursorPrefix + "!!"},
		{"version 1 prefix on a version 2 cursor", v1Prefix + s[len(cursorPrefix):]},
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
	seen := map[seenKey]uint64{}
	for i := range 2000 {
		seen[seenKey{fmt.Sprintf("003%012dAAA", i), 1_780_000_000_000 + int64(i%50)*1000}] = uint64(i) * 0x9E3779B97F4A7C15
	}
	c.Seen = seenGroups(seen, 0)
	s, err := encodeCursor(c)
	if err != nil {
		t.Fatal(err)
	}
	// 5,000 users and 2,000 records to read back with their content hashes: ~76 kB.
	if len(s) > 100_000 {
		t.Errorf("cursor for 5,000 users and 2,000 records to read back is %d bytes", len(s))
	}
}

// TestCursorReadsVersion1 checks that a cursor of the first format still drives an incremental
// poll: it reads back the overlap before its watermark, as the first format did, and takes the
// records it lists as reported while their SystemModstamp is unchanged.
func TestCursorReadsVersion1(t *testing.T) {
	v1 := map[string]any{"v": 1, "kind": tandemv1.RecordKind_RECORD_KIND_CONTACT.String(), "wm": 1_780_000_000_123,
		"seen": []map[string]any{{"t": 1_780_000_000_123, "ids": []string{"003000000000001AAA"}}},
		"at":   1_780_000_100_000, "full": 1_779_990_000_000, "users": map[string]string{"005000000000001AAA": "fp"}}
	data, err := json.Marshal(v1)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(data)
	_ = zw.Close()
	s := v1Prefix + base64.RawURLEncoding.EncodeToString(buf.Bytes())
	got, why := decodeCursor(s, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if got == nil {
		t.Fatal(why)
	}
	if got.Version != cursorVersion || got.Horizon != got.Watermark || got.LastID != "" || got.PolledAt != 1_780_000_100_000 {
		t.Errorf("migrated cursor %+v", got)
	}
	if h, ok := got.seenSet()[seenKey{"003000000000001AAA", 1_780_000_000_123}]; !ok || h != unknownHash {
		t.Errorf("listed record: %d %t", h, ok)
	}
	p := &poller{c: newTestConnector(t, jwtOrg(t, "https://acme.my.salesforce.com")), known: got.seenSet(), seen: map[seenKey]uint64{}}
	if cond := p.changedSince(got); cond != "SystemModstamp >= 2026-05-28T20:21:40Z" {
		t.Errorf("first poll after the upgrade reads %q, want the version 1 window", cond)
	}
	if !p.reported(seenKey{"003000000000001AAA", 1_780_000_000_123}, 12345) {
		t.Error("a record the version 1 cursor lists is reported again")
	}
	encoded, err := encodeCursor(got)
	if err != nil || !strings.HasPrefix(encoded, cursorPrefix) {
		t.Errorf("re-encoded as %.10q: %v", encoded, err)
	}
}
