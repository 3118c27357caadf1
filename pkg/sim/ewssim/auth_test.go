package ewssim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

const getContacts = `<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="contacts"/></m:FolderIds></m:GetFolder>`

// token obtains an access token from the simulator's token endpoint.
func (e *env) token(t *testing.T, form url.Values, basic bool) (int, map[string]any) {
	t.Helper()
	path := "/" + tenantID + "/oauth2/v2.0/token"
	if form.Get("tenant") != "" {
		path = "/" + form.Get("tenant") + "/oauth2/v2.0/token"
		form.Del("tenant")
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.ts.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(form.Get("client_id"), form.Get("client_secret"))
		form.Del("client_secret")
		req.Body = io.NopCloser(strings.NewReader(form.Encode()))
		req.ContentLength = int64(len(form.Encode()))
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if resp.StatusCode == http.StatusOK || strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("decode token response: %v", err)
		}
	}
	return resp.StatusCode, out
}

func tokenForm() url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {ewsScope}}
}

func TestTokenEndpoint(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TokenLifetime = 30 * time.Minute })
	tests := []struct {
		name      string
		edit      func(url.Values)
		basic     bool
		status    int
		wantError string
	}{
		{"form credentials", func(url.Values) {}, false, 200, ""},
		{"basic credentials", func(url.Values) {}, true, 200, ""},
		{"wrong secret", func(f url.Values) { f.Set("client_secret", "nope") }, false, 401, "invalid_client"},
		{"unknown client", func(f url.Values) { f.Set("client_id", "someone-else") }, false, 400, "unauthorized_client"},
		{"unknown tenant", func(f url.Values) { f.Set("tenant", "fabrikam.onmicrosoft.com") }, false, 400, "invalid_request"},
		{"wrong scope", func(f url.Values) { f.Set("scope", "https://graph.microsoft.com/.default") }, false, 400, "invalid_scope"},
		{"wrong grant", func(f url.Values) { f.Set("grant_type", "password") }, false, 400, "unsupported_grant_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tokenForm()
			tc.edit(f)
			status, body := e.token(t, f, tc.basic)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, body)
			}
			if tc.wantError != "" {
				if body["error"] != tc.wantError {
					t.Errorf("error = %v, want %s", body["error"], tc.wantError)
				}
				return
			}
			if body["token_type"] != "Bearer" || body["expires_in"] != float64(1800) || body["access_token"] == "" {
				t.Errorf("token response = %v", body)
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.ServiceAccounts = append(c.ServiceAccounts, ServiceAccount{Username: `FABRIKAM\syncsvc`, Password: "pw", ImpersonateAll: true})
	})
	_, tok := e.token(t, tokenForm(), false)
	bearer := tok["access_token"].(string)
	tests := []struct {
		name   string
		opts   reqOpts
		status int
	}{
		{"basic upn", reqOpts{user: svcUser, password: svcPassword}, 200},
		{"basic domain form of a upn account", reqOpts{user: `CONTOSO\svc`, password: svcPassword}, 200},
		{"basic domain account", reqOpts{user: `FABRIKAM\syncsvc`, password: "pw"}, 200},
		{"basic upn form of a domain account", reqOpts{user: "syncsvc@fabrikam.com", password: "pw"}, 200},
		{"wrong domain", reqOpts{user: `FABRIKAM\svc`, password: svcPassword}, 401},
		{"bad password", reqOpts{user: svcUser, password: "wrong"}, 401},
		{"unknown user", reqOpts{user: "eve@contoso.com", password: "x"}, 401},
		{"no credentials", reqOpts{noAuth: true}, 401},
		{"bearer", reqOpts{bearer: bearer}, 200},
		{"made-up bearer", reqOpts{bearer: "ewssim.invented"}, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.ews(getContacts, tc.opts)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == 401 && len(r.header.Values("WWW-Authenticate")) == 0 {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	before := e.sim.Counts()["Rejected:Unauthorized"]
	e.clock.Advance(time.Hour + time.Second)
	r := e.ews(getContacts, reqOpts{bearer: bearer})
	if r.status != 401 {
		t.Fatalf("expired token: status %d", r.status)
	}
	challenge := strings.Join(r.header.Values("WWW-Authenticate"), ", ")
	if !strings.Contains(challenge, `error="invalid_token"`) {
		t.Errorf("expired token challenge = %q", challenge)
	}
	counts := e.sim.Counts()
	if counts["Rejected:TokenExpired"] != 1 || counts["Rejected:Unauthorized"] != before {
		t.Errorf("counts = %v", counts)
	}
}

func TestImpersonation(t *testing.T) {
	e := newEnv(t)
	if err := e.sim.AddMailbox("limited@contoso.com"); err != nil {
		t.Fatal(err)
	}
	_, tok := e.token(t, tokenForm(), false)
	bearer := tok["access_token"].(string)
	tests := []struct {
		name  string
		opts  reqOpts
		fault string // "" means success
	}{
		{"all rights", reqOpts{actAs: bob}, ""},
		{"listed mailbox", reqOpts{user: limitedUser, password: limitedPass, actAs: alice}, ""},
		{"listed mailbox, other case", reqOpts{user: limitedUser, password: limitedPass, actAs: "Alice@Contoso.com"}, ""},
		{"not listed", reqOpts{user: limitedUser, password: limitedPass, actAs: bob}, "ErrorImpersonateUserDenied"},
		{"no such mailbox", reqOpts{actAs: "nobody@contoso.com"}, "ErrorNonExistentMailbox"},
		{"own mailbox without impersonation", reqOpts{user: limitedUser, password: limitedPass, actAs: "-", anchor: "limited@contoso.com"}, ""},
		{"app token", reqOpts{bearer: bearer, actAs: bob}, ""},
		{"app token without impersonation", reqOpts{bearer: bearer, actAs: "-"}, "ErrorInvalidExchangeImpersonationHeaderData"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.ews(getContacts, tc.opts)
			if tc.fault == "" {
				if r.status != 200 || !slices.Equal(r.codes(), []string{"NoError"}) {
					t.Fatalf("status %d codes %v: %s", r.status, r.codes(), r.body)
				}
				return
			}
			if r.status != http.StatusInternalServerError || r.faultCode() != tc.fault {
				t.Fatalf("status %d fault %q, want %s: %s", r.status, r.faultCode(), tc.fault, r.body)
			}
		})
	}
	if got := e.sim.Counts()["Rejected:ErrorImpersonateUserDenied"]; got != 1 {
		t.Errorf("Rejected:ErrorImpersonateUserDenied = %d", got)
	}
}

func TestRequestServerVersion(t *testing.T) {
	tests := []struct {
		name, server, requested, fault string
	}{
		{"supported", "", "Exchange2013_SP1", ""},
		{"newest of the server", "Exchange2019", "V2017_07_11", ""},
		{"missing", "", "-", "ErrorInvalidServerVersion"},
		{"not a version", "", "Exchange2030", "ErrorSchemaValidation"},
		{"newer than the server", "Exchange2019", "V2018_01_08", "ErrorInvalidServerVersion"},
		{"exchange online", "ExchangeOnline", "V2018_01_08", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.ServerVersion = tc.server })
			r := e.ews(getContacts, reqOpts{version: tc.requested})
			if tc.fault != r.faultCode() {
				t.Fatalf("fault %q, want %q: %s", r.faultCode(), tc.fault, r.body)
			}
		})
	}
}

func TestServerVersionInfo(t *testing.T) {
	for _, tc := range []struct{ config, major, minor, build, rev, version string }{
		{"", "15", "2", "1748", "10", "V2017_07_11"},
		{"ExchangeOnline", "15", "20", "3370", "16", "V2018_01_08"},
		{"15.1.2507.39 V2017_07_11", "15", "1", "2507", "39", "V2017_07_11"},
	} {
		t.Run(tc.config, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.ServerVersion = tc.config })
			r := e.ews(getContacts, reqOpts{})
			svi := r.doc.Root().FindElement("Header/ServerVersionInfo")
			got := []string{svi.SelectAttrValue("MajorVersion", ""), svi.SelectAttrValue("MinorVersion", ""),
				svi.SelectAttrValue("MajorBuildNumber", ""), svi.SelectAttrValue("MinorBuildNumber", ""), svi.SelectAttrValue("Version", "")}
			if want := []string{tc.major, tc.minor, tc.build, tc.rev, tc.version}; !slices.Equal(got, want) {
				t.Errorf("ServerVersionInfo = %v, want %v", got, want)
			}
		})
	}
	if err := (Config{ServerVersion: "Exchange2003"}).Validate(); err == nil {
		t.Error("Validate accepted an unknown server version")
	}
}

func TestAnchorMailbox(t *testing.T) {
	e := newEnv(t)
	e.ews(getContacts, reqOpts{anchor: "-"})
	e.ews(getContacts, reqOpts{anchor: bob})
	e.ews(getContacts, reqOpts{})
	c := e.sim.Counts()
	if c["MissingAnchorMailbox"] != 1 || c["AnchorMailboxMismatch"] != 1 || c["GetFolder"] != 3 {
		t.Errorf("counts = %v", c)
	}

	strict := newEnv(t, func(c *Config) { c.RequireAnchorMailbox = true })
	if r := strict.ews(getContacts, reqOpts{anchor: "-"}); r.faultCode() != "ErrorInvalidRequest" {
		t.Errorf("strict mode without anchor: fault %q", r.faultCode())
	}
	if r := strict.ews(getContacts, reqOpts{}); r.status != 200 {
		t.Errorf("strict mode with anchor: status %d", r.status)
	}
}

func TestMalformedRequests(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxRequestBytes = 64 << 10 })
	tests := []struct {
		name   string
		body   string
		status int
		fault  string
	}{
		{"not xml", "this is not xml", 500, "ErrorSchemaValidation"},
		{"truncated", soap(reqOpts{}, getContacts)[:200], 500, "ErrorSchemaValidation"},
		{"not soap", `<Envelope><Body/></Envelope>`, 500, "ErrorSchemaValidation"},
		{"empty body", `<s:Envelope xmlns:s="` + nsSOAP + `"><s:Body/></s:Envelope>`, 500, "ErrorSchemaValidation"},
		{"unknown operation", soap(reqOpts{}, `<m:ResolveNames ReturnFullContactData="true"><m:UnresolvedEntry>al</m:UnresolvedEntry></m:ResolveNames>`), 500, "ErrorInvalidRequest"},
		{"operation in the types namespace", soap(reqOpts{}, `<t:GetFolder/>`), 500, "ErrorSchemaValidation"},
		{"too large", soap(reqOpts{}, `<m:GetFolder>`+strings.Repeat(" ", 70<<10)+`</m:GetFolder>`), 413, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post("/EWS/Exchange.asmx", tc.body, reqOpts{})
			if r.status != tc.status || r.faultCode() != tc.fault {
				t.Fatalf("status %d fault %q, want %d %q: %s", r.status, r.faultCode(), tc.status, tc.fault, r.body)
			}
		})
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.ts.URL+"/EWS/Exchange.asmx", nil)
	req.Header.Set("Authorization", basicHeader(svcUser, svcPassword))
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", resp.StatusCode)
	}
	if got := e.sim.Counts()["ResolveNames"]; got != 1 {
		t.Errorf("unknown operations are counted too: ResolveNames = %d", got)
	}
}

// A SyncFolderItems answer that lists no change is also counted as empty: a benchmark tells the
// polls of an idle mailbox from reads that brought something.
func TestEmptySyncsAreCounted(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	if _, err := e.sim.PutContact(alice, SyncFolderName, Contact{GivenName: "Ada", Surname: "Lovelace"}); err != nil {
		t.Fatal(err)
	}
	first := e.syncAll(folder, "", 512)
	if len(first.creates) == 0 || e.sim.Counts()[EmptySyncCount] != 0 {
		t.Fatalf("the first read listed %d items and counted %d empty reads, want some and 0", len(first.creates), e.sim.Counts()[EmptySyncCount])
	}
	again := e.syncAll(folder, first.state, 512)
	c := e.sim.Counts()
	if len(again.creates)+len(again.updates)+len(again.deletes) != 0 || c[EmptySyncCount] != 1 || c["SyncFolderItems"] != int64(first.pages+1) {
		t.Errorf("a read with nothing new: %d empty, %d SyncFolderItems (first read %d pages), want 1 and %d", c[EmptySyncCount], c["SyncFolderItems"], first.pages, first.pages+1)
	}
}

func TestCountsAndReset(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	e.ews(getContacts, reqOpts{})
	e.ews(syncRequest(folder, "", 10, ""), reqOpts{})
	e.ews(syncRequest(folder, "", 10, ""), reqOpts{})
	e.ews(getContacts, reqOpts{password: "bad", user: svcUser})
	c := e.sim.Counts()
	want := map[string]int64{"Total": 4, "GetFolder": 1, "SyncFolderItems": 2, "Rejected": 1, "Rejected:Unauthorized": 1}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("Counts()[%q] = %d, want %d (all: %v)", k, c[k], v, c)
		}
	}
	e.sim.ResetCounts()
	if c := e.sim.Counts(); len(c) != 0 {
		t.Errorf("after reset: %v", c)
	}
}
