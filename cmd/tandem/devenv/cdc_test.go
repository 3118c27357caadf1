package devenv

import (
	"context"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
)

// TestSalesforceEditReachesExchangeInSeconds: with a five-minute interval, a rep's edit in
// Salesforce reaches their mailbox within seconds, because Change Data Capture makes the org
// due at once; without it the edit would wait for the next poll, minutes away.
func TestSalesforceEditReachesExchangeInSeconds(t *testing.T) {
	redis := servertest.RedisServer(t)
	env, err := Start(t.Context(), Options{
		Users: 2, ContactsPerUser: 10, Seed: 11, Interval: 5 * time.Minute,
		RedisURL: redis.URL(), Dir: t.TempDir(), Log: io.Discard, LogLevel: "warn",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	run(t, env)
	st := env.Platform.Store
	// The first cycle reads the directory; the reps sync at the next one, which an admin's
	// "sync now" brings forward here (the interval is five minutes).
	poll.Within(t, time.Minute, "the directory", func() bool { u, err := st.ListUsers(t.Context(), env.OrgID); return err == nil && len(u) > 0 })
	poll.Within(t, time.Minute, "the CDC subscription", func() bool { return env.Salesforce.PubSubSubscribers() > 0 })
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := st.DueNow(t.Context(), env.OrgID); err != nil {
			t.Fatal(err)
		}
		if sum, err := env.Summary(t.Context()); err == nil && sum.Synced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not in sync after 2 minutes")
		}
		time.Sleep(time.Second)
	}
	waitSynced(t, env, time.Minute)

	var user, email string
	for id, e := range env.Mailboxes {
		user, email = id, e
		break
	}
	var ids []string
	for _, c := range env.Salesforce.List("Contact") {
		if c["OwnerId"] == user && c["Email"] != nil && slices.ContainsFunc(env.EWS.Items(email, exchange.SyncFolderName), func(it ewssim.Item) bool {
			return it.Contact.Email("EmailAddress1") == c["Email"]
		}) {
			ids = append(ids, fmt.Sprint(c["Id"]))
		}
	}
	if len(ids) < 3 {
		t.Fatalf("%d linked contacts of %s", len(ids), email)
	}
	var latencies []time.Duration
	for i, id := range ids[:3] {
		c, _ := env.Salesforce.Get("Contact", id)
		title := fmt.Sprintf("Head of Latency %d", i)
		start := time.Now()
		if err := env.Salesforce.Update("Contact", id, map[string]any{"Title": title}, user); err != nil {
			t.Fatal(err)
		}
		poll.Within(t, time.Minute, "the new title in Exchange", func() bool {
			return slices.ContainsFunc(env.EWS.Items(email, exchange.SyncFolderName), func(it ewssim.Item) bool {
				return it.Contact.Email("EmailAddress1") == c["Email"] && it.Contact.JobTitle == title
			})
		})
		latencies = append(latencies, time.Since(start))
	}
	t.Logf("Salesforce edit to Exchange with a 5-minute interval: %v", latencies)
	for _, l := range latencies {
		if l > 10*time.Second {
			t.Errorf("an edit took %s to reach Exchange", l)
		}
	}
}
