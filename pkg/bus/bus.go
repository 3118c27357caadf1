package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-sync/tandem/pkg/retry"
)

// Connect keeps trying until its context ends: services may start before NATS is reachable (a
// Kubernetes rollout starts everything at once). Each attempt is bounded on its own.
const connectAttemptTimeout = 5 * time.Second

// connectRetry paces Connect's attempts.
var connectRetry = retry.Policy{Base: 250 * time.Millisecond, Max: 5 * time.Second, Jitter: retry.DefaultJitter}

// Bus publishes and consumes Tandem's messages over one NATS connection.
type Bus struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	cfg        Config
	topology   Topology
	logger     *slog.Logger
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	metrics    *metrics

	// closed is closed when a connection the bus opened itself has closed; nil when the
	// caller owns the connection.
	closed chan struct{}
}

// Option configures telemetry for New and Connect.
type Option func(*options)

type options struct {
	tracerProvider trace.TracerProvider
	propagator     propagation.TextMapPropagator
	meterProvider  metric.MeterProvider
}

// WithTracerProvider sets the tracer provider for publish and process spans; the default is
// the global one from otel.GetTracerProvider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// WithPropagator sets how trace context is written to and read from message headers; the
// default is the global one from otel.GetTextMapPropagator.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *options) { o.propagator = p }
}

// WithMeterProvider sets the meter provider for the bus's metrics; the default records nothing.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meterProvider = mp }
}

// Connect connects to the NATS server at cfg.URL, retrying until ctx ends, and returns a Bus
// that owns the connection: Close drains and closes it.
func Connect(ctx context.Context, cfg Config, logger *slog.Logger, opts ...Option) (*Bus, error) {
	if cfg.URL == "" {
		return nil, errors.New("bus: connect: URL is required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger = orDiscard(logger)
	closed := make(chan struct{})
	var closeOnce sync.Once
	natsOpts := []nats.Option{
		nats.Name(cfg.Name),
		// A service never gives up on NATS: while it is away, readiness reports it and
		// consume loops back off, and everything resumes on reconnect.
		nats.MaxReconnects(-1),
		nats.ClosedHandler(func(*nats.Conn) { closeOnce.Do(func() { close(closed) }) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil when the connection is closed on purpose
				logger.Warn("bus: disconnected from NATS", slog.Any("error", err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("bus: reconnected to NATS", slog.String("url", nc.ConnectedUrlRedacted()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			attrs := []any{slog.Any("error", err)}
			if sub != nil {
				attrs = append(attrs, slog.String(logKeySubject, sub.Subject))
			}
			logger.Error("bus: asynchronous NATS error", attrs...)
		}),
	}
	if cfg.CredentialsFile != "" {
		natsOpts = append(natsOpts, nats.UserCredentials(cfg.CredentialsFile))
	}
	if cfg.CAFile != "" {
		natsOpts = append(natsOpts, nats.RootCAs(cfg.CAFile))
	}

	var nc *nats.Conn
	err := retry.Do(ctx, connectRetry, func(ctx context.Context) error {
		attempt := connectAttemptTimeout
		if deadline, ok := ctx.Deadline(); ok {
			attempt = min(attempt, time.Until(deadline))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if attempt <= 0 {
			// The deadline has passed a moment before the context reports it.
			return context.DeadlineExceeded
		}
		var err error
		nc, err = nats.Connect(cfg.URL, append(natsOpts, nats.Timeout(attempt))...)
		return err
	}, retry.OnRetry(func(err error, _ int, wait time.Duration) {
		logger.WarnContext(ctx, "bus: cannot connect to NATS yet", slog.Any("error", err), slog.Duration("retry_in", wait))
	}))
	if err != nil {
		return nil, fmt.Errorf("bus: connect to NATS: %w", err)
	}

	b, err := newBus(nc, cfg, logger, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	b.closed = closed
	return b, nil
}

// New returns a Bus over a connection the caller owns and closes; Close leaves it open.
func New(nc *nats.Conn, cfg Config, logger *slog.Logger, opts ...Option) (*Bus, error) {
	if nc == nil {
		return nil, errors.New("bus: nil NATS connection")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return newBus(nc, cfg, orDiscard(logger), opts)
}

func newBus(nc *nats.Conn, cfg Config, logger *slog.Logger, opts []Option) (*Bus, error) {
	o := options{
		tracerProvider: otel.GetTracerProvider(),
		propagator:     otel.GetTextMapPropagator(),
		meterProvider:  metricnoop.NewMeterProvider(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("bus: JetStream context: %w", err)
	}
	m, err := newMetrics(o.meterProvider)
	if err != nil {
		return nil, fmt.Errorf("bus: metrics: %w", err)
	}
	return &Bus{
		nc:         nc,
		js:         js,
		cfg:        cfg,
		topology:   NewTopology(cfg),
		logger:     logger,
		tracer:     o.tracerProvider.Tracer(instrumentationName),
		propagator: o.propagator,
		metrics:    m,
	}, nil
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// Topology returns the streams and consumers the bus declares.
func (b *Bus) Topology() Topology { return b.topology }

// Declare creates or updates every stream and consumer of the topology. It is idempotent, so
// every service may call it at start-up; the last one to run with a changed Config wins.
func (b *Bus) Declare(ctx context.Context) error {
	for _, sc := range b.topology.Streams {
		if _, err := b.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("bus: declare stream %s: %w", sc.Name, err)
		}
	}
	// The retired consumers go before anything is created next to them: their filters
	// overlap the pooled consumers'.
	for _, rc := range b.topology.RetiredConsumers {
		err := b.js.DeleteConsumer(ctx, rc.Stream, rc.Durable)
		if err == nil {
			b.logger.InfoContext(ctx, "bus: deleted a consumer of an older topology",
				slog.String(logKeyConsumer, rc.Durable), slog.String(logKeyStream, rc.Stream))
		} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("bus: delete retired consumer %s on %s: %w", rc.Durable, rc.Stream, err)
		}
	}
	for _, rs := range b.topology.RetiredSubjects {
		if err := b.purge(ctx, rs); err != nil {
			return err
		}
	}
	for _, cs := range b.topology.Consumers {
		if _, err := b.js.CreateOrUpdateConsumer(ctx, cs.Stream, cs.Config); err != nil {
			return fmt.Errorf("bus: declare consumer %s on %s: %w", cs.Config.Durable, cs.Stream, err)
		}
	}
	return nil
}

// purge removes the messages stored on a retired subject, which no consumer reads.
func (b *Bus) purge(ctx context.Context, rs RetiredSubject) error {
	s, err := b.js.Stream(ctx, rs.Stream)
	if err != nil {
		return fmt.Errorf("bus: purge %s from %s: %w", rs.Filter, rs.Stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(rs.Filter))
	if err != nil {
		return fmt.Errorf("bus: purge %s from %s: %w", rs.Filter, rs.Stream, err)
	}
	if len(info.State.Subjects) == 0 {
		return nil
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(rs.Filter)); err != nil {
		return fmt.Errorf("bus: purge %s from %s: %w", rs.Filter, rs.Stream, err)
	}
	b.logger.WarnContext(ctx, "bus: purged messages of an older topology; their reads and writes are recovered as lost ones",
		slog.String(logKeyStream, rs.Stream), slog.String("filter", rs.Filter), slog.Int("subjects", len(info.State.Subjects)))
	return nil
}

// declarePooled creates or updates a pool's consumer, which Declare cannot know in advance:
// the first replica of a pool to consume creates it, the others find it.
func (b *Bus) declarePooled(ctx context.Context, spec ConsumerSpec) (jetstream.Consumer, error) {
	cons, err := b.js.CreateOrUpdateConsumer(ctx, spec.Stream, spec.Config)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if err := b.redeclareStream(ctx, spec.Stream); err != nil {
			return nil, err
		}
		cons, err = b.js.CreateOrUpdateConsumer(ctx, spec.Stream, spec.Config)
	}
	if err != nil {
		return nil, fmt.Errorf("bus: declare consumer %s on %s: %w", spec.Config.Durable, spec.Stream, err)
	}
	return cons, nil
}

// Ready reports whether the bus can do its work: the connection is up and JetStream answers.
// It is meant for a /readyz probe, which should pass a short deadline.
func (b *Bus) Ready(ctx context.Context) error {
	if status := b.nc.Status(); status != nats.CONNECTED {
		return fmt.Errorf("bus: NATS connection is %s", status)
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("bus: JetStream not answering: %w", err)
	}
	return nil
}

// Close drains and closes the connection if the bus opened it (Connect), waiting until pending
// acks and publishes are flushed; a connection passed to New is left to its owner. Stop the
// consume loops (cancel their contexts) before calling Close.
func (b *Bus) Close() error {
	if b.closed == nil {
		return nil
	}
	if err := b.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		b.nc.Close()
		return fmt.Errorf("bus: drain NATS connection: %w", err)
	}
	// Drain closes the connection when done, bounded by the client's drain timeout.
	<-b.closed
	return nil
}
