package ews

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func mailboxOf(address string) exchange.Mailbox {
	return exchange.Mailbox{OrgID: "00D000000000001", UserID: "005000000000001", Address: address}
}

func readAll(t *testing.T, c *Connector, mb exchange.Mailbox, kind tandemv1.RecordKind, cursor string) ([]exchange.Page, error) {
	t.Helper()
	var pages []exchange.Page
	err := c.Changes(t.Context(), mb, kind, cursor, func(_ context.Context, p exchange.Page) error {
		pages = append(pages, p)
		return nil
	})
	return pages, err
}

func upserts(pages []exchange.Page) int {
	n := 0
	for _, p := range pages {
		for _, ch := range p.Changes {
			if ch.GetType() == tandemv1.ChangeType_CHANGE_TYPE_UPSERT {
				n++
			}
		}
	}
	return n
}

// TestConnectorConnections covers the ways a connection reaches a mailbox and how each way fails.
func TestConnectorConnections(t *testing.T) {
	env := newSimEnv(t, ewssim.Config{
		OAuthApps: []ewssim.OAuthApp{{TenantID: "contoso.onmicrosoft.com", ClientID: "app-id", ClientSecret: "app-secret"}},
		ServiceAccounts: []ewssim.ServiceAccount{
			{Username: simAccount, Password: simPassword, ImpersonateAll: true},
			{Username: `CONTOSO\limited`, Password: simPassword, Impersonate: []string{"alice@contoso.com"}},
		},
	})
	for _, a := range []string{"alice@contoso.com", "bob@contoso.com", "carol@fabrikam.com"} {
		if err := env.sim.AddMailbox(a); err != nil {
			t.Fatal(err)
		}
	}
	basic := func(mutate func(*tandemv1.ExchangeConnection)) *tandemv1.ExchangeConnection {
		c := env.connection()
		if mutate != nil {
			mutate(c)
		}
		return c
	}
	tests := []struct {
		name    string
		conn    *tandemv1.ExchangeConnection
		address string
		want    syncerr.Code // empty: Prepare succeeds
	}{
		{"basic via SOAP autodiscover", basic(nil), "alice@contoso.com", ""},
		{"basic via POX autodiscover", basic(func(c *tandemv1.ExchangeConnection) {
			c.AutodiscoverUrl = env.srv.URL + "/autodiscover/autodiscover.xml"
		}), "bob@contoso.com", ""},
		{"basic with a fixed EWS URL", basic(func(c *tandemv1.ExchangeConnection) {
			c.AutodiscoverUrl, c.EwsUrl = "", env.srv.URL+"/EWS/Exchange.asmx"
		}), "alice@contoso.com", ""},
		{"oauth client credentials", &tandemv1.ExchangeConnection{
			Auth: tandemv1.ExchangeAuth_EXCHANGE_AUTH_OAUTH_CLIENT_CREDENTIALS, TenantId: "contoso.onmicrosoft.com",
			ClientId: "app-id", ClientSecret: "app-secret", TokenUrl: env.srv.URL + "/contoso.onmicrosoft.com/oauth2/v2.0/token",
			EwsUrl: env.srv.URL + "/EWS/Exchange.asmx",
		}, "carol@fabrikam.com", ""},
		{"down-level account name", basic(func(c *tandemv1.ExchangeConnection) {
			c.ServiceAccount = `CONTOSO\limited`
		}), "alice@contoso.com", ""},
		{"impersonation denied", basic(func(c *tandemv1.ExchangeConnection) {
			c.ServiceAccount, c.EwsUrl, c.AutodiscoverUrl = `CONTOSO\limited`, env.srv.URL+"/EWS/Exchange.asmx", ""
		}), "bob@contoso.com", syncerr.ExchangeImpersonationDenied},
		{"wrong password", basic(func(c *tandemv1.ExchangeConnection) {
			c.Password, c.EwsUrl, c.AutodiscoverUrl = "wrong", env.srv.URL+"/EWS/Exchange.asmx", ""
		}), "alice@contoso.com", syncerr.ExchangeAuthFailed},
		{"wrong client secret", &tandemv1.ExchangeConnection{
			Auth: tandemv1.ExchangeAuth_EXCHANGE_AUTH_OAUTH_CLIENT_CREDENTIALS, ClientId: "app-id", ClientSecret: "nope",
			TokenUrl: env.srv.URL + "/contoso.onmicrosoft.com/oauth2/v2.0/token", EwsUrl: env.srv.URL + "/EWS/Exchange.asmx",
		}, "alice@contoso.com", syncerr.ExchangeAuthFailed},
		{"no such mailbox (EWS)", basic(func(c *tandemv1.ExchangeConnection) {
			c.EwsUrl, c.AutodiscoverUrl = env.srv.URL+"/EWS/Exchange.asmx", ""
		}), "nobody@contoso.com", syncerr.ExchangeMailboxNotFound},
		{"no such mailbox (autodiscover)", basic(nil), "nobody@contoso.com", syncerr.ExchangeMailboxNotFound},
		{"domain outside the org", basic(nil), "carol@fabrikam.com", syncerr.ExchangeMailboxNotFound},
		{"additional domain", basic(func(c *tandemv1.ExchangeConnection) {
			c.AdditionalDomains = []string{"Fabrikam.com"}
		}), "carol@fabrikam.com", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := env.connector(t, tc.conn)
			f, err := c.Prepare(t.Context(), mailboxOf(tc.address))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Prepare: %v", err)
				}
				if f.ServerVersion != "15.2.1748.10 V2017_07_11" || f.ContactsFolderID == "" || f.CalendarFolderID == "" {
					t.Errorf("folders %+v", f)
				}
				return
			}
			if se := syncerr.As(err); se.Code != tc.want {
				t.Fatalf("Prepare: %v, want %s", err, tc.want)
			}
		})
	}
}

func TestConnectorConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name string
		conn *tandemv1.ExchangeConnection
	}{
		{"none", nil},
		{"no auth", &tandemv1.ExchangeConnection{EwsUrl: "https://mail.contoso.com/EWS/Exchange.asmx"}},
		{"bad account name", &tandemv1.ExchangeConnection{Auth: tandemv1.ExchangeAuth_EXCHANGE_AUTH_BASIC, ServiceAccount: "svc", Password: "x"}},
		{"plain-http EWS URL", &tandemv1.ExchangeConnection{Auth: tandemv1.ExchangeAuth_EXCHANGE_AUTH_BASIC, ServiceAccount: "svc@contoso.com", Password: "x", EwsUrl: "http://mail.contoso.com/EWS/Exchange.asmx"}},
		{"oauth without secret", &tandemv1.ExchangeConnection{Auth: tandemv1.ExchangeAuth_EXCHANGE_AUTH_OAUTH_CLIENT_CREDENTIALS, TenantId: "t", ClientId: "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewConnector(ConnectorConfig{Connection: tc.conn})
			if se := syncerr.As(err); se.Code != syncerr.ExchangeConfigurationMissing {
				t.Errorf("got %v, want %s", err, syncerr.ExchangeConfigurationMissing)
			}
		})
	}
}

func TestConnectorUnsupportedVersion(t *testing.T) {
	env := newSimEnv(t, ewssim.Config{ServerVersion: "15.0.1497.2 Exchange2013_SP1"})
	if err := env.sim.AddMailbox("alice@contoso.com"); err != nil {
		t.Fatal(err)
	}
	_, err := env.connector(t, env.connection()).Prepare(t.Context(), mailboxOf("alice@contoso.com"))
	if se := syncerr.As(err); se.Code != syncerr.ExchangeUnsupportedVersion {
		t.Fatalf("got %v, want %s", err, syncerr.ExchangeUnsupportedVersion)
	}
}

// TestConnectorSeededMailbox reads a realistically seeded mailbox and checks every item maps.
func TestConnectorSeededMailbox(t *testing.T) {
	env := newSimEnv(t, ewssim.Config{ServerVersion: "ExchangeOnline"})
	const address = "seeded@contoso.com"
	if err := env.sim.Seed(address, 60, 25, 7); err != nil {
		t.Fatal(err)
	}
	c := env.connector(t, env.connection(), func(cfg *ConnectorConfig) { cfg.PageSize = 0 })
	mb := mailboxOf(address)
	f, err := c.Prepare(t.Context(), mb)
	if err != nil {
		t.Fatal(err)
	}
	if f.CreatedContactsFolder {
		t.Error("Prepare created a folder the seeded mailbox already had")
	}
	if f.ServerVersion != "15.20.3370.16 V2018_01_08" {
		t.Errorf("server version %q", f.ServerVersion)
	}
	for _, tc := range []struct {
		kind   tandemv1.RecordKind
		folder string
	}{
		{tandemv1.RecordKind_RECORD_KIND_CONTACT, exchange.SyncFolderName},
		{tandemv1.RecordKind_RECORD_KIND_EVENT, "calendar"},
	} {
		want := len(env.sim.Items(address, tc.folder))
		pages, err := readAll(t, c, mb, tc.kind, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := upserts(pages); got != want || want == 0 {
			t.Errorf("%v: read %d records, the folder holds %d", tc.kind, got, want)
		}
		for _, p := range pages {
			for _, ch := range p.Changes {
				r := ch.GetRecord()
				if r.GetId() == "" || r.GetVersion() == "" || r.GetModifiedAt() == nil {
					t.Errorf("record without identity: %v", r)
				}
				if tc.kind == tandemv1.RecordKind_RECORD_KIND_EVENT && r.GetEvent().GetStart() == nil {
					t.Errorf("event without a start: %v", r)
				}
			}
		}
	}
}

// TestConnectorRequestCounts checks that a batch of first-attempt creates costs one CreateItem,
// without a sync-key lookup or a read-back.
func TestConnectorRequestCounts(t *testing.T) {
	env := newSimEnv(t, ewssim.Config{})
	const address = "alice@contoso.com"
	if err := env.sim.AddMailbox(address); err != nil {
		t.Fatal(err)
	}
	c := env.connector(t, env.connection())
	mb := mailboxOf(address)
	if _, err := c.Prepare(t.Context(), mb); err != nil {
		t.Fatal(err)
	}
	env.sim.ResetCounts()
	var cmds []*tandemv1.WriteCommand
	for i := range 7 {
		key := fmt.Sprintf("sk-%d", i)
		cmds = append(cmds, &tandemv1.WriteCommand{CommandId: key, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key,
			Record: contactRecord("", &tandemv1.Contact{GivenName: key})})
	}
	res, err := c.Apply(t.Context(), mb, tandemv1.RecordKind_RECORD_KIND_CONTACT, cmds)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.GetOk() {
			t.Fatalf("create failed: %v", r.GetError())
		}
	}
	counts := env.sim.Counts()
	for op, want := range map[string]int64{"FindItem": 0, "CreateItem": 1, "GetItem": 0, "UpdateItem": 0, "SyncFolderItems": 0} {
		if counts[op] != want {
			t.Errorf("%s requests: %d, want %d (all: %v)", op, counts[op], want, counts)
		}
	}
}

// TestConnectorAmbiguousCreate drops the connection after Exchange created the items: the
// caller cannot know, so the batch goes back to the bus, which redelivers it, and the
// redelivered batch gets the items already made, not duplicates.
func TestConnectorAmbiguousCreate(t *testing.T) {
	env := newSimEnv(t, ewssim.Config{})
	const address = "alice@contoso.com"
	if err := env.sim.AddMailbox(address); err != nil {
		t.Fatal(err)
	}
	c := env.connector(t, env.connection())
	mb := mailboxOf(address)
	if _, err := c.Prepare(t.Context(), mb); err != nil {
		t.Fatal(err)
	}
	cmds := []*tandemv1.WriteCommand{
		{CommandId: "c1", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-1", Record: eventRecord("", fullEvent())},
		{CommandId: "c2", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-2", Record: eventRecord("", allDayEvent())},
	}
	env.sim.InjectFault(ewssim.Fault{Operation: "CreateItem", Mailbox: address, Kind: ewssim.FaultDropConnection, AfterWork: true})
	_, err := c.Apply(t.Context(), mb, tandemv1.RecordKind_RECORD_KIND_EVENT, cmds)
	if se := syncerr.As(err); err == nil || se.Code != syncerr.ExchangeUnavailable || se.Permanent() {
		t.Fatalf("Apply during a dropped connection: %v, want a retryable %s", err, syncerr.ExchangeUnavailable)
	}
	if n := env.sim.Counts()["CreateItem"]; n != 1 {
		t.Errorf("CreateItem sent %d times; an ambiguous create must not be repeated blindly", n)
	}
	res, err := c.Apply(t.Context(), mb, tandemv1.RecordKind_RECORD_KIND_EVENT, cmds, exchange.Redelivered())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.GetOk() || !r.GetAlreadyApplied() || r.GetRecord().GetId() == "" {
			t.Errorf("redelivered create: %v", r)
		}
	}
	if n := len(env.sim.Items(address, "calendar")); n != 2 {
		t.Errorf("%d events in the calendar, want 2", n)
	}
}

// TestConnectorReadFaults injects the failures a read must survive.
func TestConnectorReadFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault ewssim.Fault
		want  syncerr.Code // empty: the read succeeds despite the fault
		full  bool
	}{
		{name: "invalid sync state restarts from scratch", fault: ewssim.Fault{Operation: "SyncFolderItems", Kind: ewssim.FaultInvalidSyncState}, full: true},
		{name: "503 with Retry-After", fault: ewssim.Fault{Operation: "GetItem", Kind: ewssim.FaultHTTPStatus, Status: 503, RetryAfter: time.Second}},
		{name: "malformed answer", fault: ewssim.Fault{Operation: "SyncFolderItems", Kind: ewssim.FaultMalformedXML}},
		{name: "dropped connection", fault: ewssim.Fault{Operation: "GetItem", Kind: ewssim.FaultDropConnection}},
		{name: "long throttling", fault: ewssim.Fault{Operation: "SyncFolderItems", Kind: ewssim.FaultServerBusy, BackOff: 5 * time.Minute}, want: syncerr.ExchangeServerBusy},
		{name: "persistent 500", fault: ewssim.Fault{Operation: "SyncFolderItems", Kind: ewssim.FaultHTTPStatus, Status: 500, Times: -1}, want: syncerr.ExchangeUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newSimEnv(t, ewssim.Config{})
			const address = "alice@contoso.com"
			if err := env.sim.AddMailbox(address); err != nil {
				t.Fatal(err)
			}
			c := env.connector(t, env.connection())
			mb := mailboxOf(address)
			if _, err := c.Prepare(t.Context(), mb); err != nil {
				t.Fatal(err)
			}
			if _, err := env.sim.PutContact(address, exchange.SyncFolderName, ewssim.Contact{GivenName: "Before"}); err != nil {
				t.Fatal(err)
			}
			pages, err := readAll(t, c, mb, tandemv1.RecordKind_RECORD_KIND_CONTACT, "")
			if err != nil {
				t.Fatal(err)
			}
			cursor := pages[len(pages)-1].Cursor
			if _, err := env.sim.PutContact(address, exchange.SyncFolderName, ewssim.Contact{GivenName: "After"}); err != nil {
				t.Fatal(err)
			}
			tc.fault.Mailbox = address
			env.sim.InjectFault(tc.fault)
			t.Cleanup(env.sim.ClearFaults)
			pages, err = readAll(t, c, mb, tandemv1.RecordKind_RECORD_KIND_CONTACT, cursor)
			if tc.want != "" {
				if se := syncerr.As(err); se.Code != tc.want {
					t.Fatalf("got %v, want %s", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("read failed: %v", err)
			}
			wantUpserts := 1
			if tc.full {
				wantUpserts = 2
			}
			if got := upserts(pages); got != wantUpserts || pages[0].Full != tc.full {
				t.Errorf("read %d upserts (full %v), want %d (full %v)", got, pages[0].Full, wantUpserts, tc.full)
			}
		})
	}
}

func TestConnectorApplyValidation(t *testing.T) {
	env := newSimEnv(t, ewssim.Config{})
	const address = "alice@contoso.com"
	if err := env.sim.AddMailbox(address); err != nil {
		t.Fatal(err)
	}
	c := env.connector(t, env.connection())
	mb := mailboxOf(address)
	cmds := []*tandemv1.WriteCommand{
		{CommandId: "no-key", Op: tandemv1.WriteOp_WRITE_OP_CREATE, Record: contactRecord("", &tandemv1.Contact{GivenName: "x"})},
		{CommandId: "wrong-kind", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "k", Record: eventRecord("", fullEvent())},
		{CommandId: "no-target", Op: tandemv1.WriteOp_WRITE_OP_UPDATE, SyncKey: "k2", Record: contactRecord("", &tandemv1.Contact{})},
		{CommandId: "unknown-field", Op: tandemv1.WriteOp_WRITE_OP_UPDATE, SyncKey: "k3", TargetId: "AAMk", Record: contactRecord("", &tandemv1.Contact{}), Fields: []string{"shoe_size"}},
		{CommandId: "no-op", SyncKey: "k4"},
	}
	res, err := c.Apply(t.Context(), mb, tandemv1.RecordKind_RECORD_KIND_CONTACT, cmds)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.GetOk() || r.GetError() == nil {
			t.Errorf("%s: ok=%v error=%v", cmds[i].GetCommandId(), r.GetOk(), r.GetError())
		}
		if r.GetError().GetRetryable() {
			t.Errorf("%s: a malformed command must not be retryable: %v", cmds[i].GetCommandId(), r.GetError())
		}
	}
	if got := res[3].GetError().GetField(); got != "shoe_size" {
		t.Errorf("unknown field error names field %q", got)
	}
	if n := env.sim.Counts()["CreateItem"] + env.sim.Counts()["UpdateItem"]; n != 0 {
		t.Errorf("invalid commands reached Exchange (%d writes)", n)
	}
}

func TestConnectorCancelledApply(t *testing.T) {
	env := newSimEnv(t, ewssim.Config{})
	const address = "alice@contoso.com"
	if err := env.sim.AddMailbox(address); err != nil {
		t.Fatal(err)
	}
	c := env.connector(t, env.connection())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.Apply(ctx, mailboxOf(address), tandemv1.RecordKind_RECORD_KIND_CONTACT, []*tandemv1.WriteCommand{
		{CommandId: "c", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "k", Record: contactRecord("", &tandemv1.Contact{GivenName: "x"})},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestConnectorCreateLookup covers how a retried create's sync-key lookup, one FindItem over
// the target folder and Deleted Items, decides between updating, refusing and creating.
func TestConnectorCreateLookup(t *testing.T) {
	const (
		address = "alice@contoso.com"
		key     = "sk-lookup"
	)
	tagged := func(k string) []ewssim.ExtendedProperty {
		return []ewssim.ExtendedProperty{{PropertySetID: SyncKeyPropertySetID, PropertyName: SyncKeyPropertyName, PropertyType: "String", Value: k}}
	}
	tests := []struct {
		name string
		// Items carrying the key: contacts in the sync folder, contacts and events deleted.
		inFolder, deleted, deletedEvents int
		commands                         int // creates with the key in the batch
		want                             string
		finds                            int // FindItem requests
	}{
		{name: "earlier attempt in the folder is updated", inFolder: 1, commands: 1, want: "upsert", finds: 1},
		{name: "earlier attempt deleted since is not made again", deleted: 1, commands: 1, want: "gone", finds: 1},
		{name: "the folder wins over Deleted Items", inFolder: 1, deleted: 1, commands: 1, want: "upsert", finds: 1},
		{name: "a deleted item of another kind does not count", deletedEvents: 1, commands: 1, want: "create", finds: 1},
		{name: "duplicates in a batch share the refusal", deleted: 1, commands: 2, want: "gone", finds: 1},
		{name: "duplicates in a batch share the update", inFolder: 1, commands: 2, want: "upsert", finds: 1},
		{name: "Deleted Items is paged on alone", deleted: 12, commands: 1, want: "gone", finds: 2},
		{name: "nothing found", commands: 1, want: "create", finds: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newSimEnv(t, ewssim.Config{})
			if err := env.sim.AddMailbox(address); err != nil {
				t.Fatal(err)
			}
			c := env.connector(t, env.connection())
			mb := mailboxOf(address)
			if _, err := c.Prepare(t.Context(), mb); err != nil {
				t.Fatal(err)
			}
			var existing []string
			for i := range tc.inFolder + tc.deleted {
				id, err := env.sim.PutContact(address, exchange.SyncFolderName, ewssim.Contact{
					ItemBase: ewssim.ItemBase{ExtendedProperties: tagged(key)}, GivenName: fmt.Sprintf("Old%d", i),
				})
				if err != nil {
					t.Fatal(err)
				}
				if i < tc.inFolder {
					existing = append(existing, id)
				} else if err := env.sim.DeleteItem(address, id); err != nil {
					t.Fatal(err)
				}
			}
			for range tc.deletedEvents {
				id, err := env.sim.PutEvent(address, ewssim.CalendarItem{
					ItemBase: ewssim.ItemBase{ExtendedProperties: tagged(key), Subject: "Old"},
					Start:    time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), End: time.Date(2026, 5, 1, 11, 0, 0, 0, time.UTC),
				})
				if err != nil {
					t.Fatal(err)
				}
				if err := env.sim.DeleteItem(address, id); err != nil {
					t.Fatal(err)
				}
			}
			var trash []string
			for _, it := range env.sim.Items(address, "deleteditems") {
				if it.Contact != nil {
					trash = append(trash, it.ItemID)
				}
			}
			env.sim.ResetCounts()

			var cmds []*tandemv1.WriteCommand
			for i := range tc.commands {
				cmds = append(cmds, &tandemv1.WriteCommand{CommandId: fmt.Sprint("c", i), Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key,
					Retry: true, Record: contactRecord("", &tandemv1.Contact{GivenName: "New", JobTitle: "Buyer"})})
			}
			res, err := c.Apply(t.Context(), mb, tandemv1.RecordKind_RECORD_KIND_CONTACT, cmds)
			if err != nil {
				t.Fatal(err)
			}
			inFolder := env.sim.Items(address, exchange.SyncFolderName)
			for i, r := range res {
				switch tc.want {
				case "upsert":
					if !r.GetOk() || !r.GetAlreadyApplied() || r.GetRecord().GetId() != existing[0] {
						t.Errorf("result %d: %v, want the existing item %s updated and already applied", i, r, existing[0])
					}
					if got := r.GetRecord().GetContact(); got.GetGivenName() != "New" || got.GetJobTitle() != "Buyer" {
						t.Errorf("result %d holds %v, want the command's content", i, got)
					}
				case "gone":
					if r.GetOk() || r.GetError().GetCode() != string(syncerr.ExchangeItemNotFound) || !slices.Contains(trash, r.GetRecord().GetId()) {
						t.Errorf("result %d: %v, want %s naming one of the deleted items %v", i, r, syncerr.ExchangeItemNotFound, trash)
					}
					if r.GetError().GetRecordId() != r.GetRecord().GetId() {
						t.Errorf("result %d: error names %q, record %q", i, r.GetError().GetRecordId(), r.GetRecord().GetId())
					}
				case "create":
					if !r.GetOk() || r.GetAlreadyApplied() || r.GetRecord().GetId() == "" {
						t.Errorf("result %d: %v, want a new item", i, r)
					}
				}
				if r.GetRecord().GetId() != res[0].GetRecord().GetId() {
					t.Errorf("duplicate create %d got item %q, the first %q", i, r.GetRecord().GetId(), res[0].GetRecord().GetId())
				}
			}
			wantItems := tc.inFolder
			if tc.want == "create" {
				wantItems = 1
			}
			if len(inFolder) != wantItems {
				t.Errorf("%d items in the folder, want %d", len(inFolder), wantItems)
			}
			if tc.want == "upsert" {
				for _, it := range inFolder {
					if it.ItemID == existing[0] && it.Contact.GivenName != "New" {
						t.Errorf("the existing item still holds %q", it.Contact.GivenName)
					}
				}
			}
			counts := env.sim.Counts()
			wantCounts := map[string]int64{"FindItem": int64(tc.finds), "UpdateItem": 0, "CreateItem": 0}
			switch tc.want {
			case "upsert":
				wantCounts["UpdateItem"] = 1
			case "create":
				wantCounts["CreateItem"] = 1
			}
			for op, want := range wantCounts {
				if counts[op] != want {
					t.Errorf("%s requests: %d, want %d (all: %v)", op, counts[op], want, counts)
				}
			}
		})
	}
}

// TestConnectorResolvesExpectedMailboxesTogether: told which mailboxes it will serve, the
// connector finds their EWS URLs with one GetUserSettings request for all of them, not one
// each; an unknown mailbox among them still fails on its own, as not found.
func TestConnectorResolvesExpectedMailboxesTogether(t *testing.T) {
	env := newSimEnv(t, ewssim.Config{})
	var addresses []string
	for i := range 5 {
		a := fmt.Sprintf("rep%d@contoso.com", i)
		if err := env.sim.AddMailbox(a); err != nil {
			t.Fatal(err)
		}
		addresses = append(addresses, a)
	}
	c := env.connector(t, env.connection())
	c.Expect(append(addresses, "nobody@contoso.com", "elsewhere@fabrikam.com"))
	env.sim.ResetCounts()
	// All at once, as a worker's concurrent jobs do: the lookups share one request.
	var g errgroup.Group
	for _, a := range addresses {
		g.Go(func() error {
			if _, err := c.Prepare(t.Context(), mailboxOf(a)); err != nil {
				return fmt.Errorf("prepare %s: %w", a, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := env.sim.Counts()["GetUserSettings"]; n != 1 {
		t.Errorf("%d GetUserSettings requests for %d expected mailboxes, want 1", n, len(addresses))
	}
	_, err := c.Prepare(t.Context(), mailboxOf("nobody@contoso.com"))
	if code := syncerr.As(err).Code; code != syncerr.ExchangeMailboxNotFound {
		t.Errorf("unknown mailbox: %v (code %s), want %s", err, code, syncerr.ExchangeMailboxNotFound)
	}
}
