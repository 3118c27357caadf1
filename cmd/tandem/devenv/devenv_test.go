package devenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
)

// startEnv starts an environment on a redis-server of the test's own and runs it until the
// test ends.
func startEnv(t *testing.T, users, contacts int) *Env {
	t.Helper()
	redis := servertest.RedisServer(t)
	ctx := t.Context()
	env, err := Start(ctx, Options{
		Users: users, ContactsPerUser: contacts, Seed: 7, Interval: 500 * time.Millisecond,
		RedisURL: redis.URL(), Dir: t.TempDir(), Log: io.Discard, LogLevel: "warn",
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := env.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return env
}

// waitSynced polls until the environment reports everything in sync, twice in a row.
func waitSynced(t *testing.T, env *Env, within time.Duration) Summary {
	t.Helper()
	deadline := time.Now().Add(within)
	streak := 0
	var sum Summary
	for {
		var err error
		sum, err = env.Summary(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if sum.Synced {
			streak++
		} else {
			streak = 0
		}
		if streak >= 2 {
			return sum
		}
		if time.Now().After(deadline) {
			t.Fatalf("not in sync after %s: %s", within, sum.Reason)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestEndToEnd runs the whole pipeline — scheduler, both workers, the reconciler and the
// status API — through real NATS and Redis against both simulators: first sync, then a user's
// edits and deletes on each side, all the way to agreement.
func TestEndToEnd(t *testing.T) {
	env := startEnv(t, 3, 20)
	sum := waitSynced(t, env, 90*time.Second)
	if sum.Users != 3 || sum.ContactsInSync != 3*20 || sum.Errors != 0 {
		t.Fatalf("after the first sync: %+v", sum)
	}

	// Edits on both sides: rename a contact in Exchange, retitle one in Salesforce, delete one in
	// Salesforce, and add a new one in Exchange.
	var user, email string
	for id, e := range env.Mailboxes {
		user, email = id, e
		break
	}
	items := env.EWS.Items(email, exchange.SyncFolderName)
	renamed := items[0].Contact.Email("EmailAddress1")
	if err := env.EWS.UpdateItem(email, items[0].ItemID, func(it *ewssim.Item) { it.Contact.Surname = "Renamed" }); err != nil {
		t.Fatal(err)
	}
	var retitled, deleted string
	for _, c := range env.Salesforce.List("Contact") {
		if c["OwnerId"] != user {
			continue
		}
		id := fmt.Sprint(c["Id"])
		switch {
		case retitled == "" && fmt.Sprint(c["Email"]) != renamed:
			retitled = fmt.Sprint(c["Email"])
			if err := env.Salesforce.Update("Contact", id, map[string]any{"Title": "Chief Revenue Officer"}, user); err != nil {
				t.Fatal(err)
			}
		case deleted == "" && fmt.Sprint(c["Email"]) != renamed:
			deleted = fmt.Sprint(c["Email"])
			if err := env.Salesforce.Delete("Contact", id); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := env.EWS.PutContact(email, exchange.SyncFolderName, newContact("Nia", "Newcomer", "nia@newcomer.example")); err != nil {
		t.Fatal(err)
	}

	sum = waitSynced(t, env, 90*time.Second)
	if sum.ContactsInSync != 3*20 {
		t.Errorf("contacts in sync = %d, want %d (one added, one deleted)", sum.ContactsInSync, 3*20)
	}
	check := func(where string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("not propagated: %s", where)
		}
	}
	var sawRename, sawNewcomer, sawTitle, sawDeleted bool
	for _, c := range env.Salesforce.List("Contact") {
		sawRename = sawRename || (c["Email"] == renamed && c["LastName"] == "Renamed")
		sawNewcomer = sawNewcomer || c["Email"] == "nia@newcomer.example"
	}
	for _, it := range env.EWS.Items(email, exchange.SyncFolderName) {
		sawTitle = sawTitle || (it.Contact.Email("EmailAddress1") == retitled && it.Contact.JobTitle == "Chief Revenue Officer")
		sawDeleted = sawDeleted || it.Contact.Email("EmailAddress1") == deleted
	}
	check("Exchange rename to Salesforce", sawRename)
	check("new Exchange contact to Salesforce", sawNewcomer)
	check("Salesforce title to Exchange", sawTitle)
	check("Salesforce delete to Exchange", !sawDeleted)

	// The dumps have the shapes tools outside the project read.
	dir := t.TempDir()
	if err := env.Dump(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	var ex struct {
		Mailboxes map[string]struct {
			Contacts []map[string]any `json:"contacts"`
			Events   []map[string]any `json:"events"`
		} `json:"mailboxes"`
	}
	var sf struct {
		Users    []map[string]any `json:"users"`
		Contacts []map[string]any `json:"contacts"`
		Events   []map[string]any `json:"events"`
	}
	readJSON(t, filepath.Join(dir, "exchange.json"), &ex)
	readJSON(t, filepath.Join(dir, "salesforce.json"), &sf)
	if len(ex.Mailboxes[email].Contacts) != 20 {
		t.Errorf("exchange.json has %d contacts for %s, want 20", len(ex.Mailboxes[email].Contacts), email)
	}
	for _, k := range []string{"ItemId", "GivenName", "Surname", "EmailAddress1"} {
		if _, ok := ex.Mailboxes[email].Contacts[0][k]; !ok {
			t.Errorf("exchange.json contact lacks %s", k)
		}
	}
	for _, k := range []string{"Id", "OwnerId", "FirstName", "LastName", "Email"} {
		if _, ok := sf.Contacts[0][k]; !ok {
			t.Errorf("salesforce.json contact lacks %s", k)
		}
	}
	for _, k := range []string{"Id", "Email", "ProfileId", "IsActive"} {
		if _, ok := sf.Users[0][k]; !ok {
			t.Errorf("salesforce.json user lacks %s", k)
		}
	}
}

func newContact(first, last, email string) ewssim.Contact {
	c := ewssim.Contact{GivenName: first, Surname: last}
	c.SetEmail("EmailAddress1", email)
	return c
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
