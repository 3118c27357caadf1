package sfsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// clock is a test clock that only moves when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2024, 5, 16, 10, 30, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testKey is an RSA key and self-signed certificate for a connected app, made once per run.
type testKey struct {
	key     *rsa.PrivateKey
	certPEM []byte
	pubPEM  []byte
}

var (
	keyOnce  sync.Once
	keys     [2]testKey
	errKeyGn error
)

func makeKey() (testKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return testKey{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tandem-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return testKey{}, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return testKey{}, err
	}
	return testKey{
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pubPEM:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
	}, nil
}

func testKeys(t testing.TB) [2]testKey {
	t.Helper()
	keyOnce.Do(func() {
		for i := range keys {
			if keys[i], errKeyGn = makeKey(); errKeyGn != nil {
				return
			}
		}
	})
	if errKeyGn != nil {
		t.Fatalf("generate keys: %v", errKeyGn)
	}
	return keys
}

const (
	jwtClientID = "3MVG9tandemJWTclient"
	ccClientID  = "3MVG9tandemCCclient"
	ccSecret    = "s3cr3t-for-tests"
)

// env is a simulator behind a real HTTP server, with a user and both flows configured.
type env struct {
	t      testing.TB
	sim    *Server
	srv    *httptest.Server
	clock  *clock
	key    testKey
	userID string
	user   string // username
}

type envOption func(*Config)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	k := testKeys(t)[0]
	c := newClock()
	cfg := Config{
		Now:             c.Now,
		DailyAllocation: 15000,
		ConnectedApps: []ConnectedApp{
			{ClientID: jwtClientID, CertificatePEM: k.certPEM},
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	sim := New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)
	e := &env{t: t, sim: sim, srv: srv, clock: c, key: k, user: "rep@acme.example"}
	id, err := sim.AddUser(User{Username: e.user, Email: "rep@acme.example", FirstName: "Rita", LastName: "Rep", IsActive: true})
	if err != nil {
		t.Fatalf("AddUser: %v", err)
	}
	e.userID = id
	if err := sim.AddConnectedApp(ConnectedApp{ClientID: ccClientID, ClientSecret: ccSecret, ExecutionUserID: id}); err != nil {
		t.Fatalf("AddConnectedApp: %v", err)
	}
	return e
}

// assertion signs a JWT bearer assertion; claims override the valid defaults.
func (e *env) assertion(key *rsa.PrivateKey, edit func(jwt.MapClaims)) string {
	e.t.Helper()
	claims := jwt.MapClaims{
		"iss": jwtClientID,
		"sub": e.user,
		"aud": "https://login.salesforce.com",
		"exp": e.clock.Now().Add(3 * time.Minute).Unix(),
	}
	if edit != nil {
		edit(claims)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	if err != nil {
		e.t.Fatalf("sign assertion: %v", err)
	}
	return s
}

// tokenRequest posts a form to the token endpoint.
func (e *env) tokenRequest(form url.Values) (int, []byte) {
	e.t.Helper()
	resp, err := e.srv.Client().PostForm(e.srv.URL+"/services/oauth2/token", form)
	if err != nil {
		e.t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read token response: %v", err)
	}
	return resp.StatusCode, body
}

// login obtains a token through the JWT bearer flow.
func (e *env) login() *client {
	e.t.Helper()
	status, body := e.tokenRequest(url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, nil)}})
	if status != http.StatusOK {
		e.t.Fatalf("login: %d %s", status, body)
	}
	var tok tokenResponse
	if err := json.Unmarshal(body, &tok); err != nil {
		e.t.Fatalf("decode token: %v", err)
	}
	return &client{t: e.t, base: tok.InstanceURL, token: tok.AccessToken, http: e.srv.Client(), version: "v" + e.sim.APIVersion()}
}

// client is a minimal REST caller for tests; it knows nothing of Tandem's client.
type client struct {
	t       testing.TB
	base    string
	token   string
	http    *http.Client
	version string
	header  http.Header
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (c *client) do(ctx context.Context, method, path string, body any) (response, error) {
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			data, err := json.Marshal(b)
			if err != nil {
				return response{}, err
			}
			rd = bytes.NewReader(data)
		}
	}
	if !strings.HasPrefix(path, "/") {
		path = "/services/data/" + c.version + "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

func (c *client) call(method, path string, body any) response {
	c.t.Helper()
	resp, err := c.do(context.Background(), method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// json calls and decodes a successful response into out.
func (c *client) json(method, path string, body any, wantStatus int, out any) {
	c.t.Helper()
	resp := c.call(method, path, body)
	if resp.status != wantStatus {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.status, wantStatus, resp.body)
	}
	if out != nil {
		if err := json.Unmarshal(resp.body, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, resp.body, err)
		}
	}
}

func (c *client) query(q string) response {
	c.t.Helper()
	return c.call(http.MethodGet, "query?q="+url.QueryEscape(q), nil)
}

// restError is Salesforce's REST error element, decoded independently of the server's type.
type restError struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields"`
}

func decodeErrors(t testing.TB, body []byte) []restError {
	t.Helper()
	var errs []restError
	if err := json.Unmarshal(body, &errs); err != nil {
		t.Fatalf("decode errors %s: %v", body, err)
	}
	return errs
}

// queryResult is the query response shape.
type queryResult struct {
	TotalSize      int              `json:"totalSize"`
	Done           bool             `json:"done"`
	NextRecordsURL string           `json:"nextRecordsUrl"`
	Records        []map[string]any `json:"records"`
}

// result is one sObject Collections outcome.
type result struct {
	ID      string     `json:"id"`
	Success bool       `json:"success"`
	Errors  []recError `json:"errors"`
	Created *bool      `json:"created"`
}

type recError struct {
	StatusCode string   `json:"statusCode"`
	Message    string   `json:"message"`
	Fields     []string `json:"fields"`
}

// recording reads a recorded Salesforce response from the client package's copy of the
// recordings (one copy in the repository, with its sources and licenses).
func recording(t testing.TB, name string) []byte {
	t.Helper()
	for _, dir := range []string{"restforce", "apache-camel"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "salesforce", "testdata", "recordings", dir, name))
		if err == nil {
			return data
		}
	}
	t.Fatalf("no recording %s", name)
	return nil
}

// strictDecode decodes, refusing fields the target does not declare, so that a shape test
// notices keys the simulator adds or misses.
func strictDecode(t testing.TB, data []byte, out any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

func jsonReader(t testing.TB, v any) io.Reader {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(data)
}

func mustJSON(t testing.TB, data []byte, out any) {
	t.Helper()
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}
