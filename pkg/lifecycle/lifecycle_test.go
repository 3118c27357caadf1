package lifecycle

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
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

func TestStopTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	svc := &Service{Name: "test", StopTimeout: 20 * time.Millisecond, Components: []Component{
		{Name: "stuck", Run: func(context.Context) error { <-release; return nil }},
	}}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := svc.Run(ctx); !errors.Is(err, ErrStopTimeout) {
		t.Fatalf("Run = %v, want ErrStopTimeout", err)
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
