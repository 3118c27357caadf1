package devenv

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/exchange"
)

// TestPurgedChangesRecover throws away change pages during the first sync, as a NATS server
// restarted without its store would, by purging the changes stream whenever it holds any:
// the lost reads are noticed and read again, and every user converges with nothing
// duplicated, without anyone stepping in.
func TestPurgedChangesRecover(t *testing.T) {
	env := startEnv(t, 3, 20)
	nc, err := nats.Connect(env.nats.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	// Purge for a while after the first pages appear. The first reads are full reads, so
	// losing them is the first-sync case the report describes.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var purged atomic.Int64
	var window <-chan time.Time // runs from the first purge
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
purging:
	for {
		select {
		case <-ctx.Done():
			t.Fatalf("no change pages to purge: %v", ctx.Err())
		case <-window:
			break purging
		case <-tick.C:
		}
		s, err := js.Stream(ctx, bus.StreamChanges)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			continue
		}
		if err := s.Purge(ctx); err != nil {
			t.Fatal(err)
		}
		purged.Add(int64(info.State.Msgs))
		if window == nil {
			window = time.After(1500 * time.Millisecond)
		}
	}
	t.Logf("purged %d change pages", purged.Load())

	sum := waitSynced(t, env, 60*time.Second)
	if sum.Users != 3 || sum.ContactsInSync != 3*20 {
		t.Fatalf("after the lost pages: %+v", sum)
	}
	for _, email := range env.Mailboxes {
		if n := len(env.EWS.Items(email, exchange.SyncFolderName)); n != 20 {
			t.Errorf("%s has %d contacts, want 20", email, n)
		}
	}
	if n := len(env.Salesforce.List("Contact")); n != 3*20 {
		t.Errorf("Salesforce has %d contacts, want %d", n, 3*20)
	}
}
