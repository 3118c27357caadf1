package platformtest

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Message is msg delivered on subject for the delivered-th time, as the bus hands it to a
// handler: the payload and headers as bus.Publish writes them, and the subject's route.
// Handler tests call handlers with it directly, without a consumer in between.
func Message(t testing.TB, subject string, msg proto.Message, delivered uint64) *bus.Message {
	t.Helper()
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		t.Fatalf("marshal %s: %v", msg.ProtoReflect().Descriptor().FullName(), err)
	}
	headers := nats.Header{}
	headers.Set(bus.HeaderContentType, bus.ContentTypeProtobuf)
	headers.Set(bus.HeaderMessageType, string(msg.ProtoReflect().Descriptor().FullName()))
	m := &bus.Message{Subject: subject, Data: data, Headers: headers, NumDelivered: delivered}
	m.Route, _ = bus.ParseSubject(subject) // as the bus does: a foreign subject has no route
	return m
}

// ApplyMessage is batch delivered for the delivered-th time on its apply subject (of the
// default worker pool), as both workers' apply consumers receive write batches.
func ApplyMessage(t testing.TB, batch *tandemv1.WriteBatch, delivered uint64) *bus.Message {
	t.Helper()
	subject, err := bus.ApplySubject(batch.GetOrgId(), batch.GetTarget(), store.DefaultWorkerPool, batch.GetUserId())
	if err != nil {
		t.Fatalf("apply subject: %v", err)
	}
	return Message(t, subject, batch, delivered)
}

// Published returns the messages stream stored after sequence since, decoded into messages
// made by newM, with their subjects, and the stream's last sequence: pass it as since to the
// next call to get only what was published in between (0 reads the stream from its start).
// Messages a work-queue stream has already removed (acked by their consumer) are skipped.
func Published[M proto.Message](t testing.TB, js jetstream.JetStream, stream string, since uint64, newM func() M) (msgs []M, subjects []string, last uint64) {
	t.Helper()
	ctx := t.Context()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	for seq := max(since+1, info.State.FirstSeq); seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("stream %s seq %d: %v", stream, seq, err)
		}
		m := newM()
		if err := proto.Unmarshal(raw.Data, m); err != nil {
			t.Fatalf("stream %s seq %d on %s: %v", stream, seq, raw.Subject, err)
		}
		msgs = append(msgs, m)
		subjects = append(subjects, raw.Subject)
	}
	// Never behind since, so that a caller's position does not move back; a caller that deleted
	// and re-created the stream, whose sequences start again, reads it afresh from 0.
	return msgs, subjects, max(since, info.State.LastSeq)
}

// Stored is how many messages stream holds now; a work-queue stream holds those its consumer
// has not acked yet.
func Stored(t testing.TB, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	return info.State.Msgs
}
