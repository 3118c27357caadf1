package platform

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/seal"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// defaults returns a Config with the flags' defaults.
func defaults() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("test", flag.ContinueOnError))
	return c
}

func TestRegisterFlagsDefaults(t *testing.T) {
	want := Config{
		NATSURL: "nats://127.0.0.1:4222", StreamReplicas: 1, RedisURL: "redis://127.0.0.1:6379/0",
		LogLevel: "info", HealthAddr: ":8080", DrainDelay: 5 * time.Second, StopTimeout: 30 * time.Second, StopGrace: 5 * time.Second,
	}
	if got := defaults(); got != want {
		t.Errorf("defaults = %+v\nwant %+v", got, want)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var c Config
	c.RegisterFlags(fs)
	for _, name := range []string{"nats-url", "nats-creds", "stream-replicas", "redis-url", "seal-key", "log-level", "health-addr", "drain-delay", "stop-timeout", "stop-grace"} {
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("flag --%s is not registered", name)
			continue
		}
		if strings.TrimSpace(f.Usage) == "" {
			t.Errorf("flag --%s has no help text", name)
		}
	}
	if err := fs.Parse([]string{"--nats-url=nats://n:1", "--stream-replicas=3", "--redis-url=redis://r:2/1", "--drain-delay=1s"}); err != nil {
		t.Fatal(err)
	}
	if c.NATSURL != "nats://n:1" || c.StreamReplicas != 3 || c.RedisURL != "redis://r:2/1" || c.DrainDelay != time.Second {
		t.Errorf("parsed flags did not land in the config: %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		errs   []string // substrings the error must contain; none: valid
	}{
		{name: "defaults", change: func(*Config) {}},
		{name: "five replicas", change: func(c *Config) { c.StreamReplicas = 5 }},
		{name: "upper-case log level", change: func(c *Config) { c.LogLevel = "WARN" }},
		{name: "no log level: info", change: func(c *Config) { c.LogLevel = "" }},
		{name: "misspelt log level", change: func(c *Config) { c.LogLevel = "verbose" }, errs: []string{`--log-level "verbose"`}},
		{name: "no NATS", change: func(c *Config) { c.NATSURL = "" }, errs: []string{"--nats-url"}},
		{name: "no Redis", change: func(c *Config) { c.RedisURL = "" }, errs: []string{"--redis-url"}},
		{name: "no replicas", change: func(c *Config) { c.StreamReplicas = 0 }, errs: []string{"--stream-replicas 0"}},
		{name: "too many replicas", change: func(c *Config) { c.StreamReplicas = 6 }, errs: []string{"--stream-replicas 6"}},
		{name: "negative stop grace", change: func(c *Config) { c.StopGrace = -time.Second }, errs: []string{"--stop-grace"}},
		{
			name:   "every problem at once",
			change: func(c *Config) { c.NATSURL, c.RedisURL, c.StreamReplicas = "", "", -1 },
			errs:   []string{"--nats-url", "--redis-url", "--stream-replicas -1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults()
			tc.change(&c)
			err := c.Validate()
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted an invalid config")
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// servers are a NATS and a Redis for one test.
type servers struct {
	natsURL, redisURL string
	stopRedis         func() error
}

func startServers(t *testing.T) servers {
	t.Helper()
	n := servertest.NATS(t)
	r := servertest.RedisServer(t)
	return servers{natsURL: n.ClientURL(), redisURL: r.URL(), stopRedis: r.Close}
}

func testSealKey(t *testing.T) string {
	t.Helper()
	k, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return seal.EncodeKey(k)
}

func (s servers) config(t *testing.T) Config {
	c := defaults()
	c.NATSURL, c.RedisURL, c.SealKey, c.HealthAddr = s.natsURL, s.redisURL, testSealKey(t), ""
	return c
}

func TestOpen(t *testing.T) {
	ctx := t.Context()
	srv := startServers(t)
	var logs bytes.Buffer
	p, err := Open(ctx, srv.config(t), "test-service", &logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	if p.Bus == nil || p.Store == nil || p.Telemetry == nil || p.Logger == nil || p.Health == nil {
		t.Fatalf("incomplete platform: %+v", p)
	}

	t.Run("declares the topology", func(t *testing.T) {
		nc, err := nats.Connect(srv.natsURL)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		topo := p.Bus.Topology()
		for _, sc := range topo.Streams {
			if _, err := js.Stream(ctx, sc.Name); err != nil {
				t.Errorf("stream %s: %v", sc.Name, err)
			}
		}
		for _, cs := range topo.Consumers {
			if _, err := js.Consumer(ctx, cs.Stream, cs.Config.Durable); err != nil {
				t.Errorf("consumer %s on %s: %v", cs.Config.Durable, cs.Stream, err)
			}
		}
		if len(topo.Streams) == 0 || len(topo.Consumers) == 0 {
			t.Error("empty topology")
		}
	})

	t.Run("the store seals with the key", func(t *testing.T) {
		org := &tandemv1.Org{OrgId: "00Dorg", Exchange: &tandemv1.ExchangeConnection{ServiceAccount: "svc@acme.example", Password: "pw"}}
		if _, err := p.Store.PutOrg(ctx, org); err != nil {
			t.Fatal(err)
		}
		got, err := p.Store.GetOrg(ctx, "00Dorg")
		if err != nil {
			t.Fatal(err)
		}
		if got.GetExchange().GetPassword() != "pw" {
			t.Errorf("password after a round trip = %q", got.GetExchange().GetPassword())
		}
	})

	t.Run("logs are JSON lines of the service", func(t *testing.T) {
		p.Logger.Info("hello")
		if !strings.Contains(logs.String(), `"msg":"hello"`) || !strings.Contains(logs.String(), "test-service") {
			t.Errorf("log output %q", logs.String())
		}
	})

	t.Run("readiness checks NATS and Redis", func(t *testing.T) {
		p.Health.SetReady(true)
		ready, results := p.Health.Ready(ctx)
		if !ready || results["nats"] != "ok" || results["redis"] != "ok" {
			t.Fatalf("Ready = %v, %v; want ready with nats and redis ok", ready, results)
		}
		if err := srv.stopRedis(); err != nil {
			t.Fatal(err)
		}
		ready, results = p.Health.Ready(ctx)
		if ready || results["redis"] == "ok" || results["nats"] != "ok" {
			t.Fatalf("Ready with Redis stopped = %v, %v; want not ready because of redis", ready, results)
		}
	})
}

func TestOpenWithoutSealKey(t *testing.T) {
	srv := startServers(t)
	cfg := srv.config(t)
	cfg.SealKey = ""
	p, err := Open(t.Context(), cfg, "test", &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close(context.Background()) }()
	// Services that never touch secrets run without a key; storing one then fails clearly.
	_, err = p.Store.PutOrg(t.Context(), &tandemv1.Org{OrgId: "00Dorg", Exchange: &tandemv1.ExchangeConnection{Password: "pw"}})
	if err == nil {
		t.Fatal("a secret was stored without a seal key")
	}
}

func TestOpenErrors(t *testing.T) {
	srv := startServers(t)
	const secretish = "c2VjcmV0LWJ1dC1ub3QtYS1rZXk" // base64, but not 32 bytes
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		timeout time.Duration
		want    string
	}{
		{name: "invalid config", change: func(c *Config) { c.StreamReplicas = 0 }, want: "--stream-replicas"},
		{name: "seal key of the wrong size", change: func(c *Config) { c.SealKey = secretish }, want: "--seal-key"},
		{name: "seal key that is not base64", change: func(c *Config) { c.SealKey = "not base64: hunter2!" }, want: "--seal-key"},
		{name: "second seal key broken", change: func(c *Config) { c.SealKey += "," + secretish }, want: "key 2"},
		{
			name:    "Redis unreachable until the context ends",
			change:  func(c *Config) { c.RedisURL = "redis://:p4ssw0rd@127.0.0.1:1/0" },
			timeout: 500 * time.Millisecond,
			want:    "connect to Redis",
		},
		{name: "Redis URL that does not parse", change: func(c *Config) { c.RedisURL = "mysql://:p4ssw0rd@db" }, want: "redis"},
		{
			name:    "NATS unreachable until the context ends",
			change:  func(c *Config) { c.NATSURL = "nats://127.0.0.1:1" },
			timeout: 500 * time.Millisecond,
			want:    "connect to NATS",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := srv.config(t)
			tc.change(&cfg)
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			p, err := Open(ctx, cfg, "test", &bytes.Buffer{})
			if err == nil {
				_ = p.Close(context.Background())
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			for _, secret := range []string{secretish, "hunter2", "p4ssw0rd"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q echoes a secret", err)
				}
			}
		})
	}
}

// fakeService records how Main used it.
type fakeService struct {
	mu       sync.Mutex
	ran      bool
	runErr   error
	platform *Platform
}

func (s *fakeService) Components() []lifecycle.Component { return nil }

func (s *fakeService) Run(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ran = true
	// The platform is usable while the service runs.
	if err := s.platform.Bus.Ready(ctx); err != nil {
		return err
	}
	if err := s.platform.Store.Ping(ctx); err != nil {
		return err
	}
	return s.runErr
}

// serviceFlags is a service's own settings, registered with the platform's as a service does.
type serviceFlags struct {
	Platform Config
	Workers  int
}

func (c *serviceFlags) register(fs *flag.FlagSet) {
	c.Platform.RegisterFlags(fs)
	fs.IntVar(&c.Workers, "workers", 2, "workers")
}

func TestMainExitCodes(t *testing.T) {
	srv := startServers(t)
	key := testSealKey(t)
	for _, tc := range []struct {
		name     string
		args     []string
		environ  []string
		buildErr error
		runErr   error
		code     int
		ran      bool
		output   []string // substrings of stderr
		never    []string // must not appear in stderr
		workers  int
	}{
		{
			name: "help", args: []string{"--help"}, code: 0,
			output: []string{"Usage: svc [flags]", "--redis-url", "[$TANDEM_REDIS_URL]", "--workers", "[$TANDEM_WORKERS]"},
		},
		{
			name: "unknown TANDEM_ variable", environ: []string{"TANDEM_REDIS_ULR=redis://x"}, code: 2,
			output: []string{"svc: unknown environment variables TANDEM_REDIS_ULR"},
		},
		{name: "unknown flag", args: []string{"--bogus"}, code: 2, output: []string{"bogus"}},
		{name: "bad value in the environment", environ: []string{"TANDEM_STREAM_REPLICAS=three"}, code: 2, output: []string{"TANDEM_STREAM_REPLICAS"}},
		{
			name:    "other variables are ignored",
			args:    []string{"--nats-url", srv.natsURL, "--seal-key", key},
			environ: []string{"HOME=/root", "OTHER_TANDEM_THING=1", "TANDEM_REDIS_URL=" + srv.redisURL, "TANDEM_WORKERS=7"},
			code:    0, ran: true, workers: 7,
		},
		{
			name:    "a flag wins over its variable",
			args:    []string{"--workers=3", "--nats-url", srv.natsURL},
			environ: []string{"TANDEM_REDIS_URL=" + srv.redisURL, "TANDEM_WORKERS=7"},
			code:    0, ran: true, workers: 3,
		},
		{
			name:    "invalid settings",
			environ: []string{"TANDEM_STREAM_REPLICAS=9"},
			code:    1, output: []string{"--stream-replicas 9"},
		},
		{
			name:    "misspelt log level",
			environ: []string{"TANDEM_LOG_LEVEL=verbose"},
			code:    1, output: []string{"--log-level"},
		},
		{
			name:    "bad seal key is not echoed",
			args:    []string{"--nats-url", srv.natsURL, "--redis-url", srv.redisURL},
			environ: []string{"TANDEM_SEAL_KEY=c2VjcmV0LWJ1dC1ub3QtYS1rZXk"},
			code:    1, output: []string{"--seal-key"}, never: []string{"c2VjcmV0LWJ1dC1ub3QtYS1rZXk"},
		},
		{
			name:     "build fails",
			args:     []string{"--nats-url", srv.natsURL, "--redis-url", srv.redisURL},
			buildErr: errors.New("no connector"),
			code:     1, output: []string{"service failed", "no connector"},
		},
		{
			name:   "service fails",
			args:   []string{"--nats-url", srv.natsURL, "--redis-url", srv.redisURL},
			runErr: errors.New("consumer gone"),
			code:   1, ran: true, output: []string{"service failed", "consumer gone"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg serviceFlags
			var stderr bytes.Buffer
			svc := &fakeService{runErr: tc.runErr}
			proc := process{
				environ: tc.environ,
				stderr:  &stderr,
				signals: func() (context.Context, context.CancelFunc) { return context.WithCancel(t.Context()) },
			}
			code := mainWith(proc, "svc", tc.args, &cfg.Platform, cfg.register, func(p *Platform) (Service, error) {
				svc.platform = p
				if tc.buildErr != nil {
					return nil, tc.buildErr
				}
				return svc, nil
			})
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if svc.ran != tc.ran {
				t.Errorf("service ran: %v, want %v", svc.ran, tc.ran)
			}
			for _, want := range tc.output {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr does not contain %q:\n%s", want, stderr.String())
				}
			}
			for _, never := range tc.never {
				if strings.Contains(stderr.String(), never) {
					t.Errorf("stderr contains %q:\n%s", never, stderr.String())
				}
			}
			if tc.workers != 0 && cfg.Workers != tc.workers {
				t.Errorf("--workers = %d, want %d", cfg.Workers, tc.workers)
			}
		})
	}
}

// TestMainUsesTheProcessEnvironment runs Main itself, which reads the real environment.
func TestMainUsesTheProcessEnvironment(t *testing.T) {
	build := func(*Platform) (Service, error) { return nil, errors.New("not reached") }
	var cfg serviceFlags
	if code := Main("svc", []string{"--help"}, &cfg.Platform, cfg.register, build); code != 0 {
		t.Errorf("--help exit code %d, want 0", code)
	}
	t.Setenv("TANDEM_NO_SUCH_SETTING", "1")
	if code := Main("svc", nil, &cfg.Platform, cfg.register, build); code != 2 {
		t.Errorf("exit code with an unknown TANDEM_ variable %d, want 2", code)
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

// slowService runs one component on the platform, as a service package does.
type slowService struct {
	cfg  Config
	p    *Platform
	comp lifecycle.Component
}

func (s *slowService) Components() []lifecycle.Component { return []lifecycle.Component{s.comp} }
func (s *slowService) Run(ctx context.Context) error     { return Run(ctx, s.cfg, "slow", s.p, s) }

// TestShutdownNeverClosesUnderARunningComponent stops a service whose component ignores
// cancellation past the stop timeout and keeps using Redis and NATS: they stay open for it
// until it returns, and shutdown completes after that — or, past the grace, the process exits
// with them still open.
func TestShutdownNeverClosesUnderARunningComponent(t *testing.T) {
	srv := startServers(t)
	tests := []struct {
		name string
		// grace is --stop-grace; the component returns within it when returnsLate is set,
		// and outlives it otherwise.
		grace       string
		returnsLate bool
		logs        []string
	}{
		{name: "late component returns before the connections close", grace: "1m", returnsLate: true,
			logs: []string{"stop timeout passed", "late components returned"}},
		{name: "component outliving the grace keeps its connections", grace: "50ms",
			logs: []string{"stop timeout passed", "giving up on them", "NATS and Redis are left open"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var (
				stderr      syncBuffer
				p           *Platform
				started     = make(chan struct{})
				release     = make(chan struct{})
				releaseOnce sync.Once
				pings       atomic.Int64
				failures    atomic.Int64
				firstFail   atomic.Value
				returned    atomic.Bool
			)
			releaseNow := func() { releaseOnce.Do(func() { close(release) }) }
			t.Cleanup(releaseNow)
			use := func(ctx context.Context) {
				for _, err := range []error{p.Store.Ping(ctx), p.Bus.Ready(ctx)} {
					if err != nil {
						failures.Add(1)
						firstFail.CompareAndSwap(nil, err.Error())
					}
				}
				pings.Add(1)
			}
			comp := lifecycle.Component{Name: "slow-writer", Run: func(ctx context.Context) error {
				close(started)
				<-ctx.Done()
				// Ignores the cancellation and keeps working with Redis and NATS until released.
				work := context.WithoutCancel(ctx)
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				for {
					use(work)
					select {
					case <-release:
						use(work) // the last use, right before returning
						returned.Store(true)
						return nil
					case <-tick.C:
					}
				}
			}}
			signalled, signal := context.WithCancel(t.Context())
			defer signal()
			proc := process{stderr: &stderr, signals: func() (context.Context, context.CancelFunc) { return signalled, signal }}
			var cfg Config
			args := []string{"--nats-url", srv.natsURL, "--redis-url", srv.redisURL, "--health-addr=",
				"--drain-delay=0s", "--stop-timeout=50ms", "--stop-grace=" + tc.grace}
			codec := make(chan int, 1)
			go func() {
				codec <- mainWith(proc, "slow", args, &cfg, cfg.RegisterFlags, func(pl *Platform) (Service, error) {
					p = pl
					return &slowService{cfg: cfg, p: pl, comp: comp}, nil
				})
			}()
			<-started
			signal() // SIGTERM
			poll.Until(t, "the stop timeout to pass", func() bool { return strings.Contains(stderr.String(), "stop timeout passed") })
			if tc.returnsLate {
				// Still at work past the stop timeout, on open connections.
				after := pings.Load()
				poll.Until(t, "the component to keep working", func() bool { return pings.Load() >= after+5 })
				select {
				case code := <-codec:
					t.Fatalf("Main returned %d while a component was still running", code)
				default:
				}
				releaseNow()
			}
			if code := <-codec; code != 1 {
				t.Errorf("exit code %d, want 1 (the stop timeout passed)", code)
			}
			for _, want := range tc.logs {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("logs do not say %q:\n%s", want, stderr.String())
				}
			}
			if tc.returnsLate {
				if !returned.Load() {
					t.Error("Main returned before the component did")
				}
				if err := p.Store.Ping(context.Background()); err == nil {
					t.Error("Redis still open after a shutdown in which every component returned")
				}
			} else {
				// Main has returned; the component still works on open connections.
				after := pings.Load()
				poll.Until(t, "the abandoned component to keep working", func() bool { return pings.Load() >= after+5 })
				releaseNow()
				poll.Until(t, "the component to return", returned.Load)
				t.Cleanup(func() { _ = errors.Join(p.Bus.Close(), p.Store.Close()) })
			}
			if n := failures.Load(); n > 0 {
				t.Fatalf("%d uses of Redis or NATS failed while the component ran (first: %v): closed under it", n, firstFail.Load())
			}
		})
	}
}

// TestOpenWaitsForRedis: on a fresh install Redis may come up after the services; Open waits
// for it instead of failing.
func TestOpenWaitsForRedis(t *testing.T) {
	srv := startServers(t)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is needed (apt-get install redis-server): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := srv.config(t)
	cfg.RedisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", port)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var logs syncBuffer
	opened := make(chan error, 1)
	go func() {
		p, err := Open(ctx, cfg, "test", &logs)
		if err == nil {
			err = p.Close(context.Background())
		}
		opened <- err
	}()
	// Open is still waiting, saying why, when Redis starts a moment later.
	for !strings.Contains(logs.String(), "cannot use Redis yet") {
		select {
		case err := <-opened:
			t.Fatalf("Open returned before Redis was there: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	redisProc := exec.CommandContext(ctx, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", t.TempDir())
	if err := redisProc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = redisProc.Process.Kill(); _ = redisProc.Wait() })
	if err := <-opened; err != nil {
		t.Fatalf("Open after Redis started: %v", err)
	}
}
