package bus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
)

// freePort returns a loopback port nothing listened on a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer starts an embedded nats-server with opts and stops it when the test ends.
// It returns once the server accepts connections, which for a cluster member is before
// JetStream has a meta leader.
func startServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.NoSigs = true
	opts.NoLog = true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("configure nats-server: %v", err)
	}
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatalf("nats-server %s does not accept connections", opts.ServerName)
	}
	return ns
}

// startCluster starts a fresh cluster of n JetStream servers routed to each other, each with
// its own store, and returns their client URLs. The servers accept connections before the
// cluster has elected its JetStream meta leader: the window in which services starting
// together used to fail.
func startCluster(t *testing.T, n int) []string {
	t.Helper()
	routePorts := make([]int, n)
	var routes []string
	for i := range routePorts {
		routePorts[i] = freePort(t)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", routePorts[i]))
	}
	// Start them together, as a StatefulSet's pods come up.
	servers := make([]*server.Server, n)
	var wg sync.WaitGroup
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			Cluster:    server.ClusterOpts{Name: "tandem-test", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}
		ns, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("configure nats-server %d: %v", i, err)
		}
		servers[i] = ns
		t.Cleanup(func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		})
		wg.Go(ns.Start)
	}
	wg.Wait()
	urls := make([]string, n)
	for i, ns := range servers {
		if !ns.ReadyForConnections(30 * time.Second) {
			t.Fatalf("nats-server %d does not accept connections", i)
		}
		urls[i] = ns.ClientURL()
	}
	return urls
}

// TestDeclareConcurrentlyOnAFreshCluster starts five services at once against a three-node
// cluster that has only just started, as a first `kubectl apply` does: every one of them
// must come up, and the topology must exist once, as declared.
func TestDeclareConcurrentlyOnAFreshCluster(t *testing.T) {
	urls := startCluster(t, 3)
	const services = 5
	cfg := bus.Config{Replicas: 3}

	// Generous: on a loaded two-core machine with -race the cluster takes tens of seconds.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := make(chan struct{})
	errs := make([]error, services)
	var wg sync.WaitGroup
	for i := range services {
		wg.Go(func() {
			<-start
			c := cfg
			c.URL = urls[i%len(urls)]
			c.Name = fmt.Sprintf("service-%d", i)
			b, err := bus.Connect(ctx, c, testLogger(t))
			if err != nil {
				errs[i] = err
				return
			}
			defer b.Close()
			errs[i] = b.Declare(ctx)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("service %d: %v", i, err)
		}
	}
	if t.Failed() {
		return
	}

	nc, js := connect(t, strings.Join(urls, ","))
	b, err := bus.New(nc, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkTopology(ctx, t, js, b.Topology(), 3)
}

// checkTopology checks that the server holds exactly the declared streams and consumers,
// with the declared configuration.
func checkTopology(ctx context.Context, t *testing.T, js jetstream.JetStream, top bus.Topology, replicas int) {
	t.Helper()
	var names []string
	for name := range js.StreamNames(ctx).Name() {
		names = append(names, name)
	}
	var want []string
	for _, sc := range top.Streams {
		want = append(want, sc.Name)
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("streams %v, want %v", names, want)
	}
	for _, sc := range top.Streams {
		s, err := js.Stream(ctx, sc.Name)
		if err != nil {
			t.Fatalf("stream %s: %v", sc.Name, err)
		}
		info := s.CachedInfo()
		if replicas > 1 && (info.Cluster == nil || 1+len(info.Cluster.Replicas) != replicas) {
			t.Errorf("stream %s cluster info %+v, want %d servers", sc.Name, info.Cluster, replicas)
		}
		got := info.Config
		if got.Retention != sc.Retention || got.Storage != sc.Storage || got.Replicas != replicas ||
			got.Duplicates != sc.Duplicates || got.MaxAge != sc.MaxAge || !slices.Equal(got.Subjects, sc.Subjects) {
			t.Errorf("stream %s config %+v, want %+v", sc.Name, got, sc)
		}
		var consumers []string
		for name := range s.ConsumerNames(ctx).Name() {
			consumers = append(consumers, name)
		}
		var wantConsumers []string
		for _, cs := range top.Consumers {
			if cs.Stream == sc.Name {
				wantConsumers = append(wantConsumers, cs.Config.Durable)
			}
		}
		slices.Sort(consumers)
		slices.Sort(wantConsumers)
		if !slices.Equal(consumers, wantConsumers) {
			t.Errorf("stream %s has consumers %v, want %v", sc.Name, consumers, wantConsumers)
		}
	}
	for _, cs := range top.Consumers {
		c, err := js.Consumer(ctx, cs.Stream, cs.Config.Durable)
		if err != nil {
			t.Fatalf("consumer %s: %v", cs.Config.Durable, err)
		}
		got := c.CachedInfo().Config
		if got.FilterSubject != cs.Config.FilterSubject || got.AckPolicy != cs.Config.AckPolicy || got.AckWait != cs.Config.AckWait ||
			got.MaxDeliver != cs.Config.MaxDeliver || got.MaxAckPending != cs.Config.MaxAckPending ||
			got.DeliverPolicy != cs.Config.DeliverPolicy {
			t.Errorf("consumer %s config %+v, want %+v", cs.Config.Durable, got, cs.Config)
		}
	}
}

// signal is a slog.Handler that passes records on and closes seen when one whose message
// contains word arrives: how a test waits for the bus to be retrying, without sleeping.
type signal struct {
	next slog.Handler
	word string
	seen chan struct{}
	once *sync.Once
}

func newSignal(t *testing.T, word string) (*slog.Logger, <-chan struct{}) {
	seen := make(chan struct{})
	return slog.New(&signal{next: testLogger(t).Handler(), word: word, seen: seen, once: &sync.Once{}}), seen
}

func (s *signal) Enabled(ctx context.Context, l slog.Level) bool { return s.next.Enabled(ctx, l) }
func (s *signal) WithGroup(name string) slog.Handler {
	c := *s
	c.next = s.next.WithGroup(name)
	return &c
}

func (s *signal) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *s
	c.next = s.next.WithAttrs(attrs)
	return &c
}

func (s *signal) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, s.word) {
		s.once.Do(func() { close(s.seen) })
	}
	return s.next.Handle(ctx, r)
}

// waitFor fails the test if ch is not closed within a generous bound.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %s", what)
	}
}

const (
	connectRetryLog = "cannot connect to NATS yet"
	declareRetryLog = "declaring the topology: a step failed; retrying"
)

// TestDeclareWaitsForTheServer starts a service before its NATS server is there, or while it
// is away, and checks that the service comes up once the server does.
func TestDeclareWaitsForTheServer(t *testing.T) {
	tests := []struct {
		name string
		// away is true when the server is there for Connect and gone when Declare starts;
		// otherwise it is not there for Connect either.
		away bool
	}{
		{"not there yet", false},
		{"away", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t)
			store := t.TempDir()
			serverOpts := func() *server.Options {
				return &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: store}
			}
			cfg := bus.Config{URL: fmt.Sprintf("nats://127.0.0.1:%d", port), DeclareAttemptTimeout: time.Second}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()

			// up is what the service does at start-up: connect, then declare.
			up := func(logger *slog.Logger) (*bus.Bus, error) {
				b, err := bus.Connect(ctx, cfg, logger)
				if err != nil {
					return nil, err
				}
				return b, b.Declare(ctx)
			}
			waitLog := connectRetryLog
			if tt.away {
				waitLog = declareRetryLog
				gone := startServer(t, serverOpts())
				// Declare once the server has gone: the service connected, then lost it.
				up = func(logger *slog.Logger) (*bus.Bus, error) {
					b, err := bus.Connect(ctx, cfg, logger)
					if err != nil {
						return nil, err
					}
					gone.Shutdown()
					gone.WaitForShutdown()
					return b, b.Declare(ctx)
				}
			}
			logger, retrying := newSignal(t, waitLog)
			type result struct {
				b   *bus.Bus
				err error
			}
			done := make(chan result, 1)
			go func() {
				b, err := up(logger)
				done <- result{b, err}
			}()

			waitFor(t, retrying, "the service to retry")
			startServer(t, serverOpts())
			r := <-done
			if r.b != nil {
				defer r.b.Close()
			}
			if r.err != nil {
				t.Fatalf("Connect and Declare: %v", r.err)
			}
			_, js := connect(t, cfg.URL)
			checkTopology(ctx, t, js, r.b.Topology(), 1)
		})
	}
}

// TestDeclareEndsWithItsContext cancels Declare while JetStream never answers: it returns
// promptly, saying which step it was on and that its context ended.
func TestDeclareEndsWithItsContext(t *testing.T) {
	tests := []struct {
		name string
		// jetStream enables JetStream on the server; without it every request meets no
		// responders, as while a cluster starts.
		jetStream bool
		// gone shuts the server down before Declare.
		gone bool
		// attempt is Config.DeclareAttemptTimeout.
		attempt time.Duration
		// midAttempt cancels while an attempt waits for its answer, not once one has failed.
		midAttempt bool
	}{
		{name: "JetStream never enabled", attempt: time.Second},
		{name: "server gone", jetStream: true, gone: true, attempt: time.Second},
		{name: "server gone, cancelled mid-attempt", jetStream: true, gone: true, attempt: time.Hour, midAttempt: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: tt.jetStream}
			if tt.jetStream {
				opts.StoreDir = t.TempDir()
			}
			ns := startServer(t, opts)
			logger, retrying := newSignal(t, declareRetryLog)
			b, err := bus.Connect(t.Context(), bus.Config{URL: ns.ClientURL(), DeclareAttemptTimeout: tt.attempt}, logger)
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer b.Close()
			if tt.gone {
				ns.Shutdown()
				ns.WaitForShutdown()
			}

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- b.Declare(ctx) }()
			if tt.midAttempt {
				// An attempt of an hour is under way: the cancellation must not wait for it.
				time.AfterFunc(100*time.Millisecond, cancel)
			} else {
				waitFor(t, retrying, "Declare to retry")
				cancel()
			}
			var got error
			select {
			case got = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Declare did not return within 30s of its context ending")
			}
			if !errors.Is(got, context.Canceled) {
				t.Errorf("Declare = %v, want an error wrapping context.Canceled", got)
			}
			if got == nil || !strings.Contains(got.Error(), "declare stream "+bus.StreamJobs) {
				t.Errorf("Declare = %v, want it to name the step", got)
			}
		})
	}
}

// TestDeclareReportsAConflict declares over streams and consumers the topology cannot replace:
// Declare fails at once, not after retrying until its context ends, and says what differs.
func TestDeclareReportsAConflict(t *testing.T) {
	tests := []struct {
		name string
		// before puts something on the server that the topology conflicts with.
		before func(ctx context.Context, t *testing.T, js jetstream.JetStream)
		want   []string
	}{
		{
			name: "stream retention",
			before: func(ctx context.Context, t *testing.T, js jetstream.JetStream) {
				if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: bus.StreamJobs, Subjects: []string{"tandem.jobs.>"}}); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"declare stream " + bus.StreamJobs, "retention is Limits, the topology's is WorkQueue"},
		},
		{
			name: "subjects held by another stream",
			before: func(ctx context.Context, t *testing.T, js jetstream.JetStream) {
				if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"tandem.changes.>"}}); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"declare stream " + bus.StreamChanges, "subjects overlap", "stream OTHER holds tandem.changes.>"},
		},
		{
			name: "consumer deliver policy",
			before: func(ctx context.Context, t *testing.T, js jetstream.JetStream) {
				// A stream the topology can update, with a consumer it cannot.
				if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: bus.StreamDead, Subjects: []string{"tandem.dead.>"}}); err != nil {
					t.Fatal(err)
				}
				if _, err := js.CreateConsumer(ctx, bus.StreamDead, jetstream.ConsumerConfig{Durable: bus.ConsumerStatusDead,
					FilterSubject: "tandem.dead.>", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy}); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"declare consumer " + bus.ConsumerStatusDead + " on " + bus.StreamDead,
				"deliver policy is new, the topology's is all"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := servertest.NATSConn(t)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			tt.before(t.Context(), t, js)
			b, err := bus.New(nc, bus.Config{}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			err = b.Declare(ctx)
			if err == nil {
				t.Fatal("Declare succeeded over a conflicting topology")
			}
			if ctx.Err() != nil {
				t.Fatalf("Declare retried until its context ended: %v", err)
			}
			t.Log(err)
			if !bus.IsPermanent(err) {
				t.Errorf("Declare = %v, want it marked permanent", err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Declare = %v, want it to say %q", err, want)
				}
			}
		})
	}
}
