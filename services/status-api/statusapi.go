// Package statusapi is the status-api service: Tandem's gRPC API (StatusService and
// AdminService, see package api) with the gRPC health service and server reflection, so
// grpcurl and Kubernetes probes work. It also turns dead letters — work the bus gave up on —
// into entries of the sync error report.
package statusapi

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tandem-sync/tandem/pkg/access"
	"github.com/tandem-sync/tandem/pkg/api"
	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/certs"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/reconcile/engine"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Config is the status-api's settings.
type Config struct {
	// Platform is the connections and runtime settings every service shares.
	Platform platform.Config
	// GRPCAddr is where the gRPC API listens.
	GRPCAddr string
	// AllowHTTP accepts orgs whose Exchange and Salesforce URLs are plain http, and lets
	// connection tests use plain-HTTP Exchange endpoints (simulators and lab servers only).
	AllowHTTP bool
	// GracefulStop bounds how long in-flight RPCs may take on shutdown.
	GracefulStop time.Duration
	// UserCountInterval is how often the tandem.sync.users gauge counts every org's users;
	// zero means DefaultUserCountInterval.
	UserCountInterval time.Duration
	// TLSCert and TLSKey are the PEM files of the API's TLS certificate and key, loaded again
	// when they change. Required unless Plaintext.
	TLSCert, TLSKey string
	// ClientCA is a PEM file of the authorities whose client certificates authenticate callers
	// (mutual TLS), each as the token bound to its subject common name; empty for none.
	ClientCA string
	// Plaintext serves the API without TLS: only for `tandem dev` and an API on loopback.
	Plaintext bool
	// OperatorTokenFile holds the deployment's operator token (see access.Tokens.Bootstrap): the
	// first credential of a new deployment, from a Kubernetes Secret. Empty for none.
	OperatorTokenFile string
	// MutationsPerSecond and MutationBurst limit each caller's changes; zero means the defaults.
	MutationsPerSecond float64
	MutationBurst      int
}

// MaxRequestBytes bounds the size of one request to the API.
const MaxRequestBytes = 4 << 20

// DefaultUserCountInterval is Config.UserCountInterval's default.
const DefaultUserCountInterval = time.Minute

// RegisterFlags registers the status-api's flags, the platform's included.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Platform.RegisterFlags(fs)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", ":9090", "address of the gRPC API")
	fs.BoolVar(&c.AllowHTTP, "allow-http", false, "accept orgs whose Exchange and Salesforce URLs are plain http, and test connections to them (simulators and lab servers only)")
	fs.DurationVar(&c.GracefulStop, "graceful-stop", 10*time.Second, "how long in-flight RPCs may take on shutdown")
	fs.DurationVar(&c.UserCountInterval, "user-count-interval", DefaultUserCountInterval, "how often the tandem.sync.users metric counts every org's users by state")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM file of the gRPC API's TLS certificate (reloaded when it changes); required unless --plaintext")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM file of the TLS certificate's private key")
	fs.StringVar(&c.ClientCA, "client-ca", "", "PEM file of the authorities whose client certificates authenticate callers (mutual TLS; a token bound to the certificate's common name); empty for bearer tokens only")
	fs.BoolVar(&c.Plaintext, "plaintext", false, "serve the gRPC API without TLS (tandem dev, or an API reachable only on loopback)")
	fs.StringVar(&c.OperatorTokenFile, "operator-token-file", "", "file holding the deployment's operator API token (a Kubernetes Secret); empty for none")
	fs.Float64Var(&c.MutationsPerSecond, "mutations-per-second", access.DefaultMutationsPerSecond, "changes per second each API token may make (bursts: --mutation-burst)")
	fs.IntVar(&c.MutationBurst, "mutation-burst", access.DefaultMutationBurst, "changes each API token may make at once before --mutations-per-second applies")
}

// Validate checks the settings.
func (c *Config) Validate() error {
	if c.GRPCAddr == "" {
		return errors.New("--grpc-addr is required")
	}
	if c.UserCountInterval != 0 && c.UserCountInterval < time.Second {
		return fmt.Errorf("--user-count-interval %s: at least 1s", c.UserCountInterval)
	}
	switch {
	case c.Plaintext && (c.TLSCert != "" || c.TLSKey != "" || c.ClientCA != ""):
		return errors.New("--plaintext and --tls-cert/--tls-key/--client-ca: choose one")
	case !c.Plaintext && (c.TLSCert == "" || c.TLSKey == ""):
		return errors.New("the gRPC API serves TLS: give --tls-cert and --tls-key (or --plaintext for tandem dev and an API only on loopback)")
	case c.MutationsPerSecond < 0 || c.MutationBurst < 0:
		return errors.New("--mutations-per-second and --mutation-burst must not be negative")
	}
	return nil
}

// StatusAPI is the status-api service.
type StatusAPI struct {
	cfg    Config
	p      *platform.Platform
	server *grpc.Server
	health *health.Server
	lis    net.Listener
	users  *api.UserGauges
	tokens *access.Tokens
	api    *api.Server
}

// New returns the service, listening on cfg.GRPCAddr.
func New(cfg Config, p *platform.Platform) (*StatusAPI, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("gRPC listener: %w", err)
	}
	svc, err := NewOnListener(cfg, p, lis)
	if err != nil {
		return nil, errors.Join(err, lis.Close())
	}
	return svc, nil
}

// NewOnListener returns the service serving on lis. Every call is authenticated and authorised
// (package access); the API serves TLS unless cfg.Plaintext.
func NewOnListener(cfg Config, p *platform.Platform, lis net.Listener) (*StatusAPI, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tokens := access.NewTokens(p.Store, nil)
	if cfg.OperatorTokenFile != "" {
		secret, err := os.ReadFile(cfg.OperatorTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--operator-token-file: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := tokens.Bootstrap(ctx, strings.TrimSpace(string(secret))); err != nil {
			return nil, fmt.Errorf("--operator-token-file %s: %w", cfg.OperatorTokenFile, err)
		}
	}
	guard := access.NewGuard(tokens, access.DefaultPolicy(), access.GuardOptions{
		MutationsPerSecond: cfg.MutationsPerSecond, MutationBurst: cfg.MutationBurst, Logger: p.Logger,
	})
	opts := append(guard.ServerOptions(), grpc.MaxRecvMsgSize(MaxRequestBytes),
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(p.Telemetry.TracerProvider), otelgrpc.WithMeterProvider(p.Telemetry.MeterProvider),
			// A caller's trace context continues into the API call.
			otelgrpc.WithPropagators(p.Telemetry.Propagator))))
	if !cfg.Plaintext {
		reloader, err := certs.NewReloader(cfg.TLSCert, cfg.TLSKey, p.Logger)
		if err != nil {
			return nil, err
		}
		tlsCfg := reloader.ServerConfig()
		if cfg.ClientCA != "" {
			pool, err := certs.Pool(cfg.ClientCA)
			if err != nil {
				return nil, fmt.Errorf("--client-ca: %w", err)
			}
			tlsCfg.ClientCAs = pool
			// A certificate is one way to authenticate; a bearer token is the other.
			tlsCfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	srv := grpc.NewServer(opts...)
	sy := engine.New(p.Store, p.Bus, engine.Options{Logger: p.Logger})
	checker := api.ConnectorChecker{AllowHTTP: cfg.AllowHTTP, Logger: p.Logger,
		TracerProvider: p.Telemetry.TracerProvider, MeterProvider: p.Telemetry.MeterProvider}
	a := api.New(p.Store, sy, checker, p.Logger,
		api.WithOrgRules(store.OrgRules{AllowHTTP: cfg.AllowHTTP}))
	users, err := api.NewUserGauges(a, p.Telemetry.MeterProvider)
	if err != nil {
		return nil, err
	}
	a.Register(srv)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	if err := registerReflection(srv); err != nil {
		return nil, err
	}
	return &StatusAPI{cfg: cfg, p: p, server: srv, health: hs, lis: lis, users: users, tokens: tokens, api: a}, nil
}

// Addr is where the gRPC API listens.
func (s *StatusAPI) Addr() net.Addr { return s.lis.Addr() }

// Tokens are the API's tokens: `tandem dev` issues its operator token with them.
func (s *StatusAPI) Tokens() *access.Tokens { return s.tokens }

// Components returns the gRPC server and the dead-letter consumer.
func (s *StatusAPI) Components() []lifecycle.Component {
	grpcServer := lifecycle.GRPCServer("grpc", s.server, s.lis, s.cfg.GracefulStop)
	return []lifecycle.Component{
		{Name: "grpc", Run: func(ctx context.Context) error {
			for _, svc := range []string{"", tandemv1.StatusService_ServiceDesc.ServiceName, tandemv1.AdminService_ServiceDesc.ServiceName, tandemv1.AccessService_ServiceDesc.ServiceName} {
				s.health.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
			}
			go func() {
				<-ctx.Done()
				s.health.Shutdown()
				// Open watches would hold the graceful stop until its timeout.
				s.api.StopWatches()
			}()
			return grpcServer.Run(ctx)
		}},
		{Name: "dead-letters", Run: func(ctx context.Context) error {
			return s.p.Bus.Consume(ctx, bus.ConsumerStatusDead, s.deadLetter)
		}},
		{Name: "user-counts", Run: func(ctx context.Context) error {
			every := s.cfg.UserCountInterval
			if every == 0 {
				every = DefaultUserCountInterval
			}
			return lifecycle.Every(ctx, every, s.users.Refresh, func(err error) {
				s.p.Logger.WarnContext(ctx, "count users for the tandem.sync.users metric", slog.Any("error", err))
			})
		}},
	}
}

// deadLetter records work the bus gave up on in the org's sync error report.
func (s *StatusAPI) deadLetter(ctx context.Context, m *bus.Message) error {
	dl := &tandemv1.DeadLetter{}
	if err := m.Decode(dl); err != nil {
		return err
	}
	if dl.GetOrgId() == "" {
		s.p.Logger.WarnContext(ctx, "dead letter without an org", slog.String("subject", dl.GetSubject()))
		return nil
	}
	_, err := s.p.Store.RecordError(ctx, dl.GetOrgId(), dl.GetUserId(), tandemv1.RecordKind_RECORD_KIND_UNSPECIFIED, dl.GetError())
	return err
}

// Run runs the service alone, with its health endpoint, until ctx ends.
func (s *StatusAPI) Run(ctx context.Context) error {
	return platform.Run(ctx, s.cfg.Platform, "status-api", s.p, s)
}
