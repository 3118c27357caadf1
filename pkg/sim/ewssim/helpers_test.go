package ewssim

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/beevik/etree"

	"github.com/tandem-sync/tandem/pkg/devkit/ewsschema"
)

// Test accounts and mailboxes every test environment has.
const (
	svcUser     = "svc@contoso.com"
	svcPassword = "S3rvice!pass"
	limitedUser = `CONTOSO\limited`
	limitedPass = "L1mited!pass"
	tenantID    = "contoso.onmicrosoft.com"
	clientID    = "11111111-2222-3333-4444-555555555555"
	secret      = "app-secret-value"
	alice       = "alice@contoso.com"
	bob         = "bob@contoso.com"
)

// fakeClock is a settable clock so that token expiry and timestamps are deterministic.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a simulator served over real HTTP, with a client that records every EWS response so
// that the test's cleanup can validate them all against the EWS schema in one xmllint run.
type env struct {
	t     *testing.T
	sim   *Server
	ts    *httptest.Server
	clock *fakeClock
}

func newEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC)}
	cfg := Config{
		ServiceAccounts: []ServiceAccount{
			{Username: svcUser, Password: svcPassword, ImpersonateAll: true},
			{Username: limitedUser, Password: limitedPass, Impersonate: []string{alice}, Mailbox: "limited@contoso.com"},
		},
		OAuthApps: []OAuthApp{{TenantID: tenantID, ClientID: clientID, ClientSecret: secret}},
		Clock:     clock.Now,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	sim := New(cfg)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	sim.SetBaseURL(ts.URL)
	for _, a := range []string{alice, bob, svcUser} {
		if err := sim.AddMailbox(a); err != nil {
			t.Fatalf("add mailbox %s: %v", a, err)
		}
	}
	return &env{t: t, sim: sim, ts: ts, clock: clock}
}

// reqOpts adjusts one request.
type reqOpts struct {
	user, password string // Basic credentials; default the ImpersonateAll service account
	bearer         string
	noAuth         bool
	actAs          string // impersonated mailbox; default alice; "-" for none
	anchor         string // X-AnchorMailbox; default the impersonated mailbox; "-" for none
	version        string // RequestServerVersion; default Exchange2013_SP1; "-" for none
	ctx            context.Context
}

// soap wraps an operation element in an envelope with the usual EWS headers.
func soap(o reqOpts, op string) string {
	var h strings.Builder
	if o.version != "-" {
		v := o.version
		if v == "" {
			v = "Exchange2013_SP1"
		}
		fmt.Fprintf(&h, `<t:RequestServerVersion Version="%s"/>`, v)
	}
	if o.actAs != "-" {
		fmt.Fprintf(&h, `<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>%s</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>`, o.actAsOrDefault())
	}
	return `<?xml version="1.0" encoding="utf-8"?>` +
		`<soap:Envelope xmlns:soap="` + nsSOAP + `" xmlns:t="` + nsTypes + `" xmlns:m="` + nsMessages + `">` +
		`<soap:Header>` + h.String() + `</soap:Header><soap:Body>` + op + `</soap:Body></soap:Envelope>`
}

func (o reqOpts) actAsOrDefault() string {
	if o.actAs == "" {
		return alice
	}
	return o.actAs
}

// result is one HTTP exchange.
type result struct {
	status int
	header http.Header
	body   []byte
	doc    *etree.Document // nil when the body is not XML
}

// post sends a raw body to path.
func (e *env) post(path string, body string, o reqOpts, headers ...string) result {
	e.t.Helper()
	ctx := o.ctx
	if ctx == nil {
		ctx = e.t.Context()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.ts.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Errorf("build request: %v", err)
		return result{}
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	switch {
	case o.noAuth:
	case o.bearer != "":
		req.Header.Set("Authorization", "Bearer "+o.bearer)
	default:
		user, pass := o.user, o.password
		if user == "" {
			user, pass = svcUser, svcPassword
		}
		req.SetBasicAuth(user, pass)
	}
	if o.anchor != "-" {
		a := o.anchor
		if a == "" && o.actAs != "-" {
			a = o.actAsOrDefault()
		}
		if a != "" {
			req.Header.Set("X-AnchorMailbox", a)
		}
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	// Errorf rather than Fatalf: post is also called from the goroutines of concurrency tests.
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Errorf("POST %s: %v", path, err)
		return result{}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Errorf("read response: %v", err)
		return result{}
	}
	r := result{status: resp.StatusCode, header: resp.Header, body: raw}
	if doc := etree.NewDocument(); len(raw) > 0 && doc.ReadFromBytes(raw) == nil && doc.Root() != nil {
		r.doc = doc
	}
	if strings.EqualFold(path, "/EWS/Exchange.asmx") && r.doc != nil {
		responses.record(e.t.Name(), raw)
	}
	return r
}

// ews sends an EWS operation (the element inside soap:Body).
func (e *env) ews(op string, o reqOpts) result {
	e.t.Helper()
	return e.post("/EWS/Exchange.asmx", soap(o, op), o)
}

// mustOK sends an EWS operation and fails the test unless it answers 200 with every response
// message successful.
func (e *env) mustOK(op string) *etree.Element {
	e.t.Helper()
	r := e.ews(op, reqOpts{})
	if r.status != http.StatusOK {
		e.t.Fatalf("status %d: %s", r.status, r.body)
	}
	for _, m := range r.messages() {
		if m.SelectAttrValue("ResponseClass", "") != "Success" {
			e.t.Fatalf("response message failed: %s", r.body)
		}
	}
	return r.response()
}

// response returns the element inside s:Body.
func (r result) response() *etree.Element {
	if r.doc == nil {
		return nil
	}
	body := r.doc.Root().SelectElement("Body")
	if body == nil || len(body.ChildElements()) == 0 {
		return nil
	}
	return body.ChildElements()[0]
}

// messages returns the response messages.
func (r result) messages() []*etree.Element {
	resp := r.response()
	if resp == nil {
		return nil
	}
	msgs := resp.SelectElement("ResponseMessages")
	if msgs == nil {
		return nil
	}
	return msgs.ChildElements()
}

// codes returns each response message's ResponseCode.
func (r result) codes() []string {
	var out []string
	for _, m := range r.messages() {
		out = append(out, text(m, "ResponseCode"))
	}
	return out
}

// faultCode returns the EWS code of a SOAP fault, or "".
func (r result) faultCode() string {
	resp := r.response()
	if resp == nil || resp.Tag != "Fault" {
		return ""
	}
	return text(resp, "detail/ResponseCode")
}

// text returns the text at a slash-separated path of local names under e.
func text(e *etree.Element, path string) string {
	if e == nil {
		return ""
	}
	x := e.FindElement(path)
	if x == nil {
		return ""
	}
	return x.Text()
}

// extValue returns the value of the extended property named name under an item element.
func extValue(item *etree.Element, attrName, attrValue string) (string, bool) {
	for _, x := range item.SelectElements("ExtendedProperty") {
		if attr(x, "ExtendedFieldURI", attrName) == attrValue {
			return text(x, "Value"), true
		}
	}
	return "", false
}

func attr(e *etree.Element, path, name string) string {
	if e == nil {
		return ""
	}
	x := e.FindElement(path)
	if x == nil {
		return ""
	}
	return x.SelectAttrValue(name, "")
}

// itemIDs returns the Id and ChangeKey of every t:ItemId under e, in document order.
func itemIDs(e *etree.Element) (ids, keys []string) {
	for _, x := range e.FindElements(".//ItemId") {
		ids = append(ids, x.SelectAttrValue("Id", ""))
		keys = append(keys, x.SelectAttrValue("ChangeKey", ""))
	}
	return ids, keys
}

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// render executes a request template from testdata/requests with data.
func render(t *testing.T, name string, data any) string {
	t.Helper()
	out, err := renderTemplate(name, data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func renderTemplate(name string, data any) (string, error) {
	tmpl, err := template.New(name).Funcs(template.FuncMap{"x": xmlEscape}).ParseFiles(filepath.Join("testdata", "requests", name))
	if err != nil {
		return "", fmt.Errorf("parse template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return b.String(), nil
}

func xmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// file sends a rendered request template as a full envelope.
func (e *env) file(name string, data any, o reqOpts) result {
	e.t.Helper()
	return e.post("/EWS/Exchange.asmx", render(e.t, name, data), o)
}

// responseLog collects every EWS response the tests receive; TestMain validates them all
// against the EWS schema at the end, in a few xmllint runs instead of one per test.
type responseLog struct {
	mu      sync.Mutex
	entries []loggedResponse
}

type loggedResponse struct {
	test string
	raw  []byte
}

var responses responseLog

func (l *responseLog) record(test string, raw []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, loggedResponse{test: test, raw: raw})
}

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		code = validateLoggedResponses()
	}
	os.Exit(code)
}

func validateLoggedResponses() int {
	responses.mu.Lock()
	entries := responses.entries
	responses.mu.Unlock()
	if len(entries) == 0 {
		return 0
	}
	envelopes := make([][]byte, len(entries))
	for i, e := range entries {
		envelopes[i] = e.raw
	}
	problems, err := ewsschema.Validate(context.Background(), envelopes)
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "schema validation:", err)
		return 1
	}
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "--- FAIL: EWS schema validation of a response received by %s\n%s\n", entries[p.Index].test, p.Detail)
	}
	if len(problems) > 0 {
		return 1
	}
	return 0
}

// validateEnvelopes validates the header elements and the body element of SOAP envelopes
// against the EWS schema (SOAP faults are not EWS schema types; only their headers are checked).
func validateEnvelopes(t *testing.T, envelopes [][]byte) {
	t.Helper()
	ewsschema.Check(t, envelopes)
}

// syncAll runs SyncFolderItems from state until IncludesLastItemInRange and returns the changes
// by type and the final state.
type syncResult struct {
	creates, updates, deletes, readFlags []string
	state                                string
	pages                                int
}

func (e *env) syncAll(folderID, state string, limit int) syncResult {
	e.t.Helper()
	var out syncResult
	for {
		resp := e.mustOK(syncRequest(folderID, state, limit, ""))
		out.pages++
		m := resp.FindElement(".//SyncFolderItemsResponseMessage")
		state = text(m, "SyncState")
		for _, c := range m.FindElement("Changes").ChildElements() {
			id := attr(c, ".//ItemId", "Id")
			switch c.Tag {
			case "Create":
				out.creates = append(out.creates, id)
			case "Update":
				out.updates = append(out.updates, id)
			case "Delete":
				out.deletes = append(out.deletes, id)
			case "ReadFlagChange":
				out.readFlags = append(out.readFlags, id)
			}
		}
		if text(m, "IncludesLastItemInRange") == "true" {
			out.state = state
			return out
		}
		if out.pages > 1000 {
			e.t.Fatal("SyncFolderItems never reached the last item")
		}
	}
}

// syncRequest builds a SyncFolderItems operation element.
func syncRequest(folderID, state string, limit int, extra string) string {
	st := ""
	if state != "" {
		st = "<m:SyncState>" + state + "</m:SyncState>"
	}
	return `<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>` + extra + `</m:ItemShape>` +
		`<m:SyncFolderId><t:FolderId Id="` + folderID + `"/></m:SyncFolderId>` + st +
		fmt.Sprintf(`<m:MaxChangesReturned>%d</m:MaxChangesReturned></m:SyncFolderItems>`, limit)
}

// syncFolderID creates (if needed) and returns the Salesforce_Sync folder of alice.
func (e *env) syncFolderID(mailbox string) string {
	e.t.Helper()
	id, err := e.sim.FolderID(mailbox, SyncFolderName)
	if err == nil {
		return id
	}
	id, err = e.sim.CreateFolder(mailbox, "contacts", SyncFolderName, "IPF.Contact")
	if err != nil {
		e.t.Fatalf("create sync folder: %v", err)
	}
	return id
}

// stripPrefixes drops namespace prefixes and declarations so elements compare by local names.
func stripPrefixes(e *etree.Element) {
	e.Space = ""
	e.Attr = slices.DeleteFunc(e.Attr, func(a etree.Attr) bool { return a.Space == "xmlns" || a.Key == "xmlns" })
	for _, c := range e.ChildElements() {
		stripPrefixes(c)
	}
}

func docString(e *etree.Element) (string, error) {
	d := etree.NewDocument()
	d.SetRoot(e)
	return d.WriteToString()
}

// localNames removes the t: prefixes of a literal fragment.
func localNames(s string) string {
	return strings.ReplaceAll(s, "t:", "")
}
