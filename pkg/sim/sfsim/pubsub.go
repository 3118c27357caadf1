package sfsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	eventbusv1 "github.com/tandem-sync/tandem/proto/eventbus/v1"
)

// The Pub/Sub API (eventbus.v1.PubSub over gRPC) for the org's change events: GetTopic,
// GetSchema and Subscribe, on a listener of its own, as Salesforce serves it apart from the
// REST API. Every call authenticates like the REST API does, with a session token, in the
// metadata headers accesstoken, instanceurl and tenantid (the org id). Failures are gRPC
// statuses whose message ends in "rpcId: <id>" and whose trailer "error-code" holds
// Salesforce's sfdc.platform.eventbus.grpc.* code. Publishing is not served.

// Topics of change events.
const (
	TopicContactChanges = "/data/ContactChangeEvent"
	TopicEventChanges   = "/data/EventChangeEvent"
	// TopicAllChanges is the standard channel carrying the change events of every selected entity.
	TopicAllChanges = "/data/ChangeEvents"
)

// Pub/Sub API error codes (the "error-code" trailer).
const (
	PubSubErrAuth             = "sfdc.platform.eventbus.grpc.service.auth.error"
	PubSubErrAuthHeaders      = "sfdc.platform.eventbus.grpc.service.auth.headers.invalid"
	PubSubErrTopicNotFound    = "sfdc.platform.eventbus.grpc.topic.not.found"
	PubSubErrTopicEmpty       = "sfdc.platform.eventbus.grpc.topic.validation.empty"
	PubSubErrSchemaEmpty      = "sfdc.platform.eventbus.grpc.schema.validation.failed"
	PubSubErrSchemaNotFound   = "sfdc.platform.eventbus.grpc.schema.meta.permission"
	PubSubErrReplayCorrupted  = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
	PubSubErrReplayMissing    = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"
	PubSubErrRequestedInvalid = "sfdc.platform.eventbus.grpc.subscription.fetch.requested.events.invalid"
	PubSubErrTopicMismatch    = "sfdc.platform.eventbus.grpc.subscription.fetch.topic.mismatch"
	PubSubErrUnavailable      = "sfdc.platform.eventbus.grpc.service.unavailable"
)

// maxRequested is the most events a subscription can have requested and not yet received.
const maxRequested = 100

// pubsubState is the org's event bus and Pub/Sub API settings.
type pubsubState struct {
	log       *changeLog
	schemas   cdcSchemas
	keepalive time.Duration

	// active counts the subscriptions set up and not yet ended; made, every one set up.
	active atomic.Int64
	made   atomic.Int64

	mu   sync.Mutex
	drop chan struct{} // closed by DropPubSubStreams
}

func (p *pubsubState) init(cfg PubSubConfig) {
	p.log = newChangeLog(cfg)
	p.keepalive = cfg.Keepalive
	if p.keepalive <= 0 {
		p.keepalive = DefaultPubSubKeepalive
	}
	p.drop = make(chan struct{})
}

func (p *pubsubState) dropped() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.drop
}

// DropPubSubStreams ends every open subscription with UNAVAILABLE, as a Salesforce service
// restart would; subscribers must reconnect.
func (s *Server) DropPubSubStreams() {
	s.pubsub.mu.Lock()
	defer s.pubsub.mu.Unlock()
	close(s.pubsub.drop)
	s.pubsub.drop = make(chan struct{})
}

// PubSubSubscribers is how many subscriptions are open and past their first FetchRequest:
// a LATEST subscription sees every event committed from then on.
func (s *Server) PubSubSubscribers() int { return int(s.pubsub.active.Load()) }

// PubSubSubscriptionsMade is how many subscriptions were ever set up (past their first
// FetchRequest), ended ones included: a duplicate that came and went still counts.
func (s *Server) PubSubSubscriptionsMade() int { return int(s.pubsub.made.Load()) }

// LatestReplayID is the replay id of the org's newest change event (nil before the first).
func (s *Server) LatestReplayID() []byte {
	if id := s.pubsub.log.latest(); id > 0 {
		return encodeReplayID(id)
	}
	return nil
}

// RegisterPubSub registers the org's Pub/Sub API on g.
func (s *Server) RegisterPubSub(g *grpc.Server) {
	eventbusv1.RegisterPubSubServer(g, &pubsubServer{s: s})
}

// ServePubSub serves the Pub/Sub API (plain-text gRPC: put TLS in front for anything but a
// local test) on lis until ctx ends, then stops gracefully, cutting open subscriptions.
func (s *Server) ServePubSub(ctx context.Context, lis net.Listener) error {
	g := grpc.NewServer()
	s.RegisterPubSub(g)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Subscriptions end when their context does; Stop cancels them all at once.
	g.Stop()
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

type pubsubServer struct {
	eventbusv1.UnimplementedPubSubServer
	s *Server
}

// pubsubError is a failure as the Pub/Sub API reports it.
func pubsubError(c grpccodes.Code, errorCode, msg string) error {
	rpcID := randomToken(12)
	st := status.New(c, fmt.Sprintf("%s rpcId: %s", msg, rpcID))
	return &trailerError{st: st, md: metadata.Pairs("error-code", errorCode, "rpc-id", rpcID)}
}

// trailerError carries the trailer that goes with a status.
type trailerError struct {
	st *status.Status
	md metadata.MD
}

func (e *trailerError) Error() string              { return e.st.Err().Error() }
func (e *trailerError) GRPCStatus() *status.Status { return e.st }

func withTrailer(set func(metadata.MD), err error) error {
	var te *trailerError
	if errors.As(err, &te) {
		set(te.md)
		return te.st.Err()
	}
	return err
}

// authorize checks the session headers: the token must be a live session of this org.
func (p *pubsubServer) authorize(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	token, instance, tenant := get("accesstoken"), get("instanceurl"), get("tenantid")
	if token == "" || instance == "" || tenant == "" {
		return pubsubError(grpccodes.Unauthenticated, PubSubErrAuthHeaders, "The accesstoken, instanceurl and tenantid headers are required.")
	}
	if org, ok := NormalizeID(tenant); !ok || org != p.s.orgID {
		return pubsubError(grpccodes.Unauthenticated, PubSubErrAuth, "An authentication exception occurred: the tenant id does not match the session.")
	}
	if _, ok := p.s.authenticate(&http.Request{Header: http.Header{"Authorization": {"Bearer " + token}}}); !ok {
		return pubsubError(grpccodes.Unauthenticated, PubSubErrAuth, "An authentication exception occurred: Session expired or invalid.")
	}
	return nil
}

// topicFilter returns which events a topic carries.
func (p *pubsubServer) topicFilter(topic string) (func(*changeEvent) bool, *object, error) {
	switch topic {
	case "":
		return nil, nil, pubsubError(grpccodes.InvalidArgument, PubSubErrTopicEmpty, "The topic name is blank.")
	case TopicAllChanges:
		return func(*changeEvent) bool { return true }, nil, nil
	}
	for _, name := range cdcEntities {
		if topic == "/data/"+name+"ChangeEvent" {
			p.s.mu.RLock()
			o := p.s.schema.object(name)
			p.s.mu.RUnlock()
			return func(ev *changeEvent) bool { return ev.obj == o }, o, nil
		}
	}
	return nil, nil, pubsubError(grpccodes.NotFound, PubSubErrTopicNotFound, fmt.Sprintf("The topic %s doesn't exist.", topic))
}

// GetTopic describes a change event channel.
func (p *pubsubServer) GetTopic(ctx context.Context, req *eventbusv1.TopicRequest) (*eventbusv1.TopicInfo, error) {
	setTrailer := func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) }
	if err := p.authorize(ctx); err != nil {
		return nil, withTrailer(setTrailer, err)
	}
	_, o, err := p.topicFilter(req.GetTopicName())
	if err != nil {
		return nil, withTrailer(setTrailer, err)
	}
	info := &eventbusv1.TopicInfo{TopicName: req.GetTopicName(), TenantGuid: p.s.orgID, CanSubscribe: true, RpcId: randomToken(12)}
	if o != nil {
		p.s.mu.RLock()
		sch, err := p.s.pubsub.schemas.get(o)
		p.s.mu.RUnlock()
		if err != nil {
			return nil, status.Error(grpccodes.Internal, err.Error())
		}
		info.SchemaId = sch.id
	}
	return info, nil
}

// GetSchema returns a change event schema by its id.
func (p *pubsubServer) GetSchema(ctx context.Context, req *eventbusv1.SchemaRequest) (*eventbusv1.SchemaInfo, error) {
	setTrailer := func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) }
	if err := p.authorize(ctx); err != nil {
		return nil, withTrailer(setTrailer, err)
	}
	if req.GetSchemaId() == "" {
		return nil, withTrailer(setTrailer, pubsubError(grpccodes.InvalidArgument, PubSubErrSchemaEmpty, "The schema ID is blank."))
	}
	sch := p.s.pubsub.schemas.byFingerprint(req.GetSchemaId())
	if sch == nil {
		return nil, withTrailer(setTrailer, pubsubError(grpccodes.NotFound, PubSubErrSchemaNotFound, fmt.Sprintf("No schema %s is accessible.", req.GetSchemaId())))
	}
	return &eventbusv1.SchemaInfo{SchemaJson: sch.json, SchemaId: sch.id, RpcId: randomToken(12)}, nil
}

// Subscribe streams a topic's events from the requested point, never more than the client has
// requested and not yet received (at most 100), with an empty keepalive response when nothing
// happened for a while.
func (p *pubsubServer) Subscribe(stream eventbusv1.PubSub_SubscribeServer) error {
	err := p.subscribe(stream)
	if errors.Is(err, context.Canceled) {
		return status.Error(grpccodes.Canceled, "subscription cancelled")
	}
	return withTrailer(stream.SetTrailer, err)
}

func (p *pubsubServer) subscribe(stream eventbusv1.PubSub_SubscribeServer) error {
	ctx := stream.Context()
	if err := p.authorize(ctx); err != nil {
		return err
	}
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	topic := first.GetTopicName()
	match, _, err := p.topicFilter(topic)
	if err != nil {
		return err
	}
	log := p.s.pubsub.log
	var pos uint64
	switch first.GetReplayPreset() {
	case eventbusv1.ReplayPreset_EARLIEST:
		pos = log.earliest(p.s.now())
	case eventbusv1.ReplayPreset_CUSTOM:
		if len(first.GetReplayId()) == 0 {
			return pubsubError(grpccodes.InvalidArgument, PubSubErrReplayMissing, "The Replay ID validation failed: a CUSTOM replay preset needs a replay ID.")
		}
		id, ok := decodeReplayID(first.GetReplayId())
		if !ok || !log.validAfter(id, p.s.now()) {
			return pubsubError(grpccodes.InvalidArgument, PubSubErrReplayCorrupted, "The Replay ID validation failed.")
		}
		pos = id
	default:
		pos = log.latest()
	}
	if first.GetNumRequested() <= 0 {
		return pubsubError(grpccodes.InvalidArgument, PubSubErrRequestedInvalid, "The number of requested events must be greater than zero.")
	}
	pending := min(int(first.GetNumRequested()), maxRequested)
	p.s.pubsub.active.Add(1)
	p.s.pubsub.made.Add(1)
	defer p.s.pubsub.active.Add(-1)

	// Later FetchRequests arrive while events are being sent.
	type recv struct {
		req *eventbusv1.FetchRequest
		err error
	}
	reqs := make(chan recv, 1)
	go func() {
		for {
			r, err := stream.Recv()
			select {
			case reqs <- recv{r, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	dropped := p.s.pubsub.dropped()
	keepalive := time.NewTimer(p.s.pubsub.keepalive)
	defer keepalive.Stop()
	for {
		batch, next, wake := log.after(pos, pending, match)
		if len(batch) > 0 {
			resp, err := p.fetchResponse(batch, next, pending-len(batch))
			if err != nil {
				return err
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
			pos, pending = next, pending-len(batch)
			keepalive.Reset(p.s.pubsub.keepalive)
			continue
		}
		if pending > 0 {
			// Nothing for this topic up to next: a resubscribe may start there.
			pos = next
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-dropped:
			return pubsubError(grpccodes.Unavailable, PubSubErrUnavailable, "The Pub/Sub API service is unavailable.")
		case r := <-reqs:
			if errors.Is(r.err, io.EOF) {
				return nil
			}
			if r.err != nil {
				return r.err
			}
			if t := r.req.GetTopicName(); t != "" && t != topic {
				return pubsubError(grpccodes.InvalidArgument, PubSubErrTopicMismatch, fmt.Sprintf("The topic %s differs from the subscription's topic %s.", t, topic))
			}
			if r.req.GetNumRequested() <= 0 {
				return pubsubError(grpccodes.InvalidArgument, PubSubErrRequestedInvalid, "The number of requested events must be greater than zero.")
			}
			pending = min(pending+int(r.req.GetNumRequested()), maxRequested)
		case <-wake:
		case <-keepalive.C:
			keepalive.Reset(p.s.pubsub.keepalive)
			if pending == 0 {
				continue
			}
			resp := &eventbusv1.FetchResponse{RpcId: randomToken(12), PendingNumRequested: int32(pending)}
			if pos > 0 {
				resp.LatestReplayId = encodeReplayID(pos)
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
	}
}

// fetchResponse encodes a batch of events, each with its entity's current schema.
func (p *pubsubServer) fetchResponse(batch []changeEvent, latest uint64, pending int) (*eventbusv1.FetchResponse, error) {
	p.s.mu.RLock()
	defer p.s.mu.RUnlock()
	resp := &eventbusv1.FetchResponse{LatestReplayId: encodeReplayID(latest), RpcId: randomToken(12), PendingNumRequested: int32(pending)}
	for i := range batch {
		ev := &batch[i]
		sch, err := p.s.pubsub.schemas.get(ev.obj)
		if err != nil {
			return nil, status.Error(grpccodes.Internal, err.Error())
		}
		payload, err := sch.encode(ev)
		if err != nil {
			return nil, status.Error(grpccodes.Internal, fmt.Sprintf("encode change event %d: %v", ev.replay, err))
		}
		resp.Events = append(resp.Events, &eventbusv1.ConsumerEvent{
			Event:    &eventbusv1.ProducerEvent{Id: eventUUID(p.s.orgID, ev.replay), SchemaId: sch.id, Payload: payload},
			ReplayId: encodeReplayID(ev.replay),
		})
	}
	return resp, nil
}

// eventUUID is a stable event id in UUID form.
func eventUUID(org string, replay uint64) string {
	h := fmt.Sprintf("%x", []byte(org))
	for len(h) < 12 {
		h += "0"
	}
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%s", uint32(replay>>32), uint16(replay>>16), uint16(replay)&0xfff, (replay>>12)&0xfff, h[len(h)-12:])
}
