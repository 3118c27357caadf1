package sfsim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestJWTBearer(t *testing.T) {
	e := newEnv(t)
	other := testKeys(t)[1]
	if _, err := e.sim.AddUser(User{Username: "gone@acme.example", LastName: "Gone", IsActive: false}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		form     func() url.Values
		status   int
		errCode  string
		errDescr string
	}{
		{
			name: "valid",
			form: func() url.Values {
				return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, nil)}}
			},
			status: http.StatusOK,
		},
		{
			name: "audience as a list, test.salesforce.com",
			form: func() url.Values {
				return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, func(c jwt.MapClaims) {
					c["aud"] = []string{"https://test.salesforce.com"}
				})}}
			},
			status: http.StatusOK,
		},
		{
			name: "audience is the simulator's own URL",
			form: func() url.Values {
				return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, func(c jwt.MapClaims) { c["aud"] = e.srv.URL })}}
			},
			status: http.StatusOK,
		},
		{
			name: "username matches case-insensitively",
			form: func() url.Values {
				return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, func(c jwt.MapClaims) { c["sub"] = "REP@acme.example" })}}
			},
			status: http.StatusOK,
		},
		{
			name: "signed with another key",
			form: func() url.Values {
				return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(other.key, nil)}}
			},
			status: http.StatusBadRequest, errCode: "invalid_grant", errDescr: "invalid assertion",
		},
		{
			name: "expired",
			form: func() url.Values {
				return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, func(c jwt.MapClaims) {
					c["exp"] = e.clock.Now().Add(-2 * time.Minute).Unix()
				})}}
			},
			status: http.StatusBadRequest, errCode: "invalid_grant", errDescr: "expired authorization code",
		},
		{
			name: "expiry too far ahead",
			form: func() url.Values {
				return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, func(c jwt.MapClaims) {
					c["exp"] = e.clock.Now().Add(time.Hour).Unix()
				})}}
			},
			status: http.StatusBadRequest, errCode: "invalid_grant", errDescr: "invalid assertion",
		},
		{
			name: "no expiry",
			form: func() url.Values {
				return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, func(c jwt.MapClaims) { delete(c, "exp") })}}
			},
			status: http.StatusBadRequest, errCode: "invalid_grant", errDescr: "invalid assertion",
		},
		{
			name: "unknown user",
			form: func() url.Values {
				return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, func(c jwt.MapClaims) { c["sub"] = "nobody@acme.example" })}}
			},
			status: http.StatusBadRequest, errCode: "invalid_grant", errDescr: "invalid assertion",
		},
		{
			name: "inactive user",
			form: func() url.Values {
				return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, func(c jwt.MapClaims) { c["sub"] = "gone@acme.example" })}}
			},
			status: http.StatusBadRequest, errCode: "invalid_grant", errDescr: "inactive user",
		},
		{
			name: "wrong audience",
			form: func() url.Values {
				return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, func(c jwt.MapClaims) { c["aud"] = "https://acme.my.salesforce.com" })}}
			},
			status: http.StatusBadRequest, errCode: "invalid_grant", errDescr: "audience is invalid",
		},
		{
			name: "unknown issuer",
			form: func() url.Values {
				return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, func(c jwt.MapClaims) { c["iss"] = "someone-else" })}}
			},
			status: http.StatusBadRequest, errCode: "invalid_client_id", errDescr: "client identifier invalid",
		},
		{
			name:   "not a JWT",
			form:   func() url.Values { return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {"not.a.jwt"}} },
			status: http.StatusBadRequest, errCode: "invalid_grant", errDescr: "invalid assertion",
		},
		{
			name: "HS256 with the public key as secret",
			form: func() url.Values {
				tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
					"iss": jwtClientID, "sub": e.user, "aud": "https://login.salesforce.com", "exp": e.clock.Now().Add(time.Minute).Unix(),
				}).SignedString(e.key.pubPEM)
				if err != nil {
					t.Fatal(err)
				}
				return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {tok}}
			},
			status: http.StatusBadRequest, errCode: "invalid_grant", errDescr: "invalid assertion",
		},
		{
			name:   "unsupported grant",
			form:   func() url.Values { return url.Values{"grant_type": {"password"}, "username": {e.user}} },
			status: http.StatusBadRequest, errCode: "unsupported_grant_type", errDescr: "grant type not supported",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.tokenRequest(tt.form())
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if tt.errCode == "" {
				var tok tokenResponse
				if err := json.Unmarshal(body, &tok); err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(tok.AccessToken, e.sim.OrgID()[:15]+"!") || tok.InstanceURL != e.srv.URL || tok.TokenType != "Bearer" {
					t.Errorf("token response %s", body)
				}
				if tok.ID != e.srv.URL+"/id/"+e.sim.OrgID()+"/"+e.userID {
					t.Errorf("id = %s", tok.ID)
				}
				return
			}
			var oe struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			strictDecode(t, body, &oe)
			if oe.Error != tt.errCode || oe.Description != tt.errDescr {
				t.Errorf("error = %+v, want %s: %s", oe, tt.errCode, tt.errDescr)
			}
		})
	}
}

func TestJWTBearerPublicKeyPEMAndPreAuthorization(t *testing.T) {
	e := newEnv(t)
	standard := e.sim.AddProfile("Standard User")
	admin := e.sim.AddProfile("System Administrator")
	if err := e.sim.AddConnectedApp(ConnectedApp{ClientID: "restricted", CertificatePEM: e.key.pubPEM, AllowedProfileIDs: []string{admin}}); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, func(c jwt.MapClaims) { c["iss"] = "restricted" })}}
	status, body := e.tokenRequest(form)
	if status != http.StatusBadRequest || !strings.Contains(string(body), "user hasn't approved this consumer") {
		t.Fatalf("a Standard User (%s) of an admin-only app: %d %s", standard, status, body)
	}
	if err := e.sim.Update("User", e.userID, map[string]any{"ProfileId": admin}, ""); err != nil {
		t.Fatal(err)
	}
	if status, body := e.tokenRequest(form); status != http.StatusOK {
		t.Fatalf("after moving the user to an allowed profile: %d %s", status, body)
	}
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t)
	if err := e.sim.AddConnectedApp(ConnectedApp{ClientID: "no-user", ClientSecret: "x"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		form    url.Values
		basic   bool
		status  int
		errCode string
		descr   string
	}{
		{"valid, form", url.Values{"grant_type": {"client_credentials"}, "client_id": {ccClientID}, "client_secret": {ccSecret}}, false, http.StatusOK, "", ""},
		{"valid, basic auth", url.Values{"grant_type": {"client_credentials"}}, true, http.StatusOK, "", ""},
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {ccClientID}, "client_secret": {"nope"}}, false, http.StatusBadRequest, "invalid_client", "invalid client credentials"},
		{"unknown client", url.Values{"grant_type": {"client_credentials"}, "client_id": {"who"}, "client_secret": {ccSecret}}, false, http.StatusBadRequest, "invalid_client", "invalid client credentials"},
		{"no execution user", url.Values{"grant_type": {"client_credentials"}, "client_id": {"no-user"}, "client_secret": {"x"}}, false, http.StatusBadRequest, "invalid_grant", "no client credentials user enabled"},
		{"JWT app has no secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {jwtClientID}, "client_secret": {""}}, false, http.StatusBadRequest, "invalid_client", "invalid client credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/services/oauth2/token", strings.NewReader(tt.form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.basic {
				req.SetBasicAuth(ccClientID, ccSecret)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || body["error"] != tt.errCode || body["error_description"] != tt.descr {
				t.Errorf("got %d %v, want %d %s %s", resp.StatusCode, body, tt.status, tt.errCode, tt.descr)
			}
			if tt.status == http.StatusOK {
				c := &client{t: t, base: body["instance_url"], token: body["access_token"], http: e.srv.Client(), version: "v" + e.sim.APIVersion()}
				var res queryResult
				c.json(http.MethodGet, "query?q="+url.QueryEscape("SELECT Id FROM User WHERE Id = '"+e.userID+"'"), nil, http.StatusOK, &res)
				if res.TotalSize != 1 {
					t.Errorf("the execution user's token cannot see itself: %+v", res)
				}
			}
		})
	}
}

// TestTokenResponseShape decodes the recorded Salesforce token response and the simulator's
// into the same struct, and checks the simulator's carries every key of the recording.
func TestTokenResponseShape(t *testing.T) {
	e := newEnv(t)
	status, body := e.tokenRequest(url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, nil)}})
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	type token struct {
		ID          string `json:"id"`
		IssuedAt    string `json:"issued_at"`
		InstanceURL string `json:"instance_url"`
		Signature   string `json:"signature"`
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
		TokenType   string `json:"token_type"`
	}
	var recorded, sim token
	strictDecode(t, recording(t, "auth_success_response.json"), &recorded)
	strictDecode(t, body, &sim)
	var realKeys, simKeys map[string]any
	_ = json.Unmarshal(recording(t, "auth_success_response.json"), &realKeys)
	_ = json.Unmarshal(body, &simKeys)
	for k := range realKeys {
		if _, ok := simKeys[k]; !ok {
			t.Errorf("the simulator's token response lacks %q", k)
		}
	}
	ms, err := jsonInt(sim.IssuedAt)
	if err != nil || !time.UnixMilli(ms).Equal(e.clock.Now()) {
		t.Errorf("issued_at %q is not the clock in milliseconds", sim.IssuedAt)
	}

	// Errors have the recorded shape too.
	status, body = e.tokenRequest(url.Values{"grant_type": {jwtBearerGrant}, "assertion": {"x"}})
	var realErr, simErr map[string]string
	strictDecodeMap(t, recording(t, "auth_error_response.json"), &realErr)
	strictDecodeMap(t, body, &simErr)
	if status != http.StatusBadRequest || !reflect.DeepEqual(sortedKeys(realErr), sortedKeys(simErr)) {
		t.Errorf("error response %d %s does not have the keys of %v", status, body, realErr)
	}
}

func jsonInt(s string) (int64, error) {
	var n int64
	err := json.Unmarshal([]byte(s), &n)
	return n, err
}

func strictDecodeMap(t *testing.T, data []byte, out *map[string]string) {
	t.Helper()
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatal(err)
	}
}

func sortedKeys(m map[string]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestSessionExpiry(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TokenLifetime = 30 * time.Minute })
	c := e.login()
	expired := recording(t, "expired_session_response.json")

	if r := c.call(http.MethodGet, "limits", nil); r.status != http.StatusOK {
		t.Fatalf("fresh token: %d %s", r.status, r.body)
	}
	// Using a session keeps it alive: 20 + 20 minutes with a call in between is fine.
	e.clock.Advance(20 * time.Minute)
	if r := c.call(http.MethodGet, "limits", nil); r.status != http.StatusOK {
		t.Fatalf("after 20 idle minutes: %d %s", r.status, r.body)
	}
	e.clock.Advance(20 * time.Minute)
	if r := c.call(http.MethodGet, "limits", nil); r.status != http.StatusOK {
		t.Fatalf("after another 20 idle minutes: %d %s", r.status, r.body)
	}
	e.clock.Advance(31 * time.Minute)
	r := c.call(http.MethodGet, "limits", nil)
	if r.status != http.StatusUnauthorized || !jsonEqual(t, r.body, expired) {
		t.Fatalf("after 31 idle minutes: %d %s, want 401 %s", r.status, r.body, expired)
	}

	// No header, a garbage token, and a deactivated user's token are all invalid sessions.
	noAuth := &client{t: t, base: e.srv.URL, http: e.srv.Client(), version: c.version}
	if r := noAuth.call(http.MethodGet, "limits", nil); r.status != http.StatusUnauthorized || !jsonEqual(t, r.body, expired) {
		t.Errorf("no token: %d %s", r.status, r.body)
	}
	c = e.login()
	if err := e.sim.Update("User", e.userID, map[string]any{"IsActive": false}, ""); err != nil {
		t.Fatal(err)
	}
	if r := c.call(http.MethodGet, "limits", nil); r.status != http.StatusUnauthorized {
		t.Errorf("deactivated user's token: %d %s", r.status, r.body)
	}
}

func TestExpireTokensFault(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	e.sim.InjectFault(Fault{Endpoint: EndpointQuery, Kind: FaultExpireTokens})
	if r := c.call(http.MethodGet, "limits", nil); r.status != http.StatusOK {
		t.Fatalf("another endpoint is unaffected: %d", r.status)
	}
	if r := c.query("SELECT Id FROM Contact"); r.status != http.StatusUnauthorized {
		t.Fatalf("the faulted query: %d %s", r.status, r.body)
	}
	if r := c.call(http.MethodGet, "limits", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("the old token stays dead: %d", r.status)
	}
	c = e.login()
	if r := c.query("SELECT Id FROM Contact"); r.status != http.StatusOK {
		t.Fatalf("a new token works and the fault fired once: %d %s", r.status, r.body)
	}
	if n := e.sim.Counts()[EndpointToken]; n != 2 {
		t.Errorf("token issuances = %d, want 2", n)
	}
}

func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("decode %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}
