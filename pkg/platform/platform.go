// Package platform opens what every Tandem service stands on — the NATS JetStream bus, the
// Redis store, OpenTelemetry and the JSON logger, and the health checks that report on them —
// from one Config whose flags every service registers the same way. A service binary's main
// is then a few lines: parse flags, open the platform, build the service, run it.
package platform

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/seal"
	"github.com/tandem-sync/tandem/pkg/settings"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/telemetry"
)

// EnvPrefix prefixes every setting's environment variable.
const EnvPrefix = "TANDEM_"

// Config is the connection and runtime settings shared by every service.
type Config struct {
	NATSURL         string
	NATSCredentials string
	// NATSCA is a PEM file of the CAs that sign the NATS servers' certificates (tls:// URLs).
	NATSCA         string
	StreamReplicas int
	RedisURL       string
	// SealKey is the base64 AES-256 key sealing org credentials at rest; a comma-separated list
	// rotates keys (the first seals, all open).
	SealKey    string
	LogLevel   string
	HealthAddr string
	// DrainDelay is how long a stopping service reports not ready before it stops taking work.
	DrainDelay time.Duration
	// StopTimeout is how long in-flight work may take to finish once a service stops.
	StopTimeout time.Duration
	// StopGrace is how much longer a stopping service waits for work still running past
	// StopTimeout before it exits without closing NATS and Redis under it.
	StopGrace time.Duration
}

// RegisterFlags registers the shared settings on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	fs.StringVar(&c.NATSCredentials, "nats-creds", "", "NATS credentials file (user JWT and seed); empty for none")
	fs.StringVar(&c.NATSCA, "nats-ca", "", "PEM file of the certificate authorities that sign the NATS servers' TLS certificates (tls:// URLs); empty for the system's")
	fs.IntVar(&c.StreamReplicas, "stream-replicas", 1, "JetStream replicas of every stream (3 in production)")
	fs.StringVar(&c.RedisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis URL (redis:// or rediss://), or comma-separated cluster addresses")
	fs.StringVar(&c.SealKey, "seal-key", "", "base64 AES-256 key sealing org credentials at rest; comma-separated to rotate (first seals)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.HealthAddr, "health-addr", ":8080", "address of the /healthz, /readyz and /metrics endpoints; empty to disable")
	fs.DurationVar(&c.DrainDelay, "drain-delay", 5*time.Second, "how long to report not ready before stopping, so load balancers notice")
	fs.DurationVar(&c.StopTimeout, "stop-timeout", lifecycle.DefaultStopTimeout, "how long in-flight work may take to finish on shutdown")
	fs.DurationVar(&c.StopGrace, "stop-grace", lifecycle.DefaultStopGrace, "how much longer than --stop-timeout shutdown waits for work still running before exiting without closing NATS and Redis under it")
}

// Validate checks the settings that do not need a connection to check.
func (c *Config) Validate() error {
	var errs []error
	if c.NATSURL == "" {
		errs = append(errs, errors.New("--nats-url is required"))
	}
	if c.RedisURL == "" {
		errs = append(errs, errors.New("--redis-url is required"))
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		errs = append(errs, fmt.Errorf("--stream-replicas %d outside 1..5", c.StreamReplicas))
	}
	if c.DrainDelay < 0 || c.StopTimeout < 0 || c.StopGrace < 0 {
		errs = append(errs, errors.New("--drain-delay, --stop-timeout and --stop-grace must not be negative"))
	}
	if c.LogLevel != "" {
		// A misspelt level would otherwise log at info without a word.
		var level slog.Level
		if err := level.UnmarshalText([]byte(strings.TrimSpace(c.LogLevel))); err != nil {
			errs = append(errs, fmt.Errorf("--log-level %q is not debug, info, warn or error", c.LogLevel))
		}
	}
	return errors.Join(errs...)
}

// Platform is what a service runs on.
type Platform struct {
	Bus       *bus.Bus
	Store     *store.Store
	Telemetry *telemetry.Telemetry
	Logger    *slog.Logger
	Health    *lifecycle.Health
}

// Open connects to NATS and Redis, declares the bus topology, sets up telemetry, and registers
// readiness checks for both connections and the telemetry's metrics handler at /metrics on the
// platform's Health, which Run serves on --health-addr. log receives JSON lines (nil means stderr).
func Open(ctx context.Context, cfg Config, service string, log io.Writer) (*Platform, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = os.Stderr
	}
	logger := telemetry.NewLogger(log, telemetry.ParseLevel(cfg.LogLevel), service)
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "tandem-" + service, ServiceVersion: BuildInfo().Version})
	if err != nil {
		return nil, err
	}
	var keyring *seal.Keyring
	if cfg.SealKey != "" {
		if keyring, err = seal.ParseKeyring(cfg.SealKey); err != nil {
			return nil, errors.Join(fmt.Errorf("--seal-key: %w", err), tel.Shutdown(ctx))
		}
	}
	st, err := connectStore(ctx, cfg.RedisURL, keyring, logger)
	if err != nil {
		return nil, errors.Join(err, tel.Shutdown(ctx))
	}
	b, err := bus.Connect(ctx, bus.Config{
		URL: cfg.NATSURL, Name: "tandem-" + service, CredentialsFile: cfg.NATSCredentials, CAFile: cfg.NATSCA, Replicas: cfg.StreamReplicas,
	}, logger, bus.WithTracerProvider(tel.TracerProvider), bus.WithMeterProvider(tel.MeterProvider), bus.WithPropagator(tel.Propagator))
	if err != nil {
		return nil, errors.Join(err, st.Close(), tel.Shutdown(ctx))
	}
	if err := b.Declare(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("declare streams and consumers: %w", err), b.Close(), st.Close(), tel.Shutdown(ctx))
	}
	health := lifecycle.NewHealth()
	health.AddCheck("nats", b.Ready)
	health.AddCheck("redis", st.Ping)
	// On the health port, so that every service (and `tandem dev`, which runs them all on this
	// Health) serves its metrics without a port or flag of their own.
	if metrics := tel.MetricsHandler(); metrics != nil {
		health.Handle("GET /metrics", metrics)
	}
	return &Platform{Bus: b, Store: st, Telemetry: tel, Logger: logger, Health: health}, nil
}

// storeRetry paces connecting to Redis while it cannot be used yet: a fresh install starts every
// service, Redis and NATS at once, and a service waits for them rather than crash-looping
// (the bus's connect loop waits for NATS at the same pace).
var storeRetry = retry.Policy{Base: 250 * time.Millisecond, Max: 5 * time.Second, Jitter: retry.DefaultJitter}

// connectStore connects to Redis, trying again until ctx ends while Redis is unreachable or not
// usable yet (a cluster still forming, say); a URL that cannot be parsed fails at once.
func connectStore(ctx context.Context, redisURL string, keyring *seal.Keyring, logger *slog.Logger) (*store.Store, error) {
	parsed, err := store.NewClient(redisURL) // parses the URL; connects to nothing
	if err != nil {
		return nil, err
	}
	_ = parsed.Close()
	var st *store.Store
	err = retry.Do(ctx, storeRetry, func(ctx context.Context) error {
		var err error
		st, err = store.Connect(ctx, redisURL, keyring)
		return err
	}, retry.OnRetry(func(err error, _ int, wait time.Duration) {
		logger.WarnContext(ctx, "cannot use Redis yet", slog.Any("error", err), slog.Duration("retry_in", wait))
	}))
	if err != nil {
		return nil, fmt.Errorf("connect to Redis: %w", err)
	}
	return st, nil
}

// Close closes the connections, then flushes telemetry last. While a component run on the
// platform's Health has not returned (a shutdown that gave up waiting, lifecycle.ErrAbandoned),
// it leaves NATS and Redis open — closing them under the component would turn its last writes
// into errors halfway — and only flushes telemetry; the process's exit closes them.
func (p *Platform) Close(ctx context.Context) error {
	if running := p.running(); len(running) > 0 {
		p.Logger.ErrorContext(ctx, "components still running: NATS and Redis are left open for them; the process exits without closing them",
			slog.Any("components", running))
		return errors.Join(
			fmt.Errorf("platform: NATS and Redis left open under running components %s: %w", strings.Join(running, ", "), lifecycle.ErrAbandoned),
			p.Telemetry.Shutdown(ctx))
	}
	return errors.Join(p.Bus.Close(), p.Store.Close(), p.Telemetry.Shutdown(ctx))
}

// running names the components run on the platform's health that have not returned.
func (p *Platform) running() []string {
	if p.Health == nil {
		return nil
	}
	return p.Health.Running()
}

// Service is what a service package builds on a platform.
type Service interface {
	// Components are the service's parts, run and stopped together; `tandem dev` runs the
	// components of every service in one process.
	Components() []lifecycle.Component
	// Run runs the service alone, with its own health endpoint, until ctx ends.
	Run(ctx context.Context) error
}

// Run runs a service's components with the platform's health endpoint and stops them in order
// when ctx ends, returning once every one of them has returned (or StopTimeout and StopGrace
// have passed: see Close). Service packages implement their Run with it.
func Run(ctx context.Context, cfg Config, name string, p *Platform, svc Service) error {
	ls := &lifecycle.Service{
		Name: name, HealthAddr: cfg.HealthAddr, Health: p.Health, Components: svc.Components(),
		DrainDelay: cfg.DrainDelay, StopTimeout: cfg.StopTimeout, StopGrace: cfg.StopGrace, Logger: p.Logger,
	}
	return ls.Run(ctx)
}

// Main is the whole of a service binary: flags and TANDEM_* variables, SIGINT/SIGTERM,
// the platform, the service, an orderly shutdown with telemetry flushed last. register
// registers every flag of the service, the platform's included (cfg is where the platform's
// land). The variables of the other services' flags (Variables) are accepted and ignored, so
// that all services can share one environment; any other TANDEM_* variable is an error. It
// returns the process exit code.
func Main(name string, args []string, cfg *Config, register func(*flag.FlagSet), build func(*Platform) (Service, error)) int {
	return mainWith(process{
		environ: os.Environ(),
		stderr:  os.Stderr,
		signals: func() (context.Context, context.CancelFunc) {
			return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		},
	}, name, args, cfg, register, build)
}

// process is what Main takes from the operating system, so that tests can supply their own.
type process struct {
	environ []string
	stderr  io.Writer
	// signals returns a context that ends when the process is asked to stop.
	signals func() (context.Context, context.CancelFunc)
}

func mainWith(proc process, name string, args []string, cfg *Config, register func(*flag.FlagSet), build func(*Platform) (Service, error)) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(proc.stderr)
	register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\nEvery flag can also be set with its environment variable.\n\n%s", name, settings.Usage(fs, EnvPrefix))
	}
	if err := settings.Parse(fs, args, proc.environ, EnvPrefix, settings.AlsoKnown(Variables())); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(proc.stderr, "%s: %v\n", name, err)
		return 2
	}
	ctx, stop := proc.signals()
	defer stop()
	p, err := Open(ctx, *cfg, name, proc.stderr)
	if err != nil {
		fmt.Fprintf(proc.stderr, "%s: %v\n", name, redact(err.Error(), cfg.SealKey))
		return 1
	}
	code := 0
	svc, err := build(p)
	if err == nil {
		err = svc.Run(ctx)
	}
	if err != nil {
		p.Logger.Error("service failed", slog.Any("error", err))
		code = 1
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(shutdownCtx); err != nil {
		p.Logger.Warn("close", slog.Any("error", err))
	}
	return code
}

// redact removes a secret from a message that might echo it.
func redact(msg, secret string) string {
	if secret == "" {
		return msg
	}
	return strings.ReplaceAll(msg, secret, "REDACTED")
}
