package ewssim

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FaultKind is a way a request can be made to fail.
type FaultKind int

const (
	// FaultServerBusy answers with the ErrorServerBusy SOAP fault Exchange uses for throttling,
	// with Fault.BackOff as BackOffMilliseconds in MessageXml.
	FaultServerBusy FaultKind = iota + 1
	// FaultHTTPStatus answers with HTTP Fault.Status (e.g. 503, 429, 500, 401) and, when
	// Fault.RetryAfter is set, a Retry-After header in seconds.
	FaultHTTPStatus
	// FaultSlow waits Fault.Delay (or until the client gives up) and then serves the request.
	FaultSlow
	// FaultMalformedXML answers HTTP 200 with a response cut off in the middle.
	FaultMalformedXML
	// FaultDropConnection closes the connection without answering.
	FaultDropConnection
	// FaultInvalidSyncState answers SyncFolderItems with ErrorInvalidSyncStateData, as Exchange
	// does when it can no longer use a client's sync state.
	FaultInvalidSyncState
)

func (k FaultKind) String() string {
	switch k {
	case FaultServerBusy:
		return "ServerBusy"
	case FaultHTTPStatus:
		return "HTTPStatus"
	case FaultSlow:
		return "Slow"
	case FaultMalformedXML:
		return "MalformedXML"
	case FaultDropConnection:
		return "DropConnection"
	case FaultInvalidSyncState:
		return "InvalidSyncState"
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// Fault makes matching requests fail. A request matches when its operation and mailbox match;
// each match consumes one of Times.
type Fault struct {
	// Operation is an EWS operation name ("SyncFolderItems"), "GetUserSettings" (SOAP
	// Autodiscover), "Autodiscover" (POX) or "Token". Empty matches every EWS operation;
	// Autodiscover and token requests are only matched by name, so that a fault meant for the
	// next EWS call is not spent on the client's discovery or login.
	Operation string
	// Mailbox is the mailbox acted on (the impersonated one, or the caller's own, or for
	// Autodiscover the one asked about); empty matches every mailbox.
	Mailbox string
	Kind    FaultKind
	// Times is how many requests fail; 0 means once, a negative value means until ClearFaults.
	Times int

	// BackOff is the BackOffMilliseconds of FaultServerBusy. Default: 1s.
	BackOff time.Duration
	// Status and RetryAfter configure FaultHTTPStatus. Default status: 503.
	Status     int
	RetryAfter time.Duration
	// Delay is how long FaultSlow waits.
	Delay time.Duration
	// AfterWork makes FaultMalformedXML and FaultDropConnection happen after the operation was
	// carried out, so that the client cannot tell whether its write happened.
	AfterWork bool
	// Probability, when between 0 and 1, makes the fault fire on each matching request with
	// that probability instead of on every one; Times then counts firings. The draws come
	// from the server's fault generator (Config.FaultSeed, SeedFaults), so a seed gives the
	// same sequence of decisions for the same sequence of requests.
	Probability float64
}

// Label names what the fault does for FaultCounts: the kind, the status of an HTTP fault
// ("HTTP503") and "AfterWork" for a fault that breaks the answer to a request carried out.
func (f Fault) Label() string {
	switch {
	case f.Kind == FaultHTTPStatus:
		status := f.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		return "HTTP" + strconv.Itoa(status)
	case f.AfterWork && (f.Kind == FaultMalformedXML || f.Kind == FaultDropConnection):
		return f.Kind.String() + "AfterWork"
	}
	return f.Kind.String()
}

// InjectFault arms a fault. Faults are matched in the order they were injected.
func (s *Server) InjectFault(f Fault) {
	if f.Times == 0 {
		f.Times = 1
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.list = append(s.faults.list, &f)
}

// ClearFaults disarms every fault. FaultCounts keeps counting from where it was.
func (s *Server) ClearFaults() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.list = nil
}

// SeedFaults restarts the generator behind Fault.Probability from seed.
func (s *Server) SeedFaults(seed int64) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.seed(seed)
}

// FaultCounts returns how many times each fault fired since the server started, by
// Fault.Label. ResetCounts does not reset it: a chaos run reads it once at the end.
func (s *Server) FaultCounts() map[string]int64 {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	out := make(map[string]int64, len(s.faults.fired))
	for k, v := range s.faults.fired {
		out[k] = v
	}
	return out
}

// Faults returns the armed faults, in the order they are matched.
func (s *Server) Faults() []Fault {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	out := make([]Fault, len(s.faults.list))
	for i, f := range s.faults.list {
		out[i] = *f
	}
	return out
}

type faultSet struct {
	mu    sync.Mutex
	list  []*Fault
	rng   *rand.Rand
	fired map[string]int64
}

// seed restarts the generator; callers hold fs.mu.
func (fs *faultSet) seed(seed int64) {
	fs.rng = rand.New(rand.NewPCG(uint64(seed), 0x7a6e64656d)) //nolint:gosec // fault schedules, not secrets
}

// take consumes the first fault matching the request. ews is false for Autodiscover and token
// requests, which only the transport-level kinds apply to.
func (fs *faultSet) take(op, mailbox string, ews bool) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, f := range fs.list {
		if (f.Operation != "" && !strings.EqualFold(f.Operation, op)) || (f.Mailbox != "" && !strings.EqualFold(f.Mailbox, mailbox)) {
			continue
		}
		if f.Kind == FaultInvalidSyncState && op != "SyncFolderItems" {
			continue
		}
		if !ews && (f.Operation == "" || f.Kind == FaultServerBusy || f.Kind == FaultInvalidSyncState) {
			continue
		}
		if f.Probability > 0 && f.Probability < 1 {
			if fs.rng == nil {
				fs.seed(0)
			}
			if fs.rng.Float64() >= f.Probability {
				continue
			}
		}
		out := *f
		if fs.fired == nil {
			fs.fired = map[string]int64{}
		}
		fs.fired[f.Label()]++
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				fs.list = append(fs.list[:i], fs.list[i+1:]...)
			}
		}
		return out, true
	}
	return Fault{}, false
}

// applyFault carries out f before the request is served; true means the response is done.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	switch f.Kind {
	case FaultServerBusy:
		backoff := f.BackOff
		if backoff <= 0 {
			backoff = time.Second
		}
		writeXML(w, http.StatusInternalServerError, faultDocument(s.version, &soapFault{
			code:   "ErrorServerBusy",
			text:   "The server cannot service this request right now. Try again later.",
			values: [][2]string{{"BackOffMilliseconds", strconv.FormatInt(backoff.Milliseconds(), 10)}},
		}))
		return true
	case FaultInvalidSyncState:
		resp := newResponse(s.version, "SyncFolderItems")
		resp.message(errInvalidSyncState())
		writeXML(w, http.StatusOK, resp.doc)
		return true
	}
	return s.applyTransportFault(w, r, f)
}

// applyTransportFault carries out the faults that do not depend on the protocol spoken.
func (s *Server) applyTransportFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	switch f.Kind {
	case FaultHTTPStatus:
		status := f.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
		}
		if status == http.StatusUnauthorized {
			w.Header().Add("WWW-Authenticate", `Basic realm="`+hostOnly(r.Host)+`"`)
		}
		http.Error(w, http.StatusText(status), status)
		return true
	case FaultSlow:
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		return false
	case FaultMalformedXML:
		if f.AfterWork {
			return false
		}
		writeBytes(w, http.StatusOK, []byte(`<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="`+nsSOAP+`"><s:Header><h:ServerVersionInfo MajorVer`))
		return true
	case FaultDropConnection:
		if f.AfterWork {
			return false
		}
		dropConnection(w)
		return true
	}
	return false
}

// dropConnection closes the client's connection without a response.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			// The point is to break the connection; a close error changes nothing.
			_ = conn.Close()
			return
		}
	}
	// Not hijackable (HTTP/2, a recorder): abort the handler, which resets the stream.
	panic(http.ErrAbortHandler)
}
