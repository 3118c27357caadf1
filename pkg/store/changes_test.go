package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
)

// takeUntil takes a feed's changes, merged, until done says they are complete. Each take must
// name a user once at most; a user announced again after a take comes again, so the merged
// changes name each user once too.
func takeUntil(t *testing.T, f *ChangeFeed, done func(Changes) bool) Changes {
	t.Helper()
	var all Changes
	deadline := time.After(10 * time.Second)
	for !done(all) {
		select {
		case <-f.Ready():
			c := f.Take()
			if sorted := slices.Sorted(slices.Values(c.Users)); len(slices.Compact(sorted)) != len(c.Users) {
				t.Errorf("one take names a user more than once: %v", c.Users)
			}
			for _, u := range c.Users {
				if !slices.Contains(all.Users, u) {
					all.Users = append(all.Users, u)
				}
			}
			all.Org = all.Org || c.Org
			all.Lost = all.Lost || c.Lost
		case <-deadline:
			t.Fatalf("changes so far: %+v", all)
		}
	}
	return all
}

func hasUser(u string) func(Changes) bool {
	return func(c Changes) bool { return slices.Contains(c.Users, u) }
}

func numSub(t *testing.T, rdb redis.UniversalClient, channel string) int64 {
	t.Helper()
	n, err := rdb.PubSubNumSub(t.Context(), channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n[channel]
}

func TestChangeFeedGathersAnnouncements(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		st := newTestStore(t, rdb)
		const org, other = "00Dorg", "00Dother"
		f, err := st.SubscribeChanges(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if c := f.Take(); !c.Empty() {
			t.Fatalf("a new feed has changes: %+v", c)
		}

		ch, err := ChangesChannel(org)
		if err != nil {
			t.Fatal(err)
		}
		for _, pub := range []func() error{
			func() error { return st.PublishChange(ctx, org, "005u1") },
			func() error { return st.PublishChange(ctx, org, "005u2") },
			func() error { return st.PublishChange(ctx, org, "005u1") },
			func() error { return st.PublishChange(ctx, other, "005other") }, // another org's channel
			func() error { return rdb.Publish(ctx, ch, "not:an id").Err() },  // not ours: skipped
			func() error { return st.PublishChange(ctx, org, "005last") },
		} {
			if err := pub(); err != nil {
				t.Fatal(err)
			}
		}
		got := takeUntil(t, f, hasUser("005last"))
		slices.Sort(got.Users)
		if want := []string{"005last", "005u1", "005u2"}; !slices.Equal(got.Users, want) || got.Org || got.Lost {
			t.Fatalf("changes %+v, want users %v, each once, and nothing else", got, want)
		}

		// An org-level change; nothing is left once taken.
		if err := st.PublishChange(ctx, org, ""); err != nil {
			t.Fatal(err)
		}
		if got := takeUntil(t, f, func(c Changes) bool { return c.Org }); len(got.Users) != 0 || got.Lost {
			t.Fatalf("changes %+v, want only the org's", got)
		}
		if c := f.Take(); !c.Empty() {
			t.Fatalf("changes left after Take: %+v", c)
		}
		select {
		case <-f.Ready():
			t.Fatal("ready with nothing pending")
		default:
		}

		for _, bad := range [][2]string{{"bad:org", ""}, {"", "005u1"}, {org, "bad:user"}} {
			if err := st.PublishChange(ctx, bad[0], bad[1]); err == nil {
				t.Errorf("PublishChange(%q, %q) accepted", bad[0], bad[1])
			}
		}
		if _, err := st.SubscribeChanges(ctx, "bad:org"); err == nil {
			t.Error("SubscribeChanges of a malformed org id accepted")
		}
	})
}

func TestChangeFeedActivityAnnounces(t *testing.T) {
	rdb := redisServer.start(t)
	st := newTestStore(t, rdb)
	ctx := t.Context()
	f, err := st.SubscribeChanges(ctx, "00Dorg")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := st.AddActivity(ctx, "00Dorg", "contact", 3, time.Now()); err != nil {
		t.Fatal(err)
	}
	takeUntil(t, f, func(c Changes) bool { return c.Org })
}

func TestChangeFeedCloses(t *testing.T) {
	rdb := redisServer.start(t)
	st := newTestStore(t, rdb)
	const org = "00Dorg"
	ch, err := ChangesChannel(org)
	if err != nil {
		t.Fatal(err)
	}

	closed, err := st.SubscribeChanges(t.Context(), org)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ended, err := st.SubscribeChanges(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	if n := numSub(t, rdb, ch); n != 2 {
		t.Fatalf("%d subscribers, want 2", n)
	}

	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed.Done():
	default:
		t.Fatal("Close returned before the feed was done")
	}
	cancel()
	select {
	case <-ended.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the feed outlived its context")
	}
	poll.Until(t, "the subscriptions to be gone", func() bool { return numSub(t, rdb, ch) == 0 })
}

func TestChangeFeedSaysLost(t *testing.T) {
	t.Run("after a lost connection", func(t *testing.T) {
		rdb := redisServer.start(t)
		st := newTestStore(t, rdb)
		f, err := st.SubscribeChanges(t.Context(), "00Dorg")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := rdb.Do(t.Context(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
		// The client subscribes again by itself; announcements made meanwhile are gone.
		takeUntil(t, f, func(c Changes) bool { return c.Lost })
		if err := st.PublishChange(t.Context(), "00Dorg", "005after"); err != nil {
			t.Fatal(err)
		}
		if got := takeUntil(t, f, hasUser("005after")); got.Lost {
			t.Fatalf("still lost after a change was heard again: %+v", got)
		}
	})
	t.Run("beyond the users it keeps", func(t *testing.T) {
		rdb := redisServer.start(t)
		st := newTestStore(t, rdb)
		ctx := t.Context()
		f, err := st.SubscribeChanges(ctx, "00Dorg")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		ch, err := ChangesChannel("00Dorg")
		if err != nil {
			t.Fatal(err)
		}
		pipe := rdb.Pipeline()
		for i := range maxPendingUsers + 1 {
			pipe.Publish(ctx, ch, fmt.Sprintf("005u%d", i))
		}
		pipe.Publish(ctx, ch, "")
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		// The last announcement (the org's) arrives after every user's; nothing is taken before.
		poll.Until(t, "every announcement to arrive", func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.org
		})
		if got := f.Take(); !got.Lost || len(got.Users) != 0 {
			t.Fatalf("%d users gathered, lost %v; want lost, and no users kept, beyond %d", len(got.Users), got.Lost, maxPendingUsers)
		}
	})
}
