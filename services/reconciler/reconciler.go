// Package reconciler is the reconciler service: it consumes change batches and write results
// and hands them to pkg/reconcile/engine, which keeps each user's ledger, plans each cycle and
// sends the writes. Any number of replicas share the work; a user is reconciled by one at a time, under
// the user's fenced lease.
package reconciler

import (
	"context"
	"errors"
	"flag"
	"time"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/reconcile/engine"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Config is the reconciler's settings.
type Config struct {
	// Platform is the connections and runtime settings every service shares.
	Platform platform.Config
	// Concurrency is how many messages of each stream are handled at once per replica. Messages
	// for a user whose work is under way wait for it without using Redis, so this is set well
	// above the number of cores: a burst of one user's messages must not hold up the others'.
	Concurrency int
	// LeaseTTL is the per-user lease's time to live (renewed while work runs).
	LeaseTTL time.Duration
	// PendingTimeout is how long a write may go unanswered before it is planned again.
	PendingTimeout time.Duration
	// LedgerLoads bounds the whole ledgers (all of one user's records of a kind) held in memory
	// at once, which is most of the reconciler's memory; 0 means engine.DefaultLedgerLoads.
	LedgerLoads int
	// VerifyScopedPlans plans every cycle planned from what changed a second time from the
	// whole ledger and fails the cycle if the plans differ (engine.Options.VerifyScope).
	VerifyScopedPlans bool
}

// RegisterFlags registers the reconciler's flags, the platform's included.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Platform.RegisterFlags(fs)
	fs.IntVar(&c.Concurrency, "concurrency", 64, "messages of each stream handled at once by this replica")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", engine.DefaultLeaseTTL, "time to live of a user's reconcile lease (renewed while work runs)")
	fs.DurationVar(&c.PendingTimeout, "pending-timeout", 15*time.Minute, "how long a write may go unanswered before it is planned again")
	fs.BoolVar(&c.VerifyScopedPlans, "verify-scoped-plans", false, "check every cycle planned from what changed against a plan of the user's whole ledger, failing the cycle if they differ (a canary: it costs the whole-ledger loads the scope saves)")
	fs.IntVar(&c.LedgerLoads, "ledger-loads", 0, "whole ledgers (all of one user's records of a kind) planned at once by this replica, which bounds its memory (0: twice the cores, at least 4)")
}

// Validate checks the settings.
func (c *Config) Validate() error {
	if c.Concurrency < 1 {
		return errors.New("--concurrency must be at least 1")
	}
	if c.LedgerLoads < 0 {
		return errors.New("--ledger-loads must not be negative")
	}
	if c.LeaseTTL < time.Second || c.PendingTimeout <= 0 {
		return errors.New("--lease-ttl must be at least 1s and --pending-timeout positive")
	}
	return nil
}

// Reconciler is the reconciler service.
type Reconciler struct {
	cfg    Config
	p      *platform.Platform
	syncer *engine.Syncer
}

// New returns the reconciler.
func New(cfg Config, p *platform.Platform) (*Reconciler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := engine.New(p.Store, p.Bus, engine.Options{LeaseTTL: cfg.LeaseTTL, PendingTimeout: cfg.PendingTimeout,
		LedgerLoads: cfg.LedgerLoads, VerifyScope: cfg.VerifyScopedPlans, Logger: p.Logger, MeterProvider: p.Telemetry.MeterProvider})
	return &Reconciler{cfg: cfg, p: p, syncer: s}, nil
}

// Components returns the change and result consumers.
func (r *Reconciler) Components() []lifecycle.Component {
	return []lifecycle.Component{
		{Name: "reconciler-changes", Run: func(ctx context.Context) error {
			return r.p.Bus.Consume(ctx, bus.ConsumerReconcilerChanges, func(ctx context.Context, m *bus.Message) error {
				b := &tandemv1.ChangeBatch{}
				if err := m.Decode(b); err != nil {
					return err
				}
				return r.syncer.HandleChanges(ctx, b)
			}, bus.WithConcurrency(r.cfg.Concurrency))
		}},
		{Name: "reconciler-results", Run: func(ctx context.Context) error {
			return r.p.Bus.Consume(ctx, bus.ConsumerReconcilerResults, func(ctx context.Context, m *bus.Message) error {
				b := &tandemv1.WriteResultBatch{}
				if err := m.Decode(b); err != nil {
					return err
				}
				return r.syncer.HandleResults(ctx, b)
			}, bus.WithConcurrency(r.cfg.Concurrency))
		}},
	}
}

// Run runs the reconciler alone, with its health endpoint, until ctx ends.
func (r *Reconciler) Run(ctx context.Context) error {
	return platform.Run(ctx, r.cfg.Platform, "reconciler", r.p, r)
}
