package sfsim

import (
	"context"
	"errors"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	eventbusv1 "github.com/tandem-sync/tandem/proto/eventbus/v1"
)

// pubsubEnv is a simulator with its Pub/Sub API over an in-memory gRPC transport.
type pubsubEnv struct {
	*env
	api   eventbusv1.PubSubClient
	rest  *client
	token string
}

func newPubSubEnv(t *testing.T, cfg PubSubConfig) *pubsubEnv {
	t.Helper()
	e := newEnv(t, func(c *Config) { c.PubSub = cfg })
	lis := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.sim.ServePubSub(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServePubSub: %v", err)
		}
	})
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	rest := e.login()
	return &pubsubEnv{env: e, api: eventbusv1.NewPubSubClient(conn), rest: rest, token: rest.token}
}

// authed adds the session headers.
func (p *pubsubEnv) authed(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "accesstoken", token, "instanceurl", p.srv.URL, "tenantid", p.sim.OrgID())
}

// decoded is a change event as a test reads it.
type decoded struct {
	replay  []byte
	header  map[string]any
	body    map[string]any
	changed []string
}

// decode reads an event with the schema GetSchema serves for its schema id.
func (p *pubsubEnv) decode(t *testing.T, ev *eventbusv1.ConsumerEvent) decoded {
	t.Helper()
	info, err := p.api.GetSchema(p.authed(t.Context(), p.token), &eventbusv1.SchemaRequest{SchemaId: ev.GetEvent().GetSchemaId()})
	if err != nil {
		t.Fatalf("GetSchema: %v", err)
	}
	sch, err := avro.ParseWithCache(info.GetSchemaJson(), "", &avro.SchemaCache{})
	if err != nil {
		t.Fatalf("parse schema: %v", err)
	}
	var body map[string]any
	if err := avro.Unmarshal(sch, ev.GetEvent().GetPayload(), &body); err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	h, _ := body["ChangeEventHeader"].(map[string]any)
	d := decoded{replay: ev.GetReplayId(), header: h, body: body}
	// Expand changedFields as Salesforce documents it: bit i of the hexadecimal bitmap is the
	// field at position i; "p-0x.." holds the parts of the compound field at position p.
	fields := sch.(*avro.RecordSchema).Fields()
	bits := func(hex string) []int {
		n, ok := new(big.Int).SetString(strings.TrimPrefix(hex, "0x"), 16)
		if !ok {
			t.Fatalf("bitmap %q is not hexadecimal", hex)
		}
		var out []int
		for i := range n.BitLen() {
			if n.Bit(i) == 1 {
				out = append(out, i)
			}
		}
		return out
	}
	raw, _ := h["changedFields"].([]any)
	for _, v := range raw {
		s := v.(string)
		if parent, sub, ok := strings.Cut(s, "-"); ok {
			pos, _ := strconv.Atoi(parent)
			f := fields[pos]
			rec := f.Type().(*avro.UnionSchema).Types()[1].(*avro.RecordSchema)
			for _, i := range bits(sub) {
				d.changed = append(d.changed, f.Name()+"."+rec.Fields()[i].Name())
			}
			continue
		}
		for _, i := range bits(s) {
			d.changed = append(d.changed, fields[i].Name())
		}
	}
	return d
}

// subscription is an open Subscribe stream.
type subscription struct {
	t      *testing.T
	stream eventbusv1.PubSub_SubscribeClient
}

func (p *pubsubEnv) subscribe(t *testing.T, first *eventbusv1.FetchRequest) *subscription {
	t.Helper()
	before := p.sim.PubSubSubscribers()
	stream, err := p.api.Subscribe(p.authed(t.Context(), p.token))
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := stream.Send(first); err != nil {
		t.Fatalf("send first FetchRequest: %v", err)
	}
	// The server fixes where a subscription starts (LATEST: the newest event then) when it
	// takes the first request; changes made before that are not the subscription's.
	for deadline := time.Now().Add(10 * time.Second); p.sim.PubSubSubscribers() <= before; {
		if time.Now().After(deadline) {
			t.Fatal("the subscription did not start")
		}
		time.Sleep(time.Millisecond)
	}
	return &subscription{t: t, stream: stream}
}

// events receives until n events have arrived.
func (s *subscription) events(n int) []*eventbusv1.ConsumerEvent {
	s.t.Helper()
	var out []*eventbusv1.ConsumerEvent
	for len(out) < n {
		resp, err := s.stream.Recv()
		if err != nil {
			s.t.Fatalf("Recv after %d of %d events: %v", len(out), n, err)
		}
		out = append(out, resp.GetEvents()...)
	}
	if len(out) != n {
		s.t.Fatalf("got %d events, want %d", len(out), n)
	}
	return out
}

func errorCode(err error, trailer metadata.MD) (grpccodes.Code, string) {
	code := ""
	if v := trailer.Get("error-code"); len(v) > 0 {
		code = v[0]
	}
	return status.Code(err), code
}

func TestPubSubChangeEventsForRESTAndBackdoorWrites(t *testing.T) {
	p := newPubSubEnv(t, PubSubConfig{})
	sub := p.subscribe(t, &eventbusv1.FetchRequest{TopicName: TopicContactChanges, NumRequested: 100})
	// Another entity's topic sees none of these.
	events := p.subscribe(t, &eventbusv1.FetchRequest{TopicName: TopicEventChanges, NumRequested: 100})

	var created struct {
		ID string `json:"id"`
	}
	p.rest.header = http.Header{"Sforce-Call-Options": {"client=TandemTest, defaultNamespace=acme"}}
	p.rest.json(http.MethodPost, "sobjects/Contact", map[string]any{"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"}, http.StatusCreated, &created)
	p.rest.json(http.MethodPatch, "sobjects/Contact/"+created.ID, map[string]any{"Email": "ada@analytical.example", "FirstName": "Augusta"}, http.StatusNoContent, nil)
	if err := p.sim.Update("Contact", created.ID, map[string]any{"Title": "Countess", "Email": nil}, p.userID); err != nil {
		t.Fatal(err)
	}
	if err := p.sim.Delete("Contact", created.ID); err != nil {
		t.Fatal(err)
	}
	if err := p.sim.Undelete("Contact", created.ID); err != nil {
		t.Fatal(err)
	}
	got := sub.events(5)

	wantTypes := []string{ChangeCreate, ChangeUpdate, ChangeUpdate, ChangeDelete, ChangeUndelete}
	var last uint64
	for i, ev := range got {
		d := p.decode(t, ev)
		id, ok := decodeReplayID(d.replay)
		if !ok || id <= last {
			t.Fatalf("event %d: replay id %x does not follow %d", i, d.replay, last)
		}
		last = id
		if d.header["changeType"] != wantTypes[i] || d.header["entityName"] != "Contact" {
			t.Errorf("event %d: %v %v, want %s Contact", i, d.header["changeType"], d.header["entityName"], wantTypes[i])
		}
		if ids, _ := d.header["recordIds"].([]any); len(ids) != 1 || ids[0] != created.ID {
			t.Errorf("event %d: recordIds %v, want [%s]", i, ids, created.ID)
		}
		switch i {
		case 0: // a create carries every field, the owner included
			if want := "com/salesforce/api/rest/" + p.sim.APIVersion() + ";client=TandemTest"; d.header["changeOrigin"] != want {
				t.Errorf("REST create: changeOrigin %q, want %q", d.header["changeOrigin"], want)
			}
			if owner := d.body["OwnerId"]; owner == nil {
				t.Errorf("create: no OwnerId in %v", d.body)
			}
			if d.header["commitUser"] != p.userID {
				t.Errorf("create: commitUser %v, want %s", d.header["commitUser"], p.userID)
			}
		case 1: // an update carries what changed, named by the bitmap
			for _, f := range []string{"Email", "Name.FirstName", "LastModifiedDate"} {
				if !slices.Contains(d.changed, f) {
					t.Errorf("update: changedFields %v lacks %s", d.changed, f)
				}
			}
			if slices.Contains(d.changed, "Name.LastName") || slices.Contains(d.changed, "Phone") {
				t.Errorf("update: changedFields %v names unchanged fields", d.changed)
			}
			if d.body["OwnerId"] != nil {
				t.Errorf("update: unchanged OwnerId sent: %v", d.body["OwnerId"])
			}
		case 2:
			if d.header["changeOrigin"] != "" {
				t.Errorf("backdoor edit: changeOrigin %q, want none", d.header["changeOrigin"])
			}
			if !slices.Contains(d.changed, "Title") || !slices.Contains(d.changed, "Email") {
				t.Errorf("backdoor update: changedFields %v", d.changed)
			}
			if nulled, _ := d.header["nulledFields"].([]any); len(nulled) != 1 {
				t.Errorf("backdoor update: nulledFields %v, want the Email bit", nulled)
			}
		case 3: // a delete carries no values
			if d.body["OwnerId"] != nil || d.body["Email"] != nil {
				t.Errorf("delete: values sent: %v", d.body)
			}
		}
	}

	if _, err := p.sim.Insert("Event", map[string]any{"Subject": "Call", "StartDateTime": p.clock.Now(), "DurationInMinutes": 30}, p.userID); err != nil {
		t.Fatal(err)
	}
	ev := events.events(1)
	if d := p.decode(t, ev[0]); d.header["entityName"] != "Event" || d.header["changeType"] != ChangeCreate {
		t.Errorf("event topic: %v", d.header)
	}
}

func TestPubSubReplay(t *testing.T) {
	p := newPubSubEnv(t, PubSubConfig{MaxEvents: 10})
	var ids []string
	for i := range 4 {
		id, err := p.sim.Insert("Contact", map[string]any{"LastName": "Replay " + strconv.Itoa(i)}, p.userID)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	all := p.subscribe(t, &eventbusv1.FetchRequest{TopicName: TopicContactChanges, ReplayPreset: eventbusv1.ReplayPreset_EARLIEST, NumRequested: 10}).events(4)

	// After a stored replay id: the events that followed it, and no other.
	after := p.subscribe(t, &eventbusv1.FetchRequest{TopicName: TopicContactChanges, ReplayPreset: eventbusv1.ReplayPreset_CUSTOM, ReplayId: all[1].GetReplayId(), NumRequested: 10}).events(2)
	for i, ev := range after {
		if d := p.decode(t, ev); d.header["recordIds"].([]any)[0] != ids[i+2] {
			t.Errorf("replayed event %d is %v, want %s", i, d.header["recordIds"], ids[i+2])
		}
	}

	// LATEST sees only what happens after it subscribed.
	latest := p.subscribe(t, &eventbusv1.FetchRequest{TopicName: TopicContactChanges, NumRequested: 10})
	waitSubscribed(t, p, 3)
	id, err := p.sim.Insert("Contact", map[string]any{"LastName": "Newest"}, p.userID)
	if err != nil {
		t.Fatal(err)
	}
	if d := p.decode(t, latest.events(1)[0]); d.header["recordIds"].([]any)[0] != id {
		t.Errorf("LATEST delivered %v, want %s", d.header["recordIds"], id)
	}

	invalid := func(name string, req *eventbusv1.FetchRequest, wantCode string) {
		t.Run(name, func(t *testing.T) {
			stream, err := p.api.Subscribe(p.authed(t.Context(), p.token))
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(req); err != nil {
				t.Fatal(err)
			}
			_, err = stream.Recv()
			code, errCode := errorCode(err, stream.Trailer())
			if code != grpccodes.InvalidArgument || errCode != wantCode {
				t.Fatalf("got %v %q (%v), want InvalidArgument %s", code, errCode, err, wantCode)
			}
		})
	}
	custom := func(replay []byte) *eventbusv1.FetchRequest {
		return &eventbusv1.FetchRequest{TopicName: TopicContactChanges, ReplayPreset: eventbusv1.ReplayPreset_CUSTOM, ReplayId: replay, NumRequested: 1}
	}
	invalid("garbage replay id", custom([]byte("not-a-replay-id")), PubSubErrReplayCorrupted)
	invalid("replay id from the future", custom(encodeReplayID(1<<40)), PubSubErrReplayCorrupted)
	invalid("CUSTOM without a replay id", custom(nil), PubSubErrReplayMissing)
	invalid("nothing requested", &eventbusv1.FetchRequest{TopicName: TopicContactChanges}, PubSubErrRequestedInvalid)

	// Past the bound (or the 72 hours), the oldest events are gone and so is replay after them.
	for i := range 12 {
		if _, err := p.sim.Insert("Contact", map[string]any{"LastName": "Flood " + strconv.Itoa(i)}, p.userID); err != nil {
			t.Fatal(err)
		}
	}
	invalid("replay id no longer retained", custom(all[1].GetReplayId()), PubSubErrReplayCorrupted)
	newest, _ := decodeReplayID(p.sim.LatestReplayID())
	p.clock.Advance(73 * time.Hour)
	p.token = p.login().token // the session timed out too
	invalid("replay id older than the retention period", custom(encodeReplayID(newest-1)), PubSubErrReplayCorrupted)
	// After the newest event nothing was lost: that subscription is valid.
	resume := p.subscribe(t, custom(encodeReplayID(newest)))
	waitSubscribed(t, p, 4)
	if _, err := p.sim.Insert("Contact", map[string]any{"LastName": "After"}, p.userID); err != nil {
		t.Fatal(err)
	}
	resume.events(1)
}

// waitSubscribed waits until n subscriptions are set up on the server.
func waitSubscribed(t *testing.T, p *pubsubEnv, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.sim.PubSubSubscribers() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions set up, want %d", p.sim.PubSubSubscribers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPubSubFlowControlAndKeepalive(t *testing.T) {
	p := newPubSubEnv(t, PubSubConfig{Keepalive: 50 * time.Millisecond})
	for i := range 5 {
		if _, err := p.sim.Insert("Contact", map[string]any{"LastName": "Flow " + strconv.Itoa(i)}, p.userID); err != nil {
			t.Fatal(err)
		}
	}
	sub := p.subscribe(t, &eventbusv1.FetchRequest{TopicName: TopicContactChanges, ReplayPreset: eventbusv1.ReplayPreset_EARLIEST, NumRequested: 2})
	resp, err := sub.stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	// The server sends no more than requested: 2 of the 5, and nothing pending.
	if len(resp.GetEvents()) != 2 || resp.GetPendingNumRequested() != 0 {
		t.Fatalf("first response: %d events, %d pending; want 2, 0", len(resp.GetEvents()), resp.GetPendingNumRequested())
	}
	first := resp.GetEvents()
	if err := sub.stream.Send(&eventbusv1.FetchRequest{NumRequested: 3}); err != nil {
		t.Fatal(err)
	}
	rest := sub.events(3)
	ids := map[string]bool{}
	for _, ev := range append(first, rest...) {
		ids[string(ev.GetReplayId())] = true
	}
	if len(ids) != 5 {
		t.Fatalf("got %d distinct events, want 5", len(ids))
	}
	// Keepalives: an empty response with the latest replay id while events are requested. It
	// also shows that nothing beyond the 5 requested events was sent.
	if err := sub.stream.Send(&eventbusv1.FetchRequest{NumRequested: 1}); err != nil {
		t.Fatal(err)
	}
	resp, err = sub.stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetEvents()) != 0 || string(resp.GetLatestReplayId()) != string(rest[2].GetReplayId()) || resp.GetPendingNumRequested() != 1 {
		t.Errorf("keepalive: %d events, latest %x (want %x), pending %d", len(resp.GetEvents()), resp.GetLatestReplayId(), rest[2].GetReplayId(), resp.GetPendingNumRequested())
	}
	// A different topic on the same stream is refused.
	if err := sub.stream.Send(&eventbusv1.FetchRequest{TopicName: TopicEventChanges, NumRequested: 1}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := sub.stream.Recv()
		if err == nil {
			continue
		}
		if code, errCode := errorCode(err, sub.stream.Trailer()); code != grpccodes.InvalidArgument || errCode != PubSubErrTopicMismatch {
			t.Errorf("topic change: %v %q", code, errCode)
		}
		break
	}
}

func TestPubSubAuthentication(t *testing.T) {
	p := newPubSubEnv(t, PubSubConfig{})
	ctx := t.Context()
	tests := []struct {
		name     string
		ctx      context.Context
		wantCode string
	}{
		{"bad token", p.authed(ctx, "00Dbogus!token"), PubSubErrAuth},
		{"no headers", ctx, PubSubErrAuthHeaders},
		{"other org", metadata.AppendToOutgoingContext(ctx, "accesstoken", p.token, "instanceurl", p.srv.URL, "tenantid", "00D000000000001AAA"), PubSubErrAuth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var trailer metadata.MD
			_, err := p.api.GetTopic(tc.ctx, &eventbusv1.TopicRequest{TopicName: TopicContactChanges}, grpc.Trailer(&trailer))
			if code, errCode := errorCode(err, trailer); code != grpccodes.Unauthenticated || errCode != tc.wantCode {
				t.Errorf("GetTopic: %v %q, want Unauthenticated %s", code, errCode, tc.wantCode)
			}
			stream, err := p.api.Subscribe(tc.ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = stream.Send(&eventbusv1.FetchRequest{TopicName: TopicContactChanges, NumRequested: 1})
			_, err = stream.Recv()
			if code, errCode := errorCode(err, stream.Trailer()); code != grpccodes.Unauthenticated || errCode != tc.wantCode {
				t.Errorf("Subscribe: %v %q, want Unauthenticated %s", code, errCode, tc.wantCode)
			}
		})
	}

	// An expired session is refused like the REST API refuses it.
	p.clock.Advance(DefaultTokenLifetime + time.Minute)
	_, err := p.api.GetTopic(p.authed(ctx, p.token), &eventbusv1.TopicRequest{TopicName: TopicContactChanges})
	if status.Code(err) != grpccodes.Unauthenticated {
		t.Errorf("expired session: %v", err)
	}
}

func TestPubSubTopicsAndSchemas(t *testing.T) {
	p := newPubSubEnv(t, PubSubConfig{})
	ctx := p.authed(t.Context(), p.token)
	info, err := p.api.GetTopic(ctx, &eventbusv1.TopicRequest{TopicName: TopicContactChanges})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetTenantGuid() != p.sim.OrgID() || !info.GetCanSubscribe() || info.GetCanPublish() || info.GetSchemaId() == "" {
		t.Errorf("topic info %v", info)
	}
	sch, err := p.api.GetSchema(ctx, &eventbusv1.SchemaRequest{SchemaId: info.GetSchemaId()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sch.GetSchemaJson(), `"ContactChangeEvent"`) || !strings.Contains(sch.GetSchemaJson(), `"ChangeEventHeader"`) {
		t.Errorf("schema %s", sch.GetSchemaJson())
	}
	var trailer metadata.MD
	_, err = p.api.GetTopic(ctx, &eventbusv1.TopicRequest{TopicName: "/data/OpportunityChangeEvent"}, grpc.Trailer(&trailer))
	if code, errCode := errorCode(err, trailer); code != grpccodes.NotFound || errCode != PubSubErrTopicNotFound {
		t.Errorf("unknown topic: %v %q", code, errCode)
	}
	// A new custom field is a new schema.
	if err := p.sim.AddField("Contact", Field{Name: "Nickname__c", Label: "Nickname", Type: TypeString, Length: 40, Nillable: true, Createable: true, Updateable: true}); err != nil {
		t.Fatal(err)
	}
	again, err := p.api.GetTopic(ctx, &eventbusv1.TopicRequest{TopicName: TopicContactChanges})
	if err != nil {
		t.Fatal(err)
	}
	if again.GetSchemaId() == info.GetSchemaId() {
		t.Error("schema id unchanged after a new field")
	}
}

func TestPubSubDroppedStreams(t *testing.T) {
	p := newPubSubEnv(t, PubSubConfig{})
	sub := p.subscribe(t, &eventbusv1.FetchRequest{TopicName: TopicAllChanges, NumRequested: 10})
	waitSubscribed(t, p, 1)
	p.sim.DropPubSubStreams()
	_, err := sub.stream.Recv()
	if code, errCode := errorCode(err, sub.stream.Trailer()); code != grpccodes.Unavailable || errCode != PubSubErrUnavailable {
		t.Errorf("dropped stream: %v %q (%v)", code, errCode, err)
	}
	if errors.Is(err, context.Canceled) {
		t.Error("stream ended by the client")
	}
}
