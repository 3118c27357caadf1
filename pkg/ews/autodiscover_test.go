package ews

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/syncerr"
)

// soapUserSettings answers GetUserSettings as Exchange does.
func soapUserSettings(errorCode, target string, settings map[string]string) string {
	var b strings.Builder
	for name, value := range settings {
		b.WriteString(`<UserSetting i:type="StringSetting"><Name>` + name + `</Name><Value>` + value + `</Value></UserSetting>`)
	}
	return `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://www.w3.org/2005/08/addressing">` +
		`<s:Header><a:Action s:mustUnderstand="1">http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse</a:Action></s:Header>` +
		`<s:Body><GetUserSettingsResponseMessage xmlns="http://schemas.microsoft.com/exchange/2010/Autodiscover"><Response xmlns:i="http://www.w3.org/2001/XMLSchema-instance">` +
		`<ErrorCode>NoError</ErrorCode><ErrorMessage/><UserResponses><UserResponse><ErrorCode>` + errorCode + `</ErrorCode><ErrorMessage>msg</ErrorMessage>` +
		`<RedirectTarget>` + target + `</RedirectTarget><UserSettingErrors/><UserSettings>` + b.String() + `</UserSettings></UserResponse></UserResponses>` +
		`</Response></GetUserSettingsResponseMessage></s:Body></s:Envelope>`
}

func poxSettings(ewsURL string) string {
	return `<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">` +
		`<Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"><User><DisplayName>Pox User</DisplayName></User>` +
		`<Account><AccountType>email</AccountType><Action>settings</Action><Protocol><Type>EXCH</Type><EwsUrl>https://internal.example.com/EWS/Exchange.asmx</EwsUrl></Protocol>` +
		`<Protocol><Type>EXPR</Type><EwsUrl>` + ewsURL + `</EwsUrl></Protocol></Account></Response></Autodiscover>`
}

// adServer is a TLS server routing by host and path; every host resolves to it.
type adServer struct {
	*httptest.Server
	calls atomic.Int32
	mu    sync.Mutex
	seen  []string
}

func newADServer(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, body string)) *adServer {
	s := &adServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, r.Host+r.URL.Path)
		s.mu.Unlock()
		handle(w, r, string(body))
	}))
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *adServer) visited() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func xmlAnswer(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = io.WriteString(w, body)
}

func TestAutodiscover(t *testing.T) {
	const ews = "https://mail.example.com/EWS/Exchange.asmx"
	tests := []struct {
		name     string
		fallback string
		handle   func(w http.ResponseWriter, r *http.Request, body string)
		address  string
		wantURL  string
		wantCode syncerr.Code
	}{
		{name: "soap at the domain", address: "ann@example.com", wantURL: ews,
			handle: func(w http.ResponseWriter, r *http.Request, body string) {
				if r.Host != "example.com" || !strings.Contains(body, "<a:Mailbox>ann@example.com</a:Mailbox>") {
					http.NotFound(w, r)
					return
				}
				xmlAnswer(w, soapUserSettings("NoError", "", map[string]string{"ExternalEwsUrl": ews, "InternalEwsUrl": "https://int/EWS/Exchange.asmx", "UserDisplayName": "Ann"}))
			}},
		{name: "soap at autodiscover.domain, internal URL only", address: "ann@example.com", wantURL: ews,
			handle: func(w http.ResponseWriter, r *http.Request, body string) {
				if r.Host != "autodiscover.example.com" {
					http.NotFound(w, r)
					return
				}
				xmlAnswer(w, soapUserSettings("NoError", "", map[string]string{"InternalEwsUrl": ews}))
			}},
		{name: "pox when soap is missing", address: "ann@example.com", wantURL: ews,
			handle: func(w http.ResponseWriter, r *http.Request, body string) {
				if !strings.HasSuffix(r.URL.Path, ".xml") || !strings.Contains(body, "<EMailAddress>ann@example.com</EMailAddress>") {
					http.NotFound(w, r)
					return
				}
				xmlAnswer(w, poxSettings(ews))
			}},
		{name: "redirect address", address: "ann@example.com", wantURL: ews,
			handle: func(w http.ResponseWriter, r *http.Request, body string) {
				if strings.Contains(body, "ann@example.com") {
					xmlAnswer(w, soapUserSettings("RedirectAddress", "ann@cloud.example.com", nil))
					return
				}
				xmlAnswer(w, soapUserSettings("NoError", "", map[string]string{"ExternalEwsUrl": ews}))
			}},
		{name: "redirect url", address: "ann@example.com", wantURL: ews,
			handle: func(w http.ResponseWriter, r *http.Request, body string) {
				if r.Host != "eu.example.com" {
					xmlAnswer(w, soapUserSettings("RedirectUrl", "https://eu.example.com/autodiscover/autodiscover.svc", nil))
					return
				}
				xmlAnswer(w, soapUserSettings("NoError", "", map[string]string{"ExternalEwsUrl": ews}))
			}},
		{name: "http redirect", address: "ann@example.com", wantURL: ews,
			handle: func(w http.ResponseWriter, r *http.Request, body string) {
				if r.Host != "new.example.com" {
					http.Redirect(w, r, "https://new.example.com/autodiscover/autodiscover.svc", http.StatusFound)
					return
				}
				xmlAnswer(w, soapUserSettings("NoError", "", map[string]string{"ExternalEwsUrl": ews}))
			}},
		{name: "redirect to plain http is refused", address: "ann@example.com", wantCode: syncerr.ExchangeAutodiscoverFailed,
			handle: func(w http.ResponseWriter, r *http.Request, body string) {
				http.Redirect(w, r, "http://new.example.com/autodiscover/autodiscover.svc", http.StatusFound)
			}},
		{name: "plain-http EWS URL is refused", address: "ann@example.com", wantCode: syncerr.ExchangeAutodiscoverFailed,
			handle: func(w http.ResponseWriter, r *http.Request, body string) {
				xmlAnswer(w, soapUserSettings("NoError", "", map[string]string{"ExternalEwsUrl": "http://mail.example.com/EWS/Exchange.asmx"}))
			}},
		{name: "redirect loop is cut", address: "ann@example.com", wantCode: syncerr.ExchangeAutodiscoverFailed,
			handle: func(w http.ResponseWriter, r *http.Request, body string) {
				xmlAnswer(w, soapUserSettings("RedirectUrl", "https://loop.example.com/autodiscover/autodiscover.svc", nil))
			}},
		{name: "unknown user", address: "ghost@example.com", wantCode: syncerr.ExchangeMailboxNotFound,
			handle: func(w http.ResponseWriter, r *http.Request, body string) {
				xmlAnswer(w, soapUserSettings("InvalidUser", "", nil))
			}},
		{name: "rejected credentials", address: "ann@example.com", wantCode: syncerr.ExchangeAuthFailed,
			handle: func(w http.ResponseWriter, r *http.Request, body string) {
				w.WriteHeader(http.StatusUnauthorized)
			}},
		{name: "fallback to the service account's domain", address: "ann@sales.example.com", fallback: "example.com", wantURL: ews,
			handle: func(w http.ResponseWriter, r *http.Request, body string) {
				if r.Host != "example.com" {
					http.NotFound(w, r)
					return
				}
				xmlAnswer(w, soapUserSettings("NoError", "", map[string]string{"ExternalEwsUrl": ews}))
			}},
		{name: "soap fault", address: "ann@example.com", wantCode: syncerr.ExchangeAutodiscoverFailed,
			handle: func(w http.ResponseWriter, r *http.Request, body string) {
				w.WriteHeader(http.StatusInternalServerError)
				xmlAnswer(w, faultResponse("ErrorInternalServerError", "boom", 0))
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newADServer(t, tc.handle)
			ad, err := NewAutodiscover(AutodiscoverConfig{
				Credentials:    &BasicAuth{Username: "svc@example.com", Password: "pw"},
				HTTPClient:     routeAll(srv.Server),
				FallbackDomain: tc.fallback,
				MaxRedirects:   4,
			})
			if err != nil {
				t.Fatal(err)
			}
			s, err := ad.Discover(t.Context(), tc.address)
			if tc.wantCode != "" {
				if se := syncerr.As(err); se.Code != tc.wantCode {
					t.Fatalf("got %v (%v), want %s; visited %v", err, s, tc.wantCode, srv.visited())
				}
				return
			}
			if err != nil {
				t.Fatalf("discover: %v; visited %v", err, srv.visited())
			}
			if s.EWSURL != tc.wantURL {
				t.Errorf("EWS URL %q, want %q", s.EWSURL, tc.wantURL)
			}
		})
	}
}

func TestAutodiscoverCache(t *testing.T) {
	release := make(chan struct{})
	srv := newADServer(t, func(w http.ResponseWriter, r *http.Request, body string) {
		<-release
		xmlAnswer(w, soapUserSettings("NoError", "", map[string]string{"ExternalEwsUrl": "https://mail.example.com/EWS/Exchange.asmx"}))
	})
	ad, err := NewAutodiscover(AutodiscoverConfig{
		Credentials: &BasicAuth{Username: "svc@example.com", Password: "pw"},
		HTTPClient:  routeAll(srv.Server),
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := ad.Discover(t.Context(), "ann@example.com"); err != nil {
				t.Error(err)
			}
		})
	}
	poll.Until(t, "the shared lookup to start", func() bool { return srv.calls.Load() == 1 })
	close(release)
	wg.Wait()
	if n := srv.calls.Load(); n != 1 {
		t.Errorf("8 concurrent lookups sent %d requests, want 1", n)
	}
	if _, err := ad.Discover(t.Context(), "ANN@example.com"); err != nil || srv.calls.Load() != 1 {
		t.Errorf("cached lookup sent a request (%d) or failed: %v", srv.calls.Load(), err)
	}
	ad.Forget("ann@example.com")
	if _, err := ad.Discover(t.Context(), "ann@example.com"); err != nil || srv.calls.Load() != 2 {
		t.Errorf("lookup after Forget: %d requests, err %v", srv.calls.Load(), err)
	}
}

func TestAutodiscoverConfig(t *testing.T) {
	creds := &BasicAuth{Username: "svc@example.com", Password: "pw"}
	if _, err := NewAutodiscover(AutodiscoverConfig{Credentials: creds, URL: "http://ad.example.com/autodiscover/autodiscover.svc"}); err == nil {
		t.Error("plain-http autodiscover URL accepted without AllowHTTP")
	}
	if _, err := NewAutodiscover(AutodiscoverConfig{Credentials: creds, URL: "http://ad.example.com/autodiscover/autodiscover.svc", AllowHTTP: true}); err != nil {
		t.Errorf("plain-http autodiscover URL refused with AllowHTTP: %v", err)
	}
	if _, err := NewAutodiscover(AutodiscoverConfig{}); err == nil {
		t.Error("autodiscover without credentials accepted")
	}
	ad, _ := NewAutodiscover(AutodiscoverConfig{Credentials: creds})
	if _, err := ad.Discover(t.Context(), "not-an-address"); syncerr.As(err).Code != syncerr.ExchangeAutodiscoverFailed {
		t.Errorf("bad address: %v", err)
	}
}

// TestGoldenAutodiscoverRequests pins the Autodiscover requests (SOAP GetUserSettings and POX)
// in testdata/requests. They belong to the Autodiscover schemas, not to EWS's, so they are
// compared but not validated with xmllint.
func TestGoldenAutodiscoverRequests(t *testing.T) {
	var mu sync.Mutex
	bodies := map[string]string{}
	srv := newADServer(t, func(w http.ResponseWriter, r *http.Request, body string) {
		mu.Lock()
		bodies[r.URL.Path] = body
		mu.Unlock()
		if r.Header.Get("X-AnchorMailbox") != "ann@example.com" {
			t.Errorf("X-AnchorMailbox = %q", r.Header.Get("X-AnchorMailbox"))
		}
		if strings.HasSuffix(r.URL.Path, ".svc") {
			if r.Header.Get("SOAPAction") != `"`+getUserSettingsURI+`"` {
				t.Errorf("SOAPAction = %q", r.Header.Get("SOAPAction"))
			}
			http.NotFound(w, r) // make the client fall back to POX on the same host
			return
		}
		xmlAnswer(w, poxSettings("https://mail.example.com/EWS/Exchange.asmx"))
	})
	ad, err := NewAutodiscover(AutodiscoverConfig{
		Credentials: &BasicAuth{Username: "svc@example.com", Password: "pw"},
		HTTPClient:  routeAll(srv.Server),
		URL:         "https://example.com/autodiscover/autodiscover.svc",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ad.Discover(t.Context(), "ann@example.com"); err != nil {
		t.Fatal(err)
	}
	for path, name := range map[string]string{
		"/autodiscover/autodiscover.svc": "Autodiscover-GetUserSettings",
		"/autodiscover/autodiscover.xml": "Autodiscover-POX",
	} {
		body, ok := bodies[path]
		if !ok {
			t.Fatalf("no request to %s", path)
		}
		checkGolden(t, name, []byte(body))
	}
}
