package devenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/localnats"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/seal"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// running is an environment whose services run until stop is called (or the test ends).
type running struct {
	env  *Env
	stop func()
}

// run runs env's services until the returned stop is called; the test's cleanup stops them too.
func run(t *testing.T, env *Env) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return &running{env: env, stop: stop}
}

// startOn starts an environment on a Redis of the test's own, closed when the test ends.
func startOn(t *testing.T, redisURL string, users, contacts int) *Env {
	t.Helper()
	env, err := Start(t.Context(), Options{
		Users: users, ContactsPerUser: contacts, Seed: 11, Interval: 500 * time.Millisecond,
		RedisURL: redisURL, Dir: t.TempDir(), Log: debugLog(t), LogLevel: debugLevel(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return env
}

// restartOn starts a second Tandem against prev's simulators — a fresh embedded NATS, the
// services, and the org and configuration an admin would store again — on redisURL, as a
// second `tandem dev` on simulators that were already in sync, after Redis was lost.
func restartOn(t *testing.T, prev *Env, redisURL string, org *tandemv1.Org, cfg *tandemv1.SyncConfiguration) *Env {
	t.Helper()
	ctx := t.Context()
	e := &Env{
		opts: prev.opts, dir: t.TempDir(), start: time.Now(), RedisURL: redisURL,
		EWS: prev.EWS, Salesforce: prev.Salesforce, EWSURL: prev.EWSURL, SalesforceURL: prev.SalesforceURL,
		OrgID: prev.OrgID, Mailboxes: prev.Mailboxes,
	}
	t.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	var err error
	if e.nats, err = localnats.Start(localnats.Options{StoreDir: filepath.Join(e.dir, "jetstream"), MaxPayload: 8 << 20, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pcfg := platform.Config{
		NATSURL: e.nats.ClientURL(), StreamReplicas: 1, RedisURL: redisURL, SealKey: seal.EncodeKey(key),
		LogLevel: prev.opts.LogLevel, StopTimeout: 20 * time.Second,
	}
	if e.Platform, err = platform.Open(ctx, pcfg, "dev", prev.opts.Log); err != nil {
		t.Fatal(err)
	}
	if err := Configure(ctx, e.Platform.Store, org, cfg); err != nil {
		t.Fatal(err)
	}
	if err := e.buildServices(pcfg); err != nil {
		t.Fatal(err)
	}
	return e
}

// every returns cond checked at most every period: the environment's summary reads both
// simulators in full, which polling at poll's pace would make the test's main load.
func every(period time.Duration, cond func() bool) func() bool {
	var last time.Time
	return func() bool {
		if time.Since(last) < period {
			return false
		}
		last = time.Now()
		return cond()
	}
}

// settled waits until the environment reports everything in sync, twice in a row.
func settled(t *testing.T, env *Env, within time.Duration) Summary {
	t.Helper()
	var sum Summary
	streak := 0
	poll.Within(t, within, "the environment to be in sync", every(300*time.Millisecond, func() bool {
		var err error
		if sum, err = env.Summary(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !sum.Synced {
			streak = 0
			return false
		}
		streak++
		return streak >= 2
	}))
	return sum
}

// contactState is what both simulators hold, read from the simulators themselves (never from
// Tandem's ledger): per user and side, each contact's identifying content, sorted.
func contactState(env *Env) map[string][]string {
	out := map[string][]string{}
	for userID, email := range env.Mailboxes {
		for _, it := range env.EWS.Items(email, exchange.SyncFolderName) {
			if c := it.Contact; c != nil {
				out[email+" exchange"] = append(out[email+" exchange"], fmt.Sprintf("%s|%s|%s|%s", c.GivenName, c.Surname, strings.ToLower(c.Email("EmailAddress1")), c.JobTitle))
			}
		}
		for _, c := range env.Salesforce.List("Contact") {
			if fmt.Sprint(c["OwnerId"]) != userID {
				continue
			}
			s := func(k string) string {
				if v, ok := c[k]; ok && v != nil {
					return fmt.Sprint(v)
				}
				return ""
			}
			out[email+" salesforce"] = append(out[email+" salesforce"], fmt.Sprintf("%s|%s|%s|%s", s("FirstName"), s("LastName"), strings.ToLower(s("Email")), s("Title")))
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

// compareStates reports duplicates and losses of after against before, side by side.
func compareStates(t *testing.T, what string, before, after map[string][]string) {
	t.Helper()
	for k, want := range before {
		count := map[string]int{}
		for _, c := range want {
			count[c]++
		}
		for _, c := range after[k] {
			count[c]--
		}
		for c, n := range count {
			switch {
			case n < 0:
				t.Errorf("%s: %s holds %s %d more time(s) (duplicated)", what, k, c, -n)
			case n > 0:
				t.Errorf("%s: %s lost %s", what, k, c)
			}
		}
	}
}

// contactStatus sums the users' contact statuses: pairs in sync and pairs relinked by key.
func contactStatus(t *testing.T, env *Env) (inSync, relinked int64) {
	t.Helper()
	st := status.New(env.Platform.Store)
	for userID := range env.Mailboxes {
		us, err := st.Get(t.Context(), store.UserKey{OrgID: env.OrgID, UserID: userID})
		if err != nil {
			t.Fatal(err)
		}
		ks := status.Kind(us, tandemv1.RecordKind_RECORD_KIND_CONTACT)
		inSync += ks.GetRecordsInSync()
		relinked += ks.GetRecordsRelinked()
	}
	return inSync, relinked
}

func contactNamed(first, last, title string) ewssim.Contact {
	return ewssim.Contact{GivenName: first, Surname: last, JobTitle: title}
}

// TestLostStateRelinksNeverDuplicates runs Tandem to in-sync on simulators seeded with the same
// people on both sides (linked by email) and with people without email (linked by name, or
// namesakes created across), then loses all of Tandem's state — FLUSHALL of its Redis and a
// fresh broker — and runs a second Tandem on the same simulators: every pair is relinked by the
// sync key both records carry, with nothing duplicated or lost on either side. A mailbox moved
// to new item ids (every item moved out of the folder and back) relinks the same way.
func TestLostStateRelinksNeverDuplicates(t *testing.T) {
	rs := servertest.RedisServer(t)
	env := startOn(t, rs.URL(), 2, 12)
	var userID, email string
	for id, e := range env.Mailboxes {
		if userID == "" || id < userID {
			userID, email = id, e
		}
	}
	// People without email: one on both sides (linked by name), namesakes only in Exchange
	// (created in Salesforce; after lost state only their keys tell them apart), and one only in
	// Salesforce.
	for _, c := range []ewssim.Contact{contactNamed("Sam", "Same", "Buyer"), contactNamed("Tom", "Twin", "Buyer"), contactNamed("Tom", "Twin", "Seller")} {
		if _, err := env.EWS.PutContact(email, exchange.SyncFolderName, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []map[string]any{{"FirstName": "Sam", "LastName": "Same", "Title": "Buyer"}, {"FirstName": "Nora", "LastName": "Noemail"}} {
		if _, err := env.Salesforce.Insert("Contact", c, userID); err != nil {
			t.Fatal(err)
		}
	}
	first := run(t, env)
	sum := settled(t, env, 90*time.Second)
	before := contactState(env)
	pairs, _ := contactStatus(t, env)
	if pairs != sum.ContactsInSync || pairs < 2*12 {
		t.Fatalf("after the first sync: %d pairs; %+v", pairs, sum)
	}
	// The tags follow the links by a cycle: state lost before they land is relinked by email
	// and name instead (and counted as linked, not relinked).
	poll.Within(t, 60*time.Second, "every pair to carry its sync key", every(300*time.Millisecond, func() bool {
		return keyed(env) == 2*int(pairs)
	}))

	// Lose every piece of Tandem's state.
	org, err := env.Platform.Store.GetOrg(t.Context(), env.OrgID)
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := env.Platform.Store.ListConfigurations(t.Context(), env.OrgID)
	if err != nil || len(cfgs) != 1 {
		t.Fatalf("configurations %v: %v", cfgs, err)
	}
	first.stop()
	if err := env.Platform.Store.Client().FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	cfg := cfgs[0]
	cfg.Id, org.UpdatedAt = "", nil

	again := restartOn(t, env, rs.URL(), org, cfg)
	run(t, again)
	settled(t, again, 90*time.Second)
	compareStates(t, "after lost state", before, contactState(again))
	inSync, relinked := contactStatus(t, again)
	if inSync != pairs || relinked != pairs {
		t.Errorf("after lost state: %d pairs in sync, %d relinked by key; want %d each", inSync, relinked, pairs)
	}

	// The mailbox moves: every item gets a new id, keeping its extended properties.
	moved := 0
	for _, it := range again.EWS.Items(email, exchange.SyncFolderName) {
		if err := again.EWS.MoveItem(email, it.ItemID, "contacts"); err != nil {
			t.Fatal(err)
		}
		moved++
	}
	for _, it := range again.EWS.Items(email, "contacts") {
		if err := again.EWS.MoveItem(email, it.ItemID, exchange.SyncFolderName); err != nil {
			t.Fatal(err)
		}
	}
	poll.Within(t, 90*time.Second, "the moved mailbox's items to be relinked", every(300*time.Millisecond, func() bool {
		_, r := contactStatus(t, again)
		return r >= pairs+int64(moved)
	}))
	settled(t, again, 90*time.Second)
	compareStates(t, "after the mailbox moved", before, contactState(again))
	if inSync, relinked := contactStatus(t, again); inSync != pairs || relinked != pairs+int64(moved) {
		t.Errorf("after the mailbox moved: %d pairs in sync, %d relinked; want %d and %d", inSync, relinked, pairs, pairs+int64(moved))
	}
}

// debugLog is where startOn's environment logs: nowhere, unless DEVENV_DEBUG_LOG names a file,
// which then gets the DEBUG trace of every decision (debugLevel) for diagnosing a failure.
func debugLog(t *testing.T) io.Writer {
	if os.Getenv("DEVENV_DEBUG_LOG") == "" {
		return io.Discard
	}
	f, err := os.Create(os.Getenv("DEVENV_DEBUG_LOG"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func debugLevel() string {
	if os.Getenv("DEVENV_DEBUG_LOG") == "" {
		return "warn"
	}
	return "debug"
}
