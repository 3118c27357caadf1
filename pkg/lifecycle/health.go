// Package lifecycle runs a Tandem service the way Kubernetes expects: liveness and readiness
// endpoints, and an orderly shutdown on SIGTERM — report not ready, wait for load balancers to
// notice, stop taking work and drain what is in flight, gracefully stop servers, and return so
// that main can flush telemetry last.
package lifecycle

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Health answers /healthz (the process is alive) and /readyz (the process can take work: it
// has not started shutting down and every readiness check passes), and serves beside them
// what else belongs on the health port (the platform's /metrics, see Handle).
type Health struct {
	mu     sync.Mutex
	ready  bool
	checks map[string]func(context.Context) error
	// mux serves /healthz, /readyz and what Handle added; built on first use.
	mux *http.ServeMux
	// running counts the components of each name that a Service started on this Health and
	// that have not returned yet.
	running map[string]int

	// CheckTimeout bounds each readiness check; zero means 2s.
	CheckTimeout time.Duration
}

// NewHealth returns a Health that is not ready until SetReady(true).
func NewHealth() *Health {
	return &Health{checks: map[string]func(context.Context) error{}, running: map[string]int{}}
}

// Running returns the names of the components that a Service started on h and that have not
// returned, sorted. Whoever owns what those components use (the platform's NATS and Redis
// connections) must not close it while this is not empty: a shutdown that gave up waiting
// (ErrAbandoned) leaves them running until the process exits.
func (h *Health) Running() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var names []string
	for name, n := range h.running {
		for range n {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

func (h *Health) componentStarted(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running == nil {
		h.running = map[string]int{}
	}
	h.running[name]++
}

func (h *Health) componentReturned(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running[name]--; h.running[name] <= 0 {
		delete(h.running, name)
	}
}

// AddCheck registers a readiness check (e.g. "nats", "redis"). Checks run on every /readyz.
func (h *Health) AddCheck(name string, check func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = check
}

// SetReady sets whether the process takes work.
func (h *Health) SetReady(ready bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ready = ready
}

// Ready runs the checks and reports readiness with each check's outcome.
func (h *Health) Ready(ctx context.Context) (bool, map[string]string) {
	h.mu.Lock()
	ready := h.ready
	names := make([]string, 0, len(h.checks))
	for name := range h.checks {
		names = append(names, name)
	}
	checks := make(map[string]func(context.Context) error, len(h.checks))
	for k, v := range h.checks {
		checks[k] = v
	}
	timeout := h.CheckTimeout
	h.mu.Unlock()
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	sort.Strings(names)

	results := make(map[string]string, len(names))
	if !ready {
		results["lifecycle"] = "not ready (starting or shutting down)"
	}
	for _, name := range names {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := checks[name](cctx)
		cancel()
		if err != nil {
			ready = false
			results[name] = err.Error()
		} else {
			results[name] = "ok"
		}
	}
	return ready, results
}

// Handle serves handler at pattern (a net/http ServeMux pattern, such as "GET /metrics") on
// the health port, beside /healthz and /readyz. It may be called while the port is served.
// Like ServeMux.Handle, it panics if pattern is invalid or conflicts with one already served:
// that is a programming error, not a condition to handle.
func (h *Health) Handle(pattern string, handler http.Handler) {
	h.serveMux().Handle(pattern, handler)
}

// Handler serves /healthz, /readyz and whatever Handle added.
func (h *Health) Handler() http.Handler { return h.serveMux() }

func (h *Health) serveMux() *http.ServeMux {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mux != nil {
		return h.mux
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ready, results := h.Ready(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(struct {
			Ready  bool              `json:"ready"`
			Checks map[string]string `json:"checks"`
		}{ready, results})
	})
	h.mux = mux
	return mux
}
