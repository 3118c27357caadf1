package ews

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
)

const testMailbox = "alice@contoso.com"

// envelopeOf wraps a response body element in a SOAP envelope as Exchange 2019 writes it.
func envelopeOf(body string) string {
	return `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">` +
		`<s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="2" MajorBuildNumber="1748" MinorBuildNumber="10" Version="V2017_07_11" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"/></s:Header>` +
		`<s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">` + body + `</s:Body></s:Envelope>`
}

// opResponse wraps response messages in m:<op>Response.
func opResponse(op string, messages ...string) string {
	return envelopeOf(`<m:` + op + `Response xmlns:m="` + nsMessages + `" xmlns:t="` + nsTypes + `"><m:ResponseMessages>` +
		strings.Join(messages, "") + `</m:ResponseMessages></m:` + op + `Response>`)
}

func okMessage(op, inner string) string {
	return `<m:` + op + `ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>` + inner + `</m:` + op + `ResponseMessage>`
}

func errorMessage(op, code, text string) string {
	return `<m:` + op + `ResponseMessage ResponseClass="Error"><m:MessageText>` + text + `</m:MessageText><m:ResponseCode>` + code +
		`</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:` + op + `ResponseMessage>`
}

func faultResponse(code, text string, backOffMillis int) string {
	xml := ""
	if backOffMillis > 0 {
		xml = fmt.Sprintf(`<t:MessageXml xmlns:t="%s"><t:Value Name="BackOffMilliseconds">%d</t:Value></t:MessageXml>`, nsTypes, backOffMillis)
	}
	return `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>` +
		`<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:` + code + `</faultcode>` +
		`<faultstring xml:lang="en-US">` + text + `</faultstring><detail>` +
		`<e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">` + code + `</e:ResponseCode>` +
		`<e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">` + text + `</e:Message>` + xml +
		`</detail></s:Fault></s:Body></s:Envelope>`
}

// capturedRequest is one request a fakeServer received.
type capturedRequest struct {
	// ctx is the server-side request context, done when the client goes away.
	ctx    context.Context
	header http.Header
	body   []byte
	op     string
}

// fakeServer answers EWS requests with a handler and records what it received.
type fakeServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []capturedRequest
}

// newFakeServer starts a server whose handler gets each request's operation (from the body).
func newFakeServer(t *testing.T, handler func(w http.ResponseWriter, req capturedRequest, n int)) *fakeServer {
	t.Helper()
	fs := &fakeServer{}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		op := operationOf(body)
		req := capturedRequest{ctx: r.Context(), header: r.Header.Clone(), body: body, op: op}
		fs.mu.Lock()
		fs.requests = append(fs.requests, req)
		n := len(fs.requests)
		fs.mu.Unlock()
		handler(w, req, n)
	}))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *fakeServer) captured() []capturedRequest {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]capturedRequest(nil), fs.requests...)
}

// operationOf returns the local name of the element inside soap:Body.
func operationOf(body []byte) string {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(body); err != nil || doc.Root() == nil {
		return ""
	}
	b := childLocal(doc.Root(), "Body")
	if f := firstChild(b); f != nil {
		return f.Tag
	}
	return ""
}

func respond(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// newTestClient returns a client with fast retries for tests.
func newTestClient(t *testing.T, mutate ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		Credentials:    &BasicAuth{Username: "svc@contoso.com", Password: "secret"},
		RetryBaseDelay: time.Millisecond,
		MaxRetryDelay:  5 * time.Millisecond,
		RequestTimeout: 5 * time.Second,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// recording is one recorded HTTP exchange of testdata/recordings.
type recording struct {
	File  string
	Index int
	// Error marks a transport failure with no HTTP response.
	Error      bool   `json:"error"`
	StatusCode int    `json:"statusCode"`
	Body       string `json:"body"`
	Headers    json.RawMessage
}

// loadRecordings returns every recorded exchange (read from disk once per test binary).
func loadRecordings(tb testing.TB) []recording {
	tb.Helper()
	recs, err := readRecordings()
	if err != nil {
		tb.Fatal(err)
	}
	return recs
}

var readRecordings = sync.OnceValues(func() ([]recording, error) {
	var out []recording
	err := filepath.WalkDir("testdata/recordings", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var entries []struct {
			Error      bool            `json:"error"`
			StatusCode int             `json:"statusCode"`
			Headers    json.RawMessage `json:"headers"`
			Body       string          `json:"body"`
		}
		if err := json.Unmarshal(data, &entries); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rel, _ := filepath.Rel("testdata/recordings", path)
		for i, e := range entries {
			out = append(out, recording{File: rel, Index: i, Error: e.Error, StatusCode: e.StatusCode, Body: e.Body, Headers: e.Headers})
		}
		return nil
	})
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("no recordings found")
	}
	return out, err
})

// recordedOp is the response element of a recorded SOAP body, e.g. "GetItemResponse".
func recordedOp(body string) string {
	return operationOf([]byte(body))
}

func findRecording(tb testing.TB, file string, index int) recording {
	tb.Helper()
	for _, r := range loadRecordings(tb) {
		if r.File == file && r.Index == index {
			return r
		}
	}
	tb.Fatalf("no recording %s[%d]", file, index)
	return recording{}
}

func mustEnvelope(tb testing.TB, body string) *envelope {
	tb.Helper()
	env, err := parseEnvelope([]byte(body))
	if err != nil {
		tb.Fatalf("parse envelope: %v", err)
	}
	return env
}

// answer builds a successful response to an EWS request, sized to the request: one message
// per requested item, folders for folder requests, an empty final page for syncs and finds.
func answer(op string, body []byte) string {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(body); err != nil {
		return faultResponse("ErrorSchemaValidation", "unreadable request", 0)
	}
	req := firstChild(childLocal(doc.Root(), "Body"))
	count := func(list string) []*etree.Element {
		return childLocal(req, list).NotNil().ChildElements()
	}
	switch op {
	case "GetFolder":
		var msgs []string
		for i := range count("FolderIds") {
			msgs = append(msgs, okMessage(op, fmt.Sprintf(`<m:Folders><t:Folder><t:FolderId Id="folder-%d" ChangeKey="fck"/><t:DisplayName>F%d</t:DisplayName></t:Folder></m:Folders>`, i, i)))
		}
		return opResponse(op, msgs...)
	case "FindFolder":
		return opResponse(op, okMessage(op, `<m:RootFolder TotalItemsInView="0" IncludesLastItemInRange="true"><t:Folders/></m:RootFolder>`))
	case "CreateFolder":
		return opResponse(op, okMessage(op, `<m:Folders><t:ContactsFolder><t:FolderId Id="new-folder" ChangeKey="fck"/></t:ContactsFolder></m:Folders>`))
	case "SyncFolderItems":
		return opResponse(op, okMessage(op, `<m:SyncState>state-1</m:SyncState><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange><m:Changes/>`))
	case "FindItem":
		msgs := make([]string, len(count("ParentFolderIds")))
		for i := range msgs {
			msgs[i] = okMessage(op, `<m:RootFolder TotalItemsInView="0" IncludesLastItemInRange="true"><t:Items/></m:RootFolder>`)
		}
		return opResponse(op, msgs...)
	case "GetItem", "DeleteItem":
		n := len(count("ItemIds"))
		if op == "DeleteItem" {
			msgs := make([]string, n)
			for i := range msgs {
				msgs[i] = okMessage(op, "")
			}
			return opResponse(op, msgs...)
		}
		msgs := make([]string, n)
		for i, id := range count("ItemIds") {
			msgs[i] = okMessage(op, fmt.Sprintf(`<m:Items><t:Contact><t:ItemId Id="%s" ChangeKey="ck-read"/></t:Contact></m:Items>`, id.SelectAttrValue("Id", "")))
		}
		return opResponse(op, msgs...)
	case "CreateItem":
		items := count("Items")
		msgs := make([]string, len(items))
		for i, it := range items {
			msgs[i] = okMessage(op, fmt.Sprintf(`<m:Items><t:%s><t:ItemId Id="item-%d" ChangeKey="ck-%d"/></t:%s></m:Items>`, it.Tag, i, i, it.Tag))
		}
		return opResponse(op, msgs...)
	case "UpdateItem":
		changes := count("ItemChanges")
		msgs := make([]string, len(changes))
		for i := range changes {
			msgs[i] = okMessage(op, fmt.Sprintf(`<m:Items><t:Contact><t:ItemId Id="item-%d" ChangeKey="ck-new-%d"/></t:Contact></m:Items><m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>`, i, i))
		}
		return opResponse(op, msgs...)
	}
	return faultResponse("ErrorInvalidRequest", "unexpected operation "+op, 0)
}

// answering is a fakeServer handler that answers every request successfully.
func answering(w http.ResponseWriter, req capturedRequest, _ int) {
	respond(w, http.StatusOK, answer(req.op, req.body))
}
