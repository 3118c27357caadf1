package lifecycle

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/telemetry"
)

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// get returns the status and body of a GET of url.
func get(t *testing.T, url string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// TestHealthServesMetrics runs a service whose health port also serves a Telemetry's
// Prometheus handler, as the platform wires it, and scrapes it over HTTP.
func TestHealthServesMetrics(t *testing.T) {
	// Metrics served, nothing pushed, whatever the environment running the test says.
	t.Setenv("OTEL_SDK_DISABLED", "")
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	tel, err := telemetry.Setup(t.Context(), telemetry.Config{ServiceName: "tandem-test", ServiceVersion: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	handled, err := tel.Meter("test").Int64Counter("tandem.test.messages.handled")
	if err != nil {
		t.Fatal(err)
	}
	handled.Add(t.Context(), 7)

	h := NewHealth()
	h.Handle("GET /metrics", tel.MetricsHandler())
	addr := freeAddr(t)
	svc := &Service{Name: "test", HealthAddr: addr, Health: h, Components: []Component{
		{Name: "idle", Run: func(ctx context.Context) error { <-ctx.Done(); return nil }},
	}}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}()

	var body string
	poll.Until(t, "/metrics 200", func() bool {
		code, b, err := get(t, "http://"+addr+"/metrics")
		body = b
		return err == nil && code == http.StatusOK
	})
	for _, want := range []string{
		"tandem_test_messages_handled_total{", "} 7\n",
		"go_goroutines ",
		`target_info{`, `service_name="tandem-test"`, `service_version="v1.2.3"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	// The health endpoints are served beside it, as before.
	if code, _, err := get(t, "http://"+addr+"/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz = %d, %v", code, err)
	}
	if code, _, err := get(t, "http://"+addr+"/readyz"); err != nil || code != http.StatusOK {
		t.Errorf("/readyz = %d, %v", code, err)
	}
}

func TestHealthHandle(t *testing.T) {
	h := NewHealth()
	handler := h.Handler()
	serve := func(method, path string) int {
		t.Helper()
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), method, path, nil))
		return rec.Code
	}
	if got := serve(http.MethodGet, "/metrics"); got != http.StatusNotFound {
		t.Errorf("/metrics before Handle = %d, want 404", got)
	}
	// Added after the handler was taken (the server already serving): served from then on.
	h.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	if got := serve(http.MethodGet, "/metrics"); got != http.StatusTeapot {
		t.Errorf("/metrics after Handle = %d, want the handler's 418", got)
	}
	if got := serve(http.MethodPost, "/metrics"); got != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics = %d, want 405", got)
	}
	if got := serve(http.MethodGet, "/healthz"); got != http.StatusOK {
		t.Errorf("/healthz = %d", got)
	}

	defer func() {
		if recover() == nil {
			t.Error("Handle of /healthz did not panic; it would shadow liveness")
		}
	}()
	h.Handle("GET /healthz", http.NotFoundHandler())
}
