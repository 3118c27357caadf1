// Package faultadmin is the fault admin endpoint both simulators serve, and its client, so that a
// chaos process can drive a simulator running in another process. Each simulator describes its
// own faults on the wire (the spec type S) and supplies how to arm, clear and report them.
//
//   - GET returns a Report: the armed faults and how often each kind fired;
//   - POST takes a Request (clear, then reseed, then arm, in that order) and returns the Report
//     after it;
//   - DELETE disarms every fault and returns the Report.
package faultadmin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// Path is where a simulator serves the endpoint. It starts with "/__" so that it can never be
// mistaken for an Exchange or Salesforce endpoint.
const Path = "/__faults"

// maxRequestBytes bounds a request body and an answer.
const maxRequestBytes = 1 << 20

// Request changes a simulator's faults: Clear disarms the armed ones first, Seed (when set)
// restarts the probability generator, then Faults are armed in order.
type Request[S any] struct {
	Clear  bool   `json:"clear,omitempty"`
	Seed   *int64 `json:"seed,omitempty"`
	Faults []S    `json:"faults,omitempty"`
}

// Report is what the endpoint answers: the armed faults and how often each kind fired.
type Report[S any] struct {
	Armed []S              `json:"armed"`
	Fired map[string]int64 `json:"fired"`
}

// Simulator is what the endpoint drives.
type Simulator[S any] interface {
	// ApplyFaultRequest validates every spec and only then changes the faults.
	ApplyFaultRequest(Request[S]) error
	FaultReport() Report[S]
	ClearFaults()
}

// Serve answers one request to the endpoint; name prefixes its log line.
func Serve[S any](w http.ResponseWriter, r *http.Request, sim Simulator[S], log *slog.Logger, name string) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodDelete:
		sim.ClearFaults()
	case http.MethodPost:
		var req Request[S]
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, "fault request: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := sim.ApplyFaultRequest(req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		log.InfoContext(r.Context(), name+": faults changed", "clear", req.Clear, "armed", len(req.Faults))
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	body, err := json.Marshal(sim.FaultReport())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// Client drives the endpoint of a simulator in another process.
type Client[S any] struct {
	// BaseURL is the simulator's base URL (without Path).
	BaseURL string
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
}

// Apply sends req and returns the report after it.
func (c Client[S]) Apply(ctx context.Context, req Request[S]) (Report[S], error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Report[S]{}, fmt.Errorf("encode fault request: %w", err)
	}
	return c.do(ctx, http.MethodPost, body)
}

// Clear disarms every fault and returns the report after it.
func (c Client[S]) Clear(ctx context.Context) (Report[S], error) {
	return c.do(ctx, http.MethodDelete, nil)
}

// Report returns the armed faults and the counts of those that fired.
func (c Client[S]) Report(ctx context.Context) (Report[S], error) {
	return c.do(ctx, http.MethodGet, nil)
}

func (c Client[S]) do(ctx context.Context, method string, body []byte) (Report[S], error) {
	url := strings.TrimRight(c.BaseURL, "/") + Path
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return Report[S]{}, fmt.Errorf("fault admin %s: %w", method, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Report[S]{}, fmt.Errorf("fault admin %s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRequestBytes))
	if err != nil {
		return Report[S]{}, fmt.Errorf("fault admin %s %s: read answer: %w", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Report[S]{}, fmt.Errorf("fault admin %s %s: HTTP %d: %s", method, url, resp.StatusCode, bytes.TrimSpace(data))
	}
	var rep Report[S]
	if err := json.Unmarshal(data, &rep); err != nil {
		return Report[S]{}, fmt.Errorf("fault admin %s %s: decode answer: %w", method, url, err)
	}
	return rep, nil
}
