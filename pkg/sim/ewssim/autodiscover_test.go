package ewssim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

func TestAutodiscoverSOAP(t *testing.T) {
	e := newEnv(t)
	settings := []string{"UserDisplayName", "ExternalEwsUrl", "InternalEwsUrl", "CasVersion", "EwsSupportedSchemas", "NoSuchSetting"}
	body := render(t, "autodiscover-soap.xml", map[string]any{"URL": e.ts.URL + "/autodiscover/autodiscover.svc", "Users": []string{alice, "ghost@contoso.com"}, "Settings": settings})
	r := e.post("/autodiscover/autodiscover.svc", body, reqOpts{actAs: "-", anchor: "-"})
	if r.status != 200 || r.doc == nil {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	users := r.doc.FindElements("//UserResponses/UserResponse")
	if len(users) != 2 {
		t.Fatalf("%d user responses", len(users))
	}
	got := map[string]string{}
	for _, s := range users[0].FindElements("UserSettings/UserSetting") {
		got[text(s, "Name")] = text(s, "Value")
	}
	want := map[string]string{
		"UserDisplayName": "Alice", "ExternalEwsUrl": e.ts.URL + "/EWS/Exchange.asmx", "InternalEwsUrl": e.ts.URL + "/EWS/Exchange.asmx",
		"CasVersion": "15.2.1748.10",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if !strings.Contains(got["EwsSupportedSchemas"], "Exchange2013_SP1") || strings.Contains(got["EwsSupportedSchemas"], "V2018") {
		t.Errorf("EwsSupportedSchemas = %q", got["EwsSupportedSchemas"])
	}
	if text(users[0], "ErrorCode") != "NoError" || text(users[0], "UserSettingErrors/UserSettingError/SettingName") != "NoSuchSetting" {
		t.Errorf("first user: %s", r.body)
	}
	if text(users[1], "ErrorCode") != "InvalidUser" {
		t.Errorf("unknown user ErrorCode = %q", text(users[1], "ErrorCode"))
	}
	if r.doc.FindElement("//ServerVersionInfo/MajorVersion").Text() != "15" {
		t.Error("no ServerVersionInfo header")
	}

	// Autodiscover requires credentials like EWS does.
	if r := e.post("/autodiscover/autodiscover.svc", body, reqOpts{noAuth: true}); r.status != 401 {
		t.Errorf("anonymous autodiscover: status %d", r.status)
	}
	if r := e.post("/autodiscover/autodiscover.svc", "<nonsense/>", reqOpts{}); r.status != 500 || r.doc.FindElement("//Fault") == nil {
		t.Errorf("invalid request: status %d %s", r.status, r.body)
	}
}

// elementPaths lists the distinct element paths (local names) under e.
func elementPaths(e *etree.Element, prefix string, out map[string]bool) {
	for _, c := range e.ChildElements() {
		p := prefix + "/" + c.Tag
		if c.Tag == "Protocol" {
			p += "[" + text(c, "Type") + "]"
		}
		out[p] = true
		elementPaths(c, p, out)
	}
}

func TestAutodiscoverPOXMatchesRecording(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "ews", "testdata", "recordings", "API", "ExchangeAutodiscoverTest.testGetAPI.json"))
	if err != nil {
		t.Fatal(err)
	}
	var entries []struct {
		Body string `json:"body"`
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatal(err)
	}
	recorded := etree.NewDocument()
	if err := recorded.ReadFromString(entries[3].Body); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	elementPaths(recorded.Root(), "", want)

	e := newEnv(t)
	r := e.post("/autodiscover/autodiscover.xml", render(t, "autodiscover-pox.xml", map[string]any{"Email": alice}), reqOpts{actAs: "-", anchor: "-"})
	if r.status != 200 || r.doc == nil {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	got := map[string]bool{}
	elementPaths(r.doc.Root(), "", got)
	for p := range got {
		if !want[p] {
			t.Errorf("element %s is not in the recorded response", p)
		}
	}
	for _, p := range []string{"/Response/User/DisplayName", "/Response/User/AutoDiscoverSMTPAddress", "/Response/Account/Protocol[EXCH]/EwsUrl",
		"/Response/Account/Protocol[EXPR]/EwsUrl", "/Response/Account/Protocol[EXCH]/ServerVersion", "/Response/Account/Protocol[WEB]/External/OWAUrl"} {
		if !got[p] {
			t.Errorf("element %s is missing", p)
		}
	}
	if r.doc.Root().NamespaceURI() != recorded.Root().NamespaceURI() ||
		r.doc.Root().SelectElement("Response").NamespaceURI() != recorded.Root().SelectElement("Response").NamespaceURI() {
		t.Error("namespaces differ from the recording")
	}
	if got := text(r.doc.Root(), "Response/Account/Protocol/EwsUrl"); got != e.ts.URL+"/EWS/Exchange.asmx" {
		t.Errorf("EwsUrl = %q", got)
	}
	if got := text(r.doc.Root(), "Response/Account/Protocol/ServerVersion"); got != "73C286D4" {
		t.Errorf("ServerVersion = %q, want 15.2 build 1748 packed as Outlook does", got)
	}
}

func TestAutodiscoverPOXErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ name, body, code string }{
		{"unknown user", render(t, "autodiscover-pox.xml", map[string]any{"Email": "ghost@contoso.com"}), "500"},
		{"other schema", strings.Replace(render(t, "autodiscover-pox.xml", map[string]any{"Email": alice}), "outlook/responseschema/2006a", "mobilesync/responseschema/2006", 1), "600"},
		{"not xml", "garbage", "600"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post("/autodiscover/autodiscover.xml", tc.body, reqOpts{actAs: "-", anchor: "-"})
			if r.status != 200 || text(r.doc.Root(), "Response/Error/ErrorCode") != tc.code {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
		})
	}
	if got := e.sim.Counts()["Autodiscover"]; got != 3 {
		t.Errorf("Autodiscover count = %d", got)
	}
	if !slices.Contains(e.sim.Mailboxes(), alice) {
		t.Error("Mailboxes does not list alice")
	}
}
