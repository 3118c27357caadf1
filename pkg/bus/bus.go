package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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

// declareRetry paces the attempts of each step of Declare. A cluster elects its meta leader
// within seconds of its servers meeting, so the cap keeps a service from sleeping long past
// that; the jitter spreads the retries of services that started together.
var declareRetry = retry.Policy{Base: 250 * time.Millisecond, Max: 5 * time.Second, Jitter: retry.DefaultJitter}

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

	// redeclaring serialises putting back missing streams, so one process never
	// creates the same stream twice at once (see recreate.go).
	redeclaring sync.Mutex

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
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			// The context ended while the last attempt failed on its own: the end is
			// why Connect gave up, and the attempt's failure is told beside it.
			err = fmt.Errorf("%w (last attempt: %v)", cause, err) //nolint:errorlint // the cause is the outcome
		}
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
//
// Services start in any order, together, and often before the NATS cluster has elected its
// JetStream meta leader (a first `kubectl apply`): each step is retried on its own, each
// attempt bounded by Config.DeclareAttemptTimeout, until it succeeds, fails in a way that
// retrying cannot fix (a stream or consumer on the server whose configuration the topology
// cannot replace), or ctx ends. The error then names the step and, for a conflict, what
// differs.
func (b *Bus) Declare(ctx context.Context) error {
	for _, sc := range b.topology.Streams {
		if err := b.declareStep(ctx, "declare stream "+sc.Name, func(ctx context.Context) error {
			return b.declareStream(ctx, sc)
		}); err != nil {
			return err
		}
	}
	// The retired consumers go before anything is created next to them: their filters
	// overlap the pooled consumers'.
	for _, rc := range b.topology.RetiredConsumers {
		if err := b.declareStep(ctx, fmt.Sprintf("delete retired consumer %s on %s", rc.Durable, rc.Stream), func(ctx context.Context) error {
			return b.deleteRetired(ctx, rc)
		}); err != nil {
			return err
		}
	}
	for _, rs := range b.topology.RetiredSubjects {
		if err := b.declareStep(ctx, fmt.Sprintf("purge %s from %s", rs.Filter, rs.Stream), func(ctx context.Context) error {
			return classify(b.purge(ctx, rs))
		}); err != nil {
			return err
		}
	}
	for _, cs := range b.topology.Consumers {
		if _, err := b.declareConsumerStep(ctx, cs); err != nil {
			return err
		}
	}
	return nil
}

// declareStep runs one step of Declare until it succeeds, returns an error marked permanent,
// or ctx ends. Each attempt has its own deadline: a request sent while the cluster has no
// meta leader is never answered, and waiting for it until ctx ends would waste the retries.
func (b *Bus) declareStep(ctx context.Context, step string, op func(ctx context.Context) error) error {
	err := retry.Do(ctx, declareRetry, func(ctx context.Context) error {
		attempt, cancel := context.WithTimeout(ctx, b.cfg.DeclareAttemptTimeout)
		defer cancel()
		err := op(attempt)
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer within %s: %w", b.cfg.DeclareAttemptTimeout, err)
		}
		return err
	}, retry.OnRetry(func(err error, attempt int, wait time.Duration) {
		b.logger.WarnContext(ctx, "bus: declaring the topology: a step failed; retrying",
			slog.String("step", step), slog.Any("error", err), slog.Int("attempt", attempt), slog.Duration("retry_in", wait))
	}))
	if err == nil {
		return nil
	}
	// An attempt cut short by ctx may fail with an error of its own (no responders, a closed
	// subscription); the caller must still see that ctx ended it.
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (last attempt: %v)", context.Cause(ctx), err) //nolint:errorlint // the last failure is told, not wrapped
	}
	return fmt.Errorf("bus: %s: %w", step, err)
}

// declareStream creates the stream of sc or updates it to sc.
func (b *Bus) declareStream(ctx context.Context, sc jetstream.StreamConfig) error {
	_, err := b.js.CreateOrUpdateStream(ctx, sc)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
		// The stream did not exist when this attempt tried to update it and did when it
		// tried to create it: another service created it in between. With the same
		// configuration the next attempt's update finds it; with a different one the two
		// topologies really disagree.
		if diff := b.streamDiff(ctx, sc); diff != "" {
			return retry.Permanent(fmt.Errorf("%w; the stream on the server differs: %s", err, diff))
		}
		return err
	case transient(err):
		return err
	case errors.Is(err, errSubjectOverlap):
		return retry.Permanent(b.withHolder(ctx, err, sc))
	default:
		return retry.Permanent(withDiff(err, "stream", b.streamDiff(ctx, sc)))
	}
}

// errSubjectOverlap is JetStream's answer to a stream whose subjects another stream holds.
var errSubjectOverlap = &jetstream.APIError{ErrorCode: 10065}

// withHolder adds to err which other stream holds the subjects of sc, if it can find out.
func (b *Bus) withHolder(ctx context.Context, err error, sc jetstream.StreamConfig) error {
	for _, subject := range sc.Subjects {
		if name, lerr := b.js.StreamNameBySubject(ctx, subject); lerr == nil && name != sc.Name {
			return fmt.Errorf("%w; stream %s holds %s", err, name, subject)
		}
	}
	return err
}

// declareConsumer creates the durable consumer of cs or updates it to cs, putting back its
// stream first if it is missing.
func (b *Bus) declareConsumer(ctx context.Context, cs ConsumerSpec) (jetstream.Consumer, error) {
	cons, err := b.js.CreateOrUpdateConsumer(ctx, cs.Stream, cs.Config)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if err := b.redeclareStream(ctx, cs.Stream); err != nil {
			return nil, classify(err)
		}
		cons, err = b.js.CreateOrUpdateConsumer(ctx, cs.Stream, cs.Config)
	}
	switch {
	case err == nil:
		return cons, nil
	case transient(err):
		return nil, err
	case errors.Is(err, errConsumerCreate):
		// The server's catch-all: a change it cannot make to the consumer on the server
		// (which then differs), or an internal failure while its cluster settles (and it
		// does not).
		if diff := b.consumerDiff(ctx, cs); diff != "" {
			return nil, retry.Permanent(withDiff(err, "consumer", diff))
		}
		return nil, err
	default:
		return nil, retry.Permanent(withDiff(err, "consumer", b.consumerDiff(ctx, cs)))
	}
}

// errConsumerCreate is JetStream's answer to a consumer it could not create or update.
var errConsumerCreate = &jetstream.APIError{ErrorCode: jetstream.JSErrCodeConsumerCreate}

// deleteRetired deletes a consumer of an older topology if it is still there.
func (b *Bus) deleteRetired(ctx context.Context, rc RetiredConsumer) error {
	err := b.js.DeleteConsumer(ctx, rc.Stream, rc.Durable)
	switch {
	case err == nil:
		b.logger.InfoContext(ctx, "bus: deleted a consumer of an older topology",
			slog.String(logKeyConsumer, rc.Durable), slog.String(logKeyStream, rc.Stream))
		return nil
	case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return nil
	default:
		return classify(err)
	}
}

// purge removes the messages stored on a retired subject, which no consumer reads.
func (b *Bus) purge(ctx context.Context, rs RetiredSubject) error {
	s, err := b.js.Stream(ctx, rs.Stream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(rs.Filter))
	if err != nil {
		return err
	}
	if len(info.State.Subjects) == 0 {
		return nil
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(rs.Filter)); err != nil {
		return err
	}
	b.logger.WarnContext(ctx, "bus: purged messages of an older topology; their reads and writes are recovered as lost ones",
		slog.String(logKeyStream, rs.Stream), slog.String("filter", rs.Filter), slog.Int("subjects", len(info.State.Subjects)))
	return nil
}

// transientCodes are the JetStream API errors of a cluster that is forming, electing a leader
// or moving one: what a service starting with its NATS cluster meets, and outlives by trying
// again.
var transientCodes = map[jetstream.ErrorCode]bool{
	10004: true, // incomplete results
	10005: true, // no suitable peers for placement: not every server has joined yet
	10006: true, // JetStream not in clustered mode (yet)
	10007: true, // JetStream cluster not assigned to this server
	10008: true, // JetStream system temporarily unavailable: no meta leader
	10009: true, // JetStream cluster can not handle request
	10023: true, // insufficient resources: the peers' resources are not known yet
	10035: true, // account not found (yet)
	10039: true, // JetStream not enabled for account (yet)
	10041: true, // raft error
	10048: true, // stream assignment error
	10075: true, // peer remap failed
	10076: true, // JetStream not enabled (yet)
	10118: true, // stream is offline
	10119: true, // consumer is offline
	10167: true, // too many requests
	10194: true, // stream is offline, with a reason
	10195: true, // consumer is offline, with a reason
	10202: true, // cluster member change in progress
}

// transient reports whether another attempt may succeed where err failed: JetStream answered
// that its cluster is not ready, or did not answer at all (a timeout, no responders while
// JetStream starts, a connection being re-established). A closed connection never comes back,
// and any other answer of JetStream's is about the request.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return transientCodes[apiErr.ErrorCode]
	}
	return !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, jetstream.ErrConnectionClosed) &&
		!errors.Is(err, nats.ErrConnectionDraining)
}

// classify marks err permanent unless it is transient. classify(nil) is nil.
func classify(err error) error {
	if err == nil || transient(err) {
		return err
	}
	return retry.Permanent(err)
}

// withDiff adds to err how the stream or consumer on the server differs from the topology, if
// it does.
func withDiff(err error, what, diff string) error {
	if diff == "" {
		return err
	}
	return fmt.Errorf("%w; the %s on the server differs: %s", err, what, diff)
}

// streamDiff describes how the stream on the server differs from sc in what the topology
// declares, or is empty when it does not differ or cannot be looked up.
func (b *Bus) streamDiff(ctx context.Context, sc jetstream.StreamConfig) string {
	s, err := b.js.Stream(ctx, sc.Name)
	if err != nil {
		return ""
	}
	have := s.CachedInfo().Config
	var d differences
	if !slices.Equal(have.Subjects, sc.Subjects) {
		d.add("subjects", have.Subjects, sc.Subjects)
	}
	compare(&d, "retention", have.Retention, sc.Retention)
	compare(&d, "storage", have.Storage, sc.Storage)
	compare(&d, "replicas", have.Replicas, sc.Replicas)
	compare(&d, "duplicate window", have.Duplicates, sc.Duplicates)
	compare(&d, "max age", have.MaxAge, sc.MaxAge)
	return d.String()
}

// consumerDiff describes how the consumer on the server differs from cs in what the topology
// declares, or is empty when it does not differ or cannot be looked up.
func (b *Bus) consumerDiff(ctx context.Context, cs ConsumerSpec) string {
	c, err := b.js.Consumer(ctx, cs.Stream, cs.Config.Durable)
	if err != nil {
		return ""
	}
	have, want := c.CachedInfo().Config, cs.Config
	var d differences
	compare(&d, "filter subject", have.FilterSubject, want.FilterSubject)
	compare(&d, "deliver policy", have.DeliverPolicy, want.DeliverPolicy)
	compare(&d, "ack policy", have.AckPolicy, want.AckPolicy)
	compare(&d, "ack wait", have.AckWait, want.AckWait)
	compare(&d, "max deliver", have.MaxDeliver, want.MaxDeliver)
	compare(&d, "max ack pending", have.MaxAckPending, want.MaxAckPending)
	return d.String()
}

// differences collects the fields in which a server's configuration differs from the topology.
type differences []string

func (d *differences) add(field string, have, want any) {
	*d = append(*d, fmt.Sprintf("%s is %v, the topology's is %v", field, have, want))
}

func compare[T comparable](d *differences, field string, have, want T) {
	if have != want {
		d.add(field, have, want)
	}
}

func (d differences) String() string { return strings.Join(d, "; ") }

// declareConsumerStep is the step of declaring one consumer: one of the topology's (Declare), or
// a pool's, which Declare cannot know in advance (the first replica of a pool to consume
// creates it, the others find it; replicas that start together with their cluster retry as
// Declare does).
func (b *Bus) declareConsumerStep(ctx context.Context, cs ConsumerSpec) (jetstream.Consumer, error) {
	var cons jetstream.Consumer
	err := b.declareStep(ctx, fmt.Sprintf("declare consumer %s on %s", cs.Config.Durable, cs.Stream), func(ctx context.Context) error {
		var err error
		cons, err = b.declareConsumer(ctx, cs)
		return err
	})
	return cons, err
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
