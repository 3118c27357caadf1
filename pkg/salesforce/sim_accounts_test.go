package salesforce

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestSimCompanySetsTheAccount checks the Exchange-to-Salesforce half of company sync: a
// company sets the contact's Account where exactly one Account has that exact name, with one
// lookup query for the whole batch; otherwise the write still succeeds for the other fields and
// carries a SALESFORCE_ACCOUNT_NOT_SET warning for company_name.
func TestSimCompanySetsTheAccount(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	rep := env.users[0]
	insert := func(object string, fields map[string]any) string {
		t.Helper()
		id, err := env.sim.Insert(object, fields, rep.UserId)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	acme := insert("Account", map[string]any{"Name": "Acme"})
	insert("Account", map[string]any{"Name": "Twin"})
	insert("Account", map[string]any{"Name": "Twin"})
	insert("Account", map[string]any{"Name": "O'Brien & Co"})
	withAcme := insert("Contact", map[string]any{"LastName": "Kept", "AccountId": acme})
	moving := insert("Contact", map[string]any{"LastName": "Moving"})
	clearing := insert("Contact", map[string]any{"LastName": "Clearing", "AccountId": acme})

	tests := []struct {
		name        string
		cmd         *tandemv1.WriteCommand
		wantAccount string // the Account name the contact then has in Salesforce
		wantWarning string // a substring of the SALESFORCE_ACCOUNT_NOT_SET warning; "" for none
		wantTitle   string // another field of the write, which is saved either way
	}{
		{"create with an existing company", contactCreate("sk-acme", &tandemv1.Contact{Surname: "A", CompanyName: "Acme", JobTitle: "CEO"}), "Acme", "", "CEO"},
		{"create with a quoted company", contactCreate("sk-quote", &tandemv1.Contact{Surname: "Q", CompanyName: "O'Brien & Co"}), "O'Brien & Co", "", ""},
		{"create with an unknown company", contactCreate("sk-none", &tandemv1.Contact{Surname: "B", CompanyName: "Nowhere Ltd", JobTitle: "CTO"}), "", `no Account named exactly "Nowhere Ltd"`, "CTO"},
		{"create with a company in another case", contactCreate("sk-case", &tandemv1.Contact{Surname: "C", CompanyName: "ACME"}), "", `"ACME"`, ""},
		{"create with an ambiguous company", contactCreate("sk-twin", &tandemv1.Contact{Surname: "D", CompanyName: "Twin"}), "", "2 Accounts are named", ""},
		{"create without a company", contactCreate("sk-empty", &tandemv1.Contact{Surname: "E"}), "", "", ""},
		{"update to an existing company", contactUpdate(moving, &tandemv1.Contact{Surname: "Moving", CompanyName: "Acme", JobTitle: "VP"}, "company_name", "job_title"), "Acme", "", "VP"},
		{"update to an unknown company keeps the Account", contactUpdate(withAcme, &tandemv1.Contact{Surname: "Kept", CompanyName: "Nowhere Ltd", JobTitle: "COO", SalesforceAccountId: acme}, "company_name", "job_title"), "Acme", "Nowhere Ltd", "COO"},
		{"a cleared company keeps the Account", contactUpdate(clearing, &tandemv1.Contact{Surname: "Clearing", SalesforceAccountId: acme}, "company_name"), "Acme", "cleared in Exchange", ""},
	}
	cmds := make([]*tandemv1.WriteCommand, len(tests))
	for i, tt := range tests {
		cmds[i] = tt.cmd
	}
	env.sim.ResetCounts()
	res, err := env.conn.Apply(t.Context(), rep, contactKind, cmds)
	if err != nil {
		t.Fatal(err)
	}
	if got := env.count(sfsim.EndpointQuery); got != 1 {
		t.Errorf("the batch looked up its companies in %d queries, want 1", got)
	}
	env.checkStatements()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := res[i]
			if !r.GetOk() {
				t.Fatalf("write failed: %v", r.GetError())
			}
			var warnings []string
			for _, w := range r.GetWarnings() {
				if w.GetCode() != string(syncerr.SalesforceAccountNotSet) || w.GetField() != "company_name" || w.GetSuggestion() == "" || w.GetRecordId() == "" {
					t.Errorf("unexpected warning %v", w)
				}
				warnings = append(warnings, w.GetMessage())
			}
			switch {
			case tt.wantWarning == "" && len(warnings) > 0:
				t.Errorf("warnings %q, want none", warnings)
			case tt.wantWarning != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tt.wantWarning)):
				t.Errorf("warnings %q, want one about %q", warnings, tt.wantWarning)
			}
			id := r.GetRecord().GetId()
			row, ok := env.sim.Get("Contact", id)
			if !ok {
				t.Fatalf("contact %s not stored", id)
			}
			gotAccount := ""
			if acct, _ := row["AccountId"].(string); acct != "" {
				a, _ := env.sim.Get("Account", acct)
				gotAccount, _ = a["Name"].(string)
			}
			if gotAccount != tt.wantAccount {
				t.Errorf("contact's Account is %q, want %q", gotAccount, tt.wantAccount)
			}
			if title, _ := row["Title"].(string); title != tt.wantTitle {
				t.Errorf("Title = %q, want %q: the other fields must be saved", title, tt.wantTitle)
			}
			if tt.cmd.GetOp() == tandemv1.WriteOp_WRITE_OP_CREATE && r.GetRecord().GetContact().GetCompanyName() != tt.wantAccount {
				t.Errorf("result says the new contact's company is %q, want %q (what Salesforce holds)", r.GetRecord().GetContact().GetCompanyName(), tt.wantAccount)
			}
		})
	}

	// The poll reads the company back as the Account's name, so the echo of the write matches.
	polled, _ := env.poll(contactKind, env.audience(userRecords), "")
	companies := map[string]string{}
	for _, ch := range polled.changes[rep.UserId] {
		companies[ch.GetRecord().GetId()] = ch.GetRecord().GetContact().GetCompanyName()
	}
	if got := companies[res[0].GetRecord().GetId()]; got != "Acme" {
		t.Errorf("polled company %q, want Acme", got)
	}

	// A batch that sets no company costs no lookup.
	env.sim.ResetCounts()
	if _, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{
		contactUpdate(moving, &tandemv1.Contact{Surname: "Moving", Department: "Sales"}, "department"),
	}); err != nil {
		t.Fatal(err)
	}
	if got := env.count(sfsim.EndpointQuery); got != 0 {
		t.Errorf("a batch without companies made %d queries", got)
	}
}

// TestSimAssistantNameAndSuffixRoundTrip checks the contact fields both sides have beyond the
// original mapping: the assistant's name and the name suffix are written and read back.
func TestSimAssistantNameAndSuffixRoundTrip(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	rep := env.users[0]
	res, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{
		contactCreate("sk-asst", &tandemv1.Contact{Surname: "Lovelace", AssistantName: "Mary Somerville", Suffix: "Jr."}),
	})
	if err != nil || !res[0].GetOk() {
		t.Fatalf("create: %v %v", res, err)
	}
	id := res[0].GetRecord().GetId()
	if _, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{
		contactUpdate(id, &tandemv1.Contact{Surname: "Lovelace", AssistantName: "Charles Babbage"}, "assistant_name", "suffix"),
	}); err != nil {
		t.Fatal(err)
	}
	row, _ := env.sim.Get("Contact", id)
	if row["AssistantName"] != "Charles Babbage" || row["Suffix"] != nil {
		t.Errorf("stored AssistantName %v, Suffix %v after the update", row["AssistantName"], row["Suffix"])
	}
	if err := env.sim.Update("Contact", id, map[string]any{"Suffix": "III"}, rep.UserId); err != nil {
		t.Fatal(err)
	}
	polled, _ := env.poll(contactKind, env.audience(userRecords), "")
	found := false
	for _, ch := range polled.changes[rep.UserId] {
		if ch.GetRecord().GetId() != id {
			continue
		}
		found = true
		if c := ch.GetRecord().GetContact(); c.GetAssistantName() != "Charles Babbage" || c.GetSuffix() != "III" {
			t.Errorf("polled assistant %q, suffix %q", c.GetAssistantName(), c.GetSuffix())
		}
	}
	if !found {
		t.Errorf("the poll did not report contact %s", id)
	}
}

// TestSimAccountLookupsAreCached checks the account cache: a company looked up once is not
// looked up again within the cache's ttl, found or not; a write that fails because its cached
// Account was deleted since is sent again after a fresh lookup, in the same apply; an Account
// created meanwhile is used once the answer expires; and a ttl of 0 looks up every time.
func TestSimAccountLookupsAreCached(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	rep := env.users[0]
	newAccount := func() string {
		t.Helper()
		id, err := env.sim.Insert("Account", map[string]any{"Name": "Acme"}, rep.UserId)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	type outcome struct{ lookups, writeCalls int64 }
	// create writes a contact of company and returns the Account it got in Salesforce, its
	// warnings, and the calls it cost.
	create := func(env *simEnv, key, company string) (account string, warnings []string, calls outcome) {
		t.Helper()
		env.sim.ResetCounts()
		res, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{
			contactCreate(key, &tandemv1.Contact{Surname: key, CompanyName: company}),
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res[0].GetOk() {
			t.Fatalf("create %s failed: %v", key, res[0].GetError())
		}
		row, ok := env.sim.Get("Contact", res[0].GetRecord().GetId())
		if !ok {
			t.Fatalf("contact %s not stored", key)
		}
		account, _ = row["AccountId"].(string)
		for _, w := range res[0].GetWarnings() {
			warnings = append(warnings, w.GetMessage())
		}
		return account, warnings, outcome{env.count(sfsim.EndpointQuery),
			env.count(sfsim.EndpointCollectionsUpsert) + env.count(sfsim.EndpointCollectionsCreate)}
	}
	acme := newAccount()
	steps := []struct {
		name, company string
		before        func()
		wantAccount   func() string
		wantWarning   string
		want          outcome
	}{
		{name: "first lookup", company: "Acme", wantAccount: func() string { return acme }, want: outcome{1, 1}},
		{name: "cached", company: "Acme", wantAccount: func() string { return acme }, want: outcome{0, 1}},
		{name: "unknown company", company: "Nowhere", wantWarning: `no Account named exactly "Nowhere"`, want: outcome{1, 1}},
		{name: "unknown company cached", company: "Nowhere", wantWarning: `no Account named exactly "Nowhere"`, want: outcome{0, 1}},
		{name: "cached Account deleted since", company: "Acme",
			before: func() {
				if err := env.sim.Delete("Account", acme); err != nil {
					t.Fatal(err)
				}
			},
			wantWarning: `no Account named exactly "Acme"`, want: outcome{1, 2}},
		{name: "Account created within the ttl", company: "Acme",
			before:      func() { acme = newAccount() },
			wantWarning: `no Account named exactly "Acme"`, want: outcome{0, 1}},
		{name: "Account created, once the answer expired", company: "Acme",
			before:      func() { env.clock.Advance(DefaultAccountCacheTTL) },
			wantAccount: func() string { return acme }, want: outcome{1, 1}},
	}
	for i, st := range steps {
		if st.before != nil {
			st.before()
		}
		account, warnings, calls := create(env, fmt.Sprintf("sk-%d", i), st.company)
		want := ""
		if st.wantAccount != nil {
			want = st.wantAccount()
		}
		if account != want {
			t.Errorf("%s: the contact's Account is %q, want %q", st.name, account, want)
		}
		if (st.wantWarning == "") != (len(warnings) == 0) || (st.wantWarning != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], st.wantWarning))) {
			t.Errorf("%s: warnings %q, want one about %q", st.name, warnings, st.wantWarning)
		}
		if calls != st.want {
			t.Errorf("%s: %d lookups and %d write calls, want %d and %d", st.name, calls.lookups, calls.writeCalls, st.want.lookups, st.want.writeCalls)
		}
	}

	// One apply whose creates and updates both name a cached Account deleted since: each call
	// that carried it is sent again, after one lookup.
	moving, err := env.sim.Insert("Contact", map[string]any{"LastName": "Moving"}, rep.UserId)
	if err != nil {
		t.Fatal(err)
	}
	if account, _, _ := create(env, "sk-warm", "Acme"); account != acme {
		t.Fatalf("the contact's Account is %q, want %q", account, acme)
	}
	if err := env.sim.Delete("Account", acme); err != nil {
		t.Fatal(err)
	}
	env.sim.ResetCounts()
	res, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{
		contactCreate("sk-both", &tandemv1.Contact{Surname: "Both", CompanyName: "Acme"}),
		contactUpdate(moving, &tandemv1.Contact{Surname: "Moving", CompanyName: "Acme", JobTitle: "VP"}, "company_name", "job_title"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !r.GetOk() || len(r.GetWarnings()) != 1 || !strings.Contains(r.GetWarnings()[0].GetMessage(), `no Account named exactly "Acme"`) {
			t.Errorf("write %d: ok %v, error %v, warnings %v; want it saved without the deleted Account", i, r.GetOk(), r.GetError(), r.GetWarnings())
		}
	}
	if got := []int64{env.count(sfsim.EndpointQuery), env.count(sfsim.EndpointCollectionsUpsert), env.count(sfsim.EndpointCollectionsUpdate)}; fmt.Sprint(got) != "[1 2 2]" {
		t.Errorf("lookups, upsert and update calls: %v, want [1 2 2]", got)
	}
	if row, _ := env.sim.Get("Contact", moving); row["Title"] != "VP" {
		t.Errorf("the update's other field was not saved: Title %v", row["Title"])
	}

	uncached := newSimEnv(t, simOptions{users: 1, opts: []Option{WithAccountCacheTTL(0)}})
	rep = uncached.users[0]
	for i := range 2 {
		if _, _, calls := create(uncached, fmt.Sprintf("sk-u%d", i), "Acme"); calls.lookups != 1 {
			t.Errorf("without a cache, write %d made %d lookups, want 1", i, calls.lookups)
		}
	}
}
