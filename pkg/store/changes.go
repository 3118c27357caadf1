package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Changes. Whoever watches statuses (the API's WatchOrgStatus and WatchUserStatus) learns that
// an org's status may have changed from an announcement on the org's channel ChangesChannel,
// instead of reading the whole org again and again. The writers of a status's inputs announce
// each write (PublishChange): package status the parts and kind statuses of a user's status,
// with the user's id; reset marks, with the user's id; AddActivity, the Salesforce API usage,
// org settings (PutOrg), configurations, the user directory and the start of a cycle, org-level
// inputs, with an empty id. What is computed from the clock alone (the last hour's and day's
// counts) is not announced: a watcher reads everything again on a slow timer as well.
//
// PUBLISH, not the sharded SPUBLISH. On Redis Cluster a PUBLISH is broadcast to every node
// over the cluster bus, so a subscriber may listen on any node and its subscription lives
// through slot migrations and failovers like any connection does. Sharded pub/sub (Redis 7)
// keeps a message within its slot's shard, which spares the cluster bus, but the server ends a
// sharded subscription when its slot moves (the client would have to notice and subscribe
// again), it needs Redis 7, and miniredis, the fallback `tandem dev` runs on, does not have
// it. The announcements are a user id each and as frequent as status writes (a few per user
// and cycle), which the cluster bus carries easily; wake.go chose the same. The channel
// carries the org's hash tag, so moving to SPUBLISH/SSUBSCRIBE would change two calls here.
//
// Announcements are best effort. One is lost when its PUBLISH fails (the status write it
// announces stands) or while a subscriber's connection is down: nothing is stored, and a
// subscriber that was not listening hears nothing. A ChangeFeed says so after it subscribed
// again (Changes.Lost); a lost PUBLISH is covered by the watcher's timer.

// maxPendingUsers bounds the users a ChangeFeed gathers between two takes: beyond it the feed
// forgets them and says Lost, and its reader reads every user again.
const maxPendingUsers = 10000

// PublishChange announces on the org's channel that the status of userID was written or, with
// userID empty, an org-level input of the org's status. It is one PUBLISH of the user id,
// which costs Redis the same whether anyone listens or not. Its error is for the caller to
// drop: an announcement is best effort, and a failed one must never fail the write it follows.
func (s *Store) PublishChange(ctx context.Context, orgID, userID string) error {
	ch, err := ChangesChannel(orgID)
	if err != nil {
		return fmt.Errorf("announce a change: %w", err)
	}
	if userID != "" {
		if err := checkID("user id", userID); err != nil {
			return fmt.Errorf("announce a change of org %s: %w", orgID, err)
		}
	}
	if err := s.rdb.Publish(ctx, ch, userID).Err(); err != nil {
		return fmt.Errorf("announce a change of org %s: %w", orgID, err)
	}
	return nil
}

// Changes are what a ChangeFeed gathered since its reader last took them.
type Changes struct {
	// Users are the users whose status was written, each once, in no particular order.
	Users []string
	// Org is set when an org-level input of the org's status was written (activity, Salesforce
	// API usage).
	Org bool
	// Lost is set when announcements may have been missed: the feed subscribed again after a
	// lost connection, or more users changed than it keeps (maxPendingUsers). The reader
	// should read everything again.
	Lost bool
}

// Empty reports whether nothing was gathered.
func (c Changes) Empty() bool { return len(c.Users) == 0 && !c.Org && !c.Lost }

// ChangeFeed listens to one org's changes (SubscribeChanges) and gathers them until its reader
// takes them: a busy reader never holds up the subscription and misses nothing, and a burst of
// announcements is taken in one go. It is safe for concurrent use.
type ChangeFeed struct {
	ps     *redis.PubSub
	cancel context.CancelFunc
	ready  chan struct{} // holds a token while changes are pending
	done   chan struct{} // closed once the subscription is closed

	mu    sync.Mutex
	users map[string]struct{}
	org   bool
	lost  bool
}

// SubscribeChanges listens to the org's changes until ctx ends or Close is called. The
// subscription is made before SubscribeChanges returns, so a reader that subscribes and then
// reads the current statuses misses no change written after its read.
//
// Each feed holds a connection to Redis of its own (a subscribed connection serves nothing
// else), so the caller bounds how many it keeps open.
func (s *Store) SubscribeChanges(ctx context.Context, orgID string) (*ChangeFeed, error) {
	ch, err := ChangesChannel(orgID)
	if err != nil {
		return nil, fmt.Errorf("listen to changes: %w", err)
	}
	ps := s.rdb.Subscribe(ctx, ch)
	// Receive waits for the subscription's confirmation, so that the caller may rely on it.
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("listen to changes of org %s: %w", orgID, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &ChangeFeed{ps: ps, cancel: cancel, ready: make(chan struct{}, 1), done: make(chan struct{}), users: map[string]struct{}{}}
	// With subscriptions, so that a subscription made again after a lost connection shows.
	go f.run(ctx, ps.ChannelWithSubscriptions())
	return f, nil
}

func (f *ChangeFeed) run(ctx context.Context, msgs <-chan any) {
	defer close(f.done)
	defer f.ps.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Message:
				f.add(m.Payload)
			case *redis.Subscription:
				// The first confirmation was taken by SubscribeChanges: this one follows a
				// reconnection, and what was announced in between is lost.
				if m.Kind == "subscribe" {
					f.markLost()
				}
			}
		}
	}
}

func (f *ChangeFeed) add(payload string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case payload == "":
		f.org = true
	case !ValidID(payload):
		return // not an announcement of ours
	case f.lost:
		// Everything will be read again: no need to keep users.
	case len(f.users) >= maxPendingUsers:
		f.lost = true
		clear(f.users)
	default:
		f.users[payload] = struct{}{}
	}
	f.signal()
}

func (f *ChangeFeed) markLost() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lost = true
	clear(f.users)
	f.signal()
}

// signal leaves a token in ready unless one is there already; f.mu is held, so that Take,
// which removes it under f.mu, never leaves a token behind for changes it took.
func (f *ChangeFeed) signal() {
	select {
	case f.ready <- struct{}{}:
	default:
	}
}

// Ready receives when changes are pending; Take them.
func (f *ChangeFeed) Ready() <-chan struct{} { return f.ready }

// Done is closed once the feed has stopped listening: its context ended, Close was called, or
// the subscription was closed under it.
func (f *ChangeFeed) Done() <-chan struct{} { return f.done }

// Take returns the changes gathered since the last Take and forgets them.
func (f *ChangeFeed) Take() Changes {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := Changes{Org: f.org, Lost: f.lost}
	for u := range f.users {
		c.Users = append(c.Users, u)
	}
	clear(f.users)
	f.org, f.lost = false, false
	select {
	case <-f.ready:
	default:
	}
	return c
}

// Close stops listening and returns once the subscription is closed.
func (f *ChangeFeed) Close() error {
	f.cancel()
	<-f.done
	return nil
}
