package exchangeworker

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/ews"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// notifyEnv is the notifier of a worker with the real EWS connector against the simulator
// (newEWSEnv: rep1 has a mailbox, rep2 one the service account may not impersonate, rep3
// none), on real NATS and Redis, all three users syncing contacts and events.
type notifyEnv struct {
	*env
	sim    *ewssim.Server
	n      *notifier
	cancel context.CancelFunc
	done   chan error
}

func newNotifyEnv(t *testing.T) *notifyEnv {
	t.Helper()
	e, sim := newEWSEnv(t)
	ne := &notifyEnv{env: e, sim: sim}
	ne.configure(t, rep1, rep2, rep3)
	ne.n = newNotifier(NotifyConfig{Enabled: true, Refresh: 50 * time.Millisecond, MinGap: 10 * time.Millisecond}, e.st, e.w.conns, e.p.Logger)
	ne.n.watchConfig = func(c *ews.WatchConfig) {
		c.Backoff = retry.Policy{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	}
	ctx, cancel := context.WithCancel(t.Context())
	ne.cancel, ne.done = cancel, make(chan error, 1)
	go func() { ne.done <- ne.n.Run(ctx) }()
	t.Cleanup(func() { ne.stop(t) })
	return ne
}

// configure makes users the org's syncing users.
func (ne *notifyEnv) configure(t *testing.T, users ...string) {
	t.Helper()
	cfgs, err := ne.st.ListConfigurations(t.Context(), testOrg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tandemv1.SyncConfiguration{
		Name: "reps", Active: true, UserIds: users,
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH},
		Events:   &tandemv1.EventSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH},
	}
	if len(cfgs) > 0 {
		cfg.Id = cfgs[0].GetId()
	}
	if _, err := ne.st.PutConfiguration(t.Context(), testOrg, cfg); err != nil {
		t.Fatal(err)
	}
}

func (ne *notifyEnv) stop(t *testing.T) {
	t.Helper()
	if ne.cancel == nil {
		return
	}
	ne.cancel()
	ne.cancel = nil
	select {
	case err := <-ne.done:
		if err != nil {
			t.Errorf("the notifier returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the notifier did not stop")
	}
}

// quiet starts the org's cycle as the scheduler would, with the next one an hour away: the
// poll interval alone would not sync it again for an hour.
func (ne *notifyEnv) quiet(t *testing.T) {
	t.Helper()
	now := time.Now()
	if _, ok, err := ne.st.ClaimCycle(t.Context(), testOrg, now, now.Add(time.Hour)); err != nil || !ok {
		t.Fatalf("claim a cycle: %v %v", ok, err)
	}
}

// woken waits, at most within, for the org's next cycle to be due.
func (ne *notifyEnv) woken(t *testing.T, within time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	poll.Within(t, within, what, func() bool {
		sch, err := ne.st.GetSchedule(t.Context(), testOrg)
		if err != nil {
			t.Fatal(err)
		}
		return !sch.NextAt.After(time.Now())
	})
	return time.Since(start)
}

func (ne *notifyEnv) subscribed(t *testing.T) []string {
	t.Helper()
	poll.Until(t, "rep1's subscription on an open connection", func() bool {
		return len(ne.sim.Subscriptions(rep1Mailbox)) == 1 && ne.sim.Streams() == 1
	})
	return ne.sim.Subscriptions(rep1Mailbox)
}

// notifyGoroutines counts the goroutines running the notifier's or a watcher's code.
func notifyGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "exchangeworker.(*notifier)") || strings.Contains(g, "ews.(*Watcher)") ||
			strings.Contains(g, "ews.(*Client).GetStreamingEvents") {
			n++
		}
	}
	return n
}

func TestNotifyComponent(t *testing.T) {
	cfg := testConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, cfg, func(p *platform.Platform) ConnectorFactory { return EWSConnectors(true, p.Logger) })
	if got := len(e.w.Components()); got != 2 {
		t.Errorf("%d components with notifications off, want 2", got)
	}
	e.w.cfg.Notify.Enabled = true
	if got := len(e.w.Components()); got != 3 {
		t.Errorf("%d components with notifications on, want 3", got)
	}
	for _, bad := range []NotifyConfig{{ConnectionTimeout: time.Hour}, {MinGap: -time.Second}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestNotifierWakesTheOrg: a user's edit in Exchange makes the org's next cycle due within a
// second, although the poll interval would sync it an hour later.
func TestNotifierWakesTheOrg(t *testing.T) {
	base := notifyGoroutines()
	ne := newNotifyEnv(t)
	ne.quiet(t)
	ne.subscribed(t)

	t.Run("contact edited", func(t *testing.T) {
		items := ne.sim.Items(rep1Mailbox, ewssim.SyncFolderName)
		if err := ne.sim.UpdateItem(rep1Mailbox, items[0].ItemID, func(it *ewssim.Item) { it.Contact.JobTitle = "CEO" }); err != nil {
			t.Fatal(err)
		}
		took := ne.woken(t, time.Second, "the org woken by a contact edit")
		t.Logf("woken %s after the edit", took)
	})

	t.Run("event added", func(t *testing.T) {
		ne.quiet(t)
		if _, err := ne.sim.PutEvent(rep1Mailbox, ewssim.CalendarItem{ItemBase: ewssim.ItemBase{Subject: "Quarterly review"}}); err != nil {
			t.Fatal(err)
		}
		ne.woken(t, time.Second, "the org woken by a new event")
	})

	t.Run("user no longer syncing", func(t *testing.T) {
		ne.configure(t, rep2, rep3)
		poll.Until(t, "rep1's subscription ended", func() bool { return len(ne.sim.Subscriptions("")) == 0 && ne.sim.Streams() == 0 })
		ne.configure(t, rep1, rep2, rep3)
		ne.subscribed(t)
	})

	t.Run("stop", func(t *testing.T) {
		ne.stop(t)
		if got := ne.sim.Subscriptions(""); len(got) != 0 {
			t.Errorf("subscriptions left after the notifier stopped: %v", got)
		}
		poll.Until(t, "the notifier's goroutines ended", func() bool { return notifyGoroutines() <= base })
	})
}

// TestNotifierResubscribes: subscriptions the simulator drops (a restarted mailbox server) are
// made again, the org is woken for the changes that may have gone unnotified, and later edits
// wake it as before.
func TestNotifierResubscribes(t *testing.T) {
	ne := newNotifyEnv(t)
	old := ne.subscribed(t)
	ne.quiet(t)

	if n := ne.sim.DropSubscriptions(""); n != 1 {
		t.Fatalf("dropped %d subscriptions, want rep1's", n)
	}
	poll.Until(t, "rep1 subscribed again", func() bool {
		got := ne.sim.Subscriptions(rep1Mailbox)
		return len(got) == 1 && got[0] != old[0] && ne.sim.Streams() == 1
	})
	ne.woken(t, time.Second, "the org woken after its lost subscription was made again")

	ne.quiet(t)
	if _, err := ne.sim.PutContact(rep1Mailbox, ewssim.SyncFolderName, ewssim.Contact{GivenName: "Ada", Surname: "Lovelace"}); err != nil {
		t.Fatal(err)
	}
	ne.woken(t, time.Second, "the org woken by an edit after the new subscription")
}
