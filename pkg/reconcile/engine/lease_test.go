package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// deliveries records what the reconciler's consumer saw: every delivery count and every
// handler error.
type deliveries struct {
	mu        sync.Mutex
	handled   int
	redeliver int
	errs      []error
}

// TestSameUserPagesNeverBurnDeliveries sends many pages of one user through real JetStream to
// a reconciler consuming them concurrently, and checks that the user's serialisation costs no
// delivery: every page is handled on its first delivery, none is dead-lettered. With a lease
// left behind by a crashed holder, the pages wait for it to expire (longer than AckWait, which
// the bus's heartbeats cover) instead of failing.
func TestSameUserPagesNeverBurnDeliveries(t *testing.T) {
	const pagesPerSide = 12
	tests := []struct {
		name string
		// crashedHolder leaves the user's lease held by a holder that never comes back.
		crashedHolder bool
		// liveHolder holds the user's lease, renewing it, for this long before releasing it:
		// longer than the lease's TTL and than AckWait.
		liveHolder time.Duration
	}{
		{name: "contention within one process"},
		{name: "a crashed holder's lease expires", crashedHolder: true},
		{name: "a live holder keeps the lease for several TTLs", liveHolder: 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			nc := servertest.NATSConn(t)
			// A short AckWait and a delivery budget of 2: a single wasted delivery would show.
			b, err := bus.New(nc, bus.Config{AckWait: time.Second, MaxDeliver: 2}, logger)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Declare(ctx); err != nil {
				t.Fatal(err)
			}
			st := store.New(servertest.Redis(t), nil)
			claimCycles(t, st, testOrg, 1)
			ttl := 2 * time.Second
			syncer := New(st, b, Options{LeaseTTL: ttl, Logger: logger})
			if tc.crashedHolder {
				if _, err := st.AcquireLease(ctx, uk, LeaseRole, ttl); err != nil {
					t.Fatal(err)
				}
			}
			if tc.liveHolder > 0 {
				lease, err := st.AcquireLease(ctx, uk, LeaseRole, ttl)
				if err != nil {
					t.Fatal(err)
				}
				holderCtx, stop := context.WithTimeout(ctx, tc.liveHolder)
				defer stop()
				go func() {
					_ = lease.Run(holderCtx, func(ctx context.Context) error { // renews until done
						<-ctx.Done()
						return nil
					})
					_ = lease.Release(context.WithoutCancel(ctx))
				}()
			}

			subject, err := bus.ChangesSubject(testOrg, testUser)
			if err != nil {
				t.Fatal(err)
			}
			for _, side := range []tandemv1.System{tandemv1.System_SYSTEM_EXCHANGE, tandemv1.System_SYSTEM_SALESFORCE} {
				for p := range uint32(pagesPerSide) {
					batch := &tandemv1.ChangeBatch{
						OrgId: testOrg, UserId: testUser, Source: side, Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT,
						Cycle: 1, Page: p, FullSnapshot: true, Last: p == pagesPerSide-1, PageCount: pagesPerSide,
					}
					if err := b.Publish(ctx, subject, batch, fmt.Sprintf("page-%s-%d", store.SideName(side), p)); err != nil {
						t.Fatal(err)
					}
				}
			}

			var d deliveries
			cctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				done <- b.Consume(cctx, bus.ConsumerReconcilerChanges, func(ctx context.Context, m *bus.Message) error {
					batch := &tandemv1.ChangeBatch{}
					if err := m.Decode(batch); err != nil {
						return err
					}
					err := syncer.HandleChanges(ctx, batch)
					d.mu.Lock()
					defer d.mu.Unlock()
					if m.NumDelivered > 1 {
						d.redeliver++
					}
					if err != nil {
						d.errs = append(d.errs, err)
					} else {
						d.handled++
					}
					return err
				}, bus.WithConcurrency(8))
			}()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("consume: %v", err)
				}
			})

			poll.Within(t, 30*time.Second, "every page handled", func() bool {
				d.mu.Lock()
				defer d.mu.Unlock()
				return d.handled+len(d.errs) >= 2*pagesPerSide
			})
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.redeliver > 0 || len(d.errs) > 0 {
				first := error(nil)
				if len(d.errs) > 0 {
					first = d.errs[0]
				}
				t.Errorf("%d redeliveries, %d handler errors (first: %v); want none", d.redeliver, len(d.errs), first)
			}
			cyc, err := syncer.led.LoadCycle(ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
			if err != nil {
				t.Fatal(err)
			}
			if cyc.Reconciled != 1 {
				t.Errorf("reconciled cycle %d, want 1", cyc.Reconciled)
			}
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			dead, err := js.Stream(ctx, bus.StreamDead)
			if err != nil {
				t.Fatal(err)
			}
			if n := streamMsgs(t, dead); n != 0 {
				t.Errorf("%d dead letters, want none", n)
			}
		})
	}
}

func streamMsgs(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
