package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
)

const (
	watchExchange   = "watch-exchange"
	watchSalesforce = "watch-salesforce"
)

// TestWatchLeaseIsOnePerOrgAndRole: one holder per org and role; other orgs, other roles and
// users' leases of the same name are independent; a released lease is taken at once, with a
// higher token.
func TestWatchLeaseIsOnePerOrgAndRole(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		a, err := s.AcquireWatchLease(ctx, testOrg, watchExchange, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if a.Token() < 1 || a.User() != (UserKey{OrgID: testOrg}) || a.Role() != watchExchange || a.TTL() != 5*time.Second {
			t.Fatalf("lease = token %d, %+v, %s, %s", a.Token(), a.User(), a.Role(), a.TTL())
		}
		if a.key != "tandem:{"+testOrg+"}:lease:"+watchExchange {
			t.Fatalf("lease key = %q", a.key)
		}

		_, err = s.AcquireWatchLease(ctx, testOrg, watchExchange, 5*time.Second)
		var held *LeaseHeldError
		if !errors.As(err, &held) || !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("second acquire = %v, want *LeaseHeldError", err)
		}
		if held.User != (UserKey{OrgID: testOrg}) || held.Role != watchExchange || held.Remaining <= 0 || held.Remaining > 5*time.Second {
			t.Fatalf("LeaseHeldError = %+v", held)
		}
		if msg := err.Error(); !strings.Contains(msg, "org "+testOrg) {
			t.Errorf("error %q does not name the org", msg)
		}

		var others []*Lease
		for _, acquire := range []func() (*Lease, error){
			func() (*Lease, error) { return s.AcquireWatchLease(ctx, testOrg, watchSalesforce, time.Second) },
			func() (*Lease, error) { return s.AcquireWatchLease(ctx, "00D000000000002", watchExchange, time.Second) },
			func() (*Lease, error) { return s.AcquireLease(ctx, testUser, watchExchange, time.Second) },
		} {
			l, err := acquire()
			if err != nil {
				t.Fatalf("an independent lease: %v", err)
			}
			others = append(others, l)
		}
		for _, l := range others {
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}

		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
		b, err := s.AcquireWatchLease(ctx, testOrg, watchExchange, time.Second)
		if err != nil {
			t.Fatalf("acquire after release: %v", err)
		}
		if b.Token() <= a.Token() {
			t.Fatalf("token %d after %d", b.Token(), a.Token())
		}
		if err := a.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("renewing the released lease = %v, want ErrLeaseLost", err)
		}
	})
}

// TestWatchLeaseExpiresWithoutItsHolder: a holder that dies without releasing (here: never
// renews) loses the org once the TTL has passed, and not before.
func TestWatchLeaseExpiresWithoutItsHolder(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		const ttl = 300 * time.Millisecond
		// Measured from before the call: Redis starts the TTL when it runs the command, which
		// may be a little before the call returns.
		acquired := time.Now()
		dead, err := s.AcquireWatchLease(ctx, testOrg, watchExchange, ttl)
		if err != nil {
			t.Fatal(err)
		}
		var next *Lease
		poll.Within(t, 5*time.Second, "another replica to take the expired lease", func() bool {
			next, err = s.AcquireWatchLease(ctx, testOrg, watchExchange, time.Minute)
			if err != nil && !errors.Is(err, ErrLeaseHeld) {
				t.Fatal(err)
			}
			return err == nil
		})
		if took := time.Since(acquired); took < ttl {
			t.Fatalf("taken over %s after the acquisition, before the %s TTL", took, ttl)
		}
		if next.Token() <= dead.Token() {
			t.Fatalf("token %d after %d", next.Token(), dead.Token())
		}
		if err := dead.Release(ctx); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("the dead holder's late release = %v, want ErrLeaseLost", err)
		}
		if _, err := s.AcquireWatchLease(ctx, testOrg, watchExchange, time.Second); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("the late release freed the new holder's lease: %v", err)
		}
	})
}

// TestHoldRenewsUntilLostOrStopped: Hold keeps a lease past its TTL, ends its context with
// ErrLeaseLost when another replica has taken the lease, and stop ends it without releasing.
func TestHoldRenewsUntilLostOrStopped(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		// Renewals every third of it: long enough for a loaded machine not to miss one.
		const ttl = 600 * time.Millisecond
		l, err := s.AcquireWatchLease(ctx, testOrg, watchExchange, ttl)
		if err != nil {
			t.Fatal(err)
		}
		held, stop := l.Hold(ctx)
		defer stop()
		// Outlast the TTL several times: the lease is still held, by l.
		select {
		case <-time.After(4 * ttl):
		case <-held.Done():
		}
		if held.Err() != nil {
			t.Fatalf("held context ended: %v", context.Cause(held))
		}
		if _, err := s.AcquireWatchLease(ctx, testOrg, watchExchange, ttl); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("acquire while held = %v, want ErrLeaseHeld", err)
		}

		// Another replica takes the lease over (as after an expiry the holder did not notice).
		if err := rdb.Del(ctx, l.key).Err(); err != nil {
			t.Fatal(err)
		}
		thief, err := s.AcquireWatchLease(ctx, testOrg, watchExchange, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		poll.Within(t, 5*time.Second, "the holder to notice it lost the lease", func() bool { return held.Err() != nil })
		if cause := context.Cause(held); !errors.Is(cause, ErrLeaseLost) {
			t.Fatalf("held context's cause = %v, want ErrLeaseLost", cause)
		}
		stop()
		stop()
		if err := thief.Renew(ctx); err != nil {
			t.Fatalf("the loser disturbed the new holder: %v", err)
		}

		// stop alone ends the context (with no ErrLeaseLost) and leaves the lease in place.
		held2, stop2 := thief.Hold(ctx)
		stop2()
		if held2.Err() == nil || errors.Is(context.Cause(held2), ErrLeaseLost) {
			t.Fatalf("after stop: %v, cause %v", held2.Err(), context.Cause(held2))
		}
		if err := thief.Release(ctx); err != nil {
			t.Fatalf("release after stop: %v", err)
		}
	})
}

func TestWatchLeaseKeysAreWrittenOnlyByLeases(t *testing.T) {
	s := newTestStore(t, miniRedis.start(t))
	err := s.Apply(t.Context(), Set(orgLeaseKey(testOrg, watchExchange), "1", 0))
	var opErr *OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("Apply writing a watch lease key = %v, want *OpError", err)
	}
}

func TestAcquireWatchLeaseRejects(t *testing.T) {
	s := newTestStore(t, miniRedis.start(t))
	tests := []struct {
		name, org, role string
		ttl             time.Duration
	}{
		{"bad org", "a:b", watchExchange, time.Second},
		{"empty org", "", watchExchange, time.Second},
		{"bad role", testOrg, "watch exchange", time.Second},
		{"zero ttl", testOrg, watchExchange, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if l, err := s.AcquireWatchLease(t.Context(), tc.org, tc.role, tc.ttl); err == nil {
				t.Fatalf("acquired %+v", l)
			}
		})
	}
}

// TestWatchLeaseSurvivesLostRedisState: Redis flushed under a holder issues the same token
// again; the holder of before must not take the new holder's lease for its own (both would
// watch the org for ever), and must not release it.
func TestWatchLeaseSurvivesLostRedisState(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		before, err := s.AcquireWatchLease(ctx, testOrg, watchExchange, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		after, err := s.AcquireWatchLease(ctx, testOrg, watchExchange, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if after.Token() != before.Token() {
			t.Logf("tokens %d and %d differ: the case this test is about did not arise", before.Token(), after.Token())
		}
		if err := before.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("the holder from before the flush renewed: %v", err)
		}
		if err := before.Release(ctx); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("the holder from before the flush released: %v", err)
		}
		if err := after.Renew(ctx); err != nil {
			t.Fatalf("the new holder: %v", err)
		}
	})
}

// TestMailboxWatchMarks: a mailbox's mark is quiet only while the same watcher, still holding
// the org's watch lease, has watched it and noted nothing; every note, and the lease's end,
// breaks the quiet. Other mailboxes and roles are unaffected.
func TestMailboxWatchMarks(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		uk := UserKey{OrgID: testOrg, UserID: "005000000000001AAA"}
		other := UserKey{OrgID: testOrg, UserID: "005000000000002AAA"}
		mark := func(uk UserKey) WatchMark {
			t.Helper()
			m, err := s.MailboxWatchMark(ctx, uk, watchExchange)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		note := func(l *Lease, notes ...WatchNote) {
			t.Helper()
			if err := s.NoteWatches(ctx, l, notes); err != nil {
				t.Fatal(err)
			}
		}
		if m := mark(uk); m.Watched() || m.Quiet(m) {
			t.Fatalf("mark %+v of a mailbox nobody watched is watched or quiet", m)
		}
		lease, err := s.AcquireWatchLease(ctx, testOrg, watchExchange, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		note(lease, WatchNote{UserID: uk.UserID, Event: WatchStarted}, WatchNote{UserID: other.UserID, Event: WatchStarted})
		before := mark(uk)
		if !before.Watched() || !mark(uk).Quiet(before) {
			t.Fatalf("mark %+v of a watched mailbox is not quiet", before)
		}
		// Another mailbox's change, and another role's lease, leave it quiet.
		note(lease, WatchNote{UserID: other.UserID, Event: WatchChanged})
		if _, err := s.AcquireWatchLease(ctx, testOrg, watchSalesforce, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if !mark(uk).Quiet(before) {
			t.Fatal("another mailbox's change broke the quiet")
		}
		// Its own change breaks it, and so does a stop and start of its watch.
		note(lease, WatchNote{UserID: uk.UserID, Event: WatchChanged})
		if mark(uk).Quiet(before) {
			t.Fatal("quiet after a change")
		}
		before = mark(uk)
		note(lease, WatchNote{UserID: uk.UserID, Event: WatchStopped})
		if m := mark(uk); m.Watched() || m.Quiet(before) {
			t.Fatalf("mark %+v watched or quiet after its watch stopped", m)
		}
		note(lease, WatchNote{UserID: uk.UserID, Event: WatchStarted})
		if mark(uk).Quiet(before) {
			t.Fatal("quiet across a stop and a start of the watch")
		}
		// A watcher that loses its lease no longer watches anything.
		before = mark(other)
		if err := lease.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if m := mark(other); m.Watched() || m.Quiet(before) {
			t.Fatalf("mark %+v watched or quiet once its watcher's lease is gone", m)
		}
		// A new holder starts again: its marks differ from the old holder's.
		next, err := s.AcquireWatchLease(ctx, testOrg, watchExchange, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		note(next, WatchNote{UserID: other.UserID, Event: WatchStarted})
		if m := mark(other); !m.Watched() || m.Quiet(before) {
			t.Fatalf("mark %+v under a new lease: not watched, or quiet since the old lease's", m)
		}
		for _, bad := range []WatchNote{
			{UserID: "bad id", Event: WatchChanged},
			{UserID: uk.UserID, Event: WatchItems},
			{UserID: uk.UserID, Event: WatchChanged, Items: []WatchedItem{{ID: "a", Version: "1"}}},
			{UserID: uk.UserID, Event: WatchItems, Items: []WatchedItem{{ID: "a b", Version: "1"}}},
			{UserID: uk.UserID, Event: 9},
		} {
			if err := s.NoteWatches(ctx, next, []WatchNote{bad}); err == nil {
				t.Errorf("%+v was noted", bad)
			}
		}
	})
}

// TestNotedItems: the items of a mailbox's item notes are told for a range of notes only when
// every note of the range is an item note whose items are all kept.
func TestNotedItems(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		uk := UserKey{OrgID: testOrg, UserID: "005000000000001AAA"}
		lease, err := s.AcquireWatchLease(ctx, testOrg, watchExchange, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		a, b, c := WatchedItem{"AAMk-a", "ck1"}, WatchedItem{"AAMk-b", "ck1"}, WatchedItem{"AAMk-a", "ck2"}
		if err := s.NoteWatches(ctx, lease, []WatchNote{
			{UserID: uk.UserID, Event: WatchStarted},                           // 1
			{UserID: uk.UserID, Event: WatchItems, Items: []WatchedItem{a, b}}, // 2
			{UserID: uk.UserID, Event: WatchChanged},                           // 3
			{UserID: uk.UserID, Event: WatchItems, Items: []WatchedItem{c}},    // 4
			{UserID: "005000000000002AAA", Event: WatchItems, Items: []WatchedItem{b}},
		}); err != nil {
			t.Fatal(err)
		}
		if m, err := s.MailboxWatchMark(ctx, uk, watchExchange); err != nil || m.Notes != 4 {
			t.Fatalf("mark %+v, %v; want 4 notes", m, err)
		}
		for _, tc := range []struct {
			from, to int64
			want     []WatchedItem
			ok       bool
		}{
			{1, 2, []WatchedItem{a, b}, true},
			{3, 4, []WatchedItem{c}, true},
			{4, 4, nil, true},
			{0, 2, nil, false}, // the start of the watch
			{1, 4, nil, false}, // a change of any kind
			{2, 3, nil, false},
		} {
			got, ok, err := s.NotedItems(ctx, uk, watchExchange, tc.from, tc.to)
			if err != nil || ok != tc.ok || !slices.Equal(got, tc.want) {
				t.Errorf("notes %d..%d: %v, %v, %v; want %v, %v", tc.from, tc.to, got, ok, err, tc.want, tc.ok)
			}
		}
		// Only the newest items are kept: a range that needs items no longer kept is not told.
		many := make([]WatchedItem, MaxNotedItems-1)
		for i := range many {
			many[i] = WatchedItem{ID: fmt.Sprintf("AAMk-%d", i), Version: "ck"}
		}
		if err := s.NoteWatches(ctx, lease, []WatchNote{{UserID: uk.UserID, Event: WatchItems, Items: many}}); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.NotedItems(ctx, uk, watchExchange, 1, 2); ok || err != nil {
			t.Errorf("a note trimmed in part told: %v, %v", ok, err)
		}
		if got, ok, err := s.NotedItems(ctx, uk, watchExchange, 3, 5); !ok || err != nil || len(got) != MaxNotedItems {
			t.Errorf("the notes kept whole: %d items, %v, %v", len(got), ok, err)
		}
	})
}
