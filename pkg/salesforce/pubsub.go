package salesforce

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	eventbusv1 "github.com/tandem-sync/tandem/proto/eventbus/v1"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Change Data Capture through the Pub/Sub API (gRPC, eventbus.v1.PubSub): Salesforce publishes
// a change event for every create, update, delete and undelete of an entity selected for change
// notifications, on /data/<Entity>ChangeEvent. A subscriber pulls them (num_requested, at most
// 100 outstanding), resumes after a stored replay id, and decodes each Avro payload with the
// schema its schema id names. Events are kept for 72 hours; a replay id older than that is
// refused (sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted).

// DefaultPubSubEndpoint is Salesforce's Pub/Sub API endpoint (TLS).
const DefaultPubSubEndpoint = "api.pubsub.salesforce.com:7443"

// MaxFetch is the most events a subscription can have requested and not yet received.
const MaxFetch = 100

// Change types of a change event.
const (
	ChangeCreate   = "CREATE"
	ChangeUpdate   = "UPDATE"
	ChangeDelete   = "DELETE"
	ChangeUndelete = "UNDELETE"
	// ChangeGapPrefix starts the types of events Salesforce could not build (GAP_CREATE ...,
	// GAP_OVERFLOW): they name the records but carry no field values.
	ChangeGapPrefix = "GAP_"
)

// ChangeTopic is the change event channel of a record kind.
func ChangeTopic(kind tandemv1.RecordKind) (string, bool) {
	switch kind {
	case tandemv1.RecordKind_RECORD_KIND_CONTACT:
		return "/data/" + objContact + "ChangeEvent", true
	case tandemv1.RecordKind_RECORD_KIND_EVENT:
		return "/data/" + objEvent + "ChangeEvent", true
	}
	return "", false
}

// ChangeEvent is one decoded change event.
type ChangeEvent struct {
	// ReplayID is the event's position in the stream: opaque bytes to store and resume after.
	ReplayID []byte
	// ID is the event's id.
	ID string
	// Entity is the object, e.g. "Contact".
	Entity string
	// RecordIDs are the records the change applies to (one transaction can change several
	// records the same way).
	RecordIDs []string
	// ChangeType is CREATE, UPDATE, DELETE, UNDELETE or a GAP_* type.
	ChangeType string
	// Origin is changeOrigin: for a change made through an API, the API and the client named
	// in the call's Sforce-Call-Options ("com/salesforce/api/rest/62.0;client=tandem"); empty
	// otherwise.
	Origin string
	// CommitUser is the id of the user who made the change; CommitTime when it was committed.
	CommitUser string
	CommitTime time.Time
	// ChangedFields names the fields an update changed ("Email", "Name.FirstName").
	ChangedFields []string
	// OwnerID is the records' owner when the event carries it: creates, undeletes and updates
	// that changed the owner. Empty otherwise (deletes and most updates).
	OwnerID string
}

// Client is the client the change's API call named (Sforce-Call-Options: client=...), or "".
// Tandem names itself on every write (WithClientName), so it recognises its own changes.
func (e ChangeEvent) Client() string {
	_, client, ok := strings.Cut(e.Origin, ";client=")
	if !ok {
		return ""
	}
	client, _, _ = strings.Cut(client, ";")
	return client
}

// FetchBatch is what one FetchResponse brought: possibly no events (a keepalive), and the
// latest replay id of the subscription, from which a new subscription can resume.
type FetchBatch struct {
	Events         []ChangeEvent
	LatestReplayID []byte
}

// Subscription says where a subscription starts.
type Subscription struct {
	// Topic is the channel, e.g. "/data/ContactChangeEvent" (see ChangeTopic).
	Topic string
	// ReplayID, when set, starts the subscription after that event (ReplayPreset CUSTOM);
	// otherwise it starts at the tip of the stream (LATEST), or at the oldest event retained
	// when Earliest is set.
	ReplayID []byte
	Earliest bool
	// Fetch is how many events to keep requested (at most MaxFetch, the default).
	Fetch int
	// IdleTimeout ends a subscription that received nothing, not even a keepalive, for this
	// long (DefaultIdleTimeout when zero): Salesforce sends an empty FetchResponse at least
	// every 270 seconds, so silence means a dead connection.
	IdleTimeout time.Duration
}

// DefaultIdleTimeout is twice Salesforce's keepalive period, and then some.
const DefaultIdleTimeout = 10 * time.Minute

// ErrReplayIDInvalid is in the chain of a subscription Salesforce refused because its replay id
// is invalid or no longer retained (older than 72 hours): resubscribe from LATEST or EARLIEST.
var ErrReplayIDInvalid = errors.New("salesforce: replay id invalid or no longer retained")

// PubSubError is a failure the Pub/Sub API reported: a gRPC status and Salesforce's error code
// (the "error-code" trailer, e.g. sfdc.platform.eventbus.grpc.service.auth.error).
type PubSubError struct {
	Op        string
	Code      codes.Code
	ErrorCode string
	Message   string
}

func (e *PubSubError) Error() string {
	if e.ErrorCode == "" {
		return fmt.Sprintf("pubsub %s: %s: %s", e.Op, e.Code, e.Message)
	}
	return fmt.Sprintf("pubsub %s: %s %s: %s", e.Op, e.Code, e.ErrorCode, e.Message)
}

// Is makes errors.Is(err, ErrReplayIDInvalid) hold for a refused replay id.
func (e *PubSubError) Is(target error) bool {
	return target == ErrReplayIDInvalid && strings.HasPrefix(e.ErrorCode, "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.")
}

// PubSubOption configures a PubSub client.
type PubSubOption func(*pubsubSettings)

type pubsubSettings struct {
	insecure bool
	dial     []grpc.DialOption
}

// PubSubPlaintext speaks gRPC without TLS: only for a simulator on this machine.
func PubSubPlaintext() PubSubOption { return func(s *pubsubSettings) { s.insecure = true } }

// PubSubDialOptions adds gRPC dial options (a bufconn dialer in tests).
func PubSubDialOptions(opts ...grpc.DialOption) PubSubOption {
	return func(s *pubsubSettings) { s.dial = append(s.dial, opts...) }
}

// PubSub subscribes to an org's change events as the connector's integration user. It is safe
// for concurrent use; Close it when done.
type PubSub struct {
	c    *Connector
	conn *grpc.ClientConn
	api  eventbusv1.PubSubClient

	mu      sync.Mutex
	schemas map[string]*changeSchema
}

// PubSub connects to the Pub/Sub API at endpoint (host:port; DefaultPubSubEndpoint for
// Salesforce) with the connector's credentials. The connection is made on first use.
func (c *Connector) PubSub(endpoint string, opts ...PubSubOption) (*PubSub, error) {
	var cfg pubsubSettings
	for _, o := range opts {
		o(&cfg)
	}
	if endpoint == "" {
		endpoint = DefaultPubSubEndpoint
	}
	creds := credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	if cfg.insecure {
		creds = insecure.NewCredentials()
	}
	dial := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, cfg.dial...)
	if h := c.grpcStats(); h != nil {
		dial = append(dial, grpc.WithStatsHandler(h))
	}
	conn, err := grpc.NewClient(endpoint, dial...)
	if err != nil {
		return nil, syncerr.Wrap(syncerr.SalesforceConfigMissing, fmt.Errorf("pubsub endpoint %q: %w", endpoint, err))
	}
	return &PubSub{c: c, conn: conn, api: eventbusv1.NewPubSubClient(conn), schemas: map[string]*changeSchema{}}, nil
}

// Close closes the connection.
func (p *PubSub) Close() error { return p.conn.Close() }

// grpcStats makes each Pub/Sub call (GetTopic, GetSchema, a Subscribe stream for as long as it
// lasts) an otelgrpc client span and measures it, on the connector's providers; nil when it
// has none. Spans carry the method and status, never the metadata (the access token), and no
// trace context is sent to Salesforce.
func (c *Connector) grpcStats() stats.Handler {
	tp, mp := c.cfg.tracerProvider, c.cfg.meterProvider
	if tp == nil && mp == nil {
		return nil
	}
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	return otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithMeterProvider(mp),
		otelgrpc.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelgrpc.WithSpanAttributes(c.metrics.org))
}

// session returns the integration user's token and the metadata that authenticates a call.
func (p *PubSub) session(ctx context.Context) (context.Context, *token, error) {
	t, err := p.c.auth.token(ctx, p.c.auth.integrationSubject())
	if err != nil {
		return nil, nil, err
	}
	md := metadata.Pairs("accesstoken", t.accessToken, "instanceurl", t.instanceURL, "tenantid", p.c.orgID)
	return metadata.NewOutgoingContext(ctx, md), t, nil
}

// failed classifies a failed call, and drops a token Salesforce no longer accepts so that the
// next call obtains a new one.
func (p *PubSub) failed(op string, err error, trailer metadata.MD, t *token) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return syncerr.Wrap(syncerr.SalesforceUnavailable, fmt.Errorf("pubsub %s: %w", op, err))
	}
	pe := &PubSubError{Op: op, Code: st.Code(), Message: st.Message()}
	if v := trailer.Get("error-code"); len(v) > 0 {
		pe.ErrorCode = v[0]
	}
	code := classifyPubSub(pe)
	if code == syncerr.SalesforceAuthFailed && t != nil {
		p.c.auth.forget(p.c.auth.integrationSubject(), t)
	}
	return &syncerr.Error{Code: code, Detail: pe.Error(), Upstream: pe.ErrorCode, Err: pe}
}

// classifyPubSub maps a Pub/Sub API failure to Tandem's catalogue.
func classifyPubSub(e *PubSubError) syncerr.Code {
	suffix := strings.TrimPrefix(e.ErrorCode, "sfdc.platform.eventbus.grpc.")
	switch {
	case strings.HasPrefix(suffix, "service.auth") || e.Code == codes.Unauthenticated:
		return syncerr.SalesforceAuthFailed
	case suffix == "subscription.limit.exceeded" || strings.HasPrefix(suffix, "service.protection") ||
		suffix == "concurrent.client.limit.exceeded" || e.Code == codes.ResourceExhausted:
		return syncerr.SalesforceRequestLimit
	case suffix == "topic.not.found" || e.Code == codes.NotFound:
		return syncerr.SalesforceNotFound
	case suffix == "subscription.topic.cannot.subscribe" || strings.HasSuffix(suffix, "meta.permission") || e.Code == codes.PermissionDenied:
		return syncerr.SalesforceInsufficientAccess
	case e.Code == codes.Unavailable || e.Code == codes.Internal || e.Code == codes.Unknown || e.Code == codes.Aborted ||
		e.Code == codes.DeadlineExceeded || strings.HasSuffix(suffix, ".unavailable") || suffix == "subscription.internal.error":
		return syncerr.SalesforceUnavailable
	}
	return syncerr.SalesforceRejected
}

// SchemaID returns the id of a topic's current event schema (GetTopic).
func (p *PubSub) SchemaID(ctx context.Context, topic string) (string, error) {
	ctx, t, err := p.session(ctx)
	if err != nil {
		return "", err
	}
	var trailer metadata.MD
	info, err := p.api.GetTopic(ctx, &eventbusv1.TopicRequest{TopicName: topic}, grpc.Trailer(&trailer))
	if err != nil {
		return "", p.failed("GetTopic "+topic, err, trailer, t)
	}
	return info.GetSchemaId(), nil
}

// schema returns the decoder for a schema id, fetching the schema once (GetSchema).
func (p *PubSub) schema(ctx context.Context, id string) (*changeSchema, error) {
	p.mu.Lock()
	s := p.schemas[id]
	p.mu.Unlock()
	if s != nil {
		return s, nil
	}
	ctx, t, err := p.session(ctx)
	if err != nil {
		return nil, err
	}
	var trailer metadata.MD
	info, err := p.api.GetSchema(ctx, &eventbusv1.SchemaRequest{SchemaId: id}, grpc.Trailer(&trailer))
	if err != nil {
		return nil, p.failed("GetSchema "+id, err, trailer, t)
	}
	if s, err = parseChangeSchema(info.GetSchemaJson()); err != nil {
		return nil, syncerr.Wrap(syncerr.SalesforceMalformedResponse, fmt.Errorf("schema %s: %w", id, err))
	}
	p.mu.Lock()
	p.schemas[id] = s
	p.mu.Unlock()
	return s, nil
}

// Subscribe streams a topic's change events to handle, one FetchResponse at a time, until ctx
// ends or the stream fails; it always returns an error (ctx's, or the failure, classified).
// It keeps up to sub.Fetch events requested, asking for more as handle consumes them, so a slow
// handler holds the stream back rather than buffering events. A batch handle returned from
// without error is consumed: its LatestReplayID is where a new subscription should resume.
func (p *PubSub) Subscribe(ctx context.Context, sub Subscription, handle func(ctx context.Context, b FetchBatch) error) error {
	fetch := sub.Fetch
	if fetch <= 0 || fetch > MaxFetch {
		fetch = MaxFetch
	}
	idleTimeout := sub.IdleTimeout
	if idleTimeout <= 0 {
		idleTimeout = DefaultIdleTimeout
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var idled atomic.Bool
	idle := time.AfterFunc(idleTimeout, func() { idled.Store(true); cancel() })
	defer idle.Stop()
	sctx, t, err := p.session(ctx)
	if err != nil {
		return err
	}
	stream, err := p.api.Subscribe(sctx)
	if err != nil {
		return p.failed("Subscribe "+sub.Topic, err, nil, t)
	}
	first := &eventbusv1.FetchRequest{TopicName: sub.Topic, NumRequested: int32(fetch)}
	switch {
	case len(sub.ReplayID) > 0:
		first.ReplayPreset, first.ReplayId = eventbusv1.ReplayPreset_CUSTOM, sub.ReplayID
	case sub.Earliest:
		first.ReplayPreset = eventbusv1.ReplayPreset_EARLIEST
	default:
		first.ReplayPreset = eventbusv1.ReplayPreset_LATEST
	}
	recvErr := func(err error) error {
		if idled.Load() && parent.Err() == nil {
			return syncerr.New(syncerr.SalesforceUnavailable, "pubsub Subscribe %s: nothing received for %s, not even a keepalive", sub.Topic, idleTimeout)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, io.EOF) {
			return syncerr.New(syncerr.SalesforceUnavailable, "pubsub Subscribe %s: the server ended the stream", sub.Topic)
		}
		return p.failed("Subscribe "+sub.Topic, err, stream.Trailer(), t)
	}
	if err := stream.Send(first); err != nil {
		// A failed send is reported by Recv with the stream's status.
		_, err = stream.Recv()
		return recvErr(err)
	}
	outstanding := fetch
	for {
		resp, err := stream.Recv()
		if err != nil {
			return recvErr(err)
		}
		idle.Reset(idleTimeout)
		batch := FetchBatch{LatestReplayID: resp.GetLatestReplayId()}
		for _, ce := range resp.GetEvents() {
			ev, err := p.decode(ctx, ce)
			if err != nil {
				return err
			}
			batch.Events = append(batch.Events, ev)
		}
		if err := handle(ctx, batch); err != nil {
			return err
		}
		// The server sends no more than requested, so the client keeps the count itself.
		outstanding -= len(resp.GetEvents())
		if outstanding <= fetch/2 {
			if err := stream.Send(&eventbusv1.FetchRequest{TopicName: sub.Topic, NumRequested: int32(fetch - outstanding)}); err != nil {
				_, err = stream.Recv()
				return recvErr(err)
			}
			outstanding = fetch
		}
	}
}

// decode reads one received event.
func (p *PubSub) decode(ctx context.Context, ce *eventbusv1.ConsumerEvent) (ChangeEvent, error) {
	s, err := p.schema(ctx, ce.GetEvent().GetSchemaId())
	if err != nil {
		return ChangeEvent{}, err
	}
	ev, err := s.decode(ce.GetEvent().GetPayload())
	if err != nil {
		return ChangeEvent{}, syncerr.Wrap(syncerr.SalesforceMalformedResponse, fmt.Errorf("change event %s: %w", ce.GetEvent().GetId(), err))
	}
	ev.ID, ev.ReplayID = ce.GetEvent().GetId(), ce.GetReplayId()
	return ev, nil
}
