// Package devenv is Tandem's all-in-one environment: an embedded NATS server with JetStream,
// Redis (the one at REDIS_URL, a redis-server started on a free port, or an in-memory
// stand-in), simulated Exchange and Salesforce servers seeded with users, contacts and a sync
// configuration — or an admin's real Exchange and Salesforce sandbox — and every Tandem service,
// composed in one process. `tandem dev` runs it for a first look; the end-to-end tests and the
// benchmarks run it too.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tandem-sync/tandem/pkg/access"
	"github.com/tandem-sync/tandem/pkg/devkit/localnats"
	"github.com/tandem-sync/tandem/pkg/devkit/localredis"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/seal"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	exchangeworker "github.com/tandem-sync/tandem/services/exchange-worker"
	"github.com/tandem-sync/tandem/services/reconciler"
	salesforceworker "github.com/tandem-sync/tandem/services/salesforce-worker"
	"github.com/tandem-sync/tandem/services/scheduler"
	statusapi "github.com/tandem-sync/tandem/services/status-api"
)

// Options configure an environment.
type Options struct {
	// Users and ContactsPerUser size the seeded simulators.
	Users, ContactsPerUser int
	// Seed makes the seeded data reproducible.
	Seed int64
	// Interval is how often the org syncs.
	Interval time.Duration
	// Notify has the exchange-worker watch the mailboxes with EWS streaming notifications, so
	// that a change in Exchange starts a cycle at once; Interval stays the fallback.
	Notify bool
	// RedisURL is an existing Redis to use; empty starts one.
	RedisURL string
	// Dir holds the environment's files (JetStream, Redis); empty means a temporary directory
	// removed on Close.
	Dir string
	// Log receives the services' JSON logs; nil discards them.
	Log io.Writer
	// LogLevel is the services' log level.
	LogLevel string
	// GRPCAddr is where the status-api listens; empty means a free local port.
	GRPCAddr string
	// HealthAddr is where /healthz and /readyz are served; empty means not served.
	HealthAddr string
	// Exchange and Salesforce, when set, point the environment at real endpoints instead of the
	// simulators (a sandbox, as an admin would try Tandem before production).
	Exchange   *ExchangeEndpoint
	Salesforce *SalesforceEndpoint
	// Simulators, when set, are used instead of new ones (Users, ContactsPerUser and Seed are
	// then theirs); they outlive the environment.
	Simulators *Simulators
	// InsecureHTTP lets Exchange and Salesforce be plain-http endpoints: test servers such as
	// `tandem sim` in another process. Without it such URLs are refused.
	InsecureHTTP bool
	// Warn receives warnings meant for the person running the environment.
	Warn io.Writer
}

// Env is a running environment.
type Env struct {
	opts    Options
	dir     string
	ownDir  bool
	nats    *localnats.Server
	redis   *localredis.Server
	closers []func(context.Context) error

	// RedisURL is the Redis the environment uses; EmbeddedRedis is true for the in-memory one.
	RedisURL      string
	EmbeddedRedis bool
	// EWS and Salesforce are the simulators (nil with real endpoints), at EWSURL and SalesforceURL.
	EWS                   *ewssim.Server
	Salesforce            *sfsim.Server
	EWSURL, SalesforceURL string
	// PubSubAddr is the simulated org's Pub/Sub API (Change Data Capture), plain-text gRPC.
	PubSubAddr string
	// Platform is the services' shared platform.
	Platform *platform.Platform
	// OrgID is the org the environment syncs.
	OrgID string
	// Mailboxes are the syncing users: Salesforce user id → email.
	Mailboxes map[string]string
	// StatusAPI is the gRPC API; its address is StatusAPI.Addr(). It serves plain text, for
	// local clients only.
	StatusAPI *statusapi.StatusAPI
	// Token is an operator token of the API, new for each environment.
	Token string

	services []platform.Service
	start    time.Time
}

// Start starts the environment: servers, seeded data, the org and its configuration, and the
// services (not yet running: see Components and Run).
func Start(ctx context.Context, opts Options) (env *Env, err error) {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.Warn == nil {
		opts.Warn = io.Discard
	}
	e := &Env{opts: opts, dir: opts.Dir, start: time.Now()}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close(context.WithoutCancel(ctx)))
		}
	}()
	if e.dir == "" {
		if e.dir, err = os.MkdirTemp("", "tandem-dev-"); err != nil {
			return nil, err
		}
		e.ownDir = true
	}
	quiet := slog.New(slog.DiscardHandler)
	if e.nats, err = localnats.Start(localnats.Options{StoreDir: filepath.Join(e.dir, "jetstream"), MaxPayload: 8 << 20, Logger: quiet}); err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	if err := e.startRedis(ctx); err != nil {
		return nil, err
	}
	key, err := seal.GenerateKey()
	if err != nil {
		return nil, err
	}
	pcfg := platform.Config{
		NATSURL: e.nats.ClientURL(), StreamReplicas: 1, RedisURL: e.RedisURL, SealKey: seal.EncodeKey(key),
		LogLevel: opts.LogLevel, StopTimeout: 20 * time.Second,
	}
	if e.Platform, err = platform.Open(ctx, pcfg, "dev", opts.Log); err != nil {
		return nil, err
	}
	if opts.Exchange == nil || opts.Salesforce == nil {
		if opts.Exchange != nil || opts.Salesforce != nil {
			return nil, errors.New("give both a real Exchange and a real Salesforce, or neither")
		}
		if err := e.startSimulators(ctx); err != nil {
			return nil, err
		}
	} else if err := e.connectReal(ctx); err != nil {
		return nil, err
	}
	if err := e.buildServices(pcfg); err != nil {
		return nil, err
	}
	if e.Token, err = access.NewSecret(); err != nil {
		return nil, err
	}
	if err := e.StatusAPI.Tokens().Bootstrap(ctx, e.Token); err != nil {
		return nil, fmt.Errorf("the API's operator token: %w", err)
	}
	return e, nil
}

func (e *Env) startRedis(ctx context.Context) error {
	if e.opts.RedisURL != "" {
		e.RedisURL = e.opts.RedisURL
		return nil
	}
	srv, err := localredis.Start(ctx, localredis.Options{Dir: filepath.Join(e.dir, "redis"), AllowEmbedded: true, AppendOnly: true})
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	e.redis, e.RedisURL, e.EmbeddedRedis = srv, srv.URL(), srv.Embedded()
	if srv.Embedded() {
		fmt.Fprintln(e.opts.Warn, "warning: no redis-server found on PATH and REDIS_URL is not set; using an in-memory Redis stand-in: nothing persists")
	}
	return nil
}

// buildServices builds the five services on the shared platform, from one table: each service
// with the settings it runs with here (short intervals, small concurrency, plain HTTP to the
// simulators).
func (e *Env) buildServices(pcfg platform.Config) error {
	allowHTTP := e.allowHTTP()
	addr := e.opts.GRPCAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	table := []struct {
		name  string
		build func(*platform.Platform) (platform.Service, error)
	}{
		{"scheduler", func(p *platform.Platform) (platform.Service, error) {
			return scheduler.New(scheduler.Config{Platform: pcfg, Tick: 200 * time.Millisecond, Interval: e.opts.Interval, StallCycles: 10, StallAfter: time.Minute}, p)
		}},
		{"exchange-worker", func(p *platform.Platform) (platform.Service, error) {
			return exchangeworker.New(exchangeworker.Config{Platform: pcfg, JobConcurrency: ExchangeJobConcurrency, ApplyConcurrency: ExchangeApplyConcurrency, AllowHTTP: allowHTTP,
				BackoffBase: 5 * time.Second, BackoffMax: time.Minute, SuspendAfter: 5, SuspendedProbe: 5 * time.Minute,
				Notify: exchangeworker.NotifyConfig{Enabled: e.opts.Notify, Refresh: 2 * time.Second}}, p)
		}},
		{"salesforce-worker", func(p *platform.Platform) (platform.Service, error) {
			return salesforceworker.New(salesforceworker.Config{Platform: pcfg, JobConcurrency: SalesforceJobConcurrency, ApplyConcurrency: SalesforceApplyConcurrency,
				ApplyLinger: salesforceworker.DefaultApplyLinger, ApplyMaxDelay: salesforceworker.DefaultApplyMaxDelay,
				DirectoryRefresh: time.Minute, ClientName: devClientName, AllowHTTP: allowHTTP,
				CDC: salesforceworker.CDCConfig{Endpoint: e.PubSubAddr, Plaintext: allowHTTP, Refresh: 2 * time.Second}}, p)
		}},
		{"reconciler", func(p *platform.Platform) (platform.Service, error) {
			return reconciler.New(reconciler.Config{Platform: pcfg, Concurrency: 64, LeaseTTL: 30 * time.Second, PendingTimeout: 2 * time.Minute}, p)
		}},
		{"status-api", func(p *platform.Platform) (platform.Service, error) {
			api, err := statusapi.New(statusapi.Config{Platform: pcfg, GRPCAddr: addr, AllowHTTP: allowHTTP, GracefulStop: 5 * time.Second, Plaintext: true}, p)
			e.StatusAPI = api
			return api, err
		}},
	}
	for _, s := range table {
		svc, err := s.build(e.Platform)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		e.services = append(e.services, svc)
	}
	return nil
}

// The workers' concurrency in the environment: parallel reads (jobs) and write batches (apply)
// per worker. `tandem bench` copies with the same concurrency for its floor.
const (
	ExchangeJobConcurrency     = 16
	ExchangeApplyConcurrency   = 16
	SalesforceJobConcurrency   = 4
	SalesforceApplyConcurrency = salesforceworker.DefaultApplyConcurrency
)

// allowHTTP is whether Exchange may be reached over plain http: the simulators in this process
// speak it; real endpoints only with InsecureHTTP.
func (e *Env) allowHTTP() bool { return e.EWS != nil || e.opts.InsecureHTTP }

// devClientName is the client name the environment's Salesforce writes carry.
const devClientName = "tandem-dev"

// Components are every service's components, to run in one process.
func (e *Env) Components() []lifecycle.Component {
	var out []lifecycle.Component
	for _, s := range e.services {
		out = append(out, s.Components()...)
	}
	return out
}

// Run runs every service, plus extra components (progress, watchers), until ctx ends or a
// component fails, then stops them in order.
func (e *Env) Run(ctx context.Context, extra ...lifecycle.Component) error {
	svc := &lifecycle.Service{
		Name: "tandem-dev", HealthAddr: e.opts.HealthAddr, Health: e.Platform.Health,
		Components: append(e.Components(), extra...), StopTimeout: 30 * time.Second, Logger: e.Platform.Logger,
	}
	return svc.Run(ctx)
}

// Elapsed is how long the environment has been up.
func (e *Env) Elapsed() time.Duration { return time.Since(e.start) }

// Close stops the servers and removes the temporary files.
func (e *Env) Close(ctx context.Context) error {
	var errs []error
	if e.Platform != nil {
		errs = append(errs, e.Platform.Close(ctx))
	}
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i](ctx))
	}
	if e.redis != nil {
		errs = append(errs, e.redis.Close())
	}
	if e.nats != nil {
		e.nats.Shutdown()
	}
	if e.ownDir {
		errs = append(errs, os.RemoveAll(e.dir))
	}
	return errors.Join(errs...)
}
