package ews

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

var bothKinds = []tandemv1.RecordKind{tandemv1.RecordKind_RECORD_KIND_CONTACT, tandemv1.RecordKind_RECORD_KIND_EVENT}

// changes records the mailboxes a watcher reported.
type changes struct {
	mu  sync.Mutex
	got map[string]int
}

func (c *changes) add(mb exchange.Mailbox) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.got == nil {
		c.got = map[string]int{}
	}
	c.got[mb.Address]++
}

func (c *changes) count(address string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[address]
}

// watchEnv is a simulator with mailboxes spread over two mailbox servers and a watcher on them.
type watchEnv struct {
	env       *simEnv
	conn      *Connector
	w         *Watcher
	changes   *changes
	mailboxes []string
	cancel    context.CancelFunc
	done      chan error
}

func newWatchEnv(t *testing.T, users int, cfg ewssim.Config, mutate ...func(*WatchConfig)) *watchEnv {
	t.Helper()
	cfg.MailboxServers = 2
	env := newSimEnv(t, cfg)
	we := &watchEnv{env: env, changes: &changes{}}
	for i := range users {
		a := fmt.Sprintf("rep%02d@contoso.com", i)
		if err := env.sim.AddMailbox(a); err != nil {
			t.Fatal(err)
		}
		we.mailboxes = append(we.mailboxes, a)
	}
	we.conn = env.connector(t, env.connection())
	wc := WatchConfig{OnChange: we.changes.add, Backoff: retry.Policy{Base: 10 * time.Millisecond, Max: 100 * time.Millisecond}, MaxPerConnection: 2}
	for _, m := range mutate {
		m(&wc)
	}
	we.w = we.conn.NewWatcher(wc)
	we.set(we.mailboxes...)
	ctx, cancel := context.WithCancel(t.Context())
	we.cancel, we.done = cancel, make(chan error, 1)
	go func() { we.done <- we.w.Run(ctx) }()
	t.Cleanup(func() { we.stop(t) })
	return we
}

func (we *watchEnv) set(addresses ...string) {
	var ws []Watch
	for i, a := range addresses {
		ws = append(ws, Watch{Mailbox: exchange.Mailbox{OrgID: "00D000000000001", UserID: fmt.Sprintf("005%012d", i), Address: a}, Kinds: bothKinds})
	}
	we.w.Set(ws)
}

func (we *watchEnv) stop(t *testing.T) {
	t.Helper()
	if we.cancel == nil {
		return
	}
	we.cancel()
	we.cancel = nil
	select {
	case err := <-we.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the watcher did not stop")
	}
}

// subscribed waits until every one of addresses has one subscription and every subscription is
// on an open connection.
func (we *watchEnv) subscribed(t *testing.T, addresses ...string) {
	t.Helper()
	poll.Until(t, fmt.Sprintf("subscriptions of %v on open connections", addresses), func() bool {
		if len(we.env.sim.Subscriptions("")) != len(addresses) {
			return false
		}
		for _, a := range addresses {
			if len(we.env.sim.Subscriptions(a)) != 1 {
				return false
			}
		}
		return we.env.sim.Streams() == wantConnections(we.env.sim, addresses, 2)
	})
}

// wantConnections is how many connections subscriptions of addresses need: per mailbox
// server, one per perConnection subscriptions.
func wantConnections(sim *ewssim.Server, addresses []string, perConnection int) int {
	per := map[string]int{}
	for _, a := range addresses {
		per[sim.MailboxServer(a)]++
	}
	n := 0
	for _, c := range per {
		n += (c + perConnection - 1) / perConnection
	}
	return n
}

// edit changes a contact and an event of the mailbox as its owner would, and waits for the
// watcher to report the mailbox changed.
func (we *watchEnv) edit(t *testing.T, address string) {
	t.Helper()
	before := we.changes.count(address)
	if _, err := we.env.sim.PutContact(address, ewssim.SyncFolderName, ewssim.Contact{GivenName: "New", Surname: "Contact"}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "a change reported for "+address, func() bool { return we.changes.count(address) > before })
	before = we.changes.count(address)
	if _, err := we.env.sim.PutEvent(address, ewssim.CalendarItem{ItemBase: ewssim.ItemBase{Subject: "Call"}}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "a calendar change reported for "+address, func() bool { return we.changes.count(address) > before })
}

// watcherGoroutines counts the goroutines running the watcher's code.
func watcherGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "ews.(*Watcher)") || strings.Contains(g, "ews.(*Client).GetStreamingEvents") {
			n++
		}
	}
	return n
}

func TestWatcherReportsChanges(t *testing.T) {
	we := newWatchEnv(t, 5, ewssim.Config{StreamingMinute: 300 * time.Millisecond, StreamingKeepAlive: 50 * time.Millisecond},
		func(c *WatchConfig) { c.ConnectionTimeout = time.Minute })
	we.subscribed(t, we.mailboxes...)
	for _, a := range we.mailboxes {
		we.edit(t, a)
	}
	// Only the watched folders count.
	quiet := we.mailboxes[0]
	before := we.changes.count(quiet)
	if _, err := we.env.sim.PutMessage(quiet, "inbox", ewssim.Message{ItemBase: ewssim.ItemBase{Subject: "hi"}}); err != nil {
		t.Fatal(err)
	}
	// Connections reach their timeout every 300ms and are opened again at once; changes keep
	// coming through.
	conns := int64(wantConnections(we.env.sim, we.mailboxes, 2))
	opened := we.env.sim.Counts()["GetStreamingEvents"]
	poll.Until(t, "connections opened again after their timeout", func() bool {
		return we.env.sim.Counts()["GetStreamingEvents"] >= opened+2*conns
	})
	if got := we.changes.count(quiet); got != before {
		t.Errorf("%d changes reported for a message in the inbox", got-before)
	}
	we.subscribed(t, we.mailboxes...)
	we.edit(t, we.mailboxes[4])
}

// clock is a settable clock for the simulator.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestWatcherResubscribesLostSubscriptions(t *testing.T) {
	clk := &clock{t: time.Now()}
	we := newWatchEnv(t, 3, ewssim.Config{StreamingKeepAlive: 50 * time.Millisecond, Clock: clk.now})
	we.subscribed(t, we.mailboxes...)
	sim := we.env.sim

	t.Run("network failure", func(t *testing.T) {
		subs := sim.Subscriptions("")
		sim.CutStreams()
		// The connections come back with the same subscriptions, and what happened while
		// they were down is reported.
		if _, err := sim.PutEvent(we.mailboxes[1], ewssim.CalendarItem{ItemBase: ewssim.ItemBase{Subject: "while down"}}); err != nil {
			t.Fatal(err)
		}
		we.subscribed(t, we.mailboxes...)
		poll.Until(t, "the change made while down", func() bool { return we.changes.count(we.mailboxes[1]) > 0 })
		if got := sim.Subscriptions(""); !slices.Equal(got, subs) {
			t.Errorf("subscriptions %v after a network failure, want the same %v", got, subs)
		}
	})

	t.Run("server restart", func(t *testing.T) {
		before := map[string]int{}
		for _, a := range we.mailboxes {
			before[a] = we.changes.count(a)
		}
		old := sim.Subscriptions("")
		if n := sim.DropSubscriptions(""); n != len(we.mailboxes) {
			t.Fatalf("dropped %d", n)
		}
		we.subscribed(t, we.mailboxes...)
		if got := sim.Subscriptions(""); slices.ContainsFunc(got, func(id string) bool { return slices.Contains(old, id) }) {
			t.Fatalf("old subscriptions %v still in use: %v", old, got)
		}
		// What happened between the loss and the new subscription went unreported: every
		// mailbox counts as changed once.
		for _, a := range we.mailboxes {
			poll.Until(t, "a change reported for "+a+" after its subscription was lost", func() bool { return we.changes.count(a) > before[a] })
		}
		for _, a := range we.mailboxes {
			we.edit(t, a)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		// The connections cannot be opened for longer than subscriptions outlive them.
		old := sim.Subscriptions("")
		sim.InjectFault(ewssim.Fault{Operation: "GetStreamingEvents", Kind: ewssim.FaultHTTPStatus, Status: 503, Times: -1})
		fired := sim.FaultCounts()["HTTP503"]
		sim.CutStreams()
		poll.Until(t, "failed attempts to connect", func() bool { return sim.FaultCounts()["HTTP503"] >= fired+2 })
		clk.advance(31 * time.Minute)
		sim.ClearFaults()
		poll.Until(t, "new subscriptions", func() bool {
			got := sim.Subscriptions("")
			return len(got) == len(old) && !slices.ContainsFunc(got, func(id string) bool { return slices.Contains(old, id) })
		})
		we.subscribed(t, we.mailboxes...)
		we.edit(t, we.mailboxes[2])
	})
}

func TestWatcherFollowsTheWatchedSet(t *testing.T) {
	base := watcherGoroutines()
	we := newWatchEnv(t, 4, ewssim.Config{StreamingKeepAlive: 50 * time.Millisecond})
	sim := we.env.sim
	we.subscribed(t, we.mailboxes...)

	// Users who stop syncing lose their subscriptions.
	we.set(we.mailboxes[:2]...)
	we.subscribed(t, we.mailboxes[:2]...)
	we.edit(t, we.mailboxes[0])

	// A mailbox the service account cannot reach is retried with back-off, and does not hold
	// up the others.
	asked := sim.Counts()["GetUserSettings"]
	we.set(append(slices.Clone(we.mailboxes[:2]), "nobody@contoso.com")...)
	poll.Until(t, "attempts to find a mailbox that does not exist", func() bool { return sim.Counts()["GetUserSettings"] >= asked+2 })
	we.edit(t, we.mailboxes[1])

	// Stopping ends every connection and subscription, and every goroutine.
	we.stop(t)
	if got := sim.Subscriptions(""); len(got) != 0 {
		t.Errorf("subscriptions left after the watcher stopped: %v", got)
	}
	poll.Until(t, "the connections closed", func() bool { return sim.Streams() == 0 })
	poll.Until(t, "the watcher's goroutines ended", func() bool { return watcherGoroutines() <= base })
}

// TestWatcherCatchUp: a watcher taking over mailboxes nobody watched (CatchUp) reports each
// as changed once it is subscribed, since what changed before was not reported; later edits
// are reported as usual. Without CatchUp, a new subscription reports nothing by itself.
func TestWatcherCatchUp(t *testing.T) {
	for _, catchUp := range []bool{false, true} {
		t.Run(fmt.Sprintf("catch up %v", catchUp), func(t *testing.T) {
			we := newWatchEnv(t, 3, ewssim.Config{}, func(c *WatchConfig) { c.CatchUp = catchUp })
			we.subscribed(t, we.mailboxes...)
			for _, a := range we.mailboxes {
				want := 0
				if catchUp {
					want = 1
				}
				if got := we.changes.count(a); got != want {
					t.Errorf("%s reported changed %d times once subscribed, want %d", a, got, want)
				}
			}
			we.edit(t, we.mailboxes[0])
		})
	}
}

// watching records what a watcher last told OnWatching of each mailbox, and how often.
type watching struct {
	mu    sync.Mutex
	now   map[string]bool
	calls map[string]int
}

func (w *watching) set(mb exchange.Mailbox, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.now == nil {
		w.now, w.calls = map[string]bool{}, map[string]int{}
	}
	if w.now[mb.Address] == on {
		panic(fmt.Sprintf("OnWatching(%s, %v) twice in a row", mb.Address, on))
	}
	w.now[mb.Address] = on
	w.calls[mb.Address]++
}

func (w *watching) state(address string) (on bool, calls int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now[address], w.calls[address]
}

// TestWatcherTellsWhichMailboxesAreWatched: a mailbox counts as watched once its subscription
// is made (Exchange keeps its events for the connection), stops counting when its connection
// fails, its subscription is lost or dropped, or the watcher stops, and counts again once a
// connection delivers; every change in a mailbox that is not watched is reported once it is
// watched again, so that whoever relies on the notifications may skip reading a mailbox only
// while it is watched.
func TestWatcherTellsWhichMailboxesAreWatched(t *testing.T) {
	on := &watching{}
	we := newWatchEnv(t, 3, ewssim.Config{StreamingKeepAlive: 50 * time.Millisecond}, func(c *WatchConfig) { c.OnWatching = on.set })
	sim := we.env.sim
	we.subscribed(t, we.mailboxes...)
	for _, a := range we.mailboxes {
		poll.Until(t, a+" watched", func() bool { w, _ := on.state(a); return w })
	}

	// A connection that fails unwatches its mailboxes until it delivers again; the change made
	// meanwhile is reported.
	_, before := on.state(we.mailboxes[1])
	changes := we.changes.count(we.mailboxes[1])
	sim.InjectFault(ewssim.Fault{Operation: "GetStreamingEvents", Kind: ewssim.FaultHTTPStatus, Status: 503, Times: -1})
	sim.CutStreams()
	poll.Until(t, "the mailbox unwatched after its connection failed", func() bool { w, n := on.state(we.mailboxes[1]); return !w && n > before })
	if _, err := sim.PutContact(we.mailboxes[1], ewssim.SyncFolderName, ewssim.Contact{GivenName: "While", Surname: "Down"}); err != nil {
		t.Fatal(err)
	}
	sim.ClearFaults()
	poll.Until(t, "the mailbox watched again", func() bool { w, _ := on.state(we.mailboxes[1]); return w })
	poll.Until(t, "the change made while unwatched", func() bool { return we.changes.count(we.mailboxes[1]) > changes })

	// A lost subscription unwatches the mailbox until it is made again.
	poll.Until(t, "every mailbox watched again", func() bool { w, _ := on.state(we.mailboxes[2]); return w })
	_, before = on.state(we.mailboxes[2])
	if n := sim.DropSubscriptions(we.mailboxes[2]); n != 1 {
		t.Fatalf("dropped %d subscriptions", n)
	}
	poll.Until(t, "the mailbox watched again after a lost subscription", func() bool { w, n := on.state(we.mailboxes[2]); return w && n >= before+2 })

	// A mailbox dropped from the set is no longer watched; the others still are.
	we.set(we.mailboxes[1:]...)
	poll.Until(t, "the dropped mailbox unwatched", func() bool { w, _ := on.state(we.mailboxes[0]); return !w })
	we.edit(t, we.mailboxes[1])
	if w, _ := on.state(we.mailboxes[1]); !w {
		t.Errorf("%s unwatched while its notifications arrive", we.mailboxes[1])
	}

	// Stopping unwatches every mailbox.
	we.stop(t)
	for _, a := range we.mailboxes {
		if w, _ := on.state(a); w {
			t.Errorf("%s still watched after the watcher stopped", a)
		}
	}
}

// items records what a watcher reported to OnItems.
type items struct {
	mu  sync.Mutex
	got map[string][]ItemID
}

func (it *items) add(mb exchange.Mailbox, ids []ItemID) {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.got == nil {
		it.got = map[string][]ItemID{}
	}
	it.got[mb.Address] = append(it.got[mb.Address], ids...)
}

func (it *items) of(address string) []ItemID {
	it.mu.Lock()
	defer it.mu.Unlock()
	return slices.Clone(it.got[address])
}

// TestWatcherReportsItemChanges: with OnItems, a notification that only creates or modifies
// items is reported with the items and the change keys they are at, and not to OnChange; one
// that deletes an item still goes to OnChange.
func TestWatcherReportsItemChanges(t *testing.T) {
	got := &items{}
	we := newWatchEnv(t, 1, ewssim.Config{StreamingKeepAlive: 50 * time.Millisecond}, func(c *WatchConfig) { c.OnItems = got.add })
	sim, a := we.env.sim, we.mailboxes[0]
	we.subscribed(t, a)

	id, err := sim.PutContact(a, ewssim.SyncFolderName, ewssim.Contact{GivenName: "New", Surname: "Contact"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.UpdateItem(a, id, func(it *ewssim.Item) { it.Contact.JobTitle = "CEO" }); err != nil {
		t.Fatal(err)
	}
	var ck string
	for _, it := range sim.Items(a, ewssim.SyncFolderName) {
		if it.ItemID == id {
			ck = it.ChangeKey
		}
	}
	poll.Until(t, "the edit reported with its change key", func() bool {
		return slices.Contains(got.of(a), ItemID{ID: id, ChangeKey: ck})
	})
	if n := we.changes.count(a); n != 0 {
		t.Errorf("item changes also reported to OnChange %d times", n)
	}
	if err := sim.DeleteItem(a, id); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the delete reported as a change", func() bool { return we.changes.count(a) > 0 })
}
