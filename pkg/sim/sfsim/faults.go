package sfsim

import (
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// FaultKind is what an injected fault does.
type FaultKind int

// Fault kinds.
const (
	// FaultServerError answers 500 UNKNOWN_EXCEPTION.
	FaultServerError FaultKind = iota + 1
	// FaultUnavailable answers 503 SERVER_UNAVAILABLE, as during a Salesforce incident.
	FaultUnavailable
	// FaultSlow waits Delay (or until the client gives up) before answering normally.
	FaultSlow
	// FaultLockRows makes writes to the records in IDs fail with UNABLE_TO_LOCK_ROW, Times
	// times per record. Without IDs it applies to every record written (each record of a
	// collection is a separate decision), Times counting firings.
	FaultLockRows
	// FaultExpireTokens ends every session issued so far: the matching request, and every
	// later one with an old token, gets 401 INVALID_SESSION_ID.
	FaultExpireTokens
	// FaultRequestLimit answers 403 REQUEST_LIMIT_EXCEEDED as if the daily allocation ran out.
	FaultRequestLimit
	// FaultMalformedJSON carries the request out but cuts its response body in half.
	FaultMalformedJSON
)

// Always makes a fault fire on every matching request.
const Always = -1

// Fault is an injected failure.
type Fault struct {
	// Endpoint restricts the fault to one endpoint (EndpointQuery, EndpointCollectionsCreate,
	// EndpointToken ...); empty matches every REST endpoint but not the token endpoint.
	Endpoint string
	// Method restricts the fault to one HTTP method; empty matches any.
	Method string
	Kind   FaultKind
	// Delay is FaultSlow's wait.
	Delay time.Duration
	// IDs are FaultLockRows's locked records.
	IDs []string
	// Times is how many matching requests the fault affects (for FaultLockRows, how many
	// writes of each record fail); 0 means once, Always means every time.
	Times int
	// Probability, when between 0 and 1, makes the fault fire on each matching request (or
	// record write, for FaultLockRows without IDs) with that probability; Times then counts
	// firings. The draws come from the server's fault generator (Config.FaultSeed,
	// SeedFaults), so a seed gives the same decisions for the same sequence of requests.
	Probability float64
}

type activeFault struct {
	Fault
	remaining int // -1: unlimited
}

func (f *activeFault) matches(endpoint, method string) bool {
	if f.Endpoint == "" {
		if endpoint == EndpointToken {
			return false
		}
	} else if f.Endpoint != endpoint {
		return false
	}
	return f.Method == "" || f.Method == method
}

type faultState struct {
	mu     sync.Mutex
	faults []*activeFault
	locks  map[string]int // record id → remaining lock failures; -1 unlimited
	rng    *rand.Rand
	fired  map[FaultKind]int64
}

func (fs *faultState) init(seed int64) {
	fs.locks = map[string]int{}
	fs.fired = map[FaultKind]int64{}
	fs.seed(seed)
}

// seed restarts the generator behind Fault.Probability; callers hold fs.mu or own fs.
func (fs *faultState) seed(seed int64) {
	fs.rng = rand.New(rand.NewPCG(uint64(seed), 0x7366736d)) //nolint:gosec // fault schedules, not secrets
}

// draw decides whether a fault with probability p fires; callers hold fs.mu.
func (fs *faultState) draw(p float64) bool {
	return p <= 0 || p >= 1 || fs.rng.Float64() < p
}

// InjectFault adds a fault. Faults fire in the order they were injected.
func (s *Server) InjectFault(f Fault) {
	times := f.Times
	if times == 0 {
		times = 1
	}
	if times < 0 {
		times = Always
	}
	fs := &s.faults
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f.Kind == FaultLockRows && len(f.IDs) > 0 {
		for _, id := range f.IDs {
			if norm, ok := NormalizeID(id); ok {
				id = norm
			}
			fs.locks[id] = times
		}
		return
	}
	fs.faults = append(fs.faults, &activeFault{Fault: f, remaining: times})
}

// ClearFaults removes every injected fault, locks included.
func (s *Server) ClearFaults() {
	fs := &s.faults
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.faults = nil
	fs.locks = map[string]int{}
}

// SeedFaults restarts the generator behind Fault.Probability from seed.
func (s *Server) SeedFaults(seed int64) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.seed(seed)
}

// FaultCounts returns how many times each kind of fault fired since the server started, by
// FaultKind.String; a locked record counts once per refused write. ResetCounts does not reset
// it: a chaos run reads it once at the end.
func (s *Server) FaultCounts() map[string]int64 {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	out := make(map[string]int64, len(s.faults.fired))
	for k, v := range s.faults.fired {
		out[k.String()] = v
	}
	return out
}

// Faults returns the armed faults in the order they fire (records locked by id are not
// listed: they are a state of the records).
func (s *Server) Faults() []Fault {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	out := make([]Fault, len(s.faults.faults))
	for i, f := range s.faults.faults {
		out[i] = f.Fault
		if f.remaining > 0 {
			out[i].Times = f.remaining
		}
	}
	return out
}

// take consumes one firing of the first live fault of kind matching the request.
func (fs *faultState) take(endpoint, method string, kind FaultKind) bool {
	_, ok := fs.takeFault(endpoint, method, kind)
	return ok
}

// takeFault consumes one firing of the earliest injected live fault of one of kinds that
// matches the request.
func (fs *faultState) takeFault(endpoint, method string, kinds ...FaultKind) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, f := range fs.faults {
		if !slices.Contains(kinds, f.Kind) || !f.matches(endpoint, method) || !fs.draw(f.Probability) {
			continue
		}
		fs.fired[f.Kind]++
		if f.remaining > 0 {
			f.remaining--
			if f.remaining == 0 {
				fs.faults = append(fs.faults[:i:i], fs.faults[i+1:]...)
			}
		}
		return f.Fault, true
	}
	return Fault{}, false
}

// locked consumes one lock failure of a record.
func (fs *faultState) locked(id string) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, ok := fs.locks[id]
	if !ok {
		return fs.lockedByChance()
	}
	fs.fired[FaultLockRows]++
	if n > 0 {
		n--
		if n == 0 {
			delete(fs.locks, id)
		} else {
			fs.locks[id] = n
		}
	}
	return true
}

// lockedByChance consumes one firing of the first FaultLockRows without ids that fires;
// callers hold fs.mu.
func (fs *faultState) lockedByChance() bool {
	for i, f := range fs.faults {
		if f.Kind != FaultLockRows || !fs.draw(f.Probability) {
			continue
		}
		fs.fired[FaultLockRows]++
		if f.remaining > 0 {
			f.remaining--
			if f.remaining == 0 {
				fs.faults = append(fs.faults[:i:i], fs.faults[i+1:]...)
			}
		}
		return true
	}
	return false
}

// preFaults applies the faults that act before a request is authenticated: delays, server
// errors, unavailability and session expiry. It reports whether it answered the request.
func (s *Server) preFaults(w http.ResponseWriter, r *http.Request, endpoint string) bool {
	if f, ok := s.faults.takeFault(endpoint, r.Method, FaultSlow); ok {
		timer := time.NewTimer(f.Delay)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			return true
		}
	}
	f, ok := s.faults.takeFault(endpoint, r.Method, FaultServerError, FaultUnavailable, FaultExpireTokens)
	switch {
	case !ok:
	case f.Kind == FaultServerError:
		writeError(w, http.StatusInternalServerError, "UNKNOWN_EXCEPTION",
			"An unexpected error occurred. Please include this ErrorId if you contact support: "+randomToken(6)+" (-1)")
		return true
	case f.Kind == FaultUnavailable:
		writeError(w, http.StatusServiceUnavailable, "SERVER_UNAVAILABLE", "Server temporarily unavailable. Please try again later.")
		return true
	case f.Kind == FaultExpireTokens:
		s.auth.expireAll()
	}
	return false
}

// meter counts calls per endpoint and the org's API usage over a rolling 24 hours.
type meter struct {
	mu     sync.Mutex
	counts map[string]int64
	hours  map[int64]int64 // hour since the epoch → API calls
}

func (m *meter) init() {
	m.counts = map[string]int64{}
	m.hours = map[int64]int64{}
}

func (m *meter) count(endpoint string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counts[endpoint]++
}

// used returns the calls made in the 24 hours before now. Callers hold m.mu.
func (m *meter) used(now time.Time) int64 {
	hour := now.Unix() / 3600
	var n int64
	for h, calls := range m.hours {
		if h <= hour-24 {
			delete(m.hours, h)
			continue
		}
		n += calls
	}
	return n
}

// use records one API call if the allocation allows it, returning the usage after it.
func (m *meter) use(now time.Time, allocation int64) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	used := m.used(now)
	if used >= allocation {
		return used, false
	}
	m.hours[now.Unix()/3600]++
	return used + 1, true
}

// Counts returns the number of calls per endpoint since the last ResetCounts, including
// EndpointToken for token requests (which do not count against the API allocation).
func (s *Server) Counts() map[string]int64 {
	s.meter.mu.Lock()
	defer s.meter.mu.Unlock()
	return maps.Clone(s.meter.counts)
}

// ResetCounts zeroes Counts. The API usage behind Sforce-Limit-Info is not reset.
func (s *Server) ResetCounts() {
	s.meter.mu.Lock()
	defer s.meter.mu.Unlock()
	s.meter.counts = map[string]int64{}
}

// APIUsage returns the API calls made in the last 24 hours and the daily allocation.
func (s *Server) APIUsage() (used, allocation int64) {
	s.meter.mu.Lock()
	defer s.meter.mu.Unlock()
	return s.meter.used(s.now()), s.allocation
}

// SetAPIUsage pretends n API calls were made in the current hour, on top of the real ones
// made earlier; tests use it to bring the org close to its allocation.
func (s *Server) SetAPIUsage(n int64) {
	s.meter.mu.Lock()
	defer s.meter.mu.Unlock()
	now := s.now()
	hour := now.Unix() / 3600
	others := s.meter.used(now) - s.meter.hours[hour]
	s.meter.hours[hour] = max(n-others, 0)
}
