package lifecycle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
)

// Component is a part of a service that works until its context is cancelled, then finishes
// what it has in flight and returns. Consumers, schedulers and servers are components.
type Component struct {
	Name string
	Run  func(ctx context.Context) error
}

// Defaults of Service.
const (
	DefaultStopTimeout = 30 * time.Second
	DefaultStopGrace   = 5 * time.Second
)

// Service is the runnable shape of every Tandem service.
type Service struct {
	// Name is used in logs.
	Name string
	// HealthAddr is where Health.Handler is served (/healthz, /readyz and what Health.Handle
	// added, such as the platform's /metrics); empty means not served (when `tandem dev` runs
	// several services in one process, it serves one health endpoint).
	HealthAddr string
	// Health is the service's health, which also tracks the components still running (see
	// Health.Running); nil means a fresh one.
	Health *Health
	// Components are started together and stopped together.
	Components []Component
	// DrainDelay is how long the service reports not ready before it stops taking work, so
	// that Kubernetes removes it from Service endpoints first. Zero in tests and `tandem dev`.
	DrainDelay time.Duration
	// StopTimeout is how long components may take to drain once told to stop before the
	// shutdown counts as late (ErrStopTimeout); zero means DefaultStopTimeout. The bus's
	// consumers cancel their handlers' contexts after a drain timeout of the same order.
	StopTimeout time.Duration
	// StopGrace is how much longer than StopTimeout Run still waits for components that have
	// not returned before it gives up on them (ErrAbandoned) so that the process can exit
	// before Kubernetes kills it; zero means DefaultStopGrace. StopTimeout, StopGrace and
	// DrainDelay together should fit in the pod's terminationGracePeriodSeconds.
	StopGrace time.Duration
	// Logger logs the lifecycle.
	Logger *slog.Logger
}

var (
	// ErrStopTimeout is returned when components did not finish within StopTimeout.
	ErrStopTimeout = errors.New("components did not stop in time")
	// ErrAbandoned is returned, with ErrStopTimeout, when components were still running after
	// StopTimeout and StopGrace: Run returned without them, and what they use (NATS, Redis)
	// must be left open until the process exits. Health.Running names them.
	ErrAbandoned = errors.New("components still running when shutdown gave up on them")
)

// Run runs the service until ctx is cancelled (SIGTERM) or a component fails, then shuts down:
// not ready → DrainDelay → cancel components and wait for every one of them to return → stop
// the health server. Each component runs in a goroutine owned by one errgroup, and Run returns
// only once the group has returned, so whoever closes the connections after Run never closes
// them under a running component — unless StopTimeout and StopGrace pass first, when Run says
// so (ErrAbandoned) and leaves the components running.
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
	stopTimeout := cmp.Or(s.StopTimeout, DefaultStopTimeout)
	stopGrace := cmp.Or(s.StopGrace, DefaultStopGrace)

	var (
		healthSrv *http.Server
		serving   errgroup.Group // owns the health server's goroutine
	)
	healthErr := make(chan error, 1)
	if s.HealthAddr != "" {
		lis, err := net.Listen("tcp", s.HealthAddr)
		if err != nil {
			return fmt.Errorf("%s: health listener: %w", s.Name, err)
		}
		healthSrv = &http.Server{Handler: health.Handler(), ReadHeaderTimeout: 5 * time.Second}
		serving.Go(func() error {
			if err := healthSrv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				healthErr <- fmt.Errorf("%s: health server: %w", s.Name, err)
			}
			return nil
		})
		log.Info("health endpoints listening", slog.String("addr", lis.Addr().String()))
	}

	// The components' context ends when shutdown begins or one of them fails.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	components, componentsCtx := errgroup.WithContext(workCtx)
	// failed is closed by the first failure; components that merely return leave the others be.
	var (
		failed       = make(chan struct{})
		failOnce     sync.Once
		firstFailure error // set before failed is closed
	)
	for _, c := range s.Components {
		health.componentStarted(c.Name)
		components.Go(func() error {
			defer health.componentReturned(c.Name)
			if err := c.Run(componentsCtx); err != nil && !errors.Is(err, context.Canceled) {
				err = fmt.Errorf("%s: %s: %w", s.Name, c.Name, err)
				failOnce.Do(func() { firstFailure = err; close(failed) })
				return err
			}
			return nil
		})
	}
	returned := make(chan error, 1)
	go func() { returned <- components.Wait() }()
	health.SetReady(true)
	log.Info("service started", slog.Int("components", len(s.Components)))

	var failure error
	select {
	case <-ctx.Done():
		log.Info("shutting down", slog.Duration("drain_delay", s.DrainDelay))
	case <-failed:
		failure = firstFailure
		log.Error("component failed; shutting down", slog.Any("error", failure))
	case failure = <-healthErr:
		log.Error("health server failed; shutting down", slog.Any("error", failure))
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
	groupErr, stopErr := s.await(returned, health, stopTimeout, stopGrace, log)
	if failure == nil {
		failure = groupErr
	}

	if healthSrv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = healthSrv.Shutdown(sctx)
		cancel()
		_ = serving.Wait()
	}
	if errors.Is(stopErr, ErrAbandoned) {
		log.Error("service stopped with components still running", slog.Any("components", health.Running()))
	} else {
		log.Info("service stopped")
	}
	return errors.Join(failure, stopErr)
}

// await waits for the components to return (returned yields the group's error). Past
// stopTimeout it says which are late and keeps waiting; past stopGrace more it gives up on them.
func (s *Service) await(returned <-chan error, health *Health, stopTimeout, stopGrace time.Duration, log *slog.Logger) (groupErr, stopErr error) {
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case err := <-returned:
		return err, nil
	case <-timer.C:
	}
	log.Warn("stop timeout passed; still waiting for components before closing what they use",
		slog.Duration("stop_timeout", stopTimeout), slog.Duration("stop_grace", stopGrace), slog.Any("components", health.Running()))
	timer.Reset(stopGrace)
	select {
	case err := <-returned:
		log.Warn("late components returned", slog.Duration("stop_timeout", stopTimeout))
		return err, fmt.Errorf("%s: %w after %s", s.Name, ErrStopTimeout, stopTimeout)
	case <-timer.C:
	}
	still := health.Running()
	log.Error("components still running after the stop timeout and grace; giving up on them: the connections they use stay open until the process exits",
		slog.Duration("waited", stopTimeout+stopGrace), slog.Any("components", still))
	return nil, fmt.Errorf("%s: %w after %s; %w: %s", s.Name, ErrStopTimeout, stopTimeout, ErrAbandoned, strings.Join(still, ", "))
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
