package sfsim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestLimitsHeaderAndAllocation(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DailyAllocation = 5 })
	c := e.login()
	for i := 1; i <= 5; i++ {
		r := c.call(http.MethodGet, "limits", nil)
		if r.status != http.StatusOK {
			t.Fatalf("call %d: %d %s", i, r.status, r.body)
		}
		if got, want := r.header.Get("Sforce-Limit-Info"), "api-usage="+itoa(i)+"/5"; got != want {
			t.Errorf("call %d: Sforce-Limit-Info %q, want %q", i, got, want)
		}
		if i == 1 {
			var lim map[string]struct{ Max, Remaining int64 }
			if err := json.Unmarshal(r.body, &lim); err != nil {
				t.Fatal(err)
			}
			if lim["DailyApiRequests"].Max != 5 || lim["DailyApiRequests"].Remaining != 4 {
				t.Errorf("DailyApiRequests %+v", lim["DailyApiRequests"])
			}
			var recorded map[string]struct{ Max, Remaining int64 }
			if err := json.Unmarshal(recording(t, "limits.json"), &recorded); err != nil {
				t.Fatal(err)
			}
			if recorded["DailyApiRequests"].Max == 0 {
				t.Error("recording lacks DailyApiRequests")
			}
		}
	}
	// Logging in again does not count.
	c = e.login()
	r := c.call(http.MethodGet, "limits", nil)
	if r.status != http.StatusForbidden {
		t.Fatalf("sixth call: %d %s", r.status, r.body)
	}
	errs := decodeErrors(t, r.body)
	if errs[0].ErrorCode != "REQUEST_LIMIT_EXCEEDED" || errs[0].Message != "TotalRequests Limit exceeded." {
		t.Errorf("errors %+v", errs)
	}
	if got := r.header.Get("Sforce-Limit-Info"); got != "api-usage=5/5" {
		t.Errorf("Sforce-Limit-Info %q", got)
	}
	// The allocation is a rolling 24 hours.
	e.clock.Advance(25 * time.Hour)
	c = e.login()
	if r := c.call(http.MethodGet, "limits", nil); r.status != http.StatusOK || r.header.Get("Sforce-Limit-Info") != "api-usage=1/5" {
		t.Errorf("a day later: %d %q", r.status, r.header.Get("Sforce-Limit-Info"))
	}
	e.sim.SetAPIUsage(4)
	if used, allocation := e.sim.APIUsage(); used != 4 || allocation != 5 {
		t.Errorf("APIUsage() = %d/%d after SetAPIUsage(4)", used, allocation)
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

func TestCounts(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	c.query("SELECT Id FROM Contact")
	c.query("SELECT Id FROM Contact")
	c.call(http.MethodPost, "composite/sobjects", collection(false, contactRec(map[string]any{"LastName": "x"})))
	c.call(http.MethodGet, "sobjects/Contact/describe", nil)
	want := map[string]int64{EndpointToken: 1, EndpointQuery: 2, EndpointCollectionsCreate: 1, EndpointDescribe: 1}
	got := e.sim.Counts()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Counts()[%s] = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	e.sim.ResetCounts()
	if n := len(e.sim.Counts()); n != 0 {
		t.Errorf("after ResetCounts: %v", e.sim.Counts())
	}
	if used, _ := e.sim.APIUsage(); used != 4 {
		t.Errorf("API usage %d, want 4 (ResetCounts leaves it)", used)
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	q := "SELECT Id FROM Contact"

	t.Run("server errors, then recovery", func(t *testing.T) {
		e.sim.InjectFault(Fault{Endpoint: EndpointQuery, Kind: FaultUnavailable, Times: 2})
		e.sim.InjectFault(Fault{Endpoint: EndpointQuery, Kind: FaultServerError})
		for i, want := range []int{503, 503, 500, 200} {
			r := c.query(q)
			if r.status != want {
				t.Errorf("call %d: %d %s, want %d", i, r.status, r.body, want)
			}
			if want != 200 {
				if code := decodeErrors(t, r.body)[0].ErrorCode; code != "SERVER_UNAVAILABLE" && code != "UNKNOWN_EXCEPTION" {
					t.Errorf("call %d: code %s", i, code)
				}
			}
		}
	})

	t.Run("method and endpoint matching", func(t *testing.T) {
		e.sim.InjectFault(Fault{Endpoint: EndpointCollectionsCreate, Method: http.MethodPost, Kind: FaultServerError, Times: Always})
		defer e.sim.ClearFaults()
		if r := c.query(q); r.status != http.StatusOK {
			t.Errorf("query hit by a create fault: %d", r.status)
		}
		for range 3 {
			if r := c.call(http.MethodPost, "composite/sobjects", collection(false, contactRec(map[string]any{"LastName": "x"}))); r.status != http.StatusInternalServerError {
				t.Errorf("create: %d", r.status)
			}
		}
	})

	t.Run("request limit", func(t *testing.T) {
		e.sim.InjectFault(Fault{Kind: FaultRequestLimit})
		r := c.call(http.MethodGet, "limits", nil)
		if r.status != http.StatusForbidden || decodeErrors(t, r.body)[0].ErrorCode != "REQUEST_LIMIT_EXCEEDED" {
			t.Errorf("%d %s", r.status, r.body)
		}
		if r := c.call(http.MethodGet, "limits", nil); r.status != http.StatusOK {
			t.Errorf("after the fault: %d", r.status)
		}
	})

	t.Run("malformed JSON still takes effect", func(t *testing.T) {
		e.sim.InjectFault(Fault{Endpoint: EndpointCollectionsUpsert, Kind: FaultMalformedJSON})
		r := c.call(http.MethodPatch, "composite/sobjects/Contact/Tandem_Sync_Key__c",
			collection(false, contactRec(map[string]any{"LastName": "Half", "Tandem_Sync_Key__c": "half-1"})))
		var res []result
		if r.status != http.StatusOK || json.Unmarshal(r.body, &res) == nil {
			t.Fatalf("%d %s: want a 200 with a broken body", r.status, r.body)
		}
		var found queryResult
		c.json(http.MethodGet, "query?q="+url.QueryEscape("SELECT Id FROM Contact WHERE Tandem_Sync_Key__c = 'half-1'"), nil, http.StatusOK, &found)
		if found.TotalSize != 1 {
			t.Errorf("the write behind the broken answer is missing: %+v", found)
		}
	})

	t.Run("slow answers give way to the client's deadline", func(t *testing.T) {
		e.sim.InjectFault(Fault{Endpoint: EndpointQuery, Kind: FaultSlow, Delay: time.Hour})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err := c.do(ctx, http.MethodGet, "query?q="+url.QueryEscape(q), nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the deadline", err)
		}
		if r := c.query(q); r.status != http.StatusOK {
			t.Errorf("after the slow call: %d", r.status)
		}
	})

	t.Run("slow then normal", func(t *testing.T) {
		e.sim.InjectFault(Fault{Endpoint: EndpointLimits, Kind: FaultSlow, Delay: 20 * time.Millisecond})
		start := time.Now()
		if r := c.call(http.MethodGet, "limits", nil); r.status != http.StatusOK {
			t.Errorf("%d", r.status)
		}
		if time.Since(start) < 20*time.Millisecond {
			t.Error("the slow fault did not delay the answer")
		}
	})

	t.Run("a slow fault that always fires delays each call once", func(t *testing.T) {
		e.sim.InjectFault(Fault{Endpoint: EndpointLimits, Kind: FaultSlow, Delay: time.Millisecond, Times: Always})
		defer e.sim.ClearFaults()
		for range 3 {
			if r := c.call(http.MethodGet, "limits", nil); r.status != http.StatusOK {
				t.Errorf("%d", r.status)
			}
		}
	})

	t.Run("token endpoint", func(t *testing.T) {
		e.sim.InjectFault(Fault{Endpoint: EndpointToken, Kind: FaultUnavailable})
		status, _ := e.tokenRequest(url.Values{"grant_type": {jwtBearerGrant}, "assertion": {e.assertion(e.key.key, nil)}})
		if status != http.StatusServiceUnavailable {
			t.Errorf("token with a fault: %d", status)
		}
		e.login()
	})
}
