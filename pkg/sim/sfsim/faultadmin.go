package sfsim

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-sync/tandem/pkg/sim/faultadmin"
)

// FaultAdminPath is where a server built with Config.FaultAdmin serves its fault admin
// endpoint (see package faultadmin).
const FaultAdminPath = faultadmin.Path

// FaultRequest changes a server's faults (see faultadmin.Request).
type FaultRequest = faultadmin.Request[FaultSpec]

// FaultReport is what the fault admin endpoint answers (see faultadmin.Report).
type FaultReport = faultadmin.Report[FaultSpec]

// FaultAdminClient drives the fault admin endpoint of a simulator in another process.
type FaultAdminClient = faultadmin.Client[FaultSpec]

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
	faultadmin.Serve[FaultSpec](w, r, s, s.log, "sfsim")
}
