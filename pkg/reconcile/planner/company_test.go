package planner

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// accountNotSet answers a Salesforce write as the worker does when the company names no Account
// the user can see: the write succeeds, the company is left as it was, and a warning says so.
func accountNotSet(w Write, id string) *tandemv1.WriteResult {
	cmd := w.GetCommand()
	rec := proto.Clone(cmd.GetRecord()).(*tandemv1.Record)
	rec.Id = id
	rec.Version = "v-written"
	return &tandemv1.WriteResult{
		CommandId: cmd.GetCommandId(), SyncKey: cmd.GetSyncKey(), Op: cmd.GetOp(), Ok: true, Record: rec,
		Warnings: []*tandemv1.SyncError{(&syncerr.Error{Code: syncerr.SalesforceAccountNotSet, Field: "company_name",
			Detail: "no Account named " + rec.GetContact().GetCompanyName()}).Proto()},
	}
}

// apply stores a result's effects in the state, as the engine's commit does.
func apply(t *testing.T, s *State, w Write, res *tandemv1.WriteResult) {
	t.Helper()
	key := w.GetCommand().GetSyncKey()
	target := s.Salesforce
	if w.GetTarget() == exchange {
		target = s.Exchange
	}
	eff := ApplyResult(s.Kind, w.PendingWrite, s.Mappings[key], target[w.GetCommand().GetTargetId()], res, t0)
	if eff.Mapping == nil {
		t.Fatalf("result of %s left no mapping", w.GetCommand().GetCommandId())
	}
	s.Mappings[key] = eff.Mapping
	target[eff.Mirror.GetRecord().GetId()] = eff.Mirror
	if len(eff.Report) == 0 {
		t.Errorf("the note about the company did not reach the error report")
	}
}

// TestCompanyWithoutAccountIsNotRetriedEveryCycle checks the asymmetric company sync: a company
// set in Exchange that Salesforce cannot take (no Account of that name) is written once with a
// note, after which the pair is stable (no endless update loop), while a later change on either
// side still travels.
func TestCompanyWithoutAccountIsNotRetriedEveryCycle(t *testing.T) {
	withCompany := func(name string) func(c *tandemv1.Contact) { return func(c *tandemv1.Contact) { c.CompanyName = name } }
	tests := []struct {
		name string
		// setup returns the state before the Exchange edit reaches Salesforce, and the
		// Salesforce record as Salesforce then holds it.
		setup     func() *State
		wantFirst []string
	}{
		{
			name: "update of a linked contact whose Account stays",
			setup: func() *State {
				ex := edit(person("E1", "Ada", "Lovelace", "ada@example.com"), withCompany("Acme"))
				sf := edit(person("S1", "Ada", "Lovelace", "ada@example.com"), withCompany("Acme"))
				s := state(both())
				s.Mappings["k1"] = synced("k1", ex, sf)
				s.Exchange, s.Salesforce = mirror(edit(ex, withCompany("Nowhere Ltd"))), mirror(sf)
				return s
			},
			wantFirst: []string{"salesforce UPDATE company_name"},
		},
		{
			name: "create of a contact with no Account",
			setup: func() *State {
				s := state(both())
				s.Exchange = mirror(edit(person("E1", "Ada", "Lovelace", "ada@example.com"), withCompany("Nowhere Ltd")))
				return s
			},
			wantFirst: []string{"salesforce CREATE"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.setup()
			p := Compute(s)
			if got := summary(p); !slices.Equal(got, tt.wantFirst) {
				t.Fatalf("first cycle writes = %v, want %v", got, tt.wantFirst)
			}
			w := p.Writes[0]
			apply(t, s, w, accountNotSet(w, firstNonEmpty(w.GetCommand().GetTargetId(), "S1")))
			sfMirror := s.Salesforce["S1"].GetRecord()
			before := "Acme"
			if w.GetCommand().GetOp() == tandemv1.WriteOp_WRITE_OP_CREATE {
				before = ""
			}
			if got := sfMirror.GetContact().GetCompanyName(); got != before {
				t.Fatalf("Salesforce mirror holds company %q after the write, want %q (what Salesforce kept)", got, before)
			}
			// Salesforce's poll then reports the written record (a new version): the echo.
			echo := proto.Clone(sfMirror).(*tandemv1.Record)
			echo.Version = "v-polled"
			s.Salesforce = mirror(echo)
			for cycle := range 3 {
				if got := summary(Compute(s)); len(got) != 0 {
					t.Fatalf("cycle %d after the write plans %v: the company would be written every cycle", cycle+2, got)
				}
			}
			// A change of the Account in Salesforce still reaches Exchange...
			s2 := proto.Clone(echo).(*tandemv1.Record)
			s.Salesforce = mirror(edit(s2, withCompany("Beta Corp")))
			if got := summary(Compute(s)); !slices.Equal(got, []string{"exchange UPDATE company_name"}) {
				t.Errorf("an Account change in Salesforce plans %v", got)
			}
			// ...and so does a new company typed in Exchange.
			s.Salesforce = mirror(echo)
			s.Exchange = mirror(edit(s.Exchange["E1"].GetRecord(), withCompany("Gamma plc")))
			if got := summary(Compute(s)); !slices.Equal(got, []string{"salesforce UPDATE company_name"}) {
				t.Errorf("a new company in Exchange plans %v", got)
			}
		})
	}
}
