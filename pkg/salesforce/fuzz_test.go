package salesforce

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// seedRecordings adds every recorded response as a seed, plus broken inputs.
func seedRecordings(f *testing.F, extra ...string) {
	files, err := filepath.Glob(filepath.Join("testdata", "recordings", "*", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no recordings: %v", err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range append(append([]string{"", "null", "[]", "{}", "[null]", "{", `"x"`, "<html>502 Bad Gateway</html>", "\x00\xff"}, hostileJSON()...), extra...) {
		f.Add([]byte(s))
	}
}

// hostileJSON are bodies the guards must reject (or, for the last ones, accept) in time and
// memory proportional to their size: invalid UTF-8 in several forms, nesting past
// maxJSONDepth, and brackets and escapes inside strings that must not count as nesting.
func hostileJSON() []string {
	row := func(v string) string {
		return `{"totalSize":1,"done":true,"records":[{"Id":"003000000000001AAA","LastName":` + v + `}]}`
	}
	return []string{
		row("\"Caf\xe9\""),            // Latin-1, not UTF-8
		row("\"\xc0\xaf\""),           // overlong encoding
		row("\"\xed\xa0\x80\""),       // an encoded surrogate
		row("\"\xf4\x90\x80\x80\""),   // beyond U+10FFFF
		row(`"\ud800"`),               // a lone surrogate escape: valid UTF-8, decoded as U+FFFD
		"\xef\xbb\xbf" + row(`"Bom"`), // a byte order mark
		strings.Repeat("[", 100_000),
		strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1),
		row(strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)),
		row(`"` + strings.Repeat(`[{\"`, 1000) + `"`),
		row(`"` + strings.Repeat("x", 1<<20) + `"`), // large, within any cap
	}
}

func FuzzParseQueryResult(f *testing.F) {
	seedRecordings(f,
		`{"totalSize":1,"done":false,"nextRecordsUrl":"https://evil.example/x","records":[]}`,
		`{"totalSize":1,"done":true,"records":[null]}`,
		`{"totalSize":1,"done":true,"records":[{"Id":"003","SystemModstamp":"2026-01-01T00:00:00.000+0000","EventRelations":{"done":false,"nextRecordsUrl":"/services/data/v62.0/query/01g-200","records":[{"IsInvitee":true}]}}]}`,
		`{"totalSize":1,"done":true,"records":[{"Id":1e999,"Account":{"Name":{"x":[1,2]}}}]}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseQueryResult(data)
		if err != nil {
			return
		}
		if err := checkJSON(data); err != nil {
			t.Fatalf("accepted a body the guards reject: %v", err)
		}
		if !r.Done && r.NextRecordsURL == "" {
			t.Fatal("not done without a next page")
		}
		for _, rec := range r.Records {
			// Every accessor must cope with whatever a row holds.
			for _, path := range []string{"Id", "Account.Name", "SystemModstamp", "a.b.c", "EventRelations"} {
				rec.String(path)
				rec.Bool(path)
				rec.Int(path)
				_, _, _ = rec.Time(path)
			}
			rec.Child("EventRelations")
			if h := contentHash(rec); h == unknownHash || h != contentHash(normalize(rec).(SObject)) {
				t.Fatal("contentHash is not stable, or returned the hash of unknown content")
			}
			_, _ = contactFromRow(rec)
			_, _ = eventFromRow(rec)
		}
	})
}

func FuzzParseSaveResults(f *testing.F) {
	seedRecordings(f,
		`[{"id":"003000000000001AAA","success":true,"errors":[],"created":false}]`,
		`[{"id":null,"success":false,"errors":[{"statusCode":"DUPLICATES_DETECTED","message":"Use one of these records?","fields":[]}]}]`,
		`[{"success":false,"errors":[]}]`,
		`[{"success":false,"errors":[{"statusCode":"STRING_TOO_LONG","message":"Last Name: data value too large","fields":["LastName"]}]}]`)
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseSaveResults(data)
		if err != nil {
			return
		}
		if err := checkJSON(data); err != nil {
			t.Fatalf("accepted a body the guards reject: %v", err)
		}
		for _, r := range rs {
			if e := r.apiError(); (e == nil) != r.Success {
				t.Fatalf("result %+v: apiError %v", r, e)
			}
			if e := r.apiError(); e != nil {
				classifyAPIError(e).Proto()
				canonicalField(objContact, first(e.Fields))
			}
		}
	})
}

func FuzzParseErrorBody(f *testing.F) {
	seedRecordings(f,
		`[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`,
		`{"message":"x","errorCode":"NOT_FOUND"}`,
		`{"error":"invalid_grant","error_description":"expired"}`,
		`[{"message":null,"errorCode":null,"fields":[null]}]`)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, status := range []int{400, 401, 403, 404, 500, 503} {
			errs := parseErrorBody(status, data)
			if len(errs) == 0 {
				t.Fatal("no error parsed")
			}
			se := classifyAPIError(errs[0])
			if se.Code == "" || se.Error() == "" {
				t.Fatalf("unclassified %+v", errs[0])
			}
			if len(errs[0].Message) > 4*len(data)+maxErrorText+8 {
				t.Fatalf("message longer than the body")
			}
		}
	})
}

func FuzzParseTokenResponse(f *testing.F) {
	seedRecordings(f,
		`{"access_token":"a","instance_url":"javascript:alert(1)"}`,
		`{"access_token":"a","token_type":"MAC"}`,
		`{"access_token":"a","instance_url":"https://acme.my.salesforce.com/path?x"}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, inst, err := ParseTokenResponse(data, "https://acme.my.salesforce.com")
		if err == nil {
			if tok == "" {
				t.Fatal("empty access token accepted")
			}
			if _, err := baseURL(inst, false); err != nil {
				t.Fatalf("instance %q accepted: %v", inst, err)
			}
		}
		te := ParseTokenError(400, data)
		if te.Code == "" {
			t.Fatalf("token error without code from %q", data)
		}
		if classifyTokenError(te) == nil {
			t.Fatalf("token error %q classified as nothing", te.Code)
		}
	})
}

func FuzzParseLimitInfo(f *testing.F) {
	for _, s := range []string{"api-usage=18/5000", "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)",
		"api-usage=110018/100000; api-bursts=1/750", "", "api-usage=", "api-usage=/", "api-usage=1/-1", "api-usage=99999999999999999999/1",
		";;;,,,", "api-usage=1/2,api-usage=3/4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		used, allocation, err := ParseLimitInfo(s)
		if err == nil && (used < 0 || allocation <= 0) {
			t.Fatalf("ParseLimitInfo(%q) = %d/%d", s, used, allocation)
		}
	})
}

func FuzzParseReplicationResult(f *testing.F) {
	seedRecordings(f, `{"deletedRecords":[{"id":"","deletedDate":"x"}],"latestDateCovered":"2013-05-08T21:20:00.000+0000"}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseReplicationResult(data)
		if err == nil && r.LatestDateCovered.IsZero() {
			t.Fatal("accepted without latestDateCovered")
		}
	})
}

func FuzzDecodeCursor(f *testing.F) {
	c := &pollCursor{Version: cursorVersion, Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT.String(), Watermark: 1_700_000_000_000,
		LastID: "003000000000002AAA", Horizon: 1_700_000_060_000,
		Seen:  seenGroups(map[seenKey]uint64{{"003000000000001AAA", 1_700_000_000_000}: 77, {"003000000000002AAA", 1_700_000_000_000}: 78}, 0),
		Users: map[string]string{"005": "fp"}}
	s, err := encodeCursor(c)
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := json.Marshal(c)
	// A version 1 cursor, as the first format wrote it: no position Id, horizon or hashes.
	v1 := *c
	v1.Version, v1.LastID, v1.Horizon = 1, "", 0
	v1.Seen = []seenGroup{{Modstamp: 1_700_000_000_000, IDs: []string{"003000000000001AAA"}}}
	old, err := encodeCursor(&v1)
	if err != nil {
		f.Fatal(err)
	}
	old = v1Prefix + old[len(cursorPrefix):]
	// Hashes that do not match the ids.
	bad := *c
	bad.Seen = []seenGroup{{Modstamp: 1, IDs: []string{"a", "b"}, Hashes: "AAAAAAAAAAA"}}
	corrupt, err := encodeCursor(&bad)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{s, old, corrupt, "", "v1.", "v1.!!!", "v2.", "v2.abc", "v3.abc", s[:len(s)/2], string(raw)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, why := decodeCursor(s, tandemv1.RecordKind_RECORD_KIND_CONTACT)
		if (got == nil) == (why == "") {
			t.Fatalf("decodeCursor(%q) = %v, %q", s, got, why)
		}
		if got != nil {
			if got.Version != cursorVersion || got.Horizon == 0 && got.PolledAt != 0 {
				t.Fatalf("decoded cursor of version %d with horizon %d", got.Version, got.Horizon)
			}
			_ = got.seenSet()
			again, err := encodeCursor(got)
			if err != nil {
				t.Fatal(err)
			}
			if back, _ := decodeCursor(again, tandemv1.RecordKind_RECORD_KIND_CONTACT); back == nil {
				t.Fatal("re-encoded cursor does not decode")
			}
		}
	})
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
