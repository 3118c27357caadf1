// Package platformtest gives the tests of Tandem's services what they run on and what they
// look at: a *platform.Platform on servertest's NATS and Redis, deliveries to hand a handler
// directly, the messages a service published on a stream, the in-flight writes the reconciler
// leaves in a user's ledger, and a settable clock.
//
// It is a package of its own, not part of servertest, because it imports the packages a
// platform is made of (store, bus, ledger, engine...), whose own in-package tests import
// servertest: servertest must stay free of them to avoid an import cycle. For the same reason
// the in-package tests of those packages cannot use this one.
package platformtest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/seal"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/telemetry"
)

// stopTimeout bounds how long a service run by Run may take to drain once stopped: long
// enough for a graceful gRPC stop waiting on a test's in-flight RPC on a loaded machine.
const stopTimeout = 2 * time.Minute

// Platform is what a service runs on in tests: the parts platform.Open puts together, on
// servers of the test's own.
type Platform struct {
	*platform.Platform
	// JetStream is a context on the bus's connection, for a test to look at the streams behind
	// the bus (or to publish what the bus would refuse to).
	JetStream jetstream.JetStream
}

// New starts a NATS server and a Redis server for the test and returns a platform on them: the
// bus with every stream and consumer declared, a store sealing credentials with a fresh
// keyring, no-op telemetry, a logger writing warnings and errors to the test's output, and a
// health without checks. Everything is stopped when the test ends.
func New(t testing.TB) *Platform {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	nc := servertest.NATSConn(t)
	b, err := bus.New(nc, bus.Config{}, logger)
	if err != nil {
		t.Fatalf("bus: %v", err)
	}
	if err := b.Declare(t.Context()); err != nil {
		t.Fatalf("declare streams and consumers: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("JetStream context: %v", err)
	}
	return &Platform{
		Platform: &platform.Platform{
			Bus:       b,
			Store:     store.New(servertest.Redis(t), Keyring(t)),
			Telemetry: telemetry.Noop(),
			Logger:    logger,
			Health:    lifecycle.NewHealth(),
		},
		JetStream: js,
	}
}

// Keyring returns a keyring of one fresh random key, as a store in production seals org
// credentials with.
func Keyring(t testing.TB) *seal.Keyring {
	t.Helper()
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatalf("seal key: %v", err)
	}
	kr, err := seal.NewKeyring(key)
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	return kr
}

// Run runs components on the platform as the service name runs in production (a
// lifecycle.Service on the platform's health and logger) until stop is called or the test
// ends. stop cancels the service and returns what its Run returned; it may be called more
// than once, and from another goroutine. When the test ends, an error from Run fails it.
func (p *Platform) Run(t testing.TB, name string, components ...lifecycle.Component) (stop func() error) {
	t.Helper()
	svc := &lifecycle.Service{Name: name, Health: p.Health, Components: components, StopTimeout: stopTimeout, Logger: p.Logger}
	// Not t.Context() itself: it is cancelled before the cleanups run, and the service must
	// keep running until the cleanups of what the test registered after it are done with it.
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		runErr = svc.Run(ctx)
	}()
	stop = sync.OnceValue(func() error {
		cancel()
		<-done
		return runErr
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("%s: Run: %v", name, err)
		}
	})
	return stop
}
