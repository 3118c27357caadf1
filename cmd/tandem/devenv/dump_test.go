package devenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestDumpReadsRealEndpoints runs the environment against "real endpoints" — the simulators
// served over plain http, reached only through their URLs and credentials — until the first sync
// has written to both sides, stops it, and dumps: each synced user's contacts, read through the
// connectors, must be what each simulator holds, and the dump must change neither.
func TestDumpReadsRealEndpoints(t *testing.T) {
	const users, contacts = 2, 10
	sims, err := NewSimulators(Seeding{Users: users, ContactsPerUser: contacts, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	ewsSrv, sfSrv := httptest.NewServer(sims.EWS), httptest.NewServer(sims.Salesforce)
	t.Cleanup(ewsSrv.Close)
	t.Cleanup(sfSrv.Close)
	sims.EWS.SetBaseURL(ewsSrv.URL)
	sims.Salesforce.SetBaseURL(sfSrv.URL)
	admin, _ := sims.Salesforce.Get("User", sims.Salesforce.AdminUserID())
	env, err := Start(t.Context(), Options{
		Interval: 500 * time.Millisecond, RedisURL: servertest.RedisServer(t).URL(), Dir: t.TempDir(), Log: io.Discard, LogLevel: "warn",
		Exchange: &ExchangeEndpoint{AutodiscoverURL: ewsSrv.URL + "/autodiscover/autodiscover.svc", ServiceAccount: ServiceAccount, Password: sims.password},
		Salesforce: &SalesforceEndpoint{
			OrgID: sims.Salesforce.OrgID(), MyDomainURL: sfSrv.URL, ClientID: connectedApp, PrivateKeyPEM: string(sims.keyPEM),
			IntegrationUsername: fmt.Sprint(admin["Username"]), ProfileIDs: []string{sims.profileID},
		},
		InsecureHTTP: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if env.EWS != nil {
		t.Fatal("the environment runs its own simulators, not the given endpoints")
	}
	st := env.Platform.Store
	// Against real endpoints an org syncs every 30s at most; with the directory in place the
	// first cycle already syncs the reps instead of only loading it.
	var directory []*tandemv1.SyncUser
	for id, email := range sims.Users {
		directory = append(directory, &tandemv1.SyncUser{UserId: id, Email: email, Username: email, ProfileId: sims.profileID, Active: true})
	}
	if err := st.PutUsers(t.Context(), env.OrgID, directory); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.Run(runCtx) }()
	poll.Within(t, 90*time.Second, "the first sync to write to both sides", func() bool {
		for id, email := range sims.Users {
			if len(sims.EWS.Items(email, exchange.SyncFolderName)) != contacts || len(ownedBy(sims.Salesforce, id)) != contacts {
				return false
			}
		}
		return true
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	// A rep Tandem has not prepared yet: the mailbox has no Salesforce_Sync folder, which a
	// read through the connector would create.
	const lateEmail = "late@" + domain
	if err := sims.EWS.AddMailbox(lateEmail); err != nil {
		t.Fatal(err)
	}
	lateID, err := sims.Salesforce.AddUser(sfsim.User{Username: lateEmail, Email: lateEmail, LastName: "Late", ProfileID: sims.profileID, IsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sims.Salesforce.SeedContacts(lateID, 3, 99); err != nil {
		t.Fatal(err)
	}
	directory = append(directory, &tandemv1.SyncUser{UserId: lateID, Email: lateEmail, Username: lateEmail, ProfileId: sims.profileID, Active: true})
	if err := st.PutUsers(t.Context(), env.OrgID, directory); err != nil {
		t.Fatal(err)
	}

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		dir := t.TempDir()
		if err := env.Dump(ctx, dir); !errors.Is(err, context.Canceled) {
			t.Fatalf("Dump with a cancelled context: %v", err)
		}
		assertNoDump(t, dir)
	})

	exBefore, sfBefore := asJSON(t, sims.EWS.Dump()), asJSON(t, sims.Salesforce.Dump())
	sims.EWS.ResetCounts()
	sims.Salesforce.ResetCounts()
	dir := t.TempDir()
	if err := env.Dump(t.Context(), dir); err != nil {
		t.Fatal(err)
	}

	t.Run("read only", func(t *testing.T) {
		if asJSON(t, sims.EWS.Dump()) != exBefore || asJSON(t, sims.Salesforce.Dump()) != sfBefore {
			t.Error("the dump changed a simulator's contents")
		}
		if _, err := sims.EWS.FolderID(lateEmail, exchange.SyncFolderName); err == nil {
			t.Errorf("the dump created the %s folder of %s", exchange.SyncFolderName, lateEmail)
		}
		ewsReadOps := map[string]bool{"Total": true, "GetFolder": true, "FindFolder": true, "SyncFolderItems": true, "GetItem": true, "FindItem": true, "GetUserSettings": true}
		counts := sims.EWS.Counts()
		for op, n := range counts {
			if n > 0 && !ewsReadOps[op] {
				t.Errorf("the dump sent EWS %s (%d times)", op, n)
			}
		}
		if counts["SyncFolderItems"] == 0 {
			t.Errorf("the dump read no Exchange folder: %v", counts)
		}
		// getUpdated (a full read asks up to when everything has committed) reads too.
		sfReads := map[string]bool{sfsim.EndpointToken: true, sfsim.EndpointQuery: true, sfsim.EndpointQueryMore: true, sfsim.EndpointUpdated: true}
		for endpoint, n := range sims.Salesforce.Counts() {
			if n > 0 && !sfReads[endpoint] {
				t.Errorf("the dump called Salesforce's %s (%d times)", endpoint, n)
			}
		}
	})

	var ex, sf RealDump
	readJSON(t, filepath.Join(dir, ExchangeDumpFile), &ex)
	readJSON(t, filepath.Join(dir, SalesforceDumpFile), &sf)
	want := map[string]string{lateID: lateEmail}
	for id, email := range sims.Users {
		want[id] = email
	}

	t.Run("exchange.json", func(t *testing.T) {
		if len(ex.Users) != len(want) {
			t.Fatalf("%d users, want %d: %+v", len(ex.Users), len(want), ex.Users)
		}
		tandemKeys := 0
		for _, u := range ex.Users {
			if want[u.UserID] != u.Mailbox {
				t.Errorf("user %s has mailbox %q, want %q", u.UserID, u.Mailbox, want[u.UserID])
			}
			if u.UserID == lateID {
				if !u.SyncFolderMissing || len(u.Contacts) != 0 {
					t.Errorf("the late rep: %+v, want no contacts and the folder missing", u)
				}
				continue
			}
			items := sims.EWS.Items(u.Mailbox, exchange.SyncFolderName)
			if len(u.Contacts) != len(items) || len(items) != contacts || u.SyncFolderMissing {
				t.Errorf("%s: %d contacts (folder missing: %t), the mailbox holds %d, want %d", u.Mailbox, len(u.Contacts), u.SyncFolderMissing, len(items), contacts)
			}
			byID := map[string]*tandemv1.Contact{}
			for _, r := range u.Contacts {
				byID[r.GetId()] = r.GetContact()
				if r.GetSyncKey() != "" {
					tandemKeys++
				}
			}
			for _, it := range items {
				c := byID[it.ItemID]
				got := []string{c.GetGivenName(), c.GetSurname(), c.GetEmailAddress1(), c.GetJobTitle()}
				wantFields := []string{it.Contact.GivenName, it.Contact.Surname, it.Contact.Email("EmailAddress1"), it.Contact.JobTitle}
				if c == nil || fmt.Sprint(got) != fmt.Sprint(wantFields) {
					t.Errorf("%s: contact %s is %q in the dump, %q in the mailbox", u.Mailbox, it.ItemID, got, wantFields)
				}
			}
		}
		if tandemKeys == 0 {
			t.Error("no contact carries the sync key Tandem wrote with it")
		}
	})

	t.Run("salesforce.json", func(t *testing.T) {
		if len(sf.Users) != len(want) {
			t.Fatalf("%d users, want %d: %+v", len(sf.Users), len(want), sf.Users)
		}
		for _, u := range sf.Users {
			if want[u.UserID] != u.Mailbox {
				t.Errorf("user %s has mailbox %q, want %q", u.UserID, u.Mailbox, want[u.UserID])
			}
			rows := ownedBy(sims.Salesforce, u.UserID)
			n := contacts
			if u.UserID == lateID {
				n = 3
			}
			if len(u.Contacts) != len(rows) || len(rows) != n || len(u.OutOfScope) != 0 {
				t.Errorf("%s: %d contacts (%d out of scope), Salesforce holds %d, want %d", u.Mailbox, len(u.Contacts), len(u.OutOfScope), len(rows), n)
			}
			byID := map[string]*tandemv1.Record{}
			for _, r := range u.Contacts {
				byID[r.GetId()] = r
			}
			for _, row := range rows {
				r := byID[fmt.Sprint(row["Id"])]
				c := r.GetContact()
				got := []string{r.GetOwnerId(), c.GetGivenName(), c.GetSurname(), c.GetEmailAddress1(), c.GetJobTitle()}
				wantFields := []string{u.UserID, text(row["FirstName"]), text(row["LastName"]), text(row["Email"]), text(row["Title"])}
				if fmt.Sprint(got) != fmt.Sprint(wantFields) {
					t.Errorf("%s: contact %v is %q in the dump, %q in Salesforce", u.Mailbox, row["Id"], got, wantFields)
				}
			}
		}
	})

	t.Run("format", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(dir, ExchangeDumpFile))
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{`"users"`, `"user_id"`, `"mailbox"`, `"contacts"`, `"given_name"`, `"email_address1"`, `"sync_folder_missing": true`} {
			if !strings.Contains(string(raw), key) {
				t.Errorf("exchange.json lacks %s", key)
			}
		}
	})

	t.Run("error names the user and the side", func(t *testing.T) {
		// A rep whose mailbox does not exist in Exchange.
		const ghostEmail = "ghost@" + domain
		ghostID, err := sims.Salesforce.AddUser(sfsim.User{Username: ghostEmail, Email: ghostEmail, LastName: "Ghost", ProfileID: sims.profileID, IsActive: true})
		if err != nil {
			t.Fatal(err)
		}
		ghost := &tandemv1.SyncUser{UserId: ghostID, Email: ghostEmail, Username: ghostEmail, ProfileId: sims.profileID, Active: true}
		if err := st.PutUsers(t.Context(), env.OrgID, append(directory, ghost)); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		err = env.Dump(t.Context(), dir)
		if err == nil || !strings.Contains(err.Error(), ghostID) || !strings.Contains(err.Error(), ghostEmail) || !strings.Contains(err.Error(), "Exchange") {
			t.Fatalf("Dump with a rep without a mailbox: %v", err)
		}
		assertNoDump(t, dir)
	})
}

// TestEWSReadOnly checks the dump's EWS transport: only operations that read reach the server.
func TestEWSReadOnly(t *testing.T) {
	tests := []struct {
		action string
		sent   bool
	}{
		{`"` + ewsMessages + `SyncFolderItems"`, true},
		{`"` + ewsMessages + `GetItem"`, true},
		{`"` + ewsMessages + `GetFolder"`, true},
		{`"` + ewsMessages + `FindFolder"`, true},
		{`"` + ewsMessages + `FindItem"`, true},
		{`"http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings"`, true},
		{"", true}, // an OAuth token request
		{`"` + ewsMessages + `CreateFolder"`, false},
		{`"` + ewsMessages + `CreateItem"`, false},
		{`"` + ewsMessages + `UpdateItem"`, false},
		{`"` + ewsMessages + `DeleteItem"`, false},
		{`"` + ewsMessages + `MoveItem"`, false},
		{ewsMessages + `EmptyFolder`, false},
	}
	for _, tt := range tests {
		sent := false
		rt := ewsReadOnly{next: roundTripFunc(func(*http.Request) (*http.Response, error) {
			sent = true
			return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
		})}
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "https://mail.acme.example/EWS/Exchange.asmx", strings.NewReader("<soap/>"))
		req.Header.Set("SOAPAction", tt.action)
		resp, err := rt.RoundTrip(req)
		if resp != nil {
			resp.Body.Close()
		}
		var refused *refusedWrite
		if sent != tt.sent || (err == nil) != tt.sent || (!tt.sent && !errors.As(err, &refused)) {
			t.Errorf("SOAPAction %s: sent %t, error %v; want sent %t", tt.action, sent, err, tt.sent)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// ownedBy lists the Salesforce contacts userID owns.
func ownedBy(sim *sfsim.Server, userID string) []map[string]any {
	var out []map[string]any
	for _, c := range sim.List("Contact") {
		if c["OwnerId"] == userID {
			out = append(out, c)
		}
	}
	return out
}

func text(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func assertNoDump(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{ExchangeDumpFile, SalesforceDumpFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s written although the dump failed (%v)", name, err)
		}
	}
}
