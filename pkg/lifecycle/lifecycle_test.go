package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
)

func TestReadyz(t *testing.T) {
	h := NewHealth()
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	get := func(path string) int {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("/healthz"); got != http.StatusOK {
		t.Errorf("/healthz = %d", got)
	}
	if got := get("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz before SetReady = %d, want 503", got)
	}
	h.SetReady(true)
	if got := get("/readyz"); got != http.StatusOK {
		t.Errorf("/readyz when ready = %d, want 200", got)
	}
	h.AddCheck("redis", func(context.Context) error { return errors.New("connection refused") })
	if got := get("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz with a failing check = %d, want 503", got)
	}
	ready, results := h.Ready(t.Context())
	if ready || results["redis"] != "connection refused" {
		t.Errorf("Ready = %v %v", ready, results)
	}
}

func TestShutdownOrder(t *testing.T) {
	h := NewHealth()
	started := make(chan struct{})
	var readyWhenStopped bool
	svc := &Service{
		Name:       "test",
		Health:     h,
		DrainDelay: 50 * time.Millisecond,
		Components: []Component{{Name: "worker", Run: func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			readyWhenStopped, _ = h.Ready(context.Background())
			return ctx.Err()
		}}},
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx) }()
	<-started
	poll.Until(t, "ready", func() bool { r, _ := h.Ready(t.Context()); return r })
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if readyWhenStopped {
		t.Error("components were stopped while the service still reported ready")
	}
}

func TestComponentFailureStopsTheOthers(t *testing.T) {
	boom := errors.New("boom")
	otherStopped := make(chan struct{})
	svc := &Service{Name: "test", Components: []Component{
		{Name: "bad", Run: func(context.Context) error { return boom }},
		{Name: "good", Run: func(ctx context.Context) error { <-ctx.Done(); close(otherStopped); return nil }},
	}}
	err := svc.Run(t.Context())
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want boom", err)
	}
	select {
	case <-otherStopped:
	default:
		t.Error("the healthy component was not stopped")
	}
}

// syncBuffer is a log destination safe to read while the service writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestStopTimeout checks that Run waits for a component past the stop timeout, and returns only
// once it has returned — or, past the grace as well, says it gave up on it.
func TestStopTimeout(t *testing.T) {
	tests := []struct {
		name string
		// returnsLate makes the component return once the stop timeout has been reported;
		// otherwise it outlives the grace.
		returnsLate   bool
		grace         time.Duration
		wantAbandoned bool
	}{
		{name: "late component is waited for", returnsLate: true, grace: time.Minute},
		{name: "component outliving the grace is given up on", grace: 20 * time.Millisecond, wantAbandoned: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			h := NewHealth()
			release := make(chan struct{})
			var releaseOnce sync.Once
			releaseNow := func() { releaseOnce.Do(func() { close(release) }) }
			t.Cleanup(releaseNow)
			var returned atomic.Bool
			svc := &Service{Name: "test", Health: h, StopTimeout: 20 * time.Millisecond, StopGrace: tc.grace,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
				Components: []Component{
					{Name: "stuck", Run: func(ctx context.Context) error {
						<-ctx.Done() // ignores it until released
						<-release
						returned.Store(true)
						return nil
					}},
					{Name: "prompt", Run: func(ctx context.Context) error { <-ctx.Done(); return nil }},
				}}
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			errc := make(chan error, 1)
			go func() { errc <- svc.Run(ctx) }()
			if tc.returnsLate {
				poll.Until(t, "the stop timeout to be reported", func() bool { return strings.Contains(logs.String(), "stop timeout passed") })
				if got := h.Running(); !slices.Equal(got, []string{"stuck"}) {
					t.Errorf("Running after the stop timeout = %v, want [stuck]", got)
				}
				select {
				case err := <-errc:
					t.Fatalf("Run returned %v while a component was still running", err)
				default:
				}
				releaseNow()
			}
			err := <-errc
			if !errors.Is(err, ErrStopTimeout) {
				t.Fatalf("Run = %v, want ErrStopTimeout", err)
			}
			if errors.Is(err, ErrAbandoned) != tc.wantAbandoned {
				t.Fatalf("Run = %v, want abandoned %v", err, tc.wantAbandoned)
			}
			if tc.wantAbandoned {
				if returned.Load() || !slices.Equal(h.Running(), []string{"stuck"}) || !strings.Contains(err.Error(), "stuck") {
					t.Errorf("after giving up: returned %v, Running %v, error %q", returned.Load(), h.Running(), err)
				}
				if !strings.Contains(logs.String(), "giving up on them") {
					t.Errorf("giving up is not logged clearly:\n%s", logs.String())
				}
				releaseNow()
				poll.Until(t, "the component to be seen returning", func() bool { return len(h.Running()) == 0 })
				return
			}
			if !returned.Load() || len(h.Running()) != 0 {
				t.Errorf("Run returned before the late component did (returned %v, Running %v)", returned.Load(), h.Running())
			}
		})
	}
}

func TestRunningTracksComponents(t *testing.T) {
	h := NewHealth()
	started := make(chan struct{}, 3)
	block := func(ctx context.Context) error { started <- struct{}{}; <-ctx.Done(); return nil }
	svc := &Service{Name: "test", Health: h, Components: []Component{{Name: "b", Run: block}, {Name: "a", Run: block}, {Name: "a", Run: block}}}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx) }()
	for range 3 {
		<-started
	}
	if got := h.Running(); !slices.Equal(got, []string{"a", "a", "b"}) {
		t.Errorf("Running = %v, want [a a b]", got)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := h.Running(); len(got) != 0 {
		t.Errorf("Running after Run = %v", got)
	}
}

func TestHealthServerServesUntilShutdown(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	svc := &Service{Name: "test", HealthAddr: addr, Components: []Component{
		{Name: "idle", Run: func(ctx context.Context) error { <-ctx.Done(); return nil }},
	}}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx) }()
	poll.Until(t, "readyz 200", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("health server still serving after shutdown")
	}
}

func TestGRPCServerGracefulStop(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	comp := GRPCServer("grpc", srv, lis, time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- comp.Run(ctx) }()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check = %v, %v", resp, err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run = %v", err)
	}
}

func TestEveryRunsAtOnceThenEachIntervalUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var rounds, failures int
	done := make(chan error, 1)
	go func() {
		done <- Every(ctx, 5*time.Millisecond, func(context.Context) error {
			rounds++
			if rounds == 3 {
				cancel()
			}
			if rounds%2 == 1 {
				return errors.New("round failed")
			}
			return nil
		}, func(error) { failures++ })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Every = %v, want nil once cancelled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return after its context ended")
	}
	// Round 1 failed while live; round 3 failed after the cancel, which is not reported.
	if rounds != 3 || failures != 1 {
		t.Fatalf("%d rounds, %d failures reported; want 3 and 1", rounds, failures)
	}
}

func TestPacedWaitsTheDelayEachRoundAsksFor(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var rounds, failures int
	var starts []time.Time
	done := make(chan error, 1)
	go func() {
		done <- Paced(ctx, func(context.Context) (time.Duration, error) {
			rounds++
			starts = append(starts, time.Now())
			switch rounds {
			case 1:
				return 50 * time.Millisecond, errors.New("round failed") // still waits 50ms
			case 2:
				return time.Millisecond, nil
			default:
				cancel()
				return time.Hour, errors.New("failed after the cancel")
			}
		}, func(error) { failures++ })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Paced = %v, want nil once cancelled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Paced did not return after its context ended")
	}
	if rounds != 3 || failures != 1 {
		t.Fatalf("%d rounds, %d failures reported; want 3 and 1", rounds, failures)
	}
	if gap := starts[1].Sub(starts[0]); gap < 50*time.Millisecond {
		t.Fatalf("second round %s after the first, which asked for 50ms", gap)
	}
}
