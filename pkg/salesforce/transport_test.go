package salesforce

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// fakeOrg is a minimal Salesforce for transport tests: a token endpoint that verifies JWT
// assertions and issues numbered tokens, and a REST handler the test supplies. Behaviour
// against the full API is tested with package sfsim.
type fakeOrg struct {
	t   *testing.T
	srv *httptest.Server
	key *rsa.PublicKey

	mu         sync.Mutex
	issued     int            // tokens issued
	validFrom  int            // tokens numbered below this are expired
	subjects   map[string]int // JWT subjects seen
	tokenError string         // when set, the token endpoint answers 400 with this error_description
	calls      map[string]int // REST calls by "METHOD path"

	rest func(w http.ResponseWriter, r *http.Request)
}

func newFakeOrg(t *testing.T, rest func(w http.ResponseWriter, r *http.Request)) *fakeOrg {
	k, err := testKey()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeOrg{t: t, key: &k.PublicKey, subjects: map[string]int{}, calls: map[string]int{}, rest: rest}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeOrg) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/services/oauth2/token" {
		f.token(w, r)
		return
	}
	f.mu.Lock()
	f.calls[r.Method+" "+r.URL.Path]++
	var n int
	_, err := fmt.Sscanf(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), "tok-%d", &n)
	valid := err == nil && n >= f.validFrom && n < f.issued
	f.mu.Unlock()
	if !valid {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`)
		return
	}
	f.rest(w, r)
}

func (f *fakeOrg) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fail := func(desc string) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":%q}`, desc)
	}
	if f.tokenError != "" {
		fail(f.tokenError)
		return
	}
	switch r.PostForm.Get("grant_type") {
	case jwtBearerGrant:
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(*jwt.Token) (any, error) { return f.key, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(productionAudience), jwt.WithIssuer(testClientID), jwt.WithExpirationRequired())
		if err != nil {
			fail(err.Error())
			return
		}
		if aud, ok := claims["aud"].(string); !ok || aud != productionAudience {
			fail(fmt.Sprintf("aud %v is not the string %s", claims["aud"], productionAudience))
			return
		}
		if exp, _ := claims.GetExpirationTime(); exp == nil || time.Until(exp.Time) > 3*time.Minute+time.Second {
			fail("exp too far in the future")
			return
		}
		sub, _ := claims.GetSubject()
		f.subjects[sub]++
	case "client_credentials":
		if r.PostForm.Get("client_id") != testClientID || r.PostForm.Get("client_secret") != "s3cret" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"invalid client credentials"}`)
			return
		}
		f.subjects[""]++
	default:
		fail("unsupported grant type")
		return
	}
	fmt.Fprintf(w, `{"access_token":"tok-%d","instance_url":%q,"id":"%s/id/%s/`+fakeWriterID+`","token_type":"Bearer","issued_at":"1278448832702","signature":"x"}`,
		f.issued, f.srv.URL, f.srv.URL, testOrgID)
	f.issued++
}

func (f *fakeOrg) expireTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.validFrom = f.issued
}

func (f *fakeOrg) tokensIssued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued
}

func (f *fakeOrg) callCount(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

func fastRetry() Option {
	return WithRetryPolicy(RetryPolicy{Attempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, LockAttempts: 3})
}

func okQuery(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set(LimitInfoHeader, "api-usage=10/15000")
	fmt.Fprint(w, `{"totalSize":0,"done":true,"records":[]}`)
}

func TestExpiredSessionCostsOneRenewalUnderConcurrency(t *testing.T) {
	f := newFakeOrg(t, okQuery)
	c := newTestConnector(t, jwtOrg(t, f.srv.URL))
	ctx := t.Context()
	if _, err := c.queryAllRows(ctx, testIntegration, "SELECT Id FROM Contact"); err != nil {
		t.Fatal(err)
	}
	f.expireTokens()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Go(func() {
			_, err := c.queryAllRows(ctx, testIntegration, "SELECT Id FROM Contact")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.tokensIssued(); got != 2 {
		t.Errorf("%d tokens issued, want 2 (the first and exactly one renewal)", got)
	}
}

func TestSecondUnauthorizedFailsWithoutAnotherRenewal(t *testing.T) {
	var f *fakeOrg
	f = newFakeOrg(t, func(w http.ResponseWriter, r *http.Request) {
		f.expireTokens() // every token dies on first use
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`)
	})
	c := newTestConnector(t, jwtOrg(t, f.srv.URL))
	_, err := c.queryAllRows(t.Context(), testIntegration, "SELECT Id FROM Contact")
	var se *syncerr.Error
	if !errors.As(err, &se) || se.Code != syncerr.SalesforceAuthFailed {
		t.Fatalf("err = %v, want SALESFORCE_AUTH_FAILED", err)
	}
	if got := f.tokensIssued(); got != 2 {
		t.Errorf("%d tokens issued, want 2", got)
	}
	if got := f.callCount("GET /services/data/v62.0/query"); got != 2 {
		t.Errorf("%d query calls, want 2 (the request and one retry)", got)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	tests := []struct {
		desc     string
		wantCode syncerr.Code
	}{
		{"user hasn't approved this consumer", syncerr.SalesforceAuthFailed},
		{"audience is invalid", syncerr.SalesforceAuthFailed},
		{"user is inactive", syncerr.SalesforceUserInactive},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			f := newFakeOrg(t, okQuery)
			f.tokenError = tt.desc
			c := newTestConnector(t, jwtOrg(t, f.srv.URL))
			err := c.Check(t.Context())
			var se *syncerr.Error
			if !errors.As(err, &se) || se.Code != tt.wantCode || se.Upstream != "invalid_grant" || !strings.Contains(se.Detail, tt.desc) {
				t.Fatalf("Check = %v, want %s with the upstream text", err, tt.wantCode)
			}
			var te *TokenError
			if !errors.As(err, &te) || te.Description != tt.desc {
				t.Errorf("no *TokenError in the chain: %v", err)
			}
		})
	}
}

func TestClientCredentialsFlow(t *testing.T) {
	f := newFakeOrg(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"DailyApiRequests":{"Max":15000,"Remaining":14998}}`)
	})
	org := &tandemv1.Org{OrgId: testOrgID, Salesforce: &tandemv1.SalesforceConnection{
		MyDomainUrl: f.srv.URL, ClientId: testClientID, ClientSecret: "s3cret"}}
	c := newTestConnector(t, org)
	if err := c.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	if u := c.Usage(); u.DailyMax != 15000 || u.Used != 2 || u.Reserve != 3000 || u.TandemCalls != 1 {
		t.Errorf("usage after Check = %+v", u)
	}
	org.Salesforce.ClientSecret = "wrong"
	c = newTestConnector(t, org)
	err := c.Check(t.Context())
	if se := syncerr.As(err); se.Code != syncerr.SalesforceAuthFailed || se.Upstream != "invalid_client" {
		t.Errorf("Check with a wrong secret = %v", err)
	}
}

func TestRetriesOnlyIdempotentRequests(t *testing.T) {
	var fails atomic.Int32
	f := newFakeOrg(t, func(w http.ResponseWriter, r *http.Request) {
		if fails.Add(-1) >= 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `[{"message":"down for maintenance","errorCode":"SERVER_UNAVAILABLE"}]`)
			return
		}
		if r.Method == http.MethodGet {
			okQuery(w, r)
			return
		}
		fmt.Fprint(w, `[{"id":"003000000000001AAA","success":true,"errors":[],"created":true}]`)
	})
	c := newTestConnector(t, jwtOrg(t, f.srv.URL), fastRetry())
	ctx := t.Context()
	user := &tandemv1.SyncUser{UserId: "005000000000001AAA", Username: "rep@acme.example"}
	contact := func(key string) []*tandemv1.WriteCommand {
		return []*tandemv1.WriteCommand{{CommandId: "c1", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key,
			Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{Surname: "X"}}}}}
	}
	tests := []struct {
		name      string
		fail      int32
		run       func() error
		call      string
		wantCalls int
		wantErr   syncerr.Code
	}{
		{"query recovers", 2, func() error { _, err := c.queryAllRows(ctx, testIntegration, "SELECT Id FROM Contact"); return err },
			"GET /services/data/v62.0/query", 3, ""},
		{"query gives up after the attempts", 5, func() error { _, err := c.queryAllRows(ctx, testIntegration, "SELECT Id FROM Contact"); return err },
			"GET /services/data/v62.0/query", 3, syncerr.SalesforceUnavailable},
		{"upsert by sync key recovers", 1, func() error {
			_, err := c.Apply(ctx, user, tandemv1.RecordKind_RECORD_KIND_CONTACT, contact("sk"))
			return err
		},
			"PATCH /services/data/v62.0/composite/sobjects/Contact/Tandem_Sync_Key__c", 2, ""},
		{"plain create is not retried", 1, func() error {
			_, err := c.Apply(ctx, user, tandemv1.RecordKind_RECORD_KIND_CONTACT, contact(""))
			return err
		},
			"POST /services/data/v62.0/composite/sobjects", 1, syncerr.SalesforceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.callCount(tt.call)
			fails.Store(tt.fail)
			err := tt.run()
			if got := f.callCount(tt.call) - before; got != tt.wantCalls {
				t.Errorf("%d calls, want %d", got, tt.wantCalls)
			}
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && syncerr.As(err).Code != tt.wantErr {
				t.Fatalf("err = %v, want %s", err, tt.wantErr)
			}
		})
	}
}

func TestRequestLimitExceededBacksOff(t *testing.T) {
	f := newFakeOrg(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(LimitInfoHeader, "api-usage=15001/15000")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`)
	})
	now := time.Now() // the JWT assertion's exp comes from this clock too
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := newTestConnector(t, jwtOrg(t, f.srv.URL), WithClock(clock), fastRetry())
	_, err := c.queryAllRows(t.Context(), testIntegration, "SELECT Id FROM Contact")
	se := syncerr.As(err)
	if se.Code != syncerr.SalesforceRequestLimit || se.Delay != DefaultLimitProbe || se.Permanent() {
		t.Fatalf("err = %#v, want SALESFORCE_REQUEST_LIMIT_EXCEEDED with a first pause of %s", se, DefaultLimitProbe)
	}
	if u := c.Usage(); !u.BackedOffUntil.Equal(now.Add(DefaultLimitProbe)) || u.Used != 15001 || u.DailyMax != 15000 {
		t.Errorf("usage = %+v", u)
	}
	calls := f.callCount("GET /services/data/v62.0/query")
	mu.Lock()
	now = now.Add(DefaultLimitProbe / 2)
	mu.Unlock()
	_, err = c.queryAllRows(t.Context(), testIntegration, "SELECT Id FROM Contact")
	if se := syncerr.As(err); se.Code != syncerr.SalesforceRequestLimit || se.Delay != DefaultLimitProbe/2 {
		t.Errorf("second call err = %#v", se)
	}
	if got := f.callCount("GET /services/data/v62.0/query"); got != calls {
		t.Errorf("a call went out while backed off (%d → %d)", calls, got)
	}
	// The pause over, one probe goes out even though the org is inside its reserve; the limit
	// persists, so the next pause is twice as long.
	mu.Lock()
	now = now.Add(DefaultLimitProbe / 2)
	mu.Unlock()
	_, err = c.queryAllRows(t.Context(), testIntegration, "SELECT Id FROM Contact")
	if se := syncerr.As(err); se.Code != syncerr.SalesforceRequestLimit || se.Delay != 2*DefaultLimitProbe {
		t.Errorf("probe err = %#v, want a pause of %s", se, 2*DefaultLimitProbe)
	}
	if got := f.callCount("GET /services/data/v62.0/query"); got != calls+1 {
		t.Errorf("%d calls after the pause, want the one probe", got-calls)
	}
}

func TestReserveRefusesCalls(t *testing.T) {
	f := newFakeOrg(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(LimitInfoHeader, "api-usage=12000/15000")
		fmt.Fprint(w, `{"totalSize":0,"done":true,"records":[]}`)
	})
	org := jwtOrg(t, f.srv.URL)
	org.Salesforce.DailyApiReservePercent = 25
	c := newTestConnector(t, org)
	if _, err := c.queryAllRows(t.Context(), testIntegration, "SELECT Id FROM Contact"); err != nil {
		t.Fatal(err)
	}
	_, err := c.queryAllRows(t.Context(), testIntegration, "SELECT Id FROM Contact")
	se := syncerr.As(err)
	if se.Code != syncerr.SalesforceBudgetReserved || se.Delay <= 0 {
		t.Fatalf("err = %#v, want SALESFORCE_API_BUDGET_RESERVED with a delay", se)
	}
	if got := f.callCount("GET /services/data/v62.0/query"); got != 1 {
		t.Errorf("%d calls, want 1", got)
	}
	if u := c.Usage(); u.Reserve != 3750 || u.BackedOffUntil.IsZero() {
		t.Errorf("usage = %+v", u)
	}
}

func TestConcurrencyCap(t *testing.T) {
	var inFlight, peak atomic.Int32
	release := make(chan struct{})
	arrived := make(chan struct{}, 100)
	f := newFakeOrg(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		arrived <- struct{}{}
		<-release
		inFlight.Add(-1)
		okQuery(w, r)
	})
	org := jwtOrg(t, f.srv.URL)
	org.Salesforce.MaxConcurrentRequests = 3
	c := newTestConnector(t, org)
	if _, err := c.auth.token(t.Context(), testIntegration); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := c.queryAllRows(t.Context(), testIntegration, "SELECT Id FROM Contact"); err != nil {
				t.Error(err)
			}
		})
	}
	for range 3 {
		<-arrived
	}
	select {
	case <-arrived:
		t.Error("a fourth request reached the server while three were in flight")
	case <-time.After(100 * time.Millisecond): // a cap that let more through would show here
	}
	close(release)
	wg.Wait()
	if got := peak.Load(); got != 3 {
		t.Errorf("peak concurrency %d, want 3", got)
	}
}

func TestResponseSizeCap(t *testing.T) {
	f := newFakeOrg(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"totalSize":1,"done":true,"records":[{"Description":%q}]}`, strings.Repeat("x", 4096))
	})
	c := newTestConnector(t, jwtOrg(t, f.srv.URL), WithMaxResponseBytes(1024))
	_, err := c.queryAllRows(t.Context(), testIntegration, "SELECT Id FROM Contact")
	var tooLarge *ResponseTooLargeError
	if se := syncerr.As(err); se.Code != syncerr.SalesforceResponseTooLarge || !errors.As(err, &tooLarge) || tooLarge.Limit != 1024 {
		t.Fatalf("err = %v", err)
	}
}

func TestCallOptionsHeaderOnWritesOnly(t *testing.T) {
	for _, tc := range []struct {
		writeAs tandemv1.SalesforceWriteIdentity
		// want are the token requests per JWT subject.
		want map[string]int
	}{
		{tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_UNSPECIFIED, map[string]int{testIntegration: 1}},
		{tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_INTEGRATION_USER, map[string]int{testIntegration: 1}},
		{tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_REP, map[string]int{testIntegration: 1, "rep@acme.example": 1}},
	} {
		t.Run(tc.writeAs.String(), func(t *testing.T) {
			var mu sync.Mutex
			seen := map[string]string{}
			f := newFakeOrg(t, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				seen[r.Method] = r.Header.Get("Sforce-Call-Options")
				mu.Unlock()
				if r.Method == http.MethodGet {
					okQuery(w, r)
					return
				}
				fmt.Fprint(w, `[{"id":"003000000000001AAA","success":true,"errors":[]}]`)
			})
			org := jwtOrg(t, f.srv.URL)
			org.Salesforce.WriteAs = tc.writeAs
			c := newTestConnector(t, org, WithClientName("tandem-test"))
			user := &tandemv1.SyncUser{UserId: "005000000000001AAA", Username: "rep@acme.example"}
			if _, err := c.Apply(t.Context(), user, tandemv1.RecordKind_RECORD_KIND_CONTACT, []*tandemv1.WriteCommand{{
				Op: tandemv1.WriteOp_WRITE_OP_DELETE, TargetId: "003000000000001AAA"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.queryAllRows(t.Context(), testIntegration, "SELECT Id FROM Contact"); err != nil {
				t.Fatal(err)
			}
			if seen[http.MethodDelete] != "client=tandem-test" || seen[http.MethodGet] != "" {
				t.Errorf("Sforce-Call-Options by method: %v", seen)
			}
			if !maps.Equal(f.subjects, tc.want) {
				t.Errorf("JWT subjects %v, want %v: writes act as write_as says, reads as the integration user", f.subjects, tc.want)
			}
		})
	}
}

func TestCallerCancellationIsNotClassified(t *testing.T) {
	block := make(chan struct{})
	arrived := make(chan struct{}, 1)
	f := newFakeOrg(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-block
	})
	t.Cleanup(func() { close(block) })
	c := newTestConnector(t, jwtOrg(t, f.srv.URL))
	if _, err := c.auth.token(t.Context(), testIntegration); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.queryAllRows(ctx, testIntegration, "SELECT Id FROM Contact")
		done <- err
	}()
	<-arrived
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestPlainHTTPOnlyWhenAllowed: the My Domain, and the instance a token names, are https
// unless the connector may use a plain-http simulator.
func TestPlainHTTPOnlyWhenAllowed(t *testing.T) {
	org := jwtOrg(t, "http://127.0.0.1:8443")
	if _, err := NewConnector(org); err == nil || !strings.Contains(err.Error(), "plain http") {
		t.Fatalf("plain-http My Domain without WithAllowHTTP: %v, want refused as plain http", err)
	}
	if _, err := NewConnector(org, WithAllowHTTP(true)); err != nil {
		t.Fatalf("plain-http My Domain with WithAllowHTTP: %v", err)
	}
	body := []byte(`{"access_token":"a","instance_url":"http://acme.my.salesforce.com"}`)
	if _, _, err := ParseTokenResponse(body, "https://acme.my.salesforce.com"); err == nil {
		t.Fatal("an https My Domain's token named a plain-http instance, and it was accepted")
	}
	if _, inst, err := ParseTokenResponse(body, "http://127.0.0.1:8443"); err != nil || inst != "http://acme.my.salesforce.com" {
		t.Fatalf("a plain-http simulator's instance: %q, %v", inst, err)
	}
}

func TestNewConnectorValidates(t *testing.T) {
	priv, _ := testKeyPEM(t)
	conn := func(mod func(*tandemv1.SalesforceConnection)) *tandemv1.Org {
		c := &tandemv1.SalesforceConnection{MyDomainUrl: "https://acme.my.salesforce.com", ClientId: testClientID,
			PrivateKeyPem: string(priv), IntegrationUsername: testIntegration}
		mod(c)
		return &tandemv1.Org{OrgId: testOrgID, Salesforce: c}
	}
	tests := []struct {
		name string
		org  *tandemv1.Org
		want syncerr.Code
	}{
		{"no connection", &tandemv1.Org{OrgId: testOrgID}, syncerr.SalesforceConfigMissing},
		{"nil org", nil, syncerr.SalesforceConfigMissing},
		{"bad My Domain", conn(func(c *tandemv1.SalesforceConnection) { c.MyDomainUrl = "acme" }), syncerr.SalesforceConfigMissing},
		{"no client id", conn(func(c *tandemv1.SalesforceConnection) { c.ClientId = "" }), syncerr.SalesforceConfigMissing},
		{"no integration user", conn(func(c *tandemv1.SalesforceConnection) { c.IntegrationUsername = "" }), syncerr.SalesforceConfigMissing},
		{"bad key", conn(func(c *tandemv1.SalesforceConnection) { c.PrivateKeyPem = "not a key" }), syncerr.SalesforceAuthFailed},
		{"bad version", conn(func(c *tandemv1.SalesforceConnection) { c.ApiVersion = "62" }), syncerr.SalesforceConfigMissing},
		{"client credentials without secret", conn(func(c *tandemv1.SalesforceConnection) {
			c.Auth = tandemv1.SalesforceAuth_SALESFORCE_AUTH_CLIENT_CREDENTIALS
		}), syncerr.SalesforceConfigMissing},
		{"no credentials", conn(func(c *tandemv1.SalesforceConnection) { c.PrivateKeyPem = "" }), syncerr.SalesforceConfigMissing},
		{"plain-http My Domain", conn(func(c *tandemv1.SalesforceConnection) { c.MyDomainUrl = "http://acme.my.salesforce.com" }), syncerr.SalesforceConfigMissing},
		{"valid", conn(func(*tandemv1.SalesforceConnection) {}), ""},
		{"valid sandbox with version", conn(func(c *tandemv1.SalesforceConnection) {
			c.MyDomainUrl = "https://acme--uat.sandbox.my.salesforce.com"
			c.ApiVersion = "v61.0"
		}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewConnector(tt.org)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tt.name == "valid sandbox with version" && (c.auth.audience != sandboxAudience || c.apiVersion != "v61.0") {
					t.Errorf("audience %s version %s", c.auth.audience, c.apiVersion)
				}
				return
			}
			if se := syncerr.As(err); se.Code != tt.want {
				t.Errorf("err = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestWholeRequestRejectionIsolatesBadRecords(t *testing.T) {
	var calls atomic.Int32
	f := newFakeOrg(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var body struct {
			Records []map[string]any `json:"records"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Error(err)
		}
		var out []string
		for i, rec := range body.Records {
			switch rec["LastName"] {
			case "POISON":
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `[{"message":"Cannot deserialize instance of date from VALUE_STRING value POISON","errorCode":"JSON_PARSER_ERROR"}]`)
				return
			case "NOFIELD":
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `[{"message":"No such column 'Tandem_Sync_Key__c' on sobject of type Contact","errorCode":"INVALID_FIELD"}]`)
				return
			}
			out = append(out, fmt.Sprintf(`{"id":"003%012dAAA","success":true,"errors":[],"created":true}`, i))
		}
		fmt.Fprintf(w, "[%s]", strings.Join(out, ","))
	})
	c := newTestConnector(t, jwtOrg(t, f.srv.URL))
	user := &tandemv1.SyncUser{UserId: "005000000000001AAA", Username: "rep@acme.example"}
	batch := func(bad map[int]string) []*tandemv1.WriteCommand {
		var cmds []*tandemv1.WriteCommand
		for i := range 200 {
			name := "Fine"
			if b, ok := bad[i]; ok {
				name = b
			}
			cmds = append(cmds, &tandemv1.WriteCommand{CommandId: fmt.Sprint(i), Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: fmt.Sprintf("sk-%d", i),
				Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{Surname: name}}}})
		}
		return cmds
	}
	all := map[int]string{}
	for i := range 200 {
		all[i] = "POISON"
	}
	tests := []struct {
		name      string
		bad       map[int]string
		wantFail  int
		maxCalls  int32
		wantError syncerr.Code // of Apply as a whole
	}{
		{"one bad record", map[int]string{137: "POISON"}, 1, 1 + 16, ""},
		{"two bad records", map[int]string{3: "POISON", 190: "POISON"}, 2, 1 + isolationBudget, ""},
		{"every record bad", all, 200, 1 + isolationBudget, ""},
		{"missing field is not a record's fault", map[int]string{0: "NOFIELD"}, 0, 1, syncerr.SalesforceFieldMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls.Store(0)
			res, err := c.Apply(t.Context(), user, tandemv1.RecordKind_RECORD_KIND_CONTACT, batch(tt.bad))
			if got := calls.Load(); got > tt.maxCalls {
				t.Errorf("%d calls, want at most %d", got, tt.maxCalls)
			}
			if tt.wantError != "" {
				if syncerr.As(err).Code != tt.wantError {
					t.Fatalf("Apply = %v, want %s", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			failed := 0
			for i, r := range res {
				_, isBad := tt.bad[i]
				if r.GetOk() == isBad && len(tt.bad) < 3 {
					t.Errorf("command %d: ok=%t, bad=%t", i, r.GetOk(), isBad)
				}
				if !r.GetOk() {
					failed++
					if r.GetError().GetCode() != string(syncerr.SalesforceRejected) || r.GetError().GetUpstreamCode() != "JSON_PARSER_ERROR" {
						t.Errorf("command %d error %v", i, r.GetError())
					}
				}
			}
			if failed != tt.wantFail {
				t.Errorf("%d failed, want %d", failed, tt.wantFail)
			}
		})
	}
}
