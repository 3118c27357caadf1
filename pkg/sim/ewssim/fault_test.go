package ewssim

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
)

func TestFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault Fault
		check func(t *testing.T, r result, err error)
	}{
		{
			name:  "server busy",
			fault: Fault{Kind: FaultServerBusy, BackOff: 2500 * time.Millisecond},
			check: func(t *testing.T, r result, err error) {
				if r.status != 500 || r.faultCode() != "ErrorServerBusy" {
					t.Fatalf("status %d fault %q", r.status, r.faultCode())
				}
				if got := text(r.response(), "detail/MessageXml/Value[@Name='BackOffMilliseconds']"); got != "2500" {
					t.Errorf("BackOffMilliseconds = %q", got)
				}
			},
		},
		{
			name:  "503 with Retry-After",
			fault: Fault{Kind: FaultHTTPStatus, Status: 503, RetryAfter: 30 * time.Second},
			check: func(t *testing.T, r result, err error) {
				if r.status != 503 || r.header.Get("Retry-After") != "30" {
					t.Fatalf("status %d Retry-After %q", r.status, r.header.Get("Retry-After"))
				}
			},
		},
		{
			name:  "429 with Retry-After rounded up",
			fault: Fault{Kind: FaultHTTPStatus, Status: 429, RetryAfter: 1500 * time.Millisecond},
			check: func(t *testing.T, r result, err error) {
				if r.status != 429 || r.header.Get("Retry-After") != "2" {
					t.Fatalf("status %d Retry-After %q", r.status, r.header.Get("Retry-After"))
				}
			},
		},
		{
			name:  "500",
			fault: Fault{Kind: FaultHTTPStatus, Status: 500},
			check: func(t *testing.T, r result, err error) {
				if r.status != 500 || r.doc != nil {
					t.Fatalf("status %d, body %s", r.status, r.body)
				}
			},
		},
		{
			name:  "401",
			fault: Fault{Kind: FaultHTTPStatus, Status: 401},
			check: func(t *testing.T, r result, err error) {
				if r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
					t.Fatalf("status %d WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))
				}
			},
		},
		{
			name:  "slow",
			fault: Fault{Kind: FaultSlow, Delay: 150 * time.Millisecond},
			check: func(t *testing.T, r result, err error) {
				if r.status != 200 {
					t.Fatalf("status %d", r.status)
				}
			},
		},
		{
			name:  "malformed xml",
			fault: Fault{Kind: FaultMalformedXML},
			check: func(t *testing.T, r result, err error) {
				if r.status != 200 {
					t.Fatalf("status %d", r.status)
				}
				if etree.NewDocument().ReadFromBytes(r.body) == nil {
					t.Errorf("body parses as XML: %s", r.body)
				}
			},
		},
		{
			name:  "dropped connection",
			fault: Fault{Kind: FaultDropConnection},
			check: func(t *testing.T, r result, err error) {
				if err == nil {
					t.Fatalf("request succeeded with status %d", r.status)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.sim.InjectFault(tc.fault)
			start := time.Now()
			r, err := e.rawEWS(getContacts)
			elapsed := time.Since(start)
			tc.check(t, r, err)
			if tc.fault.Kind == FaultSlow && elapsed < tc.fault.Delay {
				t.Errorf("slow fault answered after %v, before its %v delay", elapsed, tc.fault.Delay)
			}
			// Consumed: the next request is served normally.
			if r2, err := e.rawEWS(getContacts); err != nil || r2.status != 200 {
				t.Fatalf("request after the fault: %v, status %d", err, r2.status)
			}
			if got := e.sim.Counts()["Fault:"+tc.fault.Kind.String()]; got != 1 {
				t.Errorf("Fault counter = %d", got)
			}
		})
	}
}

// rawEWS is like ews but returns transport errors instead of failing the test, and does not
// record the response for schema validation (it may be deliberately broken).
func (e *env) rawEWS(op string) (result, error) {
	req, err := http.NewRequestWithContext(e.t.Context(), http.MethodPost, e.ts.URL+"/EWS/Exchange.asmx", strings.NewReader(soap(reqOpts{}, op)))
	if err != nil {
		return result{}, err
	}
	req.Header.Set("Authorization", basicHeader(svcUser, svcPassword))
	req.Header.Set("X-AnchorMailbox", alice)
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, err
	}
	r := result{status: resp.StatusCode, header: resp.Header, body: raw}
	if doc := etree.NewDocument(); doc.ReadFromBytes(raw) == nil && doc.Root() != nil {
		r.doc = doc
	}
	return r, nil
}

func TestFaultMatching(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	e.sim.InjectFault(Fault{Operation: "SyncFolderItems", Mailbox: bob, Kind: FaultServerBusy, Times: 2})
	if r := e.ews(syncRequest(folder, "", 10, ""), reqOpts{}); r.status != 200 {
		t.Fatalf("alice's sync hit bob's fault: %s", r.body)
	}
	if r := e.ews(getContacts, reqOpts{actAs: bob}); r.status != 200 {
		t.Fatalf("bob's GetFolder hit the SyncFolderItems fault: %s", r.body)
	}
	bobFolder, _ := e.sim.FolderID(bob, "contacts")
	for i := range 3 {
		r := e.ews(syncRequest(bobFolder, "", 10, ""), reqOpts{actAs: bob})
		busy := r.faultCode() == "ErrorServerBusy"
		if busy != (i < 2) {
			t.Errorf("bob's sync %d: fault %q", i, r.faultCode())
		}
	}

	e.sim.InjectFault(Fault{Operation: "SyncFolderItems", Kind: FaultInvalidSyncState, Times: -1})
	for range 3 {
		r := e.ews(syncRequest(folder, "", 10, ""), reqOpts{})
		if got := r.codes(); !slices.Equal(got, []string{"ErrorInvalidSyncStateData"}) {
			t.Fatalf("codes = %v", got)
		}
	}
	if r := e.ews(getContacts, reqOpts{}); r.status != 200 {
		t.Error("an invalid-sync-state fault must only affect SyncFolderItems")
	}
	e.sim.ClearFaults()
	if got := e.ews(syncRequest(folder, "", 10, ""), reqOpts{}).codes(); !slices.Equal(got, []string{"NoError"}) {
		t.Errorf("after ClearFaults: %v", got)
	}
}

// TestFaultAfterWork shows the nastiest failure: the write happens but the client never learns.
func TestFaultAfterWork(t *testing.T) {
	for _, kind := range []FaultKind{FaultMalformedXML, FaultDropConnection} {
		t.Run(kind.String(), func(t *testing.T) {
			e := newEnv(t)
			folder := e.syncFolderID(alice)
			e.sim.InjectFault(Fault{Operation: "CreateItem", Kind: kind, AfterWork: true})
			op := `<m:CreateItem><m:SavedItemFolderId><t:FolderId Id="` + folder + `"/></m:SavedItemFolderId><m:Items><t:Contact><t:GivenName>Once</t:GivenName></t:Contact></m:Items></m:CreateItem>`
			r, err := e.rawEWS(op)
			if err == nil && r.doc != nil {
				t.Fatalf("the client got a usable answer: %s", r.body)
			}
			if n := len(e.sim.Items(alice, SyncFolderName)); n != 1 {
				t.Errorf("%d items created, want 1", n)
			}
		})
	}
}

func TestSlowFaultHonoursClientCancellation(t *testing.T) {
	e := newEnv(t)
	e.sim.InjectFault(Fault{Kind: FaultSlow, Delay: time.Hour})
	ctx, cancel := contextWithTimeout(t, 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.ts.URL+"/EWS/Exchange.asmx", strings.NewReader(soap(reqOpts{}, getContacts)))
	req.Header.Set("Authorization", basicHeader(svcUser, svcPassword))
	_, err := e.ts.Client().Do(req)
	if err == nil || !errors.Is(err, ctx.Err()) {
		t.Fatalf("err = %v, want the client's deadline", err)
	}
	// The server goroutine notices the client left; ts.Close in cleanup would hang otherwise.
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}

func TestFaultsOnDiscoveryAndLogin(t *testing.T) {
	e := newEnv(t)
	e.sim.InjectFault(Fault{Kind: FaultHTTPStatus, Status: 503})
	if status, _ := e.token(t, tokenForm(), false); status != 200 {
		t.Errorf("a fault for any EWS operation was spent on the token request: %d", status)
	}
	pox := render(t, "autodiscover-pox.xml", map[string]any{"Email": alice})
	if r := e.post("/autodiscover/autodiscover.xml", pox, reqOpts{actAs: "-", anchor: "-"}); r.status != 200 {
		t.Errorf("a fault for any EWS operation was spent on Autodiscover: %d", r.status)
	}
	if r, _ := e.rawEWS(getContacts); r.status != 503 {
		t.Errorf("EWS after discovery: status %d, want the injected 503", r.status)
	}

	e.sim.InjectFault(Fault{Operation: "Token", Kind: FaultHTTPStatus, Status: 503, RetryAfter: time.Second})
	if status, _ := e.token(t, tokenForm(), false); status != 503 {
		t.Errorf("token with a Token fault: status %d", status)
	}
	e.sim.InjectFault(Fault{Operation: "GetUserSettings", Mailbox: alice, Kind: FaultHTTPStatus, Status: 500})
	soapBody := render(t, "autodiscover-soap.xml", map[string]any{"URL": e.ts.URL, "Users": []string{alice}, "Settings": []string{"ExternalEwsUrl"}})
	if r := e.post("/autodiscover/autodiscover.svc", soapBody, reqOpts{actAs: "-", anchor: "-"}); r.status != 500 {
		t.Errorf("GetUserSettings with a fault: status %d", r.status)
	}
	if r := e.post("/autodiscover/autodiscover.svc", soapBody, reqOpts{actAs: "-", anchor: "-"}); r.status != 200 {
		t.Errorf("GetUserSettings after the fault: status %d", r.status)
	}
}
