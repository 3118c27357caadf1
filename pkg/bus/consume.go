package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Defaults for ConsumeOptions.
const (
	DefaultConcurrency  = 1
	DefaultDrainTimeout = 30 * time.Second
	DefaultBackoffBase  = time.Second
	DefaultBackoffMax   = 5 * time.Minute
)

const (
	// pollWait bounds one pull request. Shorter only costs more idle requests; shutdown does
	// not wait for it.
	pollWait = 10 * time.Second
	// settleTimeout bounds a DoubleAck, a dead-letter publish and the final flush, which run
	// on a context that outlives the consume loop's so that shutdown does not abandon them.
	settleTimeout = 10 * time.Second
	// maxTermReason keeps the reason sent with a Term (shown in the server's advisory) short.
	maxTermReason = 256
)

// fetchRetry paces pull requests after failures (server away, consumer missing). The loop
// never gives up by itself: it ends with its context or the connection.
var fetchRetry = retry.Policy{Base: time.Second, Max: 30 * time.Second, Jitter: retry.DefaultJitter}

// Handler processes one message. Its error decides what happens to the message:
//   - nil: acked.
//   - an error that classifies itself as permanent (a Permanent() bool method returning true,
//     as *syncerr.Error does for non-retryable codes, or one wrapped with Permanent), or a
//     failed Message.Decode: terminated and recorded as a dead letter.
//   - any other error: redelivered after the delay the error asks for (a RetryAfter()
//     time.Duration method) or an exponential backoff, until the consumer's MaxDeliver is
//     reached; then it is dead-lettered too.
//
// Handlers must be idempotent: delivery is at least once. A panic is recovered and treated
// as a transient error.
type Handler func(ctx context.Context, m *Message) error

// Message is a message delivered to a Handler.
type Message struct {
	// Subject is the subject the message was published on.
	Subject string
	// Route is Subject taken apart into ids; zero if the subject is not a Tandem subject.
	Route Subject
	// Data is the payload.
	Data []byte
	// Headers are the message headers; keys are case-sensitive.
	Headers nats.Header
	// Stream is the stream the message is stored in.
	Stream string
	// Consumer is the durable consumer it was delivered to.
	Consumer string
	// StreamSequence is the message's sequence in its stream.
	StreamSequence uint64
	// NumDelivered counts deliveries of the message, this one included.
	NumDelivered uint64
	// Timestamp is when the stream stored the message.
	Timestamp time.Time

	msg jetstream.Msg
	// decodeErr is the failure of Decode, if any: the real cause whatever the handler returns.
	decodeErr atomic.Pointer[syncerr.Error]
}

// Decode unmarshals the payload into into, a non-nil message. A failure is a *syncerr.Error with code
// SYNC_MALFORMED_MESSAGE, and the bus dead-letters the message whatever error the handler
// then returns: redelivering bytes that cannot be read cannot help.
func (m *Message) Decode(into proto.Message) error {
	want := string(into.ProtoReflect().Descriptor().FullName())
	var err error
	switch ct, mt := headerValue(m.Headers, HeaderContentType), headerValue(m.Headers, HeaderMessageType); {
	case ct != "" && ct != ContentTypeProtobuf:
		err = fmt.Errorf("content type %q, want %q", ct, ContentTypeProtobuf)
	case mt != "" && mt != want:
		err = fmt.Errorf("message type %s, want %s", mt, want)
	default:
		err = proto.Unmarshal(m.Data, into)
	}
	if err != nil {
		derr := syncerr.Wrap(syncerr.SyncMalformedMessage,
			fmt.Errorf("decode %s seq %d on %s as %s: %w", m.Stream, m.StreamSequence, m.Subject, want, err))
		m.decodeErr.Store(derr)
		return derr
	}
	return nil
}

// InProgress tells the server the message is still being worked on, resetting its AckWait.
// The bus already does this every AckWait/3 while the handler runs; call it only to signal
// progress explicitly.
func (m *Message) InProgress() error {
	if err := m.msg.InProgress(); err != nil {
		return fmt.Errorf("in progress %s seq %d: %w", m.Stream, m.StreamSequence, err)
	}
	return nil
}

func headerValue(h nats.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// ConsumeOption tunes Consume.
type ConsumeOption func(*consumeOptions)

type consumeOptions struct {
	concurrency  int
	drainTimeout time.Duration
	backoffBase  time.Duration
	backoffMax   time.Duration
	doubleAck    *bool
}

// redelivery is the retry policy of messages whose handler failed: base after the first
// delivery, doubling with each, capped, with jitter so that messages failing together (an
// upstream outage) do not all come back at the same instant.
func (o consumeOptions) redelivery() retry.Policy {
	return retry.Policy{Base: o.backoffBase, Max: o.backoffMax, Jitter: retry.DefaultJitter}
}

// WithConcurrency runs up to n handlers in parallel (default 1).
func WithConcurrency(n int) ConsumeOption {
	return func(o *consumeOptions) { o.concurrency = n }
}

// WithDrainTimeout bounds how long Consume waits for in-flight handlers after its context is
// cancelled before cancelling theirs (default 30s).
func WithDrainTimeout(d time.Duration) ConsumeOption {
	return func(o *consumeOptions) { o.drainTimeout = d }
}

// WithBackoff sets the redelivery backoff after transient failures: base after the first
// delivery, doubling with each delivery, capped at limit, with jitter (defaults 1s and 5m).
func WithBackoff(base, limit time.Duration) ConsumeOption {
	return func(o *consumeOptions) { o.backoffBase, o.backoffMax = base, limit }
}

// WithDoubleAck overrides the consumer's DoubleAck setting from the topology.
func WithDoubleAck(on bool) ConsumeOption {
	return func(o *consumeOptions) { o.doubleAck = &on }
}

// Consume runs handler for the messages of the named durable consumer until ctx is cancelled;
// a pool's consumer (PoolConsumer) is created if it does not exist yet.
// Then it stops fetching, hands back messages fetched but not started, waits for in-flight
// handlers (up to the drain timeout, after which their context is cancelled and they are
// awaited), flushes their acks and returns nil. It returns an error at once if the consumer
// is unknown or not declared, and if the connection is closed under it.
func (b *Bus) Consume(ctx context.Context, consumer string, handler Handler, opts ...ConsumeOption) error {
	spec, ok := b.topology.Consumer(consumer)
	if !ok {
		return fmt.Errorf("consume %s: %w", consumer, ErrUnknownConsumer)
	}
	if handler == nil {
		return fmt.Errorf("consume %s: nil handler", consumer)
	}
	o := consumeOptions{
		concurrency:  DefaultConcurrency,
		drainTimeout: DefaultDrainTimeout,
		backoffBase:  DefaultBackoffBase,
		backoffMax:   DefaultBackoffMax,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.concurrency < 1 || o.drainTimeout <= 0 || o.redelivery().Validate() != nil {
		return fmt.Errorf("consume %s: invalid options (concurrency %d, drain timeout %s, backoff %s..%s)",
			consumer, o.concurrency, o.drainTimeout, o.backoffBase, o.backoffMax)
	}
	doubleAck := spec.DoubleAck
	if o.doubleAck != nil {
		doubleAck = *o.doubleAck
	}

	var cons jetstream.Consumer
	var err error
	if spec.Pool != "" {
		cons, err = b.declareConsumerStep(ctx, spec)
	} else {
		cons, err = b.js.Consumer(ctx, spec.Stream, consumer)
	}
	if err != nil {
		if ctx.Err() != nil {
			// Stopped while finding or declaring the consumer: a normal stop, like one later.
			return nil
		}
		return fmt.Errorf("consume %s on %s: %w", consumer, spec.Stream, err)
	}
	// The server's view of AckWait and MaxDeliver is authoritative: it is what redelivers.
	info := cons.CachedInfo()
	l := &consumeLoop{
		bus:        b,
		spec:       spec,
		cons:       cons,
		name:       consumer,
		handler:    handler,
		opts:       o,
		doubleAck:  doubleAck,
		ackWait:    info.Config.AckWait,
		maxDeliver: info.Config.MaxDeliver,
		logger:     b.logger.With(slog.String(logKeyConsumer, consumer), slog.String(logKeyStream, spec.Stream)),
	}
	return l.run(ctx)
}

// consumeLoop is one running Consume.
type consumeLoop struct {
	bus        *Bus
	spec       ConsumerSpec
	cons       jetstream.Consumer
	name       string
	handler    Handler
	opts       consumeOptions
	doubleAck  bool
	ackWait    time.Duration
	maxDeliver int
	logger     *slog.Logger

	// stopping is set once the loop has stopped fetching; failures seen after that are
	// handed back at once instead of after a backoff, so another replica takes over.
	stopping atomic.Bool
}

func (l *consumeLoop) run(ctx context.Context) error {
	// Handlers run on a context that survives the loop's cancellation, so that shutdown lets
	// them finish; it is cancelled only when the drain timeout expires.
	handlerCtx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()

	// fetchCtx also ends when the connection closes for good, which a pending pull request
	// would otherwise notice only when it expires.
	fetchCtx, cancelFetch := context.WithCancelCause(ctx)
	defer cancelFetch(nil)
	closed := l.bus.nc.StatusChanged(nats.CLOSED)
	defer l.bus.nc.RemoveStatusListener(closed)
	go func() {
		select {
		case _, ok := <-closed:
			if ok {
				cancelFetch(nats.ErrConnectionClosed)
			}
		case <-fetchCtx.Done():
		}
	}()
	if l.bus.nc.IsClosed() {
		cancelFetch(nats.ErrConnectionClosed)
	}

	// slots is a semaphore of handler slots. A slot is taken before a message is requested,
	// so every fetched message starts at once and its AckWait is spent on work, not waiting.
	slots := make(chan struct{}, l.opts.concurrency)
	var handlers sync.WaitGroup
	var runErr error
	failures := 0 // consecutive failed pull requests

loop:
	for {
		select {
		case slots <- struct{}{}:
		case <-fetchCtx.Done():
			break loop
		}
		n := 1
	reserve:
		for n < cap(slots) {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break reserve
			}
		}

		started, err := l.fetch(fetchCtx, handlerCtx, n, slots, &handlers)
		for range n - started {
			<-slots
		}
		switch {
		case err == nil:
			failures = 0
		case errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionDraining) ||
			errors.Is(err, jetstream.ErrConnectionClosed):
			runErr = err
			break loop
		default:
			if l.recreate(fetchCtx) {
				continue // the consumer was gone and is back: pull again at once
			}
			failures++
			wait := fetchRetry.Delay(failures)
			l.logger.WarnContext(ctx, "bus: pull request failed", slog.Any("error", err), slog.Duration("retry_in", wait))
			if retry.Sleep(fetchCtx, wait) != nil {
				break loop
			}
		}
	}
	if runErr == nil && ctx.Err() == nil {
		// The loop ended without being asked to: the connection closed under it.
		runErr = context.Cause(fetchCtx)
	}

	l.stopping.Store(true)
	l.drain(ctx, &handlers, cancelHandlers)
	if runErr != nil {
		return fmt.Errorf("consume %s: %w", l.name, runErr)
	}
	return nil
}

// fetch pulls up to n messages and starts a handler for each as it arrives. It returns how
// many handlers it started; each started handler releases its slot when done.
func (l *consumeLoop) fetch(ctx, handlerCtx context.Context, n int, slots chan struct{}, handlers *sync.WaitGroup) (int, error) {
	pollCtx, cancel := context.WithTimeout(ctx, pollWait)
	defer cancel()
	batch, err := l.cons.Fetch(n, jetstream.FetchContext(pollCtx))
	if err != nil {
		return 0, err
	}
	started := 0
	for jm := range batch.Messages() {
		if ctx.Err() != nil {
			// Fetched as shutdown began: hand it back now rather than let it wait out AckWait.
			if err := jm.Nak(); err != nil {
				l.logger.WarnContext(ctx, "bus: hand back message on shutdown", slog.Any("error", err), slog.String(logKeySubject, jm.Subject()))
			}
			continue
		}
		started++
		handlers.Go(func() {
			defer func() { <-slots }()
			l.process(handlerCtx, jm)
		})
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return started, err
	}
	return started, nil
}

// drain waits for in-flight handlers, cancels them after the drain timeout, and flushes the
// acks they sent so that "returned" means the server has them.
func (l *consumeLoop) drain(ctx context.Context, handlers *sync.WaitGroup, cancelHandlers context.CancelFunc) {
	done := make(chan struct{})
	go func() {
		handlers.Wait()
		close(done)
	}()
	timer := time.NewTimer(l.opts.drainTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		l.logger.WarnContext(ctx, "bus: drain timeout reached, cancelling in-flight handlers", slog.Duration("drain_timeout", l.opts.drainTimeout))
		cancelHandlers()
		<-done
	}
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if err := l.bus.nc.FlushWithContext(flushCtx); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		l.logger.WarnContext(ctx, "bus: flush acks on shutdown", slog.Any("error", err))
	}
}

// process runs the handler for one message and settles the message by the outcome.
func (l *consumeLoop) process(ctx context.Context, jm jetstream.Msg) {
	start := time.Now()
	meta, err := jm.Metadata()
	if err != nil {
		// Only a message without JetStream reply metadata gets here, which a pull consumer
		// never delivers; let the server redeliver it rather than drop it.
		l.logger.ErrorContext(ctx, "bus: message without JetStream metadata", slog.Any("error", err), slog.String(logKeySubject, jm.Subject()))
		return
	}
	m := &Message{
		Subject:        jm.Subject(),
		Data:           jm.Data(),
		Headers:        jm.Headers(),
		Stream:         meta.Stream,
		Consumer:       meta.Consumer,
		StreamSequence: meta.Sequence.Stream,
		NumDelivered:   meta.NumDelivered,
		Timestamp:      meta.Timestamp,
		msg:            jm,
	}
	m.Route, _ = ParseSubject(m.Subject) // a foreign subject leaves Route zero; settle handles it

	ctx = l.bus.propagator.Extract(ctx, headerCarrier(m.Headers))
	ctx, span := l.bus.tracer.Start(ctx, "process tandem."+m.Route.Kind.String(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			messagingSystem,
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(m.Subject),
			semconv.MessagingConsumerGroupName(l.name),
			semconv.MessagingMessageBodySize(len(m.Data)),
			attrStreamSequence.Int64(int64(m.StreamSequence)),
			attrDeliveryCount.Int64(int64(m.NumDelivered)),
		))
	defer span.End()
	logger := l.logger.With(append(routeAttrs(m.Route),
		slog.String(logKeySubject, m.Subject),
		slog.Uint64(logKeySeq, m.StreamSequence),
		slog.Uint64(logKeyDelivery, m.NumDelivered))...)

	stopHeartbeat := l.heartbeat(ctx, m, logger)
	herr := l.invoke(ctx, m, logger)
	stopHeartbeat()

	if herr != nil {
		span.RecordError(herr)
		span.SetStatus(codes.Error, "handler failed")
	}
	outcome := l.settle(ctx, m, herr, logger)
	l.bus.metrics.recordHandled(ctx, l.name, outcome, time.Since(start))
}

// invoke calls the handler, turning a panic into a transient error so that a bug hit by one
// message neither kills the process nor loses the message.
func (l *consumeLoop) invoke(ctx context.Context, m *Message, logger *slog.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			logger.ErrorContext(ctx, "bus: handler panicked", slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return l.handler(ctx, m)
}

// heartbeat sends InProgress every AckWait/3 until stop is called, so a long handler is never
// redelivered to another process mid-flight. stop returns once no more InProgress can be sent,
// so it never races the final ack.
func (l *consumeLoop) heartbeat(ctx context.Context, m *Message, logger *slog.Logger) (stop func()) {
	interval := l.ackWait / 3
	if interval <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				if err := m.msg.InProgress(); err != nil {
					logger.WarnContext(ctx, "bus: in-progress heartbeat", slog.Any("error", err))
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// settle acks, naks or terminates the message by the handler's error, and returns the outcome.
func (l *consumeLoop) settle(ctx context.Context, m *Message, herr error, logger *slog.Logger) string {
	settleCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()

	if herr == nil {
		var err error
		if l.doubleAck {
			err = m.msg.DoubleAck(settleCtx)
		} else {
			err = m.msg.Ack()
		}
		if err != nil {
			// The work is done but the server may not know; it redelivers after AckWait and
			// the idempotent handler finds nothing left to do.
			logger.ErrorContext(ctx, "bus: ack failed", slog.Any("error", err))
		} else {
			logger.DebugContext(ctx, "bus: message handled")
		}
		return outcomeAck
	}

	// A failed Decode decides the outcome even if the handler reworded it as transient.
	decodeErr := m.decodeErr.Load()
	permanent := decodeErr != nil || IsPermanent(herr)
	exhausted := l.maxDeliver > 0 && m.NumDelivered >= uint64(l.maxDeliver)
	if !permanent && !exhausted {
		delay := l.retryDelay(herr, m.NumDelivered)
		var err error
		if l.stopping.Load() {
			// Shutting down: let another replica retry now instead of after the backoff.
			delay = 0
			err = m.msg.Nak()
		} else {
			err = m.msg.NakWithDelay(delay)
		}
		// Contention (another process holds the user) is expected work, not a fault.
		level := slog.LevelWarn
		if IsContended(herr) {
			level = slog.LevelDebug
		}
		logger.Log(ctx, level, "bus: handler failed, message will be redelivered",
			slog.Any("error", herr), slog.Duration("delay", delay), slog.Int("max_deliver", l.maxDeliver))
		if err != nil {
			logger.ErrorContext(ctx, "bus: nak failed; the server redelivers after AckWait", slog.Any("error", err))
		}
		return outcomeNak
	}

	syncErr := syncerr.ToProto(herr)
	if decodeErr != nil {
		syncErr = decodeErr.Proto()
	}
	if !permanent {
		syncErr.Message = fmt.Sprintf("gave up after %d deliveries: %s", m.NumDelivered, syncErr.Message)
	}
	if err := l.deadLetter(settleCtx, m, syncErr, logger); err != nil {
		// Without the dead letter the failure would vanish; keep the message instead. Below
		// MaxDeliver it comes back after the backoff and is dead-lettered then; at MaxDeliver
		// the server stops delivering it but keeps it in the stream for an operator.
		logger.ErrorContext(ctx, "bus: cannot record dead letter; message kept in the stream",
			slog.Any("error", err), slog.Any("handler_error", herr))
		if nerr := m.msg.NakWithDelay(l.retryDelay(err, m.NumDelivered)); nerr != nil {
			logger.ErrorContext(ctx, "bus: nak failed; the server redelivers after AckWait", slog.Any("error", nerr))
		}
		return outcomeNak
	}
	if err := m.msg.TermWithReason(termReason(syncErr)); err != nil {
		// The dead letter is recorded; a redelivery would be dead-lettered again under the
		// same message id, which the dead-letter stream drops as a duplicate.
		logger.ErrorContext(ctx, "bus: term failed", slog.Any("error", err))
	}
	logger.ErrorContext(ctx, "bus: message given up on and dead-lettered",
		slog.Any("error", herr), slog.Bool("permanent", permanent), slog.String("code", syncErr.GetCode()))
	return outcomeTerm
}

// deadLetter records m on its org's dead-letter subject. Dead letters that fail are not
// dead-lettered again (that would loop), and neither are messages on foreign subjects, which
// have no org to file them under; both are only logged.
func (l *consumeLoop) deadLetter(ctx context.Context, m *Message, syncErr *tandemv1.SyncError, logger *slog.Logger) error {
	if m.Stream == StreamDead || m.Route.OrgID == "" {
		logger.ErrorContext(ctx, "bus: dropping a message that cannot be dead-lettered",
			slog.String("code", syncErr.GetCode()), slog.String("error_message", syncErr.GetMessage()), slog.Int("bytes", len(m.Data)))
		return nil
	}
	subject, err := DeadSubject(m.Route.OrgID)
	if err != nil {
		return err
	}
	dl := &tandemv1.DeadLetter{
		Stream:         m.Stream,
		Consumer:       l.name,
		Subject:        m.Subject,
		StreamSequence: m.StreamSequence,
		Deliveries:     m.NumDelivered,
		Error:          syncErr,
		Data:           m.Data,
		OrgId:          m.Route.OrgID,
		UserId:         m.Route.UserID,
		FailedAt:       timestamppb.Now(),
	}
	// Keyed by stream and sequence, so a message dead-lettered again after a lost Term is
	// stored once.
	return l.bus.Publish(ctx, subject, dl, MsgID("dead-letter", m.Stream, fmt.Sprint(m.StreamSequence)))
}

// retryDelay is how long a transient failure waits before redelivery: what the error asks
// for, or the retry policy's delay for this delivery count (the broker counts the attempts).
func (l *consumeLoop) retryDelay(err error, delivered uint64) time.Duration {
	return l.opts.redelivery().DelayFor(err, int(min(delivered, math.MaxInt32)))
}

func termReason(e *tandemv1.SyncError) string {
	reason := e.GetCode() + ": " + e.GetMessage()
	reason = strings.Join(strings.Fields(reason), " ")
	if len(reason) > maxTermReason {
		reason = strings.ToValidUTF8(reason[:maxTermReason], "")
	}
	return reason
}
