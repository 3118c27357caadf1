package salesforce

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func contactCreate(key string, c *tandemv1.Contact) *tandemv1.WriteCommand {
	return &tandemv1.WriteCommand{CommandId: "create-" + key, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key,
		Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: c}}}
}

func contactUpdate(id string, c *tandemv1.Contact, fields ...string) *tandemv1.WriteCommand {
	return &tandemv1.WriteCommand{CommandId: "update-" + id, Op: tandemv1.WriteOp_WRITE_OP_UPDATE, TargetId: id, Fields: fields,
		Record: &tandemv1.Record{Id: id, Body: &tandemv1.Record_Contact{Contact: c}}}
}

func contactDelete(id string) *tandemv1.WriteCommand {
	return &tandemv1.WriteCommand{CommandId: "delete-" + id, Op: tandemv1.WriteOp_WRITE_OP_DELETE, TargetId: id}
}

const (
	writeAsRep         = tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_REP
	writeAsIntegration = tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_INTEGRATION_USER
)

// TestSimThousandWritesAtMostFiveCalls: a rep's 1,000 creates take five collections calls and
// one token, whoever writes them: the rep (write_as REP) or the integration user (the default),
// which sets OwnerId to the rep.
func TestSimThousandWritesAtMostFiveCalls(t *testing.T) {
	for _, writeAs := range []tandemv1.SalesforceWriteIdentity{writeAsRep, tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_UNSPECIFIED} {
		t.Run(writeAs.String(), func(t *testing.T) {
			env := newSimEnv(t, simOptions{users: 1, writeAs: writeAs})
			rep := env.users[0]
			creator := rep.UserId
			if writeAs != writeAsRep {
				creator = env.integrationID
			}
			cmds := make([]*tandemv1.WriteCommand, 1000)
			for i := range cmds {
				cmds[i] = contactCreate(fmt.Sprintf("sk-%04d", i), &tandemv1.Contact{GivenName: "Pat", Surname: fmt.Sprintf("Number %d", i),
					EmailAddress1: fmt.Sprintf("pat%d@customer.example", i), BusinessAddress: &tandemv1.PostalAddress{City: "Lyon", Country: "France"}})
			}
			env.sim.ResetCounts()
			res, err := env.conn.Apply(t.Context(), rep, contactKind, cmds)
			if err != nil {
				t.Fatal(err)
			}
			if got := env.apiCalls(); got > 5 {
				t.Errorf("1,000 writes took %d API calls, want at most 5: %v", got, env.sim.Counts())
			}
			if got := env.count(sfsim.EndpointToken); got != 1 {
				t.Errorf("%d token requests, want 1 (the writer's)", got)
			}
			ids := map[string]bool{}
			for i, r := range res {
				if !r.GetOk() || r.GetAlreadyApplied() || r.GetRecord().GetId() == "" || r.GetRecord().GetSyncKey() != cmds[i].GetSyncKey() ||
					r.GetCommandId() != cmds[i].GetCommandId() || r.GetRecord().GetOwnerId() != rep.UserId {
					t.Fatalf("result %d: %v", i, r)
				}
				ids[r.GetRecord().GetId()] = true
			}
			contacts := env.sim.List("Contact")
			if len(contacts) != 1000 || len(ids) != 1000 {
				t.Fatalf("%d contacts stored, %d distinct ids returned", len(contacts), len(ids))
			}
			for _, c := range contacts {
				if c["OwnerId"] != rep.UserId || c["CreatedById"] != creator || !ids[c["Id"].(string)] {
					t.Fatalf("contact %v owned by %v and created by %v, want %s and %s", c["Id"], c["OwnerId"], c["CreatedById"], rep.UserId, creator)
				}
			}
		})
	}
}

func TestSimRetriedCreateDoesNotDuplicate(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	rep := env.users[0]
	cmd := contactCreate("sk-once", &tandemv1.Contact{GivenName: "Ada", Surname: "Lovelace"})
	first, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{cmd})
	if err != nil || !first[0].GetOk() || first[0].GetAlreadyApplied() {
		t.Fatalf("first attempt: %v %v", first, err)
	}
	again, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{cmd})
	if err != nil || !again[0].GetOk() || !again[0].GetAlreadyApplied() || again[0].GetRecord().GetId() != first[0].GetRecord().GetId() {
		t.Fatalf("retried attempt: %v %v", again, err)
	}
	if got := len(env.sim.List("Contact")); got != 1 {
		t.Errorf("%d contacts after a retried create, want 1", got)
	}
	// The same key twice in one batch is sent in two calls, never in one list.
	twice := []*tandemv1.WriteCommand{contactCreate("sk-twice", &tandemv1.Contact{Surname: "A"}), contactCreate("sk-twice", &tandemv1.Contact{Surname: "A"})}
	res, err := env.conn.Apply(t.Context(), rep, contactKind, twice)
	if err != nil || !res[0].GetOk() || !res[1].GetOk() || res[0].GetRecord().GetId() != res[1].GetRecord().GetId() || !res[1].GetAlreadyApplied() {
		t.Fatalf("same key twice: %v %v", res, err)
	}
}

// TestSimWriteResultsSayWhenSent: Salesforce does not return the SystemModstamp a write leaves,
// so a create's or an update's result says when its call was sent, which the record's stamp is
// never before; a delete's says nothing.
func TestSimWriteResultsSayWhenSent(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	rep := env.users[0]
	sent := env.clock.Now()
	res, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{contactCreate("sk-sent", &tandemv1.Contact{Surname: "Sent"})})
	if err != nil || !res[0].GetOk() {
		t.Fatalf("create: %v %v", res, err)
	}
	id := res[0].GetRecord().GetId()
	env.clock.Advance(time.Minute)
	updated := env.clock.Now()
	upd, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{contactUpdate(id, &tandemv1.Contact{Department: "Ops"}, fDepartment)})
	if err != nil || !upd[0].GetOk() {
		t.Fatalf("update: %v %v", upd, err)
	}
	for _, tc := range []struct {
		what string
		res  *tandemv1.WriteResult
		want time.Time
	}{{"create", res[0], sent}, {"update", upd[0], updated}} {
		if got := tc.res.GetSentAt(); got == nil || !got.AsTime().Equal(tc.want) {
			t.Errorf("%s sent_at = %v, want %v", tc.what, got.AsTime(), tc.want)
		}
	}
	row, _ := env.sim.Get("Contact", id)
	if stamp, _ := row["SystemModstamp"].(time.Time); stamp.Before(updated) {
		t.Errorf("SystemModstamp %v before the update was sent (%v)", stamp, updated)
	}
	del, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{contactDelete(id)})
	if err != nil || !del[0].GetOk() || del[0].GetSentAt() != nil {
		t.Fatalf("delete: %v %v, want ok without sent_at", del, err)
	}
}

func TestSimPerRecordErrorsNeverFailTheBatch(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	rep := env.users[0]
	mk := func(fields map[string]any) string {
		id, err := env.sim.Insert("Contact", fields, rep.UserId)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	if err := env.sim.SetDuplicateRule("Contact", "Email"); err != nil {
		t.Fatal(err)
	}
	mk(map[string]any{"LastName": "Original", "Email": "dup@customer.example"})
	lockedOnce := mk(map[string]any{"LastName": "Busy"})
	lockedAlways := mk(map[string]any{"LastName": "Stuck"})
	deleted := mk(map[string]any{"LastName": "Gone"})
	deletedTwice := mk(map[string]any{"LastName": "Gone too"})
	plain := mk(map[string]any{"LastName": "Plain"})
	for _, id := range []string{deleted, deletedTwice} {
		if err := env.sim.Delete("Contact", id); err != nil {
			t.Fatal(err)
		}
	}
	env.sim.InjectFault(sfsim.Fault{Kind: sfsim.FaultLockRows, IDs: []string{lockedOnce}, Times: 2})
	env.sim.InjectFault(sfsim.Fault{Kind: sfsim.FaultLockRows, IDs: []string{lockedAlways}, Times: sfsim.Always})

	longTitle := strings.Repeat("Senior ", 25) // 175 characters; Title holds 128
	cmds := []*tandemv1.WriteCommand{
		contactCreate("sk-ok", &tandemv1.Contact{Surname: "Fine"}),
		contactCreate("sk-dup", &tandemv1.Contact{Surname: "Copy", EmailAddress1: "dup@customer.example"}),
		contactCreate("sk-long", &tandemv1.Contact{Surname: "Wordy", JobTitle: longTitle}),
		contactUpdate(lockedOnce, &tandemv1.Contact{Department: "Ops"}, fDepartment),
		contactUpdate(lockedAlways, &tandemv1.Contact{Department: "Ops"}, fDepartment),
		contactCreate("sk-nolast", &tandemv1.Contact{GivenName: "Only"}),
		contactUpdate(deleted, &tandemv1.Contact{Department: "Ops"}, fDepartment),
		contactDelete(deletedTwice),
		contactUpdate(plain, &tandemv1.Contact{SalesforceAccountId: "001000000000000AAA"}, fAccountID),
		contactDelete(plain),
	}
	res, err := env.conn.Apply(t.Context(), rep, contactKind, cmds)
	if err != nil {
		t.Fatalf("Apply failed as a whole: %v", err)
	}
	want := []struct {
		ok       bool
		code     syncerr.Code
		already  bool
		warnings int
	}{
		{ok: true},
		{code: syncerr.SalesforceDuplicatesFound},
		{ok: true, warnings: 1},
		{ok: true},
		{code: syncerr.SalesforceRowLocked},
		{code: syncerr.SalesforceRejected},
		{code: syncerr.SalesforceEntityDeleted},
		{ok: true, already: true},
		{code: syncerr.SalesforceInvalidReference},
		{ok: true},
	}
	for i, w := range want {
		r := res[i]
		if r.GetOk() != w.ok || syncerr.Code(r.GetError().GetCode()) != w.code || r.GetAlreadyApplied() != w.already || len(r.GetWarnings()) != w.warnings {
			t.Errorf("command %d (%s): ok=%t error=%v already=%t warnings=%v; want %+v", i, cmds[i].GetCommandId(), r.GetOk(), r.GetError(), r.GetAlreadyApplied(), r.GetWarnings(), w)
		}
		if e := r.GetError(); e != nil && (e.GetSuggestion() == "" || e.GetUpstreamCode() == "" || e.GetSystem() != tandemv1.System_SYSTEM_SALESFORCE) {
			t.Errorf("command %d: incomplete error %v", i, e)
		}
	}
	warn := res[2].GetWarnings()[0]
	if warn.GetCode() != string(syncerr.SalesforceStringTooLong) || warn.GetField() != fJobTitle || warn.GetRecordId() != res[2].GetRecord().GetId() {
		t.Errorf("warning %v", warn)
	}
	if got := res[2].GetRecord().GetContact().GetJobTitle(); got != longTitle[:128] {
		t.Errorf("result holds title %q, want the truncated one", got)
	}
	stored, _ := env.sim.Get("Contact", res[2].GetRecord().GetId())
	if stored["Title"] != longTitle[:128] {
		t.Errorf("Salesforce holds title %q", stored["Title"])
	}
	if res[4].GetError().GetRetryable() != true || res[4].GetError().GetRecordId() != lockedAlways {
		t.Errorf("row locked error %v", res[4].GetError())
	}
	if got, want := env.count(sfsim.EndpointCollectionsUpdate), int64(3); got != want {
		t.Errorf("%d update calls, want %d (one and two retries of the locked records only)", got, want)
	}
}

func TestSimTokenExpiryCostsOneRenewalPerToken(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 2, writeAs: writeAsRep})
	env.seed(3)
	env.clock.Advance(10 * time.Minute)
	ctx := t.Context()
	rep := env.users[0]
	write := func(i int) error {
		_, err := env.conn.Apply(ctx, rep, contactKind, []*tandemv1.WriteCommand{contactCreate(fmt.Sprintf("sk-%d", i), &tandemv1.Contact{Surname: "N"})})
		return err
	}
	poll := func() error {
		_, err := env.conn.Poll(ctx, PollRequest{Kind: contactKind, Audience: env.audience(userRecords)},
			newPollResult().emit)
		return err
	}
	if err := poll(); err != nil { // the integration user's token
		t.Fatal(err)
	}
	if err := write(-1); err != nil { // the rep's token
		t.Fatal(err)
	}
	env.sim.ResetCounts()
	env.sim.InjectFault(sfsim.Fault{Kind: sfsim.FaultExpireTokens})
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			if err := poll(); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if err := write(i); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := env.count(sfsim.EndpointToken); got != 2 {
		t.Errorf("%d token requests after the sessions expired, want 2: one renewal per token", got)
	}
}

func TestSimRequestLimitExceededBacksOff(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	env.clock.Advance(10 * time.Minute)
	env.sim.InjectFault(sfsim.Fault{Kind: sfsim.FaultRequestLimit})
	emit := newPollResult().emit
	req := PollRequest{Kind: contactKind, Audience: env.audience(userRecords)}
	_, err := env.conn.Poll(t.Context(), req, emit)
	se := syncerr.As(err)
	if se.Code != syncerr.SalesforceRequestLimit || se.Delay != DefaultLimitProbe || syncerr.ScopeOf(se.Code) != syncerr.ScopeOrg {
		t.Fatalf("Poll = %#v", se)
	}
	if u := env.conn.Usage(); !u.BackedOffUntil.Equal(env.clock.Now().Add(DefaultLimitProbe)) {
		t.Errorf("usage %+v", u)
	}
	env.sim.ResetCounts()
	env.clock.Advance(DefaultLimitProbe / 2)
	_, err = env.conn.Apply(t.Context(), env.users[0], contactKind, []*tandemv1.WriteCommand{contactCreate("k", &tandemv1.Contact{Surname: "x"})})
	if se := syncerr.As(err); se.Code != syncerr.SalesforceRequestLimit || se.Delay != DefaultLimitProbe/2 {
		t.Errorf("Apply while backed off = %#v", se)
	}
	if got := env.apiCalls(); got != 0 {
		t.Errorf("%d calls while backed off", got)
	}
	env.clock.Advance(DefaultLimitProbe / 2)
	if _, err := env.conn.Poll(t.Context(), req, emit); err != nil {
		t.Errorf("Poll after the backoff: %v", err)
	}
}

func TestSimReserveRespected(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1, allocation: 1000})
	env.seed(1)
	env.clock.Advance(10 * time.Minute)
	env.sim.SetAPIUsage(790)
	req := PollRequest{Kind: contactKind, Audience: env.audience(userRecords)}
	emit := newPollResult().emit
	var err error
	for range 50 {
		if _, err = env.conn.Poll(t.Context(), req, emit); err != nil {
			break
		}
	}
	se := syncerr.As(err)
	if se.Code != syncerr.SalesforceBudgetReserved || se.Delay <= 0 {
		t.Fatalf("polling into the reserve: %#v", se)
	}
	if used, _ := env.sim.APIUsage(); used != 800 {
		t.Errorf("the org used %d of 1000 calls; Tandem must stop at 800 (20%% reserve)", used)
	}
	u := env.conn.Usage()
	if u.DailyMax != 1000 || u.Used != 800 || u.Reserve != 200 || u.BackedOffUntil.IsZero() || u.TandemCalls != 10 {
		t.Errorf("usage %+v", u)
	}
}

func TestSimServerErrorsRetriedForIdempotentOnly(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	rep := env.users[0]
	ctx := t.Context()
	existing, err := env.sim.Insert("Contact", map[string]any{"LastName": "Existing"}, rep.UserId)
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(10 * time.Minute)
	tests := []struct {
		name      string
		endpoint  string
		kind      sfsim.FaultKind
		run       func() error
		wantCalls int64
		wantErr   syncerr.Code
	}{
		{"upsert", sfsim.EndpointCollectionsUpsert, sfsim.FaultUnavailable, func() error {
			_, err := env.conn.Apply(ctx, rep, contactKind, []*tandemv1.WriteCommand{contactCreate("sk-u", &tandemv1.Contact{Surname: "U"})})
			return err
		}, 2, ""},
		{"update", sfsim.EndpointCollectionsUpdate, sfsim.FaultServerError, func() error {
			_, err := env.conn.Apply(ctx, rep, contactKind, []*tandemv1.WriteCommand{contactUpdate(existing, &tandemv1.Contact{Department: "D"}, fDepartment)})
			return err
		}, 2, ""},
		{"query", sfsim.EndpointQuery, sfsim.FaultUnavailable, func() error { _, err := env.conn.Users(ctx); return err }, 2, ""},
		{"plain create", sfsim.EndpointCollectionsCreate, sfsim.FaultUnavailable, func() error {
			_, err := env.conn.Apply(ctx, rep, contactKind, []*tandemv1.WriteCommand{contactCreate("", &tandemv1.Contact{Surname: "P"})})
			return err
		}, 1, syncerr.SalesforceUnavailable},
		{"delete", sfsim.EndpointCollectionsDelete, sfsim.FaultServerError, func() error {
			_, err := env.conn.Apply(ctx, rep, contactKind, []*tandemv1.WriteCommand{contactDelete(existing)})
			return err
		}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env.sim.ResetCounts()
			env.sim.InjectFault(sfsim.Fault{Endpoint: tt.endpoint, Kind: tt.kind})
			err := tt.run()
			if got := syncerr.Code(""); err != nil {
				got = syncerr.As(err).Code
				if got != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if tt.wantErr != "" {
				t.Fatalf("no error, want %s", tt.wantErr)
			}
			if got := env.count(tt.endpoint); got != tt.wantCalls {
				t.Errorf("%d calls, want %d", got, tt.wantCalls)
			}
		})
	}
	var plain int
	for _, c := range env.sim.List("Contact") {
		if c["LastName"] == "P" {
			plain++
		}
	}
	if plain != 0 {
		t.Errorf("the failed plain create left %d contacts", plain)
	}
}

func TestSimMalformedAndSlowResponses(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1, opts: []Option{WithHTTPClient(&http.Client{Timeout: 200 * time.Millisecond})}})
	ctx := t.Context()
	if _, err := env.conn.Users(ctx); err != nil { // warm the token
		t.Fatal(err)
	}
	env.sim.InjectFault(sfsim.Fault{Endpoint: sfsim.EndpointQuery, Kind: sfsim.FaultMalformedJSON})
	if _, err := env.conn.Users(ctx); syncerr.As(err).Code != syncerr.SalesforceMalformedResponse {
		t.Errorf("cut JSON: %v", err)
	}
	env.sim.InjectFault(sfsim.Fault{Endpoint: sfsim.EndpointQuery, Kind: sfsim.FaultSlow, Delay: 5 * time.Second, Times: sfsim.Always})
	_, err := env.conn.Users(ctx)
	if se := syncerr.As(err); se.Code != syncerr.SalesforceTimeout || se.Permanent() {
		t.Errorf("slow answers: %v", err)
	}
	if got := env.count(sfsim.EndpointQuery); got != 2+3 {
		t.Errorf("%d queries, want 5 (the timed-out one retried up to 3 attempts)", got)
	}
}

func TestSimUpdateWritesListedFieldsOnly(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	rep := env.users[0]
	account, err := env.sim.Insert("Account", map[string]any{"Name": "Acme"}, rep.UserId)
	if err != nil {
		t.Fatal(err)
	}
	id, err := env.sim.Insert("Contact", map[string]any{"FirstName": "Ada", "LastName": "Lovelace", "Title": "Countess", "AccountId": account,
		"MailingStreet": "1 Main St", "MailingCity": "London"}, rep.UserId)
	if err != nil {
		t.Fatal(err)
	}
	upd := contactUpdate(id, &tandemv1.Contact{GivenName: "", SalesforceAccountId: "", BusinessAddress: &tandemv1.PostalAddress{City: "Paris"}, JobTitle: "ignored"},
		fGivenName, fAccountID, fBusinessAddr)
	res, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{upd})
	if err != nil || !res[0].GetOk() {
		t.Fatalf("update: %v %v", res, err)
	}
	got, _ := env.sim.Get("Contact", id)
	if _, has := got["FirstName"]; has {
		t.Errorf("FirstName = %v, want cleared", got["FirstName"])
	}
	if got["AccountId"] != account || got["Title"] != "Countess" || got["MailingCity"] != "Paris" || got["MailingStreet"] != nil || got["LastName"] != "Lovelace" {
		t.Errorf("contact after the update: %v", got)
	}
}

// TestSimTokensOncePerRepPerSession checks the token cache under write_as REP: one token for
// the integration user and one per writing rep, whatever the number of calls, until Salesforce
// would end the session; then one new token, fetched before the write rather than after a
// rejected request.
func TestSimTokensOncePerRepPerSession(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 3, writeAs: writeAsRep, tokenLifetime: time.Hour, opts: []Option{WithSessionTimeout(time.Hour)}})
	env.seed(2)
	ctx := t.Context()
	n := 0
	write := func(rep *tandemv1.SyncUser) {
		t.Helper()
		n++
		if _, err := env.conn.Apply(ctx, rep, contactKind, []*tandemv1.WriteCommand{contactCreate(fmt.Sprintf("sk-%d", n), &tandemv1.Contact{Surname: "N"})}); err != nil {
			t.Fatal(err)
		}
	}
	cursor := ""
	for range 6 {
		env.clock.Advance(10 * time.Minute)
		_, cursor = env.poll(contactKind, env.audience(userRecords), cursor)
		for _, rep := range env.users {
			write(rep)
		}
	}
	if got := env.count(sfsim.EndpointToken); got != 4 {
		t.Errorf("%d tokens for 6 cycles of polls and writes by 3 reps, want 4: the integration user's and one per rep", got)
	}
	// Sessions in use are extended: another hour of cycles needs no token.
	for range 6 {
		env.clock.Advance(10 * time.Minute)
		_, cursor = env.poll(contactKind, env.audience(userRecords), cursor)
		write(env.users[0])
	}
	if got := env.count(sfsim.EndpointToken); got != 4 {
		t.Errorf("%d tokens after an hour more, want still 4", got)
	}
	// Reps 1 and 2 wrote nothing for over an hour: their sessions are over, and their tokens
	// are dropped from the cache.
	env.auth().mu.Lock()
	cached := len(env.auth().tokens)
	env.auth().mu.Unlock()
	if cached != 2 {
		t.Errorf("%d tokens cached, want 2 (the integration user's and rep 0's)", cached)
	}
	env.sim.ResetCounts()
	write(env.users[1])
	if tokens, writes := env.count(sfsim.EndpointToken), env.count(sfsim.EndpointCollectionsUpsert); tokens != 1 || writes != 1 {
		t.Errorf("a rep's write after their session ended: %d tokens and %d upserts, want 1 and 1 (no rejected request)", tokens, writes)
	}
}

func (e *simEnv) auth() *authenticator { return e.conn.auth }

// TestSimCheckedUpdateFailsOnAChangedRecord: an update that asks for the version check
// (WriteCommand.check_version) is made when the record is still at the version it expects, and
// fails as SALESFORCE_CONFLICT, writing nothing, when the record changed since — unless it
// already holds what the update writes (a first attempt whose result was lost), which makes the
// update already applied; an update that does not ask is made whatever the version. The check of
// every such update of a call is one query.
func TestSimCheckedUpdateFailsOnAChangedRecord(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	rep := env.users[0]
	version := func(id string) string {
		t.Helper()
		row, ok := env.sim.Get("Contact", id)
		if !ok {
			t.Fatalf("contact %s not found", id)
		}
		mod, ok := row["SystemModstamp"].(time.Time)
		if !ok {
			t.Fatalf("SystemModstamp of %s is %T, not a time", id, row["SystemModstamp"])
		}
		return mod.UTC().Format(versionLayout)
	}
	insert := func(last string) string {
		t.Helper()
		id, err := env.sim.Insert("Contact", map[string]any{"LastName": last, "Title": "Engineer"}, rep.UserId)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	current, changed, unchecked, applied := insert("Current"), insert("Changed"), insert("Unchecked"), insert("Applied")
	read := map[string]string{current: version(current), changed: version(changed), unchecked: version(unchecked), applied: version(applied)}
	time.Sleep(2 * time.Millisecond) // a later SystemModstamp, to the millisecond
	for id, title := range map[string]string{changed: "Edited in Salesforce", unchecked: "Edited in Salesforce", applied: "From Exchange"} {
		if err := env.sim.Update("Contact", id, map[string]any{"Title": title}, rep.UserId); err != nil {
			t.Fatal(err)
		}
		if version(id) == read[id] {
			t.Fatalf("the edit of %s left its SystemModstamp at %s", id, read[id])
		}
	}
	var cmds []*tandemv1.WriteCommand
	for _, id := range []string{current, changed, unchecked, applied} {
		cmd := contactUpdate(id, &tandemv1.Contact{JobTitle: "From Exchange"}, fJobTitle)
		cmd.ExpectedVersion = read[id]
		cmd.CheckVersion = id != unchecked
		cmds = append(cmds, cmd)
	}
	env.sim.ResetCounts()
	res, err := env.conn.Apply(t.Context(), rep, contactKind, cmds)
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].GetOk() || !res[2].GetOk() {
		t.Errorf("results %v: want the update of the unchanged record and the unchecked one made", res)
	}
	if res[1].GetOk() || res[1].GetError().GetCode() != string(syncerr.SalesforceConflict) || !res[1].GetError().GetRetryable() {
		t.Errorf("result of the update of a record changed since it was read = %v, want a retryable %s", res[1], syncerr.SalesforceConflict)
	}
	if !res[3].GetOk() || !res[3].GetAlreadyApplied() {
		t.Errorf("result of the update of a record that already holds its values = %v, want already applied", res[3])
	}
	for id, want := range map[string]string{current: "From Exchange", changed: "Edited in Salesforce", unchecked: "From Exchange", applied: "From Exchange"} {
		if row, _ := env.sim.Get("Contact", id); row["Title"] != want {
			t.Errorf("Title of %s = %v, want %q", id, row["Title"], want)
		}
	}
	if q, u := env.count(sfsim.EndpointQueryAll)+env.count(sfsim.EndpointQuery), env.count(sfsim.EndpointCollectionsUpdate); q != 1 || u != 1 {
		t.Errorf("%d queries and %d collections updates, want 1 and 1: %v", q, u, env.sim.Counts())
	}
}
