package planner

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// stamps renders the plan's key-only updates as "target id key" lines.
func stamps(p *Plan) []string {
	var out []string
	for _, w := range p.Writes {
		c := w.GetCommand()
		if record.KeyOnly(c.GetFields()) {
			out = append(out, sideName(w.GetTarget())+" "+c.GetTargetId()+" "+c.GetSyncKey())
		}
	}
	slices.Sort(out)
	return out
}

func keyed(r *tandemv1.Record, key string) *tandemv1.Record {
	n := proto.Clone(r).(*tandemv1.Record)
	n.SyncKey = key
	return n
}

// ada is the same person in any record: id and job title vary.
func ada(id, title string) *tandemv1.Record {
	r := person(id, "Ada", "Lovelace", "ada@example.com")
	r.GetContact().JobTitle = title
	return r
}

func TestPairsCarryTheirKeyOnBothSides(t *testing.T) {
	tests := []struct {
		name       string
		prepare    func(s *State)
		wantStamps func(key string) []string
		// wantContent are the other writes; each update must carry the pair's key.
		wantContent []string
	}{
		{"a pair linked by email is stamped on both sides", func(s *State) {
			s.Exchange, s.Salesforce = mirror(ada("E1", "")), mirror(ada("S1", ""))
		}, func(k string) []string { return []string{"exchange E1 " + k, "salesforce S1 " + k} }, nil},
		{"an update to one side carries the key, the other side is stamped", func(s *State) {
			s.Exchange, s.Salesforce = mirror(ada("E1", "")), mirror(ada("S1", "Countess"))
		}, func(k string) []string { return []string{"salesforce S1 " + k} }, []string{"exchange UPDATE job_title"}},
		{"a pair linked by name is stamped", func(s *State) {
			s.Exchange, s.Salesforce = mirror(person("E1", "Ada", "Lovelace", "")), mirror(person("S1", "Ada", "Lovelace", ""))
		}, func(k string) []string { return []string{"exchange E1 " + k, "salesforce S1 " + k} }, nil},
		{"the source of a create is not stamped before the pair exists", func(s *State) {
			s.Exchange = mirror(ada("E1", ""))
		}, func(string) []string { return nil }, []string{"salesforce CREATE"}},
		{"a linked pair without keys (linked before keys were stamped) is stamped", func(s *State) {
			ex, sf := ada("E1", ""), ada("S1", "")
			s.Mappings["t1PAIR"] = synced("t1PAIR", ex, sf)
			s.Exchange, s.Salesforce = mirror(ex), mirror(sf)
		}, func(string) []string { return []string{"exchange E1 t1PAIR", "salesforce S1 t1PAIR"} }, nil},
		{"a record carrying another key gets the pair's", func(s *State) {
			ex, sf := keyed(ada("E1", ""), "t1OLD"), keyed(ada("S1", ""), "t1PAIR")
			s.Mappings["t1PAIR"] = synced("t1PAIR", ex, sf)
			s.Exchange, s.Salesforce = mirror(ex), mirror(sf)
		}, func(string) []string { return []string{"exchange E1 t1PAIR"} }, nil},
		{"a pair that carries its key needs nothing", func(s *State) {
			ex, sf := keyed(ada("E1", ""), "t1PAIR"), keyed(ada("S1", ""), "t1PAIR")
			s.Mappings["t1PAIR"] = synced("t1PAIR", ex, sf)
			s.Exchange, s.Salesforce = mirror(ex), mirror(sf)
		}, func(string) []string { return nil }, nil},
		{"no stamp while a write to the side is in flight", func(s *State) {
			ex, sf := ada("E1", ""), keyed(ada("S1", ""), "t1PAIR")
			s.Mappings["t1PAIR"] = synced("t1PAIR", ex, sf)
			s.Exchange, s.Salesforce = mirror(ex), mirror(sf)
			s.Pending[PendingKey(exchange, "t1PAIR")] = &tandemv1.PendingWrite{Command: &tandemv1.WriteCommand{SyncKey: "t1PAIR"}, Target: exchange, IssuedAt: timestamppb.New(t0)}
		}, func(string) []string { return nil }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := state(both())
			tc.prepare(s)
			p := Compute(s)
			key := ""
			for _, l := range p.Links {
				key = l.GetSyncKey()
			}
			for k := range s.Mappings {
				key = k
			}
			for _, w := range p.Writes {
				if w.GetCommand().GetOp() == tandemv1.WriteOp_WRITE_OP_CREATE {
					key = w.GetCommand().GetSyncKey()
				}
			}
			if got, want := stamps(p), tc.wantStamps(key); !slices.Equal(got, want) {
				t.Errorf("stamps = %v, want %v", got, want)
			}
			if got := summary(p); !slices.Equal(got, tc.wantContent) {
				t.Errorf("writes = %v, want %v", got, tc.wantContent)
			}
			for _, w := range p.Writes {
				if c := w.GetCommand(); c.GetSyncKey() != key || c.GetRecord().GetSyncKey() != key {
					t.Errorf("%s write carries keys %q/%q, want the pair's %q", sideName(w.GetTarget()), c.GetSyncKey(), c.GetRecord().GetSyncKey(), key)
				}
			}
		})
	}
}

func TestAStampIsNotRetriedUntilTheRecordChanges(t *testing.T) {
	ex, sf := person("E1", "Ada", "Lovelace", "ada@example.com"), keyed(person("S1", "Ada", "Lovelace", "ada@example.com"), "t1PAIR")
	s := state(both())
	s.Mappings["t1PAIR"] = synced("t1PAIR", ex, sf)
	s.Exchange, s.Salesforce = mirror(ex), mirror(sf)
	s.Rejected[PendingKey(exchange, "t1PAIR")] = &tandemv1.RejectedWrite{SourceHash: record.ContentHash(ex)}
	if p := Compute(s); len(stamps(p)) != 0 {
		t.Fatalf("a refused stamp was retried unchanged: %v", stamps(p))
	}
}

// The result of a stamp records the key in the target's mirror and leaves the pair's bases alone.
func TestStampResult(t *testing.T) {
	ex, sf := person("E1", "Ada", "Lovelace", "ada@example.com"), keyed(person("S1", "Ada", "Lovelace", "ada@example.com"), "t1PAIR")
	s := state(both())
	m := synced("t1PAIR", ex, sf)
	s.Mappings["t1PAIR"] = m
	s.Exchange, s.Salesforce = mirror(ex), mirror(sf)
	p := Compute(s)
	if len(p.Writes) != 1 {
		t.Fatalf("writes = %v", stamps(p))
	}
	pw := p.Writes[0].PendingWrite
	res := &tandemv1.WriteResult{CommandId: pw.GetCommand().GetCommandId(), SyncKey: "t1PAIR", Op: tandemv1.WriteOp_WRITE_OP_UPDATE, Ok: true,
		Record: &tandemv1.Record{Id: "E1", Version: "v-E1-stamped"}}
	eff := ApplyResult(contactKind, pw, m, s.Exchange["E1"], res, t0)
	if got := eff.Mirror.GetRecord(); got.GetSyncKey() != "t1PAIR" || got.GetVersion() != "v-E1-stamped" || record.ContentHash(got) != record.ContentHash(ex) {
		t.Errorf("mirror after the stamp = %v", got)
	}
	if _, ok := eff.Mapping.GetExchangeFieldHashes()[record.SyncKeyField]; ok {
		t.Error("the stamp's pseudo-field became a field base")
	}
	if eff.Mapping.GetExchangeHash() != m.GetExchangeHash() || eff.Mapping.GetSalesforceHash() != m.GetSalesforceHash() {
		t.Error("the stamp changed the pair's bases")
	}
}

func TestLostLedgerRelinksByKey(t *testing.T) {
	// The ledger is empty (Redis lost, or restored from before these pairs existed); the records
	// carry their pairs' keys. One pair's names and emails even differ since (edited on one side
	// while the state was lost): the key links it all the same.
	s := state(both())
	s.Exchange = mirror(keyed(person("E1", "Ada", "Lovelace", "ada@example.com"), "t1A"), keyed(person("E2", "Bob", "Byron", ""), "t1B"))
	s.Salesforce = mirror(keyed(person("S1", "Ada", "Lovelace", "ada@example.com"), "t1A"), keyed(person("S2", "Robert", "Byron", "bob@example.com"), "t1B"))
	p := Compute(s)
	if p.Relinked != 2 {
		t.Errorf("relinked = %d, want 2", p.Relinked)
	}
	links := map[string]string{}
	for _, l := range p.Links {
		links[l.GetSyncKey()] = l.GetExchangeId() + "-" + l.GetSalesforceId()
	}
	if links["t1A"] != "E1-S1" || links["t1B"] != "E2-S2" {
		t.Errorf("links = %v", links)
	}
	for _, w := range p.Writes {
		if w.GetCommand().GetOp() != tandemv1.WriteOp_WRITE_OP_UPDATE {
			t.Errorf("relinking planned %s", summary(p))
		}
	}
}

func TestMovedRecordRelinksInsteadOfDeleting(t *testing.T) {
	for _, policy := range []tandemv1.ExchangeDeletePolicy{
		tandemv1.ExchangeDeletePolicy_EXCHANGE_DELETE_POLICY_UNSPECIFIED, tandemv1.ExchangeDeletePolicy_EXCHANGE_DELETE_POLICY_DELETE,
	} {
		t.Run(policy.String(), func(t *testing.T) {
			ex, sf := keyed(person("E1", "Ada", "Lovelace", "ada@example.com"), "t1A"), keyed(person("S1", "Ada", "Lovelace", "ada@example.com"), "t1A")
			set := both()
			set.ExchangeDelete = policy
			s := state(set)
			s.Mappings["t1A"] = synced("t1A", ex, sf)
			// The item moved out of the folder and back (or the mailbox moved): a new id, the same
			// item with the same key; its old id is observed deleted.
			moved := keyed(edit(ex, func(c *tandemv1.Contact) { c.JobTitle = "Countess" }), "t1A")
			moved.Id = "E9"
			s.Exchange, s.Salesforce = mirror(moved), mirror(sf)
			s.Exchange["E1"] = &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: "E1"}, Deleted: true}
			p := Compute(s)
			if got := summary(p); !slices.Equal(got, []string{"salesforce UPDATE job_title"}) {
				t.Errorf("writes = %v, want the edit carried over and nothing deleted or created", got)
			}
			if len(p.Tombstones) != 0 || len(p.Unlinks) != 0 || p.NewHold != nil {
				t.Errorf("tombstones %v unlinks %v hold %v", p.Tombstones, p.Unlinks, p.NewHold)
			}
			if p.Relinked != 1 || len(p.Links) == 0 || p.Links[len(p.Links)-1].GetExchangeId() != "E9" {
				t.Errorf("relinked %d, links %v", p.Relinked, p.Links)
			}
		})
	}
}

func TestNameMatchingNeverMergesDifferentPeople(t *testing.T) {
	tests := []struct {
		name string
		ex   []*tandemv1.Record
		sf   []*tandemv1.Record
		// wantLinks are "exchangeId-salesforceId"; wantCreates counts creates; wantAmbiguous the
		// ambiguity errors.
		wantLinks     []string
		wantCreates   int
		wantAmbiguous int
	}{
		{"same name, different emails: two people, both created",
			[]*tandemv1.Record{person("E1", "John", "Smith", "john@one.example")}, []*tandemv1.Record{person("S1", "John", "Smith", "john@two.example")},
			nil, 2, 0},
		{"same name, no email in Exchange: linked",
			[]*tandemv1.Record{person("E1", "John", "Smith", "")}, []*tandemv1.Record{person("S1", "John", "Smith", "john@two.example")},
			[]string{"E1-S1"}, 0, 0},
		{"same name, no email on either side: linked",
			[]*tandemv1.Record{person("E1", "John", "Smith", "")}, []*tandemv1.Record{person("S1", "John", "Smith", "")},
			[]string{"E1-S1"}, 0, 0},
		{"one without email, two candidates: nothing linked, nothing created",
			[]*tandemv1.Record{person("E1", "John", "Smith", "")},
			[]*tandemv1.Record{person("S1", "John", "Smith", "john@one.example"), person("S2", "John", "Smith", "john@two.example")},
			nil, 0, 1},
		{"two without email for one candidate: ambiguous",
			[]*tandemv1.Record{person("E1", "John", "Smith", ""), person("E2", "John", "Smith", "")},
			[]*tandemv1.Record{person("S1", "John", "Smith", "")},
			nil, 0, 1},
		{"a candidate with a matching email is linked by email first; the rest is unambiguous",
			[]*tandemv1.Record{person("E1", "John", "Smith", "john@one.example"), person("E2", "John", "Smith", "")},
			[]*tandemv1.Record{person("S1", "John", "Smith", "john@one.example"), person("S2", "John", "Smith", "john@two.example")},
			[]string{"E1-S1", "E2-S2"}, 0, 0},
		{"different emails never link by name even with a third record around",
			[]*tandemv1.Record{person("E1", "John", "Smith", "john@one.example"), person("E2", "Jane", "Smith", "")},
			[]*tandemv1.Record{person("S1", "John", "Smith", "john@two.example")},
			nil, 3, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := state(both())
			s.Exchange, s.Salesforce = mirror(tc.ex...), mirror(tc.sf...)
			p := Compute(s)
			var links []string
			for _, l := range p.Links {
				links = append(links, l.GetExchangeId()+"-"+l.GetSalesforceId())
			}
			slices.Sort(links)
			if !slices.Equal(links, tc.wantLinks) {
				t.Errorf("links = %v, want %v", links, tc.wantLinks)
			}
			creates, ambiguous := 0, 0
			for _, w := range p.Writes {
				if w.GetCommand().GetOp() == tandemv1.WriteOp_WRITE_OP_CREATE {
					creates++
				}
			}
			for _, e := range p.Errors {
				if e.Code == syncerr.SyncAmbiguousMatch {
					ambiguous++
					if e.RecordID == "" || !strings.Contains(e.Detail, "John Smith") {
						t.Errorf("ambiguity error names no record: %v", e)
					}
				}
			}
			if creates != tc.wantCreates || ambiguous != tc.wantAmbiguous {
				t.Errorf("creates %d (want %d), ambiguity errors %d (want %d): %v %v", creates, tc.wantCreates, ambiguous, tc.wantAmbiguous, summary(p), p.Errors)
			}
		})
	}
}

// TestOrphansAreNeverCreatedAgain: after the ledger is lost, a record carrying a pair's key
// whose partner is gone (deleted or moved out while the state was lost) is decided as a pair
// whose partner was deleted: never created again on the other side.
func TestOrphansAreNeverCreatedAgain(t *testing.T) {
	deleteInSalesforce := both()
	deleteInSalesforce.ExchangeDelete = tandemv1.ExchangeDeletePolicy_EXCHANGE_DELETE_POLICY_DELETE
	tests := []struct {
		name     string
		set      Settings
		prepare  func(s *State)
		want     []string // writes, as summary gives them
		tombs    []string
		orphaned int
	}{
		{"Salesforce record whose Exchange item is gone stays, unlinked", both(), func(s *State) {
			s.Salesforce = mirror(keyed(ada("S1", ""), "t1K"))
		}, nil, []string{TombstoneKey(salesforce, "S1")}, 1},
		{"the same, with a configuration that deletes in Salesforce", deleteInSalesforce, func(s *State) {
			s.Salesforce = mirror(keyed(ada("S1", ""), "t1K"))
		}, []string{"salesforce DELETE"}, nil, 1},
		{"Exchange item whose Salesforce record is gone is deleted", both(), func(s *State) {
			s.Exchange = mirror(keyed(ada("E1", ""), "t1K"))
		}, []string{"exchange DELETE"}, nil, 1},
		{"a keyed pair relinks instead", both(), func(s *State) {
			s.Exchange, s.Salesforce = mirror(keyed(ada("E1", ""), "t1K")), mirror(keyed(ada("S1", ""), "t1K"))
		}, nil, nil, 0},
		{"a record without a key is new", both(), func(s *State) {
			s.Salesforce = mirror(ada("S1", ""))
		}, []string{"exchange CREATE"}, nil, 0},
		{"a record whose partner's create is in flight waits", both(), func(s *State) {
			s.Salesforce = mirror(keyed(ada("S1", ""), "t1K"))
			s.Pending[PendingKey(exchange, "t1K")] = &tandemv1.PendingWrite{Command: &tandemv1.WriteCommand{SyncKey: "t1K", Op: tandemv1.WriteOp_WRITE_OP_CREATE}, Target: exchange, IssuedAt: timestamppb.New(t0)}
		}, nil, nil, 0},
		{"an orphan whose removal is in flight is not created on the other side", both(), func(s *State) {
			s.Exchange = mirror(keyed(ada("E1", ""), "t1K"))
			s.Pending[PendingKey(exchange, "t1K")] = &tandemv1.PendingWrite{Command: &tandemv1.WriteCommand{SyncKey: "t1K", Op: tandemv1.WriteOp_WRITE_OP_DELETE, TargetId: "E1"}, Target: exchange, IssuedAt: timestamppb.New(t0)}
		}, nil, nil, 0},
		{"a record tagged just before the other side's last read waits: neither removed nor created", both(), func(s *State) {
			s.Salesforce = mirror(keyed(ada("S1", ""), "t1K"))
			s.Salesforce["S1"].GetRecord().ModifiedAt = timestamppb.New(t0.Add(time.Hour - time.Second))
			s.Salesforce["S1"].ObservedAt = timestamppb.New(t0.Add(time.Hour))
		}, nil, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := state(tc.set)
			tc.prepare(s)
			// The other sides were read an hour after the records last changed, unless a case
			// says otherwise.
			for _, m := range []map[string]*tandemv1.MirrorRecord{s.Exchange, s.Salesforce} {
				m["read"] = &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: "read"}, Deleted: true, ObservedAt: timestamppb.New(t0.Add(time.Hour))}
			}
			p := Compute(s)
			if got := summary(p); !slices.Equal(got, tc.want) {
				t.Errorf("writes = %v, want %v", got, tc.want)
			}
			if !slices.Equal(p.Tombstones, tc.tombs) {
				t.Errorf("tombstones = %v, want %v", p.Tombstones, tc.tombs)
			}
			if p.Orphaned != tc.orphaned {
				t.Errorf("orphaned = %d, want %d", p.Orphaned, tc.orphaned)
			}
		})
	}
}

// After lost state, the removals of orphans are measured against the pairs relinked in the same
// cycle, not against an empty ledger: a few of many are carried out, most of them are held.
func TestOrphansAfterLostStateAreMeasuredAgainstRelinkedPairs(t *testing.T) {
	for _, tc := range []struct {
		name           string
		pairs, orphans int
		wantDeletes    int
		wantHeld       bool
	}{
		{"four orphans among ten relinked pairs are deleted", 10, 4, 4, false},
		{"eight orphans among four relinked pairs are held", 4, 8, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := state(both())
			for i := range tc.pairs {
				key := fmt.Sprintf("k%d", i)
				e, sf := person(fmt.Sprintf("E%d", i), "Ada", fmt.Sprintf("L%d", i), fmt.Sprintf("a%d@example.com", i)), person(fmt.Sprintf("S%d", i), "Ada", fmt.Sprintf("L%d", i), fmt.Sprintf("a%d@example.com", i))
				s.Exchange[e.GetId()] = &tandemv1.MirrorRecord{Record: keyed(e, key), ObservedAt: timestamppb.New(t0)}
				s.Salesforce[sf.GetId()] = &tandemv1.MirrorRecord{Record: keyed(sf, key), ObservedAt: timestamppb.New(t0)}
			}
			for i := range tc.orphans {
				e := person(fmt.Sprintf("EO%d", i), "Bo", fmt.Sprintf("O%d", i), fmt.Sprintf("o%d@example.com", i))
				s.Exchange[e.GetId()] = &tandemv1.MirrorRecord{Record: keyed(e, fmt.Sprintf("gone%d", i)), ObservedAt: timestamppb.New(t0)}
			}
			for _, m := range []map[string]*tandemv1.MirrorRecord{s.Exchange, s.Salesforce} {
				m["read"] = &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: "read"}, Deleted: true, ObservedAt: timestamppb.New(t0.Add(time.Hour))}
			}
			p := Compute(s)
			deletes := 0
			for _, w := range p.Writes {
				if w.GetCommand().GetOp() == tandemv1.WriteOp_WRITE_OP_DELETE {
					deletes++
				}
			}
			if deletes != tc.wantDeletes || (p.NewHold != nil) != tc.wantHeld {
				t.Errorf("deletes = %d, held = %v; want %d, %v", deletes, p.NewHold != nil, tc.wantDeletes, tc.wantHeld)
			}
			if p.Orphaned != tc.orphans {
				t.Errorf("orphaned = %d, want %d", p.Orphaned, tc.orphans)
			}
		})
	}
}

// A pair's record re-created by Tandem (a modification beat a deletion) and read before the
// create's result came back carries the pair's key: it is the pair's, not a new contact.
func TestRecordOfAnUnansweredCreateIsNotNew(t *testing.T) {
	ex, sf := keyed(ada("E1", ""), "t1A"), keyed(ada("S1", "Countess"), "t1A")
	s := state(both())
	s.Mappings["t1A"] = synced("t1A", ex, sf)
	s.Exchange["E1"] = &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: "E1"}, Deleted: true}
	s.Salesforce = mirror(sf)
	s.Pending[PendingKey(exchange, "t1A")] = &tandemv1.PendingWrite{
		Command: &tandemv1.WriteCommand{SyncKey: "t1A", Op: tandemv1.WriteOp_WRITE_OP_CREATE, Record: keyed(ada("", "Countess"), "t1A")},
		Target:  exchange, IssuedAt: timestamppb.New(t0), SourceId: "S1",
	}
	again := keyed(ada("E2", "Countess"), "t1A") // what the create made
	s.Exchange["E2"] = &tandemv1.MirrorRecord{Record: again, ObservedAt: timestamppb.New(t0)}
	p := Compute(s)
	for _, w := range p.Writes {
		if w.GetCommand().GetOp() == tandemv1.WriteOp_WRITE_OP_CREATE {
			t.Errorf("planned %s: the re-created item was taken for a new contact", summary(p))
		}
	}
}

// The record that stays when its partner is removed keeps the pair's key, even when it did not
// carry it yet: were the ledger lost, it is an orphan (decided the same way again), not new.
func TestSurvivorOfARemovalKeepsThePairsKey(t *testing.T) {
	ex, sf := keyed(ada("E1", ""), "t1A"), ada("S1", "") // the Salesforce record not yet tagged
	s := state(both())
	s.Mappings["t1A"] = synced("t1A", ex, sf)
	s.Exchange["E1"] = &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: "E1"}, Deleted: true}
	s.Salesforce = mirror(sf)
	p := Compute(s)
	if got := stamps(p); !slices.Equal(got, []string{"salesforce S1 t1A"}) {
		t.Errorf("stamps = %v, want the survivor tagged with the pair's key", got)
	}
	if !slices.Equal(p.Tombstones, []string{TombstoneKey(salesforce, "S1")}) || !slices.Equal(p.Unlinks, []string{"t1A"}) {
		t.Errorf("tombstones %v, unlinks %v", p.Tombstones, p.Unlinks)
	}

	// The ledger is lost: the tagged survivor is an orphan, kept and not created in Exchange.
	lost := state(both())
	lost.Salesforce = mirror(keyed(sf, "t1A"))
	for _, m := range []map[string]*tandemv1.MirrorRecord{lost.Exchange, lost.Salesforce} {
		m["read"] = &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: "read"}, Deleted: true, ObservedAt: timestamppb.New(t0.Add(time.Hour))}
	}
	if p := Compute(lost); len(p.Writes) != 0 || p.Orphaned != 1 {
		t.Errorf("after lost state: writes %v, orphaned %d; want none and 1", summary(p), p.Orphaned)
	}
}
