package salesforce

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestSimIdlePollReadsNoRow is the API-call floor of an idle org: once the overlap has passed
// the last change, a poll after a bulk sync of 100 users' contacts is one queryAll that
// returns no row, where reading back a fixed window before the watermark cost a page per 2,000
// records on every cycle.
func TestSimIdlePollReadsNoRow(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 100, tokenLifetime: 24 * time.Hour})
	// Seeded 5 s into a minute, so that the minute getUpdated covers a minute later is past
	// every seeded record's stamp.
	env.seedInMinute(5*time.Second, 30)
	env.clock.Advance(time.Second)
	_, cursor := env.poll(contactKind, env.audience(userRecords), "")

	// The poll within the overlap of the last change reads the recent records back, to catch
	// late commits, and reports none of them again. Having changes within the overlap, it
	// first asks getUpdated up to when everything is committed: all of them, so the next poll
	// reads nothing back. With more records to read back than a page holds, what changed after
	// the watermark is read first, in a query of its own, and again after the read-back.
	for i, step := range []struct {
		gap                             time.Duration
		queryAll, queryMore, getUpdated int64
	}{{time.Minute, 3, 1, 1}, {time.Minute, 1, 0, 0}} {
		env.clock.Advance(step.gap)
		env.sim.ResetCounts()
		var r *pollResult
		r, cursor = env.poll(contactKind, env.audience(userRecords), cursor)
		if n := countChanges(r); n != 0 {
			t.Errorf("read-back %d reported %d changes", i, n)
		}
		qa, more, updated := env.count(sfsim.EndpointQueryAll), env.count(sfsim.EndpointQueryMore), env.count(sfsim.EndpointUpdated)
		if qa != step.queryAll || more != step.queryMore || updated != step.getUpdated {
			t.Errorf("poll %d after 3,000 records: %d queryAll, %d queryMore and %d getUpdated, want %d, %d and %d",
				i, qa, more, updated, step.queryAll, step.queryMore, step.getUpdated)
		}
	}

	// Idle cycles after that: one call each, no row.
	for i := range 3 {
		env.clock.Advance(DefaultOverlap)
		env.sim.ResetCounts()
		before := len(env.statements)
		var r *pollResult
		r, cursor = env.poll(contactKind, env.audience(userRecords), cursor)
		if n := countChanges(r); n != 0 {
			t.Errorf("idle cycle %d reported %d changes", i, n)
		}
		if calls := env.apiCalls(); calls != 1 || env.count(sfsim.EndpointQueryAll) != 1 {
			t.Errorf("idle cycle %d: %d calls (%v), want 1 queryAll", i, calls, env.sim.Counts())
		}
		env.mu.Lock()
		q := env.statements[before]
		env.mu.Unlock()
		if !strings.Contains(q, "OR Id > '") {
			t.Errorf("idle cycle %d does not resume after the watermark and an Id: %.300s", i, q)
		}
		state, _ := decodeCursor(cursor, contactKind)
		if len(state.Seen) != 0 || len(cursor) > 4000 {
			t.Errorf("idle cycle %d keeps %d record groups in a %d-byte cursor", i, len(state.Seen), len(cursor))
		}
	}

	// A change after the idle cycles is found, and only it.
	target := ""
	for _, rec := range env.sim.List("Contact") {
		if rec["OwnerId"] == env.users[42].UserId {
			target = rec["Id"].(string)
			break
		}
	}
	if err := env.sim.Update("Contact", target, map[string]any{"Title": "Director"}, env.users[42].UserId); err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(time.Minute)
	env.sim.ResetCounts()
	r, _ := env.poll(contactKind, env.audience(userRecords), cursor)
	if got := ids(r.changes[env.users[42].UserId], upsert); !slices.Equal(got, []string{target}) || countChanges(r) != 1 {
		t.Errorf("changes after the idle cycles: %v (%d in all)", got, countChanges(r))
	}
	if calls := env.apiCalls(); calls != 1 {
		t.Errorf("%d calls for one change, want 1", calls)
	}
	env.checkStatements()
}

func countChanges(r *pollResult) int {
	n := 0
	for _, ch := range r.changes {
		n += len(ch)
	}
	return n
}

// TestSimRecordsAtTheWatermark covers records stamped in the very second a poll stopped at
// (the API reports SystemModstamp to the second, so records share it): one saved after the
// poll with a larger Id, one with a smaller Id (an older record changed, and a transaction that
// took its id before the poll and committed after), and the record the watermark ends on,
// changed again within the same second. None is missed, none is reported twice.
func TestSimRecordsAtTheWatermark(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1, wholeSeconds: true})
	uid := env.users[0].UserId
	owned := env.seed(3)
	env.clock.Advance(time.Minute)
	_, cursor := env.poll(contactKind, env.audience(userRecords), "")

	env.clock.Advance(time.Minute + 100*time.Millisecond) // second S
	tx := env.sim.Begin()
	late, err := tx.Insert("Contact", map[string]any{"LastName": "Late"}, uid)
	if err != nil {
		t.Fatal(err)
	}
	mark, err := env.sim.Insert("Contact", map[string]any{"LastName": "Mark"}, uid)
	if err != nil {
		t.Fatal(err)
	}
	r, cursor := env.poll(contactKind, env.audience(userRecords), cursor)
	if got := ids(r.changes[uid], upsert); !slices.Equal(got, []string{mark}) {
		t.Fatalf("first poll: %v, want [mark]", got)
	}
	state, _ := decodeCursor(cursor, contactKind)
	if state.LastID != mark || !time.UnixMilli(state.Watermark).Truncate(time.Second).Equal(env.clock.Now().Truncate(time.Second)) {
		t.Fatalf("position %v/%s, want second S and %s", time.UnixMilli(state.Watermark), state.LastID, mark)
	}

	env.clock.Advance(300 * time.Millisecond) // still second S
	larger, err := env.sim.Insert("Contact", map[string]any{"LastName": "Larger"}, uid)
	if err != nil {
		t.Fatal(err)
	}
	smaller := owned[uid][0]
	if err := env.sim.Update("Contact", smaller, map[string]any{"Title": "Smaller id"}, uid); err != nil {
		t.Fatal(err)
	}
	if err := env.sim.Update("Contact", mark, map[string]any{"Title": "Again"}, uid); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{late, larger, smaller, mark} {
		rec, _ := env.sim.Get("Contact", id)
		if !rec["SystemModstamp"].(time.Time).Equal(env.clock.Now().Truncate(time.Second)) {
			t.Fatalf("%s is stamped %v, not in second S", id, rec["SystemModstamp"])
		}
	}
	if !(late < mark && smaller < mark && larger > mark) {
		t.Fatalf("ids: late %s, smaller %s, larger %s around the watermark's %s", late, smaller, larger, mark)
	}
	env.clock.Advance(time.Second)
	r, cursor = env.poll(contactKind, env.audience(userRecords), cursor)
	if got, want := sortedCopy(ids(r.changes[uid], upsert)), sortedCopy([]string{late, larger, smaller, mark}); !slices.Equal(got, want) {
		t.Errorf("second poll: %v, want %v", got, want)
	}
	for _, ch := range r.changes[uid] {
		if ch.GetRecord().GetId() == mark && ch.GetRecord().GetContact().GetJobTitle() != "Again" {
			t.Errorf("the watermark's record changed again read as %v", ch.GetRecord())
		}
	}
	env.clock.Advance(time.Second)
	r, _ = env.poll(contactKind, env.audience(userRecords), cursor)
	if n := countChanges(r); n != 0 {
		t.Errorf("third poll re-reported %d changes: %v", n, ids(r.changes[uid], upsert))
	}
	env.checkStatements()
}

// TestSimResumesAfterTheWatermarkID covers the exact resume once the overlap has passed:
// records stamped in the watermark's second that commit later are read when their Id sorts
// after the last one read, from a statement that reads nothing else. (One with a smaller Id
// would have committed later than the overlap allows, which the overlap is there to rule out.)
func TestSimResumesAfterTheWatermarkID(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1, wholeSeconds: true, opts: []Option{WithOverlap(2 * time.Second)}})
	uid := env.users[0].UserId
	env.seed(2)
	env.clock.Advance(time.Minute)
	_, cursor := env.poll(contactKind, env.audience(userRecords), "")
	env.clock.Advance(time.Minute + 100*time.Millisecond) // second S
	mark, err := env.sim.Insert("Contact", map[string]any{"LastName": "Mark"}, uid)
	if err != nil {
		t.Fatal(err)
	}
	tx := env.sim.Begin()
	after, err := tx.Insert("Contact", map[string]any{"LastName": "After"}, uid)
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(5 * time.Second)
	r, cursor := env.poll(contactKind, env.audience(userRecords), cursor)
	if got := ids(r.changes[uid], upsert); !slices.Equal(got, []string{mark}) {
		t.Fatalf("first poll: %v", got)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(5 * time.Second)
	env.sim.ResetCounts()
	before := len(env.statements)
	r, _ = env.poll(contactKind, env.audience(userRecords), cursor)
	if got := ids(r.changes[uid], upsert); !slices.Equal(got, []string{after}) {
		t.Errorf("second poll: %v, want [%s]", got, after)
	}
	env.mu.Lock()
	q := env.statements[before]
	env.mu.Unlock()
	if !strings.Contains(q, "OR Id > '"+mark+"')") {
		t.Errorf("second poll does not resume after %s: %s", mark, q)
	}
}

// TestSimLateCommitReported covers a transaction that writes a record, then commits only after
// a poll has read a newer record: the record is older than the watermark and still reported.
func TestSimLateCommitReported(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 2})
	owned := env.seed(3)
	a, b := env.users[0], env.users[1]
	env.clock.Advance(time.Minute)
	_, cursor := env.poll(contactKind, env.audience(userRecords), "")

	env.clock.Advance(time.Minute)
	tx := env.sim.Begin()
	slow := owned[a.UserId][1]
	if err := tx.Update("Contact", slow, map[string]any{"Department": "Batch job"}, ""); err != nil {
		t.Fatal(err)
	}
	created, err := tx.Insert("Contact", map[string]any{"LastName": "Imported"}, b.UserId)
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(time.Minute)
	quick := owned[b.UserId][0]
	if err := env.sim.Update("Contact", quick, map[string]any{"Title": "Quick"}, b.UserId); err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(time.Second)
	r, cursor := env.poll(contactKind, env.audience(userRecords), cursor)
	if got := ids(r.changes[b.UserId], upsert); !slices.Equal(got, []string{quick}) || len(r.changes[a.UserId]) != 0 {
		t.Fatalf("before the commit: a %v, b %v", ids(r.changes[a.UserId], upsert), got)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(time.Minute)
	r, cursor = env.poll(contactKind, env.audience(userRecords), cursor)
	if got := ids(r.changes[a.UserId], upsert); !slices.Equal(got, []string{slow}) {
		t.Errorf("a after the commit: %v, want [%s]", got, slow)
	}
	if got := ids(r.changes[b.UserId], upsert); !slices.Equal(got, []string{created}) {
		t.Errorf("b after the commit: %v, want [%s]", got, created)
	}
	for _, ch := range r.changes[a.UserId] {
		if ch.GetRecord().GetContact().GetDepartment() != "Batch job" {
			t.Errorf("late record read as %v", ch.GetRecord())
		}
	}
	env.clock.Advance(time.Minute)
	r, _ = env.poll(contactKind, env.audience(userRecords), cursor)
	if n := countChanges(r); n != 0 {
		t.Errorf("reported again: %d changes", n)
	}
}

// TestSimUpgradeFromVersion1Cursor polls with a cursor of the first format, as a Tandem
// upgraded mid-sync would: the records it lists are not reported again, a change is.
func TestSimUpgradeFromVersion1Cursor(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	uid := env.users[0].UserId
	owned := env.seed(3)
	env.clock.Advance(time.Minute)
	_, cursor := env.poll(contactKind, env.audience(userRecords), "")
	state, _ := decodeCursor(cursor, contactKind)
	// What the first format would have stored: no Id, no horizon, no content hashes.
	state.Version, state.LastID, state.Horizon = 1, "", 0
	for i := range state.Seen {
		state.Seen[i].Hashes = ""
	}
	v2, err := encodeCursor(state)
	if err != nil {
		t.Fatal(err)
	}
	v1 := v1Prefix + v2[len(cursorPrefix):]
	env.clock.Advance(time.Minute)
	if err := env.sim.Update("Contact", owned[uid][2], map[string]any{"Title": "After the upgrade"}, uid); err != nil {
		t.Fatal(err)
	}
	r, next := env.poll(contactKind, env.audience(userRecords), v1)
	if got := ids(r.changes[uid], upsert); !slices.Equal(got, owned[uid][2:]) || r.full[uid] {
		t.Errorf("first poll after the upgrade: %v (full %t)", got, r.full[uid])
	}
	if !strings.HasPrefix(next, cursorPrefix) {
		t.Errorf("cursor after the upgrade is %.5q", next)
	}
}

func TestSimHorizonFollowsTheOrgsClock(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	// The connector's clock runs a minute ahead of the org's: the horizon is the org's.
	ahead := func() time.Time { return env.clock.Now().Add(time.Minute) }
	env.conn = newTestConnector(t, jwtOrg(t, env.srv.URL), WithClock(ahead), fastRetry())
	env.seed(1)
	env.clock.Advance(time.Minute)
	_, cursor := env.poll(contactKind, env.audience(userRecords), "")
	state, _ := decodeCursor(cursor, contactKind)
	if got, want := time.UnixMilli(state.Horizon), env.clock.Now().Truncate(time.Second); !got.Equal(want) {
		t.Errorf("horizon %v, want the org's clock %v", got, want)
	}
}

// TestSimReadBackWaitsForAnOpenTransaction: a poll that reads back asks getUpdated how far
// everything is committed, and the next poll reads back from there. A transaction open since
// before that poll holds the answer at its start, so a record it stamped earlier than the poll
// and commits after is still read back and reported, although the whole minutes getUpdated
// counts, and even the poll itself, are past it.
func TestSimReadBackWaitsForAnOpenTransaction(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	// Seeded 10 s into a minute, so that the first poll's getUpdated cannot cover its watermark
	// and the next poll reads back.
	env.seedInMinute(10*time.Second, 3)
	uid := env.users[0].UserId
	env.clock.Advance(time.Second)
	_, cursor := env.poll(contactKind, env.audience(userRecords), "")

	// The transaction begins 5 s into a minute and stamps Late then; a quick edit 5 s later is
	// what the next poll reads, so Late commits behind that poll's watermark.
	now := env.clock.Now()
	env.clock.Advance(now.Truncate(time.Minute).Add(time.Minute + 5*time.Second).Sub(now))
	tx := env.sim.Begin()
	late, err := tx.Insert("Contact", map[string]any{"LastName": "Late"}, uid)
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(5 * time.Second)
	quick, err := env.sim.Insert("Contact", map[string]any{"LastName": "Quick"}, uid)
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(80 * time.Second) // into the next minute, which getUpdated would count
	env.sim.ResetCounts()
	r, cursor := env.poll(contactKind, env.audience(userRecords), cursor)
	if got := ids(r.changes[uid], upsert); !slices.Equal(got, []string{quick}) || env.count(sfsim.EndpointUpdated) != 1 {
		t.Fatalf("poll while the transaction is open: %v, %d getUpdated; want [%s] and 1", got, env.count(sfsim.EndpointUpdated), quick)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(10 * time.Second)
	r, cursor = env.poll(contactKind, env.audience(userRecords), cursor)
	if got := ids(r.changes[uid], upsert); !slices.Equal(got, []string{late}) {
		t.Fatalf("after the commit: %v, want [%s]", got, late)
	}
	// Everything is committed now: the poll after next reads nothing back.
	env.clock.Advance(time.Minute)
	r, cursor = env.poll(contactKind, env.audience(userRecords), cursor)
	if n := countChanges(r); n != 0 {
		t.Errorf("reported again: %d changes", n)
	}
	env.clock.Advance(time.Minute)
	env.sim.ResetCounts()
	r, _ = env.poll(contactKind, env.audience(userRecords), cursor)
	if n := countChanges(r); n != 0 || env.apiCalls() != 1 || env.count(sfsim.EndpointQueryMore) != 0 {
		t.Errorf("poll after the read-back: %d changes, %d calls (%v), want none and 1", n, env.apiCalls(), env.sim.Counts())
	}
}

// TestSimReadBackOfABurstSkipsTandemsWrites: after a burst of Tandem's own writes (as the
// integration user), the read-back leaves them out, and still finds a rep's late commit stamped
// among them.
func TestSimReadBackOfABurstSkipsTandemsWrites(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	env.conn.cfg.readBackSplit = 5
	env.conn.cfg.readBackEvery = 0
	env.seed(3)
	rep := env.users[0]
	env.clock.Advance(time.Second)
	_, cursor := env.poll(contactKind, env.audience(userRecords), "")

	env.clock.Advance(time.Second)
	tx := env.sim.Begin()
	late, err := tx.Insert("Contact", map[string]any{"LastName": "Late"}, rep.UserId)
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(time.Second)
	cmds := make([]*tandemv1.WriteCommand, 20)
	for i := range cmds {
		cmds[i] = contactCreate(fmt.Sprintf("sk-burst-%02d", i), &tandemv1.Contact{Surname: fmt.Sprintf("Burst %d", i)})
	}
	if res, err := env.conn.Apply(t.Context(), rep, contactKind, cmds); err != nil || !res[0].GetOk() {
		t.Fatalf("burst: %v %v", res, err)
	}
	env.clock.Advance(time.Second)
	r, cursor := env.poll(contactKind, env.audience(userRecords), cursor)
	if n := len(r.changes[rep.UserId]); n != len(cmds) {
		t.Fatalf("the burst's poll reported %d changes, want its %d", n, len(cmds))
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(time.Second)
	env.mu.Lock()
	env.statements = nil
	env.mu.Unlock()
	r, _ = env.poll(contactKind, env.audience(userRecords), cursor)
	if got := ids(r.changes[rep.UserId], upsert); !slices.Equal(got, []string{late}) {
		t.Fatalf("after the commit: %v, want the late record %s", got, late)
	}
	env.mu.Lock()
	defer env.mu.Unlock()
	if !slices.ContainsFunc(env.statements, func(q string) bool {
		return strings.Contains(q, "LastModifiedById != '"+env.integrationID+"'")
	}) {
		t.Errorf("no read-back left out the integration user's writes: %q", env.statements)
	}
}

// TestSimGetUpdatedOncePerMinute: while polls read back, getUpdated is asked once per minute at
// most while its answer has reached the minute (it cannot move before the next one), and the
// polls in between still report what changed; a late commit is still found.
func TestSimGetUpdatedOncePerMinute(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	now := env.seedInMinute(10*time.Second, 3)
	uid := env.users[0].UserId
	env.clock.Advance(time.Second)
	env.sim.ResetCounts()
	_, cursor := env.poll(contactKind, env.audience(userRecords), "")
	if n := env.count(sfsim.EndpointUpdated); n != 1 {
		t.Fatalf("the first poll asked getUpdated %d times, want 1", n)
	}
	var tx *sfsim.Transaction
	var late string
	for i, step := range []struct {
		at         time.Duration // into the minute
		edit       string        // a contact created just before the poll
		getUpdated int64
		wantLate   bool
	}{
		{at: 20 * time.Second, edit: "Second", getUpdated: 0},              // same minute: the answer stands
		{at: 40 * time.Second, edit: "Third", getUpdated: 0},               // still
		{at: time.Minute + 5*time.Second, edit: "Fourth", getUpdated: 1},   // the next minute: asked again
		{at: time.Minute + 20*time.Second, edit: "Fifth", getUpdated: 0},   // a transaction opened at +15 s
		{at: 2*time.Minute + 5*time.Second, getUpdated: 1, wantLate: true}, // committed meanwhile: asked again, read back
		{at: 3*time.Minute + 5*time.Second, getUpdated: 0},                 // nothing left to read back
	} {
		target := now.Truncate(time.Minute).Add(time.Minute).Add(step.at)
		if i == 3 {
			env.clock.Advance(target.Add(-5 * time.Second).Sub(env.clock.Now()))
			tx = env.sim.Begin()
			var err error
			if late, err = tx.Insert("Contact", map[string]any{"LastName": "Late"}, uid); err != nil {
				t.Fatal(err)
			}
		}
		if i == 4 {
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		env.clock.Advance(target.Sub(env.clock.Now()))
		var want []string
		if step.edit != "" {
			id, err := env.sim.Insert("Contact", map[string]any{"LastName": step.edit}, uid)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, id)
		}
		env.clock.Advance(time.Second)
		env.sim.ResetCounts()
		var r *pollResult
		r, cursor = env.poll(contactKind, env.audience(userRecords), cursor)
		got := ids(r.changes[uid], upsert)
		if slices.Contains(got, late) != step.wantLate {
			t.Errorf("poll %d reported %v: the late commit %s read back %v, want %v", i, got, late, !step.wantLate, step.wantLate)
		}
		got = slices.DeleteFunc(got, func(id string) bool { return id == late })
		if !slices.Equal(got, want) {
			t.Errorf("poll %d reported %v, want %v", i, got, want)
		}
		if n := env.count(sfsim.EndpointUpdated); n != step.getUpdated {
			t.Errorf("poll %d asked getUpdated %d times, want %d", i, n, step.getUpdated)
		}
	}
}
