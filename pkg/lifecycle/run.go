package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// Component is a part of a service that works until its context is cancelled, then finishes
// what it has in flight and returns. Consumers, schedulers and servers are components.
type Component struct {
	Name string
	Run  func(ctx context.Context) error
}

// Service is the runnable shape of every Tandem service.
type Service struct {
	// Name is used in logs.
	Name string
	// HealthAddr is where /healthz and /readyz are served; empty means not served (when
	// `tandem dev` runs several services in one process, it serves one health endpoint).
	HealthAddr string
	// Health is the service's health; nil means a fresh one.
	Health *Health
	// Components are started together and stopped together.
	Components []Component
	// DrainDelay is how long the service reports not ready before it stops taking work, so
	// that Kubernetes removes it from Service endpoints first. Zero in tests and `tandem dev`.
	DrainDelay time.Duration
	// StopTimeout bounds how long components may take to drain once told to stop.
	StopTimeout time.Duration
	// Logger logs the lifecycle.
	Logger *slog.Logger
}

// ErrStopTimeout is returned when components did not finish within StopTimeout.
var ErrStopTimeout = errors.New("components did not stop in time")

// Run runs the service until ctx is cancelled (SIGTERM) or a component fails, then shuts down:
// not ready → DrainDelay → cancel components and wait for them → stop the health server.
// It returns the first component failure, or nil after a clean shutdown.
func (s *Service) Run(ctx context.Context) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	health := s.Health
	if health == nil {
		health = NewHealth()
	}
	stopTimeout := s.StopTimeout
	if stopTimeout == 0 {
		stopTimeout = 30 * time.Second
	}

	var healthSrv *http.Server
	healthErr := make(chan error, 1)
	if s.HealthAddr != "" {
		lis, err := net.Listen("tcp", s.HealthAddr)
		if err != nil {
			return fmt.Errorf("%s: health listener: %w", s.Name, err)
		}
		healthSrv = &http.Server{Handler: health.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := healthSrv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				healthErr <- fmt.Errorf("%s: health server: %w", s.Name, err)
			}
		}()
		log.Info("health endpoints listening", slog.String("addr", lis.Addr().String()))
	}

	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var (
		wg       sync.WaitGroup
		failOnce sync.Once
		failure  error
		failed   = make(chan struct{})
	)
	for _, c := range s.Components {
		wg.Go(func() {
			err := c.Run(workCtx)
			if err != nil && !errors.Is(err, context.Canceled) {
				failOnce.Do(func() {
					failure = fmt.Errorf("%s: %s: %w", s.Name, c.Name, err)
					close(failed)
				})
			}
		})
	}
	health.SetReady(true)
	log.Info("service started", slog.Int("components", len(s.Components)))

	select {
	case <-ctx.Done():
		log.Info("shutting down", slog.Duration("drain_delay", s.DrainDelay))
	case <-failed:
		log.Error("component failed; shutting down", slog.Any("error", failure))
	case err := <-healthErr:
		failOnce.Do(func() { failure = err; close(failed) })
	}
	health.SetReady(false)
	if s.DrainDelay > 0 && failure == nil {
		t := time.NewTimer(s.DrainDelay)
		select {
		case <-t.C:
		case <-failed:
			t.Stop()
		}
	}

	stopWork()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var stopErr error
	select {
	case <-done:
	case <-time.After(stopTimeout):
		stopErr = fmt.Errorf("%s: %w after %s", s.Name, ErrStopTimeout, stopTimeout)
	}

	if healthSrv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = healthSrv.Shutdown(sctx)
		cancel()
	}
	log.Info("service stopped")
	return errors.Join(failure, stopErr)
}

// GRPCServer returns a component serving srv on lis until its context ends, then stopping it
// with GracefulStop, falling back to Stop after timeout so a stuck stream cannot hold shutdown.
func GRPCServer(name string, srv *grpc.Server, lis net.Listener, timeout time.Duration) Component {
	return Component{Name: name, Run: func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(lis) }()
		select {
		case err := <-errc:
			return fmt.Errorf("grpc serve: %w", err)
		case <-ctx.Done():
		}
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(timeout):
			srv.Stop()
			<-stopped
		}
		return nil
	}}
}
