package salesforce

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/sim/soql"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// scriptOwner owns every record of a scripted org.
const scriptOwner = "005000000000001AAA"

// fakeWriterID is the user every token of a fake org acts as (its identity URL names it).
const fakeWriterID = "005000000000002AAA"

// scriptRow is a Contact row as a query returns it.
func scriptRow(id string, at time.Time, title string) string {
	return fmt.Sprintf(`{"attributes":{"type":"Contact","url":"/x/%d"},"Id":%q,"IsDeleted":false,"OwnerId":%q,"SystemModstamp":%q,"LastName":%q,"Title":%q}`,
		time.Now().UnixNano(), id, scriptOwner, at.Format("2006-01-02T15:04:05.000-0700"), "N"+id, title)
}

// scripted is an org that answers each query with the next of its answers and getUpdated with
// covered as latestDateCovered (and, when date is set, dates its answers by it), and records
// what it was asked and what the polls emitted.
type scripted struct {
	mu         sync.Mutex
	answers    [][]string
	covered    time.Time
	date       func() time.Time
	statements []string
	getUpdated int
	// emitted are the ids of each page emitted, in order; onEmit, when set, is told each id.
	emitted [][]string
	onEmit  func(id string)
}

func (s *scripted) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.date != nil {
		w.Header().Set("Date", s.date().Format(http.TimeFormat))
	}
	if strings.HasSuffix(r.URL.Path, "/sobjects/Contact/updated/") {
		s.getUpdated++
		fmt.Fprintf(w, `{"ids":[],"latestDateCovered":%q}`, s.covered.Format("2006-01-02T15:04:05.000-0700"))
		return
	}
	// An answer's rows are split into pages at scriptPage; the next pages are queryMore calls.
	var n, page int
	if _, err := fmt.Sscanf(path.Base(r.URL.Path), "scripted-%d-%d", &n, &page); err != nil {
		n, page = len(s.statements), 0
		s.statements = append(s.statements, r.URL.Query().Get("q"))
	}
	var pages [][]string
	var cur []string
	for _, row := range s.answers[n] {
		if row == scriptPage {
			pages, cur = append(pages, cur), nil
			continue
		}
		cur = append(cur, row)
	}
	pages = append(pages, cur)
	total := len(s.answers[n]) - len(pages) + 1
	if page+1 < len(pages) {
		fmt.Fprintf(w, `{"totalSize":%d,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/scripted-%d-%d","records":[%s]}`,
			total, n, page+1, strings.Join(pages[page], ","))
		return
	}
	fmt.Fprintf(w, `{"totalSize":%d,"done":true,"records":[%s]}`, total, strings.Join(pages[page], ","))
}

// scriptPage, among a scripted answer's rows, ends a page.
const scriptPage = "PAGE"

// poll polls the org for scriptOwner's contacts from cursor and returns the next cursor.
func (s *scripted) poll(t *testing.T, c *Connector, cursor string) string {
	t.Helper()
	aud := []Audience{{User: &tandemv1.SyncUser{UserId: scriptOwner}}}
	next, err := c.Poll(t.Context(), PollRequest{Kind: contactKind, Audience: aud, Cursor: cursor}, func(_ context.Context, _ string, ch []*tandemv1.Change, _ bool) error {
		var ids []string
		for _, c := range ch {
			ids = append(ids, c.GetRecord().GetId())
			if s.onEmit != nil {
				s.onEmit(c.GetRecord().GetId())
			}
		}
		s.emitted = append(s.emitted, ids)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return next
}

// newScripted starts a scripted org and a connector to it.
func newScripted(t *testing.T, s *scripted, opts ...Option) *Connector {
	t.Helper()
	f := newFakeOrg(t, s.serve)
	return newTestConnector(t, jwtOrg(t, f.srv.URL), opts...)
}

// TestPollCatchesLateCommits scripts what Salesforce answers to show the read-back at work: a
// transaction that commits after a poll, with a SystemModstamp older than the watermark, is
// still reported, and so is a record changed again within the second the poll read it in,
// whose (Id, SystemModstamp) stays the same; the records read back unchanged are not.
func TestPollCatchesLateCommits(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	row := scriptRow
	// The transaction that commits 003C late is open from three minutes before t0: getUpdated
	// covers no later than that.
	committed := t0.Add(-3 * time.Minute)
	org := &scripted{covered: committed, answers: [][]string{
		{row("003A", t0, ""), row("003B", t0.Add(time.Second), "")},
		{row("003C", t0.Add(-2*time.Minute), ""), row("003A", t0, ""), row("003B", t0.Add(time.Second), "")},
		{row("003C", t0.Add(-2*time.Minute), ""), row("003A", t0, "VP"), row("003B", t0.Add(time.Second), "")},
		{row("003C", t0.Add(-2*time.Minute), ""), row("003A", t0, "VP"), row("003B", t0.Add(time.Second), "")},
	}}
	c := newScripted(t, org, WithClock(func() time.Time { return t0 }))
	c.cfg.readBackEvery = 0 // every poll reads back (see TestPollDefersReadBack)
	cursor := ""
	for range org.answers {
		cursor = org.poll(t, c, cursor)
	}
	got, statements := org.emitted, org.statements
	// 003C committed late; 003A changed again within its second; nothing changed last.
	want := [][]string{{"003A", "003B"}, {"003C"}, {"003A"}, nil}
	if !slices.EqualFunc(got, want, slices.Equal[[]string]) {
		t.Errorf("emitted %v, want %v", got, want)
	}
	// Every poll reads back from where getUpdated said everything had committed, asked by the
	// poll before it (the full read first asks too): later than the horizon minus the overlap.
	for i, q := range statements[1:] {
		wantSince := soqlDateTime(committed)
		if !strings.Contains(q, "WHERE SystemModstamp >= "+wantSince+" AND OwnerId") {
			t.Errorf("poll %d read from the wrong point: %s", i+1, q)
		}
		if _, err := soql.Parse(q); err != nil {
			t.Errorf("poll %d: %v", i+1, err)
		}
	}
	state, _ := decodeCursor(cursor, contactKind)
	var seen []string
	for _, g := range state.Seen {
		seen = append(seen, g.IDs...)
	}
	if slices.Sort(seen); !slices.Equal(seen, []string{"003A", "003B", "003C"}) {
		t.Errorf("records kept for the read-back %v", seen)
	}
	if state.Watermark != t0.Add(time.Second).UnixMilli() || state.LastID != "003B" || state.Horizon != t0.UnixMilli() {
		t.Errorf("position %d/%s, horizon %d", state.Watermark, state.LastID, state.Horizon)
	}
}

// TestPollReadsNewChangesBeforeABurst: once the previous poll read more versions within the
// read-back than a query page holds (three, here), a poll reads what changed after the
// watermark first, in a query of its own, reads back after it, and reads what changed
// meanwhile at the end; a late commit is still found, and nothing read before is reported
// again. When every write acts as the integration user, the read-back leaves out what that
// user modified last (Tandem's own writes); when each rep writes their own records, it cannot.
func TestPollReadsNewChangesBeforeABurst(t *testing.T) {
	for _, writeAs := range []tandemv1.SalesforceWriteIdentity{writeAsIntegration, writeAsRep} {
		t.Run(writeAs.String(), func(t *testing.T) {
			t0 := time.Now().UTC().Truncate(time.Second)
			row := func(id string, at time.Time) string { return scriptRow(id, at, "") }
			org := &scripted{covered: t0.Add(-2 * time.Minute), answers: [][]string{
				{row("003A", t0), row("003B", t0), row("003C", t0.Add(time.Second))},
				{row("003D", t0.Add(2*time.Second))},
				{row("003E", t0.Add(-time.Minute)), row("003A", t0), row("003B", t0), row("003C", t0.Add(time.Second))},
				{row("003F", t0.Add(3*time.Second))},
			}}
			f := newFakeOrg(t, org.serve)
			o := jwtOrg(t, f.srv.URL)
			o.Salesforce.WriteAs = writeAs
			c := newTestConnector(t, o, WithClock(func() time.Time { return t0 }))
			c.cfg.readBackSplit = 2
			c.cfg.readBackEvery = 0
			cursor := org.poll(t, c, "")
			cursor = org.poll(t, c, cursor)
			got, statements := org.emitted, org.statements
			if want := [][]string{{"003A", "003B", "003C"}, {"003D"}, {"003E"}, {"003F"}}; !slices.EqualFunc(got, want, slices.Equal[[]string]) {
				t.Errorf("emitted %v, want %v", got, want)
			}
			if len(statements) != 4 {
				t.Fatalf("%d queries, want the full read, then the changes, the read-back and the changes made meanwhile: %q", len(statements), statements)
			}
			s1, s2, s3 := soqlDateTime(t0.Add(time.Second)), soqlDateTime(t0.Add(2*time.Second)), soqlDateTime(t0.Add(3*time.Second))
			from := soqlDateTime(t0.Add(-2 * time.Minute)) // getUpdated's, asked by the full read
			notTandems := " AND LastModifiedById != '" + fakeWriterID + "'"
			if writeAs == writeAsRep {
				notTandems = ""
			}
			for i, want := range []string{
				"WHERE SystemModstamp >= " + s1 + " AND (SystemModstamp >= " + s2 + " OR Id > '003C') AND OwnerId",
				"WHERE SystemModstamp >= " + from + " AND (SystemModstamp < " + s1 + " OR (SystemModstamp < " + s2 + " AND Id <= '003C'))" + notTandems + " AND OwnerId",
				"WHERE SystemModstamp >= " + s2 + " AND (SystemModstamp >= " + s3 + " OR Id > '003D') AND OwnerId",
			} {
				if q := statements[i+1]; !strings.Contains(q, want) {
					t.Errorf("query %d = %s, want %s", i+1, q, want)
				}
				if _, err := soql.Parse(statements[i+1]); err != nil {
					t.Errorf("query %d: %v", i+1, err)
				}
			}
			state, _ := decodeCursor(cursor, contactKind)
			if state.Watermark != t0.Add(3*time.Second).UnixMilli() || state.LastID != "003F" {
				t.Errorf("position %d/%s after the split read", state.Watermark, state.LastID)
			}
		})
	}
}

// TestPollReadsNewChangesWhileABurstIsReadBack: a read-back of a burst that runs for longer
// than readBackPeek stops between two of its pages to read what changed meanwhile, so that a
// new change does not wait for the rest of the burst.
func TestPollReadsNewChangesWhileABurstIsReadBack(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	row := func(id string, at time.Time) string { return scriptRow(id, at, "") }
	org := &scripted{covered: t0.Add(-2 * time.Minute), answers: [][]string{
		{row("003A", t0), row("003B", t0), row("003C", t0.Add(time.Second))},
		{row("003D", t0.Add(2*time.Second))},
		{row("003E", t0.Add(-time.Minute)), row("003A", t0), scriptPage, row("003F", t0.Add(-30*time.Second)), row("003B", t0), row("003C", t0.Add(time.Second))},
		{row("003G", t0.Add(4*time.Second))},
		{},
	}}
	var elapsed atomic.Int64
	c := newScripted(t, org, WithClock(func() time.Time { return t0.Add(time.Duration(elapsed.Load())) }))
	c.cfg.readBackSplit = 2
	c.cfg.readBackEvery = 0
	cursor := org.poll(t, c, "")
	org.emitted = nil
	org.onEmit = func(id string) {
		if id == "003E" {
			// The read-back's first page took its time.
			elapsed.Add(int64(2 * time.Second))
		}
	}
	next := org.poll(t, c, cursor)
	emitted := org.emitted
	if want := [][]string{{"003D"}, {"003E"}, {"003G"}, {"003F"}}; !slices.EqualFunc(emitted, want, slices.Equal[[]string]) {
		t.Errorf("emitted %v, want %v", emitted, want)
	}
	statements := org.statements
	if len(statements) != 5 {
		t.Fatalf("%d queries, want the full read, the changes, the read-back, the changes made meanwhile twice: %q", len(statements), statements)
	}
	s2, s3, s4, s5 := soqlDateTime(t0.Add(2*time.Second)), soqlDateTime(t0.Add(3*time.Second)), soqlDateTime(t0.Add(4*time.Second)), soqlDateTime(t0.Add(5*time.Second))
	for i, want := range map[int]string{
		3: "WHERE SystemModstamp >= " + s2 + " AND (SystemModstamp >= " + s3 + " OR Id > '003D') AND OwnerId",
		4: "WHERE SystemModstamp >= " + s4 + " AND (SystemModstamp >= " + s5 + " OR Id > '003G') AND OwnerId",
	} {
		if q := statements[i]; !strings.Contains(q, want) {
			t.Errorf("query %d = %s, want %s", i, q, want)
		}
	}
	state, _ := decodeCursor(next, contactKind)
	if state.Watermark != t0.Add(4*time.Second).UnixMilli() || state.LastID != "003G" {
		t.Errorf("position %d/%s after the read-back", state.Watermark, state.LastID)
	}
}

// TestPollDefersReadBack: a read-back that cannot be the last one for its records (getUpdated
// has not passed the watermark) runs at most once per readBackEvery; a poll in between reads
// from the start of the watermark's second while it may still have been under way when the
// last poll read, and finds a record stamped within it after the last one read there; once
// that second had ended, it reads after the watermark only. The first poll that getUpdated tells every transaction has committed
// up to past the watermark reads back from where the last read-back's getUpdated stood,
// finds a late commit, and is the last read-back: the next poll reads only what is new.
func TestPollDefersReadBack(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	row := func(id string, at time.Time) string { return scriptRow(id, at, "") }
	a, b := row("003A", t0), row("003B", t0.Add(time.Second))
	sameSecond := row("003AB", t0.Add(time.Second)) // an Id below 003B's, in its second
	late := row("003L", t0.Add(-30*time.Second))
	org := &scripted{covered: t0.Add(-time.Minute), answers: [][]string{
		{a, b},                   // the full read
		{a, b},                   // the first read-back: nothing new
		{b, sameSecond},          // deferred: the watermark's second again
		{},                       // deferred again: the watermark's second had ended
		{late, a, sameSecond, b}, // getUpdated passed the watermark: the last read-back
		{},                       // nothing new
	}}
	var now atomic.Int64
	now.Store(t0.UnixMilli())
	c := newScripted(t, org, WithClock(func() time.Time { return time.UnixMilli(now.Load()) }))
	at := func(d time.Duration) { now.Store(t0.Add(d).UnixMilli()) }
	cursor := org.poll(t, c, "")
	at(2 * time.Second)
	cursor = org.poll(t, c, cursor)
	at(10 * time.Second)
	cursor = org.poll(t, c, cursor)
	state, _ := decodeCursor(cursor, contactKind)
	var seen []string
	for _, g := range state.Seen {
		seen = append(seen, g.IDs...)
	}
	if slices.Sort(seen); !slices.Equal(seen, []string{"003A", "003AB", "003B"}) {
		t.Errorf("after the deferred read-back the cursor keeps %v for it, want every version read since the last", seen)
	}
	at(15 * time.Second)
	cursor = org.poll(t, c, cursor)
	org.covered = t0.Add(2 * time.Second)
	at(20 * time.Second)
	cursor = org.poll(t, c, cursor)
	at(21 * time.Second)
	org.poll(t, c, cursor)

	if want := [][]string{{"003A", "003B"}, nil, {"003AB"}, nil, {"003L"}, nil}; !slices.EqualFunc(org.emitted, want, slices.Equal[[]string]) {
		t.Errorf("emitted %v, want %v", org.emitted, want)
	}
	s1, s2 := soqlDateTime(t0.Add(time.Second)), soqlDateTime(t0.Add(2*time.Second))
	from := soqlDateTime(t0.Add(-time.Minute))
	for i, want := range map[int]string{
		1: "WHERE SystemModstamp >= " + from + " AND OwnerId",
		2: "WHERE SystemModstamp >= " + s1 + " AND OwnerId",
		3: "WHERE SystemModstamp >= " + s1 + " AND (SystemModstamp >= " + s2 + " OR Id > '003B') AND OwnerId",
		4: "WHERE SystemModstamp >= " + from + " AND OwnerId",
		5: "WHERE SystemModstamp >= " + s1 + " AND (SystemModstamp >= " + s2 + " OR Id > '003B') AND OwnerId",
	} {
		if q := org.statements[i]; !strings.Contains(q, want) {
			t.Errorf("query %d = %s, want %s", i, q, want)
		}
		if _, err := soql.Parse(org.statements[i]); err != nil {
			t.Errorf("query %d: %v", i, err)
		}
	}
	// The full read and every poll that reads back ask; the last poll has nothing to read back.
	if org.getUpdated != 5 {
		t.Errorf("getUpdated asked %d times, want 5", org.getUpdated)
	}
}

func TestPollFollowsPagedInvitees(t *testing.T) {
	const owner = "005000000000001AAA"
	rel := func(n int) string {
		return fmt.Sprintf(`{"attributes":{"type":"EventRelation"},"Id":"0RE%d","RelationId":"003%d","Relation":{"Name":"P%d","Email":"p%d@x.example"},"Status":"New","IsInvitee":true}`, n, n, n, n)
	}
	f := newFakeOrg(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/services/data/v62.0/query":
			fmt.Fprintf(w, `{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Event"},"Id":"00U1","IsDeleted":false,"OwnerId":%q,
				"SystemModstamp":"2026-01-01T00:00:00.000+0000","Subject":"Big meeting","IsAllDayEvent":false,
				"StartDateTime":"2026-01-02T09:00:00.000+0000","EndDateTime":"2026-01-02T10:00:00.000+0000",
				"EventRelations":{"totalSize":3,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/01gR-2","records":[%s,%s]}}]}`, owner, rel(1), rel(2))
		case "/services/data/v62.0/query/01gR-2":
			fmt.Fprintf(w, `{"totalSize":3,"done":true,"records":[%s]}`, rel(3))
		default:
			http.NotFound(w, r)
		}
	})
	c := newTestConnector(t, jwtOrg(t, f.srv.URL))
	var attendees []string
	_, err := c.Poll(t.Context(), PollRequest{Kind: eventKind, Audience: []Audience{{User: &tandemv1.SyncUser{UserId: owner}}}},
		func(_ context.Context, _ string, ch []*tandemv1.Change, _ bool) error {
			for _, c := range ch {
				for _, a := range c.GetRecord().GetEvent().GetAttendees() {
					attendees = append(attendees, a.GetEmail())
				}
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"p1@x.example", "p2@x.example", "p3@x.example"}; !slices.Equal(attendees, want) {
		t.Errorf("attendees %v, want %v", attendees, want)
	}
}

func TestContentHash(t *testing.T) {
	row := func(s string) SObject {
		t.Helper()
		r, err := ParseQueryResult([]byte(`{"totalSize":1,"done":true,"records":[` + s + `]}`))
		if err != nil {
			t.Fatal(err)
		}
		return r.Records[0]
	}
	base := row(`{"attributes":{"type":"Event","url":"/services/data/v62.0/sobjects/Event/00U1"},"Id":"00U1","Subject":"Demo","Location":null,"N":1,"Flag":true,
		"EventRelations":{"totalSize":3,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/01gA-2","records":[{"attributes":{"type":"EventRelation"},"RelationId":"003A"}]}}`)
	same := []string{
		// Another query's record URL and locator, keys in another order.
		`{"Subject":"Demo","Id":"00U1","attributes":{"type":"Event","url":"/services/data/v61.0/sobjects/Event/00U1"},"Location":null,"Flag":true,"N":1,
		"EventRelations":{"records":[{"RelationId":"003A","attributes":{"type":"EventRelation","url":"/x"}}],"nextRecordsUrl":"/services/data/v62.0/query/01gB-2","done":false,"totalSize":3}}`,
	}
	different := []string{
		`{"Id":"00U1","Subject":"Demo!","Location":null,"N":1,"Flag":true,"EventRelations":{"totalSize":3,"done":false,"records":[{"RelationId":"003A"}]}}`,
		`{"Id":"00U1","Subject":"Demo","Location":"","N":1,"Flag":true,"EventRelations":{"totalSize":3,"done":false,"records":[{"RelationId":"003A"}]}}`,
		`{"Id":"00U1","Subject":"Demo","Location":null,"N":"1","Flag":true,"EventRelations":{"totalSize":3,"done":false,"records":[{"RelationId":"003A"}]}}`,
		`{"Id":"00U1","Subject":"Demo","Location":null,"N":1,"Flag":false,"EventRelations":{"totalSize":3,"done":false,"records":[{"RelationId":"003A"}]}}`,
		`{"Id":"00U1","Subject":"Demo","Location":null,"N":1,"Flag":true,"EventRelations":{"totalSize":4,"done":false,"records":[{"RelationId":"003A"}]}}`,
		`{"Id":"00U1","Subject":"Demo","Location":null,"N":1,"Flag":true,"EventRelations":{"totalSize":3,"done":false,"records":[{"RelationId":"003B"}]}}`,
		// Values swapped between fields.
		`{"Id":"00U1","Subject":null,"Location":"Demo","N":1,"Flag":true,"EventRelations":{"totalSize":3,"done":false,"records":[{"RelationId":"003A"}]}}`,
		// A value split differently between strings.
		`{"Id":"00U","Subject":"1Demo","Location":null,"N":1,"Flag":true,"EventRelations":{"totalSize":3,"done":false,"records":[{"RelationId":"003A"}]}}`,
	}
	for _, s := range same {
		if contentHash(row(s)) != contentHash(base) {
			t.Errorf("hash differs for the same content: %s", s)
		}
	}
	for _, s := range different {
		if contentHash(row(s)) == contentHash(base) {
			t.Errorf("hash equal for other content: %s", s)
		}
	}
}
