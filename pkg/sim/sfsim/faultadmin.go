package sfsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// FaultAdminPath is where a server built with Config.FaultAdmin serves its fault admin
// endpoint, so that a chaos process can drive a simulator running in another process:
//
//   - GET returns a FaultReport: the armed faults and how often each kind fired;
//   - POST takes a FaultRequest (clear, then reseed, then arm, in that order) and returns the
//     FaultReport after it;
//   - DELETE disarms every fault and returns the FaultReport.
//
// The path is outside /services so that it can never be mistaken for a Salesforce endpoint.
const FaultAdminPath = "/__faults"

// maxFaultRequestBytes bounds a fault admin request body.
const maxFaultRequestBytes = 1 << 20

// FaultSpec is a Fault on the wire, with the delay in milliseconds and the kind by name
// (FaultKind.String: "ServerError", "Unavailable", "Slow", "LockRows", "ExpireTokens",
// "RequestLimit", "MalformedJSON").
type FaultSpec struct {
	Kind        string   `json:"kind"`
	Endpoint    string   `json:"endpoint,omitempty"`
	Method      string   `json:"method,omitempty"`
	Times       int      `json:"times,omitempty"`
	Probability float64  `json:"probability,omitempty"`
	DelayMS     int64    `json:"delay_ms,omitempty"`
	IDs         []string `json:"ids,omitempty"`
}

// FaultRequest changes a server's faults: Clear disarms the armed ones first (locks
// included), Seed (when set) restarts the probability generator, then Faults are armed in
// order.
type FaultRequest struct {
	Clear  bool        `json:"clear,omitempty"`
	Seed   *int64      `json:"seed,omitempty"`
	Faults []FaultSpec `json:"faults,omitempty"`
}

// FaultReport is what the fault admin endpoint answers: the armed faults and FaultCounts.
type FaultReport struct {
	Armed []FaultSpec      `json:"armed"`
	Fired map[string]int64 `json:"fired"`
}

var faultKinds = []FaultKind{FaultServerError, FaultUnavailable, FaultSlow, FaultLockRows, FaultExpireTokens, FaultRequestLimit, FaultMalformedJSON}

func (k FaultKind) String() string {
	switch k {
	case FaultServerError:
		return "ServerError"
	case FaultUnavailable:
		return "Unavailable"
	case FaultSlow:
		return "Slow"
	case FaultLockRows:
		return "LockRows"
	case FaultExpireTokens:
		return "ExpireTokens"
	case FaultRequestLimit:
		return "RequestLimit"
	case FaultMalformedJSON:
		return "MalformedJSON"
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// ParseFaultKind returns the kind named name (as FaultKind.String spells it, any case).
func ParseFaultKind(name string) (FaultKind, error) {
	for _, k := range faultKinds {
		if strings.EqualFold(k.String(), name) {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown fault kind %q", name)
}

// Spec returns f as it travels to and from the fault admin endpoint.
func (f Fault) Spec() FaultSpec {
	return FaultSpec{
		Kind: f.Kind.String(), Endpoint: f.Endpoint, Method: f.Method, Times: f.Times, Probability: f.Probability,
		DelayMS: f.Delay.Milliseconds(), IDs: f.IDs,
	}
}

// Fault validates sp and returns the Fault it describes.
func (sp FaultSpec) Fault() (Fault, error) {
	kind, err := ParseFaultKind(sp.Kind)
	if err != nil {
		return Fault{}, err
	}
	var errs []error
	if sp.Probability < 0 || sp.Probability > 1 {
		errs = append(errs, fmt.Errorf("probability %v is not between 0 and 1", sp.Probability))
	}
	if sp.DelayMS < 0 {
		errs = append(errs, errors.New("delay must not be negative"))
	}
	if len(sp.IDs) > 0 && kind != FaultLockRows {
		errs = append(errs, errors.New("only LockRows takes record ids"))
	}
	if err := errors.Join(errs...); err != nil {
		return Fault{}, fmt.Errorf("fault %s: %w", sp.Kind, err)
	}
	return Fault{
		Kind: kind, Endpoint: sp.Endpoint, Method: sp.Method, Times: sp.Times, Probability: sp.Probability,
		Delay: time.Duration(sp.DelayMS) * time.Millisecond, IDs: sp.IDs,
	}, nil
}

// ApplyFaultRequest carries out req as the admin endpoint does. Every spec is validated before
// anything changes, so a bad request leaves the armed faults as they were.
func (s *Server) ApplyFaultRequest(req FaultRequest) error {
	faults := make([]Fault, 0, len(req.Faults))
	for i, sp := range req.Faults {
		f, err := sp.Fault()
		if err != nil {
			return fmt.Errorf("faults[%d]: %w", i, err)
		}
		faults = append(faults, f)
	}
	if req.Clear {
		s.ClearFaults()
	}
	if req.Seed != nil {
		s.SeedFaults(*req.Seed)
	}
	for _, f := range faults {
		s.InjectFault(f)
	}
	return nil
}

// FaultReport returns the armed faults and the counts of those that fired.
func (s *Server) FaultReport() FaultReport {
	armed := s.Faults()
	rep := FaultReport{Armed: make([]FaultSpec, len(armed)), Fired: s.FaultCounts()}
	for i, f := range armed {
		rep.Armed[i] = f.Spec()
	}
	return rep
}

func (s *Server) serveFaultAdmin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodDelete:
		s.ClearFaults()
	case http.MethodPost:
		var req FaultRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFaultRequestBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, "fault request: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.ApplyFaultRequest(req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.log.InfoContext(r.Context(), "sfsim: faults changed", "clear", req.Clear, "armed", len(req.Faults))
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	body, err := json.Marshal(s.FaultReport())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// FaultAdminClient drives the fault admin endpoint of a simulator in another process.
type FaultAdminClient struct {
	// BaseURL is the simulator's base URL (without FaultAdminPath).
	BaseURL string
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
}

// Apply sends req and returns the report after it.
func (c FaultAdminClient) Apply(ctx context.Context, req FaultRequest) (FaultReport, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return FaultReport{}, fmt.Errorf("encode fault request: %w", err)
	}
	return c.do(ctx, http.MethodPost, body)
}

// Clear disarms every fault and returns the report after it.
func (c FaultAdminClient) Clear(ctx context.Context) (FaultReport, error) {
	return c.do(ctx, http.MethodDelete, nil)
}

// Report returns the armed faults and the counts of those that fired.
func (c FaultAdminClient) Report(ctx context.Context) (FaultReport, error) {
	return c.do(ctx, http.MethodGet, nil)
}

func (c FaultAdminClient) do(ctx context.Context, method string, body []byte) (FaultReport, error) {
	url := strings.TrimRight(c.BaseURL, "/") + FaultAdminPath
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return FaultReport{}, fmt.Errorf("fault admin %s: %w", method, err)
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
		return FaultReport{}, fmt.Errorf("fault admin %s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFaultRequestBytes))
	if err != nil {
		return FaultReport{}, fmt.Errorf("fault admin %s %s: read answer: %w", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return FaultReport{}, fmt.Errorf("fault admin %s %s: HTTP %d: %s", method, url, resp.StatusCode, bytes.TrimSpace(data))
	}
	var rep FaultReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return FaultReport{}, fmt.Errorf("fault admin %s %s: decode answer: %w", method, url, err)
	}
	return rep, nil
}
