package bus

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// Message headers written by Publish. NATS header keys are case-sensitive.
const (
	// HeaderContentType says how the payload is encoded.
	HeaderContentType = "Content-Type"
	// HeaderMessageType is the protobuf full name of the payload's message, so a consumer can
	// tell a message of the wrong type from a corrupt one.
	HeaderMessageType = "Tandem-Message-Type"
	// ContentTypeProtobuf is the only content type Tandem publishes.
	ContentTypeProtobuf = "application/protobuf"
)

// headerAllowance is kept out of MaxPayload for the headers Publish adds (message id, content
// and message type, trace context), since the server's limit covers headers and payload together.
const headerAllowance = 4 << 10

// MaxPayload is the largest marshalled message Publish accepts: the server's max payload less
// room for headers. Publishers of batches split them to stay under it.
func (b *Bus) MaxPayload() int {
	return max(int(b.nc.MaxPayload())-headerAllowance, 0)
}

// MsgID returns a deterministic message id for parts: the hex SHA-256 of the parts, each
// prefixed with its length so that ("ab","c") and ("a","bc") differ.
func MsgID(parts ...string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Publish stores msg on subject and returns once JetStream has acknowledged it, so a nil
// error means the message is durably stored (or already was). msgID must be deterministic
// for the content: a publish retried with the same id within the duplicate window is dropped
// by the server and reported here as success.
func (b *Bus) Publish(ctx context.Context, subject string, msg proto.Message, msgID string) error {
	route, err := ParseSubject(subject)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if msgID == "" {
		return fmt.Errorf("publish %s: %w", subject, ErrNoMsgID)
	}
	if msg == nil {
		return fmt.Errorf("publish %s: nil message", subject)
	}
	// Deterministic marshalling keeps the bytes of equal messages equal, which content
	// hashes and message ids derived from them depend on.
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return fmt.Errorf("publish %s: marshal %s: %w", subject, msg.ProtoReflect().Descriptor().FullName(), err)
	}
	if limit := b.MaxPayload(); len(data) > limit {
		return fmt.Errorf("publish %s: %d bytes of %s, limit %d: %w",
			subject, len(data), msg.ProtoReflect().Descriptor().FullName(), limit, ErrPayloadTooLarge)
	}
	stream := streamOf(route.Kind)

	ctx, span := b.tracer.Start(ctx, "send tandem."+route.Kind.String(),
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			messagingSystem,
			semconv.MessagingOperationTypeSend,
			semconv.MessagingDestinationName(subject),
			semconv.MessagingMessageID(msgID),
			semconv.MessagingMessageBodySize(len(data)),
		))
	defer span.End()

	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(HeaderContentType, ContentTypeProtobuf)
	m.Header.Set(HeaderMessageType, string(msg.ProtoReflect().Descriptor().FullName()))
	b.propagator.Inject(ctx, headerCarrier(m.Header))

	// WithExpectStream turns a subject that lands in the wrong stream (a misdeclared server)
	// into an error instead of a message no consumer reads.
	ack, err := b.js.PublishMsg(ctx, m, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(stream))
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		// No stream took the subject: it was deleted under us (see recreate.go). Put it back
		// from the topology and publish once more.
		if rerr := b.redeclareStream(ctx, stream); rerr == nil {
			ack, err = b.js.PublishMsg(ctx, m, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(stream))
		} else {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			err = fmt.Errorf("%w: %w", ErrPayloadTooLarge, err)
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
		b.metrics.recordPublished(ctx, stream, publishError)
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	span.SetAttributes(attrStreamSequence.Int64(int64(ack.Sequence)), attrDuplicate.Bool(ack.Duplicate))
	if ack.Duplicate {
		b.metrics.recordPublished(ctx, stream, publishDuplicate)
		b.logger.DebugContext(ctx, "bus: duplicate publish dropped by the server",
			append(routeAttrs(route), slog.String(logKeySubject, subject), slog.String("msg_id", msgID))...)
		return nil
	}
	b.metrics.recordPublished(ctx, stream, publishStored)
	return nil
}

// Stored returns how many messages the bus holds on subject, delivered or not: in a work-queue
// stream, the messages not yet acknowledged. The scheduler uses it to tell a read that is late
// (its pages still queued) from one that was lost.
func (b *Bus) Stored(ctx context.Context, subject string) (uint64, error) {
	route, err := ParseSubject(subject)
	if err != nil {
		return 0, fmt.Errorf("stored on %s: %w", subject, err)
	}
	counts, err := b.storedOn(ctx, streamOf(route.Kind), subject)
	return counts[subject], err
}

// ExchangeJobsStored returns how many Exchange jobs the bus holds for each of the org's users
// whose jobs go to pool — queued, or taken by a worker and not yet done — in one request however
// many users the org has. Users without any are left out. The scheduler uses it not to queue a
// mailbox's read behind another.
func (b *Bus) ExchangeJobsStored(ctx context.Context, orgID, pool string) (map[string]uint64, error) {
	filter, err := exchangeJobsFilter(orgID, pool)
	if err != nil {
		return nil, err
	}
	counts, err := b.storedOn(ctx, StreamJobs, filter)
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(counts))
	for subject, n := range counts {
		if route, err := ParseSubject(subject); err == nil && n > 0 {
			out[route.UserID] = n
		}
	}
	return out, nil
}

// storedOn returns how many messages stream holds on each subject filter matches (a subject, or
// one with wildcards); nil when the stream is gone, since it holds nothing.
func (b *Bus) storedOn(ctx context.Context, stream, filter string) (map[string]uint64, error) {
	s, err := b.js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stored on %s: %w", filter, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("stored on %s: %w", filter, err)
	}
	return info.State.Subjects, nil
}
