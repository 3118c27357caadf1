package ewssim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzServer is one simulator shared by all fuzz iterations, with a little data to act on.
func fuzzServer(f *testing.F) *Server {
	f.Helper()
	sim := New(Config{ServiceAccounts: []ServiceAccount{{Username: svcUser, Password: svcPassword, ImpersonateAll: true}}, MaxRequestBytes: 1 << 20})
	if err := sim.Seed(alice, 20, 10, 1); err != nil {
		f.Fatal(err)
	}
	return sim
}

// FuzzEWSRequest feeds arbitrary bodies to the EWS endpoint: the server must answer every
// request (no panic, no hang) with one of the statuses Exchange uses.
func FuzzEWSRequest(f *testing.F) {
	sim := fuzzServer(f)
	folder, _ := sim.FolderID(alice, SyncFolderName)
	items := sim.Items(alice, SyncFolderName)
	files, _ := filepath.Glob(filepath.Join("testdata", "requests", "*.xml"))
	data := sampleData()
	data["FolderID"], data["ID"], data["IDs"] = folder, items[0].ItemID, []string{items[0].ItemID, items[1].ItemID}
	for _, file := range files {
		if strings.HasPrefix(filepath.Base(file), "autodiscover") {
			continue
		}
		body, err := renderTemplate(filepath.Base(file), data)
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(body))
	}
	for _, s := range []string{
		"", "<", "not xml", `<?xml version="1.0"?><s:Envelope xmlns:s="` + nsSOAP + `"/>`,
		soap(reqOpts{}, `<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId><t:FolderId Id="`+folder+`"/></m:SyncFolderId><m:SyncState>H4sIAAAA</m:SyncState><m:MaxChangesReturned>5</m:MaxChangesReturned></m:SyncFolderItems>`),
		soap(reqOpts{}, `<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:Restriction><t:Not><t:Not><t:Not><t:Exists><t:FieldURI FieldURI="item:Subject"/></t:Exists></t:Not></t:Not></t:Not></m:Restriction><m:ParentFolderIds><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderIds></m:FindItem>`),
		soap(reqOpts{}, strings.Repeat("<m:GetItem>", 200)),
		soap(reqOpts{version: "-", actAs: "nobody@x"}, getContacts),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/EWS/Exchange.asmx", bytes.NewReader(body))
		req.Header.Set("Authorization", basicHeader(svcUser, svcPassword))
		req.Header.Set("X-AnchorMailbox", alice)
		w := httptest.NewRecorder()
		sim.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusInternalServerError, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q", w.Code, body)
		}
		if w.Code != http.StatusRequestEntityTooLarge {
			if _, err := parseXML(w.Body.Bytes()); err != nil {
				t.Fatalf("the response is not XML: %v", err)
			}
		}
	})
}

// FuzzSyncState checks that sync state decoding rejects anything it did not produce without
// panicking, and round-trips what it did.
func FuzzSyncState(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	f.Add(encodeSyncState(key, syncState{mailbox: mailboxGUID(alice), folder: 12, pos: 3}), uint64(12), uint64(3))
	f.Add("H4sIAAAAAAAEAGNgYGcAAotqE0tHE2NTA0ddZ3NHC10TR2djXSdnJ2ddNyMnC2cnczdLU1OD2vBgveDKvOTgksSSVOfEvMSiSgYr0nW65eekpBZ5pjBYkq43LLWoODM/j8GaaK3+QMuKS4JSk1Mzy1JTQjJzU0nwrU9icYlnXnFJYl5yqncqKb71zS9K9SxJzS32zwtOLSpLLSLByXDfhgNxUW5iUTYklrgYGISA0tDwAxkOUskgCJQyAGI9kJprz48suiXn7N53xO1E9av8m4wM2y+9Dv3KudVv3qLna4/vEDjFwCj41SWZgYGJgY+BGaSFm8H99Oe3k0NveDAIMTAy8AIx0LpJQBlfxwBPX0c/kCIGN1O3MLByNBAAxHJI/DwglsCiDh2gOysILMoIdN0byRUYsmwgV5+6ysDPwNAAAHfXVey0AgAA", uint64(0), uint64(0))
	f.Add("", uint64(1), uint64(1<<60))
	f.Add("====", uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, s string, folder, pos uint64) {
		if st, err := decodeSyncState(key, s); err == nil && encodeSyncState(key, st) == "" {
			t.Fatal("decoded a state that does not encode")
		}
		st := syncState{mailbox: mailboxGUID(s), folder: folder, pos: pos}
		got, err := decodeSyncState(key, encodeSyncState(key, st))
		if err != nil || got != st {
			t.Fatalf("round trip of %+v: %+v, %v", st, got, err)
		}
	})
}

// FuzzAutodiscover feeds arbitrary bodies to both Autodiscover endpoints.
func FuzzAutodiscover(f *testing.F) {
	sim := fuzzServer(f)
	for _, name := range []string{"autodiscover-soap.xml", "autodiscover-pox.xml"} {
		body, err := renderTemplate(name, sampleData())
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(body))
	}
	// The POX request a real client (php-ews) sent, kept with the recording of its failed attempt.
	raw, err := os.ReadFile(filepath.Join("..", "..", "ews", "testdata", "recordings", "API", "ExchangeAutodiscoverTest.testGetAPI.json"))
	if err != nil {
		f.Fatal(err)
	}
	var entries []struct {
		Request struct {
			Body string `json:"body"`
		} `json:"request"`
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(entries[0].Request.Body))
	f.Add([]byte("<Autodiscover/>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/autodiscover/autodiscover.svc", "/autodiscover/autodiscover.xml"} {
			req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, bytes.NewReader(body))
			req.Header.Set("Authorization", basicHeader(svcUser, svcPassword))
			w := httptest.NewRecorder()
			sim.ServeHTTP(w, req)
			if w.Code != http.StatusOK && w.Code != http.StatusInternalServerError {
				t.Fatalf("%s: status %d", path, w.Code)
			}
			if _, err := parseXML(w.Body.Bytes()); err != nil {
				t.Fatalf("%s: the response is not XML: %v", path, err)
			}
		}
	})
}
