package devenv

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
)

// TestNotificationsCarryEditsAtOnce: with a five-minute poll interval and notifications on, a
// rep's edit in Exchange (made through the simulator's Go API, as the rep would in Outlook)
// reaches Salesforce in about a second, not at the next poll.
func TestNotificationsCarryEditsAtOnce(t *testing.T) {
	rs := servertest.RedisServer(t)
	env, err := Start(t.Context(), Options{
		Users: 3, ContactsPerUser: 10, Seed: 5, Interval: 5 * time.Minute, Notify: true,
		RedisURL: rs.URL(), Dir: t.TempDir(), Log: debugLog(t), LogLevel: debugLevel(),
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
	// The first sync: Tandem's own writes to Exchange wake the org for the cycles that read
	// them back; the writes to Salesforce are read back by the cycles an admin's "sync now"
	// (DueNow) would start, since nothing notifies of them here.
	poll.Within(t, 2*time.Minute, "the first sync", every(time.Second, func() bool {
		if err := env.Platform.Store.DueNow(t.Context(), env.OrgID); err != nil {
			t.Fatal(err)
		}
		sum, err := env.Summary(t.Context())
		return err == nil && sum.Synced && sum.PendingWrites == 0
	}))

	var latencies []time.Duration
	for round := range 2 {
		for _, email := range env.Mailboxes {
			item, sfID := linkedContact(t, env, email)
			title := fmt.Sprintf("Title %d of %s", round, email)
			start := time.Now()
			if err := env.EWS.UpdateItem(email, item, func(it *ewssim.Item) { it.Contact.JobTitle = title }); err != nil {
				t.Fatal(err)
			}
			poll.Within(t, 30*time.Second, "the edit in Salesforce", func() bool {
				r, ok := env.Salesforce.Get("Contact", sfID)
				return ok && r["Title"] == title
			})
			latencies = append(latencies, time.Since(start))
			waitInSync(t, env)
		}
	}
	slices.Sort(latencies)
	t.Logf("edit to Salesforce with a 5m poll interval: min %s, median %s, max %s over %d edits",
		latencies[0], latencies[len(latencies)/2], latencies[len(latencies)-1], len(latencies))
	if worst := latencies[len(latencies)-1]; worst > 10*time.Second {
		t.Errorf("an edit took %s to reach Salesforce", worst)
	}
}

// linkedContact returns a contact of the rep's Salesforce_Sync folder that Tandem linked to a
// Salesforce contact, and that contact's id.
func linkedContact(t *testing.T, env *Env, email string) (itemID, sfID string) {
	t.Helper()
	byEmail := map[string]string{}
	for _, c := range env.Salesforce.List("Contact") {
		byEmail[fmt.Sprint(c["Email"])] = fmt.Sprint(c["Id"])
	}
	for _, it := range env.EWS.Items(email, exchange.SyncFolderName) {
		if id, ok := byEmail[it.Contact.Email("EmailAddress1")]; ok && len(it.Contact.ExtendedProperties) > 0 {
			return it.ItemID, id
		}
	}
	t.Fatalf("no linked contact for %s", email)
	return "", ""
}
