package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// allInFlight says every command is still in flight.
type allInFlight struct{}

func (allInFlight) InFlight(_ context.Context, _ store.UserKey, b *tandemv1.WriteBatch) (map[string]bool, error) {
	out := map[string]bool{}
	for _, c := range b.GetCommands() {
		out[c.GetCommandId()] = true
	}
	return out, nil
}

type discard struct{}

func (discard) Publish(context.Context, string, proto.Message, string) error { return nil }
func (discard) MaxPayload() int                                                { return 1 << 20 }

// A user's write batches towards one side never run at once, even from two replicas: a create
// planned again after its first attempt went unanswered must find what that attempt made.
// Other users' batches are not held up by them.
func TestUsersBatchesRunOneAtATime(t *testing.T) {
	st := store.New(servertest.Redis(t), nil)
	var running sync.Map // user → *atomic.Int32
	var overlaps, ran atomic.Int32
	apply := func(_ context.Context, b *tandemv1.WriteBatch, cmds []*tandemv1.WriteCommand, _ bool) ([]*tandemv1.WriteResult, error) {
		n, _ := running.LoadOrStore(b.GetUserId(), &atomic.Int32{})
		if n.(*atomic.Int32).Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(15 * time.Millisecond)
		n.(*atomic.Int32).Add(-1)
		ran.Add(1)
		out := make([]*tandemv1.WriteResult, len(cmds))
		for i, c := range cmds {
			out[i] = &tandemv1.WriteResult{CommandId: c.GetCommandId(), SyncKey: c.GetSyncKey(), Ok: true}
		}
		return out, nil
	}
	replicas := make([]bus.Handler, 2)
	for i := range replicas {
		w := &Writes{Outbox: allInFlight{}, Store: st, Pub: discard{}, Now: time.Now, Log: slog.New(slog.DiscardHandler), System: "Exchange"}
		replicas[i] = w.Handler(apply)
	}
	var wg sync.WaitGroup
	for i := range 12 {
		batch := &tandemv1.WriteBatch{
			BatchId: fmt.Sprint("b", i), OrgId: "00Dorg", UserId: fmt.Sprint("005user", i%2), Target: tandemv1.System_SYSTEM_EXCHANGE,
			Kind:     tandemv1.RecordKind_RECORD_KIND_CONTACT,
			Commands: []*tandemv1.WriteCommand{{CommandId: fmt.Sprint("c", i), SyncKey: fmt.Sprint("k", i), Op: tandemv1.WriteOp_WRITE_OP_CREATE}},
		}
		data, err := proto.Marshal(batch)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if err := replicas[i%len(replicas)](t.Context(), &bus.Message{Data: data, NumDelivered: 1}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ran.Load() != 12 || overlaps.Load() != 0 {
		t.Fatalf("%d of 12 batches ran, %d overlapped another of the same user", ran.Load(), overlaps.Load())
	}
}
