package ews

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func fixture(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "faults", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// answerHTTP describes one canned HTTP answer.
type answerHTTP struct {
	status     int
	body       string
	retryAfter string
	drop       bool // close the connection without answering
	hang       bool // never answer; wait for the client to give up
}

// scripted serves the answers in order, then answers every further request successfully.
func scripted(t *testing.T, answers ...answerHTTP) *fakeServer {
	return newFakeServer(t, func(w http.ResponseWriter, req capturedRequest, n int) {
		if n > len(answers) {
			answering(w, req, n)
			return
		}
		a := answers[n-1]
		switch {
		case a.drop:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		case a.hang:
			<-req.ctx.Done()
		default:
			if a.retryAfter != "" {
				w.Header().Set("Retry-After", a.retryAfter)
			}
			ct := "text/xml; charset=utf-8"
			if strings.HasPrefix(a.body, "<html") || strings.HasPrefix(a.body, "<!DOCTYPE") {
				ct = "text/html"
			}
			w.Header().Set("Content-Type", ct)
			w.WriteHeader(a.status)
			_, _ = w.Write([]byte(a.body))
		}
	})
}

// recordWaits makes cl record its back-offs instead of sleeping.
func recordWaits(cl *Client) func() []time.Duration {
	var mu sync.Mutex
	var waits []time.Duration
	cl.wait = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	return func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), waits...)
	}
}

// TestFailures checks how each kind of failure is classified, whether it is retried, and for
// how long the client waits.
func TestFailures(t *testing.T) {
	sync := func(ctx context.Context, cl *Client, tg Target) error {
		_, err := cl.SyncFolderItems(ctx, tg, FolderID{ID: "f"}, "state", 0)
		return err
	}
	create := func(ctx context.Context, cl *Client, tg Target) error {
		return createOK(cl.CreateItems(ctx, tg, FolderID{ID: "f"}, []*tandemv1.Record{contactRecord("k", &tandemv1.Contact{GivenName: "A"})}))
	}
	getFolder := func(ctx context.Context, cl *Client, tg Target) error {
		_, err := cl.GetFolders(ctx, tg, ContactsFolder)
		return err
	}
	tests := []struct {
		name      string
		call      func(context.Context, *Client, Target) error
		answers   []answerHTTP
		config    func(*Config)
		wantCode  syncerr.Code // empty: success
		upstream  string
		delay     time.Duration
		requests  int
		minWaits  []time.Duration // lower bounds of the waits, in order
		sentinel  error
		permanent bool
	}{
		{name: "server busy with short back-off is waited out", call: sync,
			answers:  []answerHTTP{{status: 500, body: fixture(t, "server-busy-short.xml")}},
			requests: 2, minWaits: []time.Duration{25 * time.Millisecond}},
		{name: "server busy with long back-off is returned with its delay", call: sync,
			answers:  []answerHTTP{{status: 500, body: fixture(t, "server-busy.xml")}},
			wantCode: syncerr.ExchangeServerBusy, upstream: "ErrorServerBusy", delay: 297749 * time.Millisecond, requests: 1, sentinel: ErrServerBusy},
		{name: "server busy before a create is retried", call: create,
			answers:  []answerHTTP{{status: 500, body: fixture(t, "server-busy-short.xml")}},
			requests: 2, minWaits: []time.Duration{25 * time.Millisecond}},
		{name: "503 with Retry-After is waited out", call: sync,
			answers:  []answerHTTP{{status: 503, body: fixture(t, "http-503.html"), retryAfter: "2"}},
			requests: 2, minWaits: []time.Duration{2 * time.Second}},
		{name: "429 with a long Retry-After is returned", call: sync,
			answers:  []answerHTTP{{status: 429, retryAfter: "120"}},
			wantCode: syncerr.ExchangeServerBusy, upstream: "429", delay: 120 * time.Second, requests: 1},
		{name: "401 is an auth failure", call: sync,
			answers:  []answerHTTP{{status: 401, body: fixture(t, "http-401.html")}},
			wantCode: syncerr.ExchangeAuthFailed, upstream: "401", requests: 1, permanent: true},
		{name: "500 page on a read is retried then reported", call: sync,
			answers:  []answerHTTP{{status: 500, body: fixture(t, "http-500.html")}, {status: 500, body: fixture(t, "http-500.html")}, {status: 500, body: fixture(t, "http-500.html")}, {status: 500, body: fixture(t, "http-500.html")}},
			wantCode: syncerr.ExchangeUnavailable, upstream: "500", requests: 4},
		{name: "500 page on a read is retried until it succeeds", call: sync,
			answers:  []answerHTTP{{status: 500, body: fixture(t, "http-500.html")}},
			requests: 2},
		{name: "500 page on a create is not repeated", call: create,
			answers:  []answerHTTP{{status: 500, body: fixture(t, "http-500.html")}},
			wantCode: syncerr.ExchangeUnavailable, upstream: "500", requests: 1},
		{name: "dropped connection on a read is retried", call: sync,
			answers:  []answerHTTP{{drop: true}},
			requests: 2},
		{name: "dropped connection on a create is not repeated", call: create,
			answers:  []answerHTTP{{drop: true}},
			wantCode: syncerr.ExchangeUnavailable, requests: 1},
		{name: "timeout on a read is retried", call: sync,
			config:   func(c *Config) { c.RequestTimeout = 100 * time.Millisecond },
			answers:  []answerHTTP{{hang: true}},
			requests: 2},
		{name: "timeouts are reported as such", call: create,
			config:   func(c *Config) { c.RequestTimeout = 100 * time.Millisecond },
			answers:  []answerHTTP{{hang: true}},
			wantCode: syncerr.ExchangeTimeout, requests: 1},
		{name: "impersonation denied", call: getFolder,
			answers:  []answerHTTP{{status: 500, body: fixture(t, "impersonation-denied.xml")}},
			wantCode: syncerr.ExchangeImpersonationDenied, upstream: "ErrorImpersonateUserDenied", requests: 1, sentinel: ErrImpersonationDenied, permanent: true},
		{name: "nonexistent mailbox", call: getFolder,
			answers:  []answerHTTP{{status: 500, body: fixture(t, "nonexistent-mailbox.xml")}},
			wantCode: syncerr.ExchangeMailboxNotFound, upstream: "ErrorNonExistentMailbox", requests: 1, sentinel: ErrNonExistentMailbox, permanent: true},
		{name: "access denied", call: getFolder,
			answers:  []answerHTTP{{status: 200, body: fixture(t, "access-denied.xml")}},
			wantCode: syncerr.ExchangeAccessDenied, upstream: "ErrorAccessDenied", requests: 1, sentinel: ErrAccessDenied, permanent: true},
		{name: "invalid sync state", call: sync,
			answers:  []answerHTTP{{status: 200, body: fixture(t, "invalid-sync-state.xml")}},
			wantCode: syncerr.ExchangeInvalidSyncState, upstream: "ErrorInvalidSyncStateData", requests: 1, sentinel: ErrInvalidSyncState},
		{name: "folder not found", call: sync,
			answers:  []answerHTTP{{status: 200, body: fixture(t, "folder-not-found.xml")}},
			wantCode: syncerr.ExchangeFolderNotFound, upstream: "ErrorFolderNotFound", requests: 1, sentinel: ErrFolderNotFound},
		{name: "schema validation fault", call: create,
			answers:  []answerHTTP{{status: 500, body: fixture(t, "schema-validation.xml")}},
			wantCode: syncerr.ExchangeInvalidItem, upstream: "ErrorSchemaValidation", requests: 1, permanent: true},
		{name: "malformed XML on a read is retried then reported", call: sync,
			config:   func(c *Config) { c.MaxRetries = 1 },
			answers:  []answerHTTP{{status: 200, body: "<s:Envelope"}, {status: 200, body: "<s:Envelope"}},
			wantCode: syncerr.ExchangeMalformedResponse, requests: 2},
		{name: "response over the size cap", call: sync,
			config:   func(c *Config) { c.MaxResponseBytes = 256 },
			answers:  []answerHTTP{{status: 200, body: opResponse("SyncFolderItems", okMessage("SyncFolderItems", "<m:SyncState>"+strings.Repeat("A", 400)+"</m:SyncState>"))}},
			wantCode: syncerr.ExchangeResponseTooLarge, requests: 1, permanent: true},
		{name: "redirect is not followed", call: sync,
			answers:  []answerHTTP{{status: 302, body: "moved"}},
			wantCode: syncerr.ExchangeUnavailable, upstream: "302", requests: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := scripted(t, tc.answers...)
			cl := newTestClient(t, func(c *Config) {
				if tc.config != nil {
					tc.config(c)
				}
			})
			waits := recordWaits(cl)
			err := tc.call(t.Context(), cl, Target{URL: srv.URL, Address: testMailbox})
			if got := len(srv.captured()); got != tc.requests {
				t.Errorf("sent %d requests, want %d", got, tc.requests)
			}
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
			} else {
				var se *syncerr.Error
				if !errors.As(err, &se) {
					t.Fatalf("want *syncerr.Error %s, got %v", tc.wantCode, err)
				}
				if se.Code != tc.wantCode || se.Upstream != tc.upstream || se.Delay != tc.delay {
					t.Errorf("got code %s upstream %q delay %v, want %s %q %v (%v)", se.Code, se.Upstream, se.Delay, tc.wantCode, tc.upstream, tc.delay, err)
				}
				if se.Permanent() != tc.permanent {
					t.Errorf("permanent = %v, want %v", se.Permanent(), tc.permanent)
				}
				if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
					t.Errorf("errors.Is(err, %v) is false for %v", tc.sentinel, err)
				}
			}
			got := waits()
			for i, min := range tc.minWaits {
				if i >= len(got) || got[i] < min {
					t.Errorf("waits %v, want at least %v", got, tc.minWaits)
					break
				}
			}
		})
	}
}

func TestTLSFailureIsClassified(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cl := newTestClient(t) // the default client does not trust the test certificate
	_, err := cl.GetFolders(t.Context(), Target{URL: srv.URL, Address: testMailbox}, ContactsFolder)
	if se := syncerr.As(err); se.Code != syncerr.ExchangeTLS || !se.Permanent() {
		t.Fatalf("got %v, want a permanent %s", err, syncerr.ExchangeTLS)
	}
}

func TestCancelledContextIsNotClassified(t *testing.T) {
	srv := scripted(t, answerHTTP{hang: true})
	cl := newTestClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		poll.Until(t, "request to arrive", func() bool { return len(srv.captured()) == 1 })
		cancel()
	}()
	_, err := cl.GetFolders(ctx, Target{URL: srv.URL, Address: testMailbox}, ContactsFolder)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	var se *syncerr.Error
	if errors.As(err, &se) {
		t.Errorf("cancellation was classified as %s", se.Code)
	}
}

func TestRequestHeaders(t *testing.T) {
	tests := []struct {
		name  string
		creds Credentials
		user  string
	}{
		{"upn", &BasicAuth{Username: "svc@contoso.com", Password: "p@ss:word"}, "svc@contoso.com"},
		{"down-level", &BasicAuth{Username: `CONTOSO\svc`, Password: "p@ss:word"}, `CONTOSO\svc`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t, answering)
			cl := newTestClient(t, func(c *Config) { c.Credentials = tc.creds })
			if _, err := cl.GetFolders(t.Context(), Target{URL: srv.URL, Address: "Bob@Contoso.com"}, ContactsFolder); err != nil {
				t.Fatal(err)
			}
			req := srv.captured()[0]
			auth := req.header.Get("Authorization")
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte(tc.user+":p@ss:word"))
			if auth != want {
				t.Errorf("Authorization = %q, want %q", auth, want)
			}
			if got := req.header.Get("X-AnchorMailbox"); got != "Bob@Contoso.com" {
				t.Errorf("X-AnchorMailbox = %q", got)
			}
			if got := req.header.Get("SOAPAction"); got != `"`+nsMessages+`/GetFolder"` {
				t.Errorf("SOAPAction = %q", got)
			}
			if !strings.Contains(string(req.body), "<t:PrimarySmtpAddress>Bob@Contoso.com</t:PrimarySmtpAddress>") ||
				!strings.Contains(string(req.body), `<t:RequestServerVersion Version="Exchange2013_SP1"/>`) {
				t.Errorf("request lacks impersonation or version header:\n%s", req.body)
			}
		})
	}
}

func TestBasicAuthValidation(t *testing.T) {
	for _, tc := range []struct {
		user string
		ok   bool
	}{
		{"svc@contoso.com", true}, {`CONTOSO\svc`, true}, {"svc", false}, {"@contoso.com", false},
		{`\svc`, false}, {`CONTOSO\`, false}, {"a@b@c", false},
	} {
		_, err := NewBasicAuth(tc.user, "pw")
		if (err == nil) != tc.ok {
			t.Errorf("NewBasicAuth(%q) error = %v, want ok %v", tc.user, err, tc.ok)
		}
	}
	b := &BasicAuth{Username: "svc@contoso.com", Password: "hunter2"}
	if strings.Contains(b.String(), "hunter2") || strings.Contains(fmt.Sprint(b.LogValue()), "hunter2") {
		t.Error("password leaked into String or LogValue")
	}
}

// TestConcurrencyCapPerMailbox checks that no more than the cap of requests per mailbox are in
// flight at once, while other mailboxes are not held up.
func TestConcurrencyCapPerMailbox(t *testing.T) {
	const limit = 3
	var inFlight, peak atomic.Int32
	release := make(chan struct{})
	var other atomic.Int32
	srv := newFakeServer(t, func(w http.ResponseWriter, req capturedRequest, n int) {
		if req.header.Get("X-AnchorMailbox") == "other@contoso.com" {
			other.Add(1)
			answering(w, req, n)
			return
		}
		cur := inFlight.Add(1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		<-release
		inFlight.Add(-1)
		answering(w, req, n)
	})
	cl := newTestClient(t, func(c *Config) { c.MaxConcurrencyPerMailbox = limit })
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			_, err := cl.GetFolders(t.Context(), Target{URL: srv.URL, Address: testMailbox}, ContactsFolder)
			errs <- err
		})
	}
	poll.Until(t, "the cap to fill", func() bool { return inFlight.Load() == limit })
	if _, err := cl.GetFolders(t.Context(), Target{URL: srv.URL, Address: "other@contoso.com"}, ContactsFolder); err != nil || other.Load() != 1 {
		t.Fatalf("another mailbox was held up: %v", err)
	}
	if got := cl.limiter.inUse(testMailbox); got != limit {
		t.Errorf("limiter holds %d slots, want %d", got, limit)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if p := peak.Load(); p != limit {
		t.Errorf("peak concurrency %d, want %d", p, limit)
	}
	if got := cl.limiter.inUse(testMailbox); got != 0 {
		t.Errorf("limiter still holds %d slots", got)
	}
}

// tokenServer is a Microsoft-identity-platform-like token endpoint.
type tokenServer struct {
	*httptest.Server
	issued  atomic.Int32
	lastReq atomic.Value
}

func newTokenServer(t *testing.T, expiresIn int) *tokenServer {
	ts := &tokenServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("client_secret") != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		ts.lastReq.Store(r.Form.Encode())
		n := ts.issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("token-%d", n), "token_type": "Bearer", "expires_in": expiresIn})
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestOAuthTokens(t *testing.T) {
	tokens := newTokenServer(t, 3600)
	oauth, err := NewOAuth(OAuthConfig{ClientID: "app", ClientSecret: "s3cret", TokenURL: tokens.URL + "/tenant/oauth2/v2.0/token"})
	if err != nil {
		t.Fatal(err)
	}
	// The token library dates expiry from the real clock; the fake one starts there.
	now := time.Now()
	oauth.now = func() time.Time { return now }

	var rejectOnce atomic.Bool
	rejectOnce.Store(true)
	srv := newFakeServer(t, func(w http.ResponseWriter, req capturedRequest, n int) {
		if req.header.Get("Authorization") == "Bearer token-2" && rejectOnce.CompareAndSwap(true, false) {
			respond(w, http.StatusUnauthorized, "")
			return
		}
		answering(w, req, n)
	})
	cl := newTestClient(t, func(c *Config) { c.Credentials = oauth })
	get := func() {
		t.Helper()
		if _, err := cl.GetFolders(t.Context(), Target{URL: srv.URL, Address: testMailbox}, ContactsFolder); err != nil {
			t.Fatal(err)
		}
	}
	get()
	get()
	if n := tokens.issued.Load(); n != 1 {
		t.Fatalf("fetched %d tokens for two requests, want 1", n)
	}
	form, _ := tokens.lastReq.Load().(string)
	if !strings.Contains(form, "grant_type=client_credentials") || !strings.Contains(form, "scope=https%3A%2F%2Foutlook.office365.com%2F.default") {
		t.Errorf("token request form = %q", form)
	}
	// Close to expiry the token is renewed before it is used again (token-2); the server
	// rejects that one once, as if revoked, and the client fetches another and retries.
	now = now.Add(56 * time.Minute)
	get()
	if n := tokens.issued.Load(); n != 3 {
		t.Fatalf("fetched %d tokens, want 3 (renewal, then replacement after a 401)", n)
	}
	reqs := srv.captured()
	var used []string
	for _, r := range reqs {
		used = append(used, strings.TrimPrefix(r.header.Get("Authorization"), "Bearer "))
	}
	if want := []string{"token-1", "token-1", "token-2", "token-3"}; fmt.Sprint(used) != fmt.Sprint(want) {
		t.Errorf("tokens used %v, want %v", used, want)
	}

	bad, err := NewOAuth(OAuthConfig{ClientID: "app", ClientSecret: "wrong", TokenURL: tokens.URL + "/t/oauth2/v2.0/token"})
	if err != nil {
		t.Fatal(err)
	}
	cl2 := newTestClient(t, func(c *Config) { c.Credentials = bad })
	_, err = cl2.GetFolders(t.Context(), Target{URL: srv.URL, Address: testMailbox}, ContactsFolder)
	if se := syncerr.As(err); se.Code != syncerr.ExchangeAuthFailed {
		t.Errorf("bad client secret: got %v, want %s", err, syncerr.ExchangeAuthFailed)
	}
	if strings.Contains(fmt.Sprint(bad), "wrong") || strings.Contains(fmt.Sprint(bad.LogValue()), "wrong") {
		t.Error("client secret leaked into String or LogValue")
	}
}

func TestDefaultTokenURL(t *testing.T) {
	o, err := NewOAuth(OAuthConfig{TenantID: "contoso.onmicrosoft.com", ClientID: "a", ClientSecret: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"; o.cfg.TokenURL != want {
		t.Errorf("token URL %q, want %q", o.cfg.TokenURL, want)
	}
	if _, err := NewOAuth(OAuthConfig{ClientID: "a", ClientSecret: "b"}); err == nil {
		t.Error("no tenant and no token URL accepted")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"5", 5 * time.Second}, {"-3", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := retryAfter(tc.in, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestServerVersion(t *testing.T) {
	for _, tc := range []struct {
		v    ServerVersion
		s    string
		ok   bool
		name string
	}{
		{ServerVersion{15, 2, 1748, 10, "V2017_07_11"}, "15.2.1748.10 V2017_07_11", true, "Exchange 2019"},
		{ServerVersion{15, 1, 2507, 6, "V2017_07_11"}, "15.1.2507.6 V2017_07_11", true, "Exchange 2016"},
		{ServerVersion{15, 20, 3370, 16, "V2018_01_08"}, "15.20.3370.16 V2018_01_08", true, "Exchange Online"},
		{ServerVersion{15, 0, 1497, 2, "V2_23"}, "15.0.1497.2 V2_23", false, "Exchange 2013"},
		{ServerVersion{14, 3, 123, 4, "Exchange2010_SP2"}, "14.3.123.4 Exchange2010_SP2", false, "Exchange 2010"},
	} {
		if tc.v.String() != tc.s || tc.v.Supported() != tc.ok {
			t.Errorf("%s: String %q Supported %v, want %q %v", tc.name, tc.v.String(), tc.v.Supported(), tc.s, tc.ok)
		}
	}
}
