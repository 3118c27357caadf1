package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Audience is one syncing user of a poll and which records of the kind are theirs.
type Audience struct {
	// User is the syncing user.
	User *tandemv1.SyncUser
	// Scope is which contacts the user syncs (the records they own, or every contact the
	// integration user can see). Events are always the records the user owns.
	Scope tandemv1.ContactScope
	// Filters further limit the records that sync to Exchange (all must match). Records that
	// do not match are reported with Change.out_of_scope.
	Filters []*tandemv1.FieldFilter
}

// PollRequest asks for what changed for a set of users.
type PollRequest struct {
	// Kind is the record kind to read.
	Kind tandemv1.RecordKind
	// Audience are the users to read for, all at once.
	Audience []Audience
	// Cursor is the cursor the previous poll of this kind returned; "" reads everything.
	Cursor string
	// FullReadGroup splits the full read of more users than this into queries of that many
	// users each, read one after the other (0: one query for all). Users who see every
	// contact are read with one query whatever it says.
	FullReadGroup int
	// Done, when set, is told about users whose read is complete — every change of theirs
	// emitted — before Poll returns: the users of each group of a split full read as soon as
	// the group is read, so that the caller can finish them while the next group is read.
	// Users it was not told about are complete when Poll returns.
	Done func(ctx context.Context, userIDs []string) error
}

// EmitFunc receives one page of one user's changes. full is true when this poll lists every
// record in the user's scope, so that anything it does not list for the user is gone.
type EmitFunc func(ctx context.Context, userID string, changes []*tandemv1.Change, full bool) error

// Poll reads, for all the audience's users at once, what changed since req.Cursor and calls
// emit per page per user, in SystemModstamp order per user. Every audience user gets at least
// one call, with no changes when nothing changed, so the caller can report the cycle for them.
//
// A poll costs one queryAll per object (per chunk of about 4,500 owners, and per page of 2,000
// rows), which reports deletes too. A full read (empty or unusable cursor, a cursor older than
// the recycle bin keeps deletes, records purged from the bin since the last poll, the periodic
// rescan) lists every record instead; users new to the audience, or whose scope or filters
// changed, get a full read of their own; a full read of more users than req.FullReadGroup is
// one query per group of them (see fullReadGroups). After a gap of more than an hour since the
// last poll, one getDeleted call checks whether the recycle bin was purged in between.
//
// An incremental read resumes exactly where the last one stopped — after its watermark's
// second and the greatest Id read in it — once no transaction can still commit a record stamped
// before the watermark; until then (see changedSince) it reads back the records stamped within
// the overlap before the last poll, or since Salesforce last said everything was committed if
// that is later, and reports only the ones whose content differs. An idle org's poll thus reads
// no row at all. A read-back that cannot yet be the last for its records runs at most once per
// readBackEvery (see readBackDue); the polls in between read from the watermark's second.
//
// It returns the cursor to store once everything emitted is durably published: the position,
// the records read within the overlap and the audience it covers. If Poll fails, nothing was
// committed: poll again with the old cursor (emitted changes may then repeat).
func (c *Connector) Poll(ctx context.Context, req PollRequest, emit EmitFunc) (cursor string, err error) {
	ctx, span := c.tracer.Start(ctx, "salesforce.Poll", trace.WithAttributes(c.metrics.org,
		attribute.String("tandem.record_kind", req.Kind.String()), attribute.Int("tandem.users", len(req.Audience))))
	defer func() { endSpan(span, err) }()
	object, err := objectFor(req.Kind)
	if err != nil {
		return "", err
	}
	members, err := audienceMembers(req.Kind, req.Audience)
	if err != nil {
		return "", err
	}
	now := c.now()
	prev, reason := decodeCursor(req.Cursor, req.Kind)
	fullAll := prev == nil
	switch {
	case prev == nil:
	case now.Sub(time.UnixMilli(prev.PolledAt)) > recycleWindow:
		fullAll, reason = true, "the last poll is older than the recycle bin keeps deletes"
	case c.cfg.fullRescanInterval > 0 && now.Sub(time.UnixMilli(prev.FullAt)) >= c.cfg.fullRescanInterval:
		fullAll, reason = true, "periodic full rescan"
	}
	var full, incremental []*member
	for _, m := range members {
		if fullAll || prev.Users[m.id] != m.fingerprint {
			full = append(full, m)
		} else {
			incremental = append(incremental, m)
		}
	}
	if len(incremental) > 0 && now.Sub(time.UnixMilli(prev.PolledAt)) > purgeSafeGap {
		// Deletes since the last poll are only visible while the records are in the recycle
		// bin, and a full bin is purged of records older than two hours. After a longer gap,
		// getDeleted's earliestDateAvailable says whether anything was purged since.
		complete, err := c.deletesComplete(ctx, object, time.UnixMilli(prev.PolledAt).Add(-c.cfg.overlap), now)
		if err != nil {
			return "", fmt.Errorf("poll %s for org %s: %w", object, c.orgID, err)
		}
		if !complete {
			fullAll, reason = true, "records were purged from the recycle bin since the last poll"
			full, incremental = members, nil
		}
	}
	if fullAll && req.Cursor != "" {
		c.log.InfoContext(ctx, "salesforce poll reads everything", slog.String("object", object), slog.String("reason", reason))
	}

	p := &poller{c: c, object: object, kind: req.Kind, emit: emit, emitted: map[string]bool{}, seen: map[seenKey]uint64{}}
	next := &pollCursor{Version: cursorVersion, Kind: req.Kind.String(), PolledAt: now.UnixMilli(), Users: map[string]string{}}
	if prev != nil {
		next.FullAt = prev.FullAt
		p.maxModstamp, p.lastID = prev.Watermark, prev.LastID
		p.known = prev.seenSet()
	}
	if fullAll {
		next.FullAt = now.UnixMilli()
	}
	for _, m := range members {
		next.Users[m.id] = m.fingerprint
	}
	if prev != nil {
		next.Committed = prev.Committed // still true: what was committed then was read then
		next.ReadBackAt = prev.ReadBackAt
		next.AskedAt, next.Covered = prev.AskedAt, prev.Covered
	}
	readsBack := len(incremental) > 0 && prev.readsBack(c.cfg.overlap)
	var committed time.Time
	if readsBack || len(full) > 0 {
		// This poll reads back, or reads records in full: ask, before reading, up to when
		// Salesforce has committed everything, so that the next poll reads back no further
		// than that (after a first sync, the last minute instead of the whole overlap).
		var err error
		committed, err = c.coveredBefore(ctx, object, now, next)
		if err != nil {
			if ctx.Err() != nil {
				return "", fmt.Errorf("poll %s for org %s: %w", object, c.orgID, err)
			}
			c.log.WarnContext(ctx, "salesforce getUpdated failed; the next poll reads back the whole overlap",
				slog.String("object", object), slog.String("error", err.Error()))
		}
	}
	// A read-back that cannot be the last one for its records waits (see readBackDue).
	deferred := readsBack && !prev.readBackDue(committed, now, c.cfg.readBackEvery)
	if !deferred && !committed.IsZero() {
		next.Committed = max(next.Committed, committed.UnixMilli())
	}
	if readsBack && !deferred {
		next.ReadBackAt = now.UnixMilli()
	}
	// The incremental read goes first: its snapshot is then older than the full read's, and a
	// change it missed while the full read ran is stamped after the horizon minus the overlap,
	// where the next poll reads back.
	if len(incremental) > 0 {
		if err := p.readIncremental(ctx, incremental, prev, deferred); err != nil {
			return "", fmt.Errorf("poll %s changes for org %s: %w", object, c.orgID, err)
		}
	}
	fullUsers := map[string]bool{}
	for _, m := range full {
		fullUsers[m.id] = true
	}
	// Every audience user gets at least one call, so that the caller can report the cycle.
	emitOnce := func(m *member) error {
		if p.emitted[m.id] {
			return nil
		}
		if err := emit(ctx, m.id, nil, fullUsers[m.id]); err != nil {
			return fmt.Errorf("poll %s for org %s: emit for user %s: %w", object, c.orgID, m.id, err)
		}
		p.emitted[m.id] = true
		return nil
	}
	for _, group := range fullReadGroups(full, req.FullReadGroup) {
		if err := p.read(ctx, group, "", true, nil); err != nil {
			return "", fmt.Errorf("poll all %s records for org %s: %w", object, c.orgID, err)
		}
		if req.Done == nil || len(group) == len(members) {
			continue
		}
		ids := make([]string, 0, len(group))
		for _, m := range group {
			if err := emitOnce(m); err != nil {
				return "", err
			}
			ids = append(ids, m.id)
		}
		if err := req.Done(ctx, ids); err != nil {
			return "", fmt.Errorf("poll %s for org %s: %w", object, c.orgID, err)
		}
	}
	for _, m := range members {
		if err := emitOnce(m); err != nil {
			return "", err
		}
	}
	next.Watermark, next.LastID = p.maxModstamp, p.lastID
	horizon := now
	if !p.served.IsZero() && p.served.Before(horizon) {
		horizon = p.served
	}
	next.Horizon = horizon.UnixMilli()
	seen := p.seen
	if deferred {
		// The read-back still to come starts where the previous poll's would have, and skips
		// what that poll and this one read.
		next.Horizon = prev.Horizon
		seen = maps.Clone(p.known)
		maps.Copy(seen, p.seen)
	}
	next.Seen = seenGroups(seen, next.readBackFrom(c.cfg.overlap).UnixMilli())
	return encodeCursor(next)
}

// fullReadGroups splits the members of a full read into groups of at most size members, in
// user id order, read one query after the other; one group when size is 0 or a member sees
// every contact (a query without an owner list reads everyone's records anyway).
//
// The cursor needs nothing more: a poll's horizon is when its first answer came, so the next
// poll reads back from before the first group was read, and sees what changed in a group
// already read while the later ones were.
func fullReadGroups(members []*member, size int) [][]*member {
	if len(members) == 0 {
		return nil
	}
	if size <= 0 || len(members) <= size || slices.ContainsFunc(members, func(m *member) bool { return m.all }) {
		return [][]*member{members}
	}
	sorted := slices.Clone(members)
	slices.SortFunc(sorted, func(a, b *member) int { return strings.Compare(a.id, b.id) })
	var out [][]*member
	for len(sorted) > 0 {
		n := min(size, len(sorted))
		out = append(out, sorted[:n])
		sorted = sorted[n:]
	}
	return out
}

// readBackFrom is the second from which the poll after c reads back what c's poll read. A
// transaction stamps its records when it writes them and commits within the overlap, so a
// record that poll could not see yet is stamped no earlier than its horizon minus the overlap;
// nor earlier than Committed, when the poll asked Salesforce up to when everything had committed.
func (c *pollCursor) readBackFrom(overlap time.Duration) time.Time {
	from := time.UnixMilli(c.Horizon).UTC().Add(-overlap).Truncate(time.Second)
	if committed := time.UnixMilli(c.Committed).UTC().Truncate(time.Second); c.Committed != 0 && committed.After(from) {
		return committed
	}
	return from
}

// markSecond is the second of c's watermark: SOQL compares datetimes to the second.
func (c *pollCursor) markSecond() time.Time {
	return time.UnixMilli(c.Watermark).UTC().Truncate(time.Second)
}

// readsBack reports whether the poll after c reads back records stamped before c's
// watermark (see changedSince).
func (c *pollCursor) readsBack(overlap time.Duration) bool {
	if c == nil || c.Watermark == 0 {
		return false
	}
	return !c.readBackFrom(overlap).After(c.markSecond())
}

// secondSkew is how far the connector's clock and the org's may differ when a poll decides
// whether a second of the org's had ended before the last poll read.
const secondSkew = time.Second

// readBackDue reports whether the poll after c, which reads back (readsBack), does so now or
// leaves it to a later poll.
//
// A read-back is needed once for a range of stamps, by a poll that starts after every
// transaction that could stamp a record in it has committed: getUpdated's latestDateCovered
// (committed, asked by the poll before it reads; zero when unknown) past the watermark's second
// says so, and that poll's read-back is the last one. Before then, while polls come often (every
// wake of the org starts one), each would read the whole range again — after a first sync's
// burst of writes, tens of thousands of rows a poll, until getUpdated, which counts whole
// minutes, passes the burst. So a read-back that cannot be the last one runs at most once per
// every: a record committed late waits at most that long for its read-back (or until the next
// poll, when polls are rarer). Meanwhile a poll reads from the start of the watermark's second
// while that second may still have been under way (see readIncremental), so that a record
// stamped within it after the poll read is not left to the read-back.
func (c *pollCursor) readBackDue(committed, now time.Time, every time.Duration) bool {
	mark := c.markSecond()
	if !committed.IsZero() && committed.Truncate(time.Second).After(mark) {
		return true
	}
	return c.ReadBackAt == 0 || now.Sub(time.UnixMilli(c.ReadBackAt)) >= every
}

// member is an audience user prepared for routing.
type member struct {
	id          string
	all         bool // sees every contact, not only their own
	filters     []*tandemv1.FieldFilter
	fingerprint string
}

func audienceMembers(kind tandemv1.RecordKind, aud []Audience) ([]*member, error) {
	var out []*member
	seen := map[string]bool{}
	for _, a := range aud {
		id := a.User.GetUserId()
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		m := &member{id: id, filters: a.Filters}
		m.all = kind == tandemv1.RecordKind_RECORD_KIND_CONTACT && a.Scope == tandemv1.ContactScope_CONTACT_SCOPE_ALL
		for _, f := range a.Filters {
			if !validIdentifier(f.GetField()) {
				return nil, &syncerr.Error{Code: syncerr.SalesforceFieldMissing,
					Detail: fmt.Sprintf("user %s has a filter on %q, which is not a Salesforce field name", id, f.GetField())}
			}
		}
		m.fingerprint = fingerprint(m)
		out = append(out, m)
	}
	return out, nil
}

// fingerprint identifies what a member's records are, so that a change of scope or filters
// is noticed and answered with a full read for that user.
func fingerprint(m *member) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "all=%t", m.all)
	for _, f := range m.filters {
		fmt.Fprintf(h, "|%s|%d", strings.ToLower(f.GetField()), f.GetOperator())
		for _, v := range f.GetValues() {
			fmt.Fprintf(h, "|%q", v)
		}
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// matches reports whether a row passes all of the member's filters.
func (m *member) matches(row SObject) bool {
	for _, f := range m.filters {
		if !filterMatches(row, f) {
			return false
		}
	}
	return true
}

// filterMatches compares like SOQL does: case-insensitively. A record matches when any value
// matches (for NOT_EQUALS: when none is equal).
func filterMatches(row SObject, f *tandemv1.FieldFilter) bool {
	v := strings.ToLower(row.String(f.GetField()))
	switch f.GetOperator() {
	case tandemv1.FilterOperator_FILTER_OPERATOR_NOT_EQUALS:
		for _, want := range f.GetValues() {
			if v == strings.ToLower(want) {
				return false
			}
		}
		return true
	case tandemv1.FilterOperator_FILTER_OPERATOR_EQUALS,
		tandemv1.FilterOperator_FILTER_OPERATOR_STARTS_WITH,
		tandemv1.FilterOperator_FILTER_OPERATOR_CONTAINS:
		for _, want := range f.GetValues() {
			want = strings.ToLower(want)
			switch f.GetOperator() {
			case tandemv1.FilterOperator_FILTER_OPERATOR_EQUALS:
				if v == want {
					return true
				}
			case tandemv1.FilterOperator_FILTER_OPERATOR_STARTS_WITH:
				if strings.HasPrefix(v, want) {
					return true
				}
			default:
				if strings.Contains(v, want) {
					return true
				}
			}
		}
		return false
	default:
		// A filter without an operator limits nothing.
		return true
	}
}

// poller is one Poll in progress.
type poller struct {
	c      *Connector
	object string
	kind   tandemv1.RecordKind
	emit   EmitFunc

	emitted map[string]bool
	// known are the record versions the previous poll read within the overlap and their
	// content hashes; seen are the versions this poll read.
	known, seen map[seenKey]uint64
	// maxModstamp (unix ms) and lastID are the position reached: the newest SystemModstamp
	// read, and the greatest Id read in its second.
	maxModstamp int64
	lastID      string
	// served is the Date of the poll's first answer: the org's clock.
	served time.Time
	// rows counts the rows read, and emitting the time spent handing them on, for the log.
	rows     int
	emitting time.Duration
}

// changedSince is the condition an incremental read starts from, given the previous poll's
// cursor ("" reads everything).
//
// SystemModstamp is when a transaction wrote a record, not when it committed: a transaction
// still running when the previous poll read commits its records later with older stamps, even
// in the watermark's own second (the API reports SystemModstamp to the second, and SOQL
// compares datetimes to the second, so many records share one). Such a record is stamped after
// the previous poll's horizon minus the overlap (the longest a transaction takes to commit).
// While that moment is not past the watermark, the read starts there and reads those records
// back with their content — which is what it takes to see a record that changed again within
// the same second, where its (Id, SystemModstamp) stays the same — and page reports only the
// versions not read before. A separate check of ids and stamps would cost a call on every
// poll after activity, where folding the read-back into the one query costs none until it
// fills a page.
//
// Salesforce can say more than the overlap: a poll that reads back first asks getUpdated up
// to when everything is committed (its latestDateCovered stays at the start of a transaction
// still open), and every record stamped before that was visible to the poll. The next poll reads
// back from there when it is later than the horizon minus the overlap: after a burst of changes
// the read-back ends within a minute or two (getUpdated counts whole minutes), not the overlap.
// Once that moment has passed the watermark, nothing can commit behind it any more and the read
// resumes exactly after (watermark second, LastID): an idle org's poll returns no row.
//
// Conditions compare whole seconds only (">= s" and ">= s+1" select the same records whether
// Salesforce compares milliseconds or not), in the documented literal format.
func (p *poller) changedSince(prev *pollCursor) string {
	if prev == nil || prev.Watermark == 0 {
		return ""
	}
	if prev.readsBack(p.c.cfg.overlap) {
		return "SystemModstamp >= " + soqlDateTime(prev.readBackFrom(p.c.cfg.overlap))
	}
	return prev.after()
}

// readIncremental reads what changed for the incremental members since prev (changedSince).
// The read-back is folded into one query with what changed after the watermark, unless the
// previous poll read more versions within the read-back than a query page holds — after a burst
// of changes, such as a first sync's writes —: then what changed after the watermark is read
// first, in a query of its own, the read-back after it, and what changed meanwhile once more at
// the end. When every write of the org acts as one user (write_as INTEGRATION_USER), that
// read-back leaves out the records that user modified last: Tandem's own writes, which make up
// a burst, are committed before their calls return, so no read can find them late; this
// assumes, as the deployment guide asks, that the integration user is Tandem's alone. A read-back of a burst takes seconds (25 pages after 50,000 writes), so it also
// stops, between two of its pages, once readBackPeek has passed since what changed was last
// read, to read it again: a new change reaches its user within about that, instead of after
// every record of the burst has been read again. A call more per readBackPeek while a burst is
// read back.
func (p *poller) readIncremental(ctx context.Context, set []*member, prev *pollCursor, deferred bool) error {
	if deferred {
		// The read-back waits (readBackDue). While the watermark's second had not ended when the
		// last poll read, it is read again: a record stamped within it since, with an Id below
		// the last one read, is a change made just then, not a late commit to leave to the
		// read-back. (A bulk write stamps thousands of records in one second: reading it again
		// once it has ended would cost a page a poll.)
		mark := prev.markSecond()
		if time.UnixMilli(prev.PolledAt).Add(-secondSkew).Before(mark.Add(time.Second)) {
			return p.read(ctx, set, "SystemModstamp >= "+soqlDateTime(mark), false, nil)
		}
		return p.read(ctx, set, prev.after(), false, nil)
	}
	if prev == nil || !prev.readsBack(p.c.cfg.overlap) || len(p.known) <= p.c.cfg.readBackSplit {
		return p.read(ctx, set, p.changedSince(prev), false, nil)
	}
	if err := p.read(ctx, set, prev.after(), false, nil); err != nil {
		return err
	}
	readAgain := func(ctx context.Context) error {
		pos := pollCursor{Watermark: p.maxModstamp, LastID: p.lastID}
		return p.read(ctx, set, pos.after(), false, nil)
	}
	last := p.c.now()
	peek := func(ctx context.Context) error {
		if p.c.now().Sub(last) < p.c.cfg.readBackPeek {
			return nil
		}
		err := readAgain(ctx)
		last = p.c.now()
		return err
	}
	readBack := prev.upTo(prev.readBackFrom(p.c.cfg.overlap))
	writer, err := p.c.auth.sharedWriterID(ctx)
	if err != nil {
		return fmt.Errorf("the writer's user id: %w", err)
	}
	if writer != "" {
		// Tandem's own writes, in a burst nearly all of what is read back, need no read-back:
		// each returned only once it had committed, and its result told the reconciler what
		// it wrote. An edit made since by anyone else is modified by them.
		readBack += " AND LastModifiedById != " + soqlString(writer)
	}
	if err := p.read(ctx, set, readBack, false, peek); err != nil {
		return err
	}
	// What changed while the burst was read back, rather than at the next poll, which cannot
	// start before this one ends.
	return readAgain(ctx)
}

// after selects the records stamped after c's position: after its watermark's second, or in
// that second with a greater Id than the last one read in it.
func (c *pollCursor) after() string {
	mark := c.markSecond()
	if c.LastID == "" {
		return "SystemModstamp >= " + soqlDateTime(mark.Add(time.Second))
	}
	return fmt.Sprintf("SystemModstamp >= %s AND (SystemModstamp >= %s OR Id > %s)",
		soqlDateTime(mark), soqlDateTime(mark.Add(time.Second)), soqlString(c.LastID))
}

// upTo selects the records stamped from the second from up to c's position: what after leaves
// out of "SystemModstamp >= from".
func (c *pollCursor) upTo(from time.Time) string {
	mark := c.markSecond()
	if c.LastID == "" {
		return fmt.Sprintf("SystemModstamp >= %s AND SystemModstamp < %s", soqlDateTime(from), soqlDateTime(mark.Add(time.Second)))
	}
	return fmt.Sprintf("SystemModstamp >= %s AND (SystemModstamp < %s OR (SystemModstamp < %s AND Id <= %s))",
		soqlDateTime(from), soqlDateTime(mark), soqlDateTime(mark.Add(time.Second)), soqlString(c.LastID))
}

// advance moves the position past a record read.
func (p *poller) advance(id string, modstamp int64) {
	sec, markSec := floorSecond(modstamp), floorSecond(p.maxModstamp)
	switch {
	case sec > markSec:
		p.maxModstamp, p.lastID = modstamp, id
	case sec == markSec:
		p.maxModstamp = max(p.maxModstamp, modstamp)
		if id > p.lastID {
			p.lastID = id
		}
	}
}

// floorSecond truncates unix ms to the second.
func floorSecond(ms int64) int64 {
	return time.UnixMilli(ms).Truncate(time.Second).UnixMilli()
}

// read lists the members' records: those cond selects (when not full) via queryAll, which
// includes deletes, or all of them via query. betweenPages, when not nil, runs after each page
// but the last (see readIncremental).
func (p *poller) read(ctx context.Context, set []*member, cond string, full bool, betweenPages func(context.Context) error) error {
	start, rows, emitting := time.Now(), p.rows, p.emitting
	defer func() {
		p.c.log.DebugContext(ctx, "salesforce poll read", slog.String("object", p.object), slog.String("where", cond),
			slog.Bool("full", full), slog.Int("users", len(set)), slog.Int("rows", p.rows-rows), slog.Duration("took", time.Since(start)),
			slog.Duration("emitting", p.emitting-emitting))
	}()
	byOwner := map[string]*member{}
	var everyone []*member
	for _, m := range set {
		if m.all {
			everyone = append(everyone, m)
		} else {
			byOwner[m.id] = m
		}
	}
	for attempt := 0; ; attempt++ {
		stmts, err := p.statements(set, cond, len(everyone) > 0)
		if err != nil {
			return err
		}
		started := false
		for _, q := range stmts {
			err = p.c.queryPages(ctx, p.c.auth.integrationSubject(), q, !full, func(page *QueryResult) error {
				started = true
				if err := p.page(ctx, page, byOwner, everyone, full); err != nil {
					return err
				}
				if betweenPages != nil && !page.Done {
					return betweenPages(ctx)
				}
				return nil
			})
			if err != nil {
				break
			}
		}
		var ae *APIError
		if err != nil && !started && attempt == 0 && errors.As(err, &ae) && ae.ErrorCode == "INVALID_FIELD" &&
			p.c.fields.learnMissing(p.object, ae.Message) {
			p.c.log.InfoContext(ctx, "salesforce org lacks an optional field; reading without it",
				slog.String("object", p.object), slog.String("error", ae.Message))
			continue
		}
		return err
	}
}

// statements builds the SOQL for a read, chunking the owner list under the length limit.
// Reading for a user who sees every contact needs no owner list at all.
func (p *poller) statements(set []*member, cond string, everyone bool) ([]string, error) {
	var fields []string
	if p.object == objContact {
		fields = contactSelect(p.c.fields)
	} else {
		fields = eventSelect()
	}
	for _, m := range set {
		for _, f := range m.filters {
			fields = addField(fields, f.GetField())
		}
	}
	stmt := selectStmt{fields: fields, from: p.object, orderBy: "SystemModstamp ASC, Id ASC"}
	if cond != "" {
		stmt.where = []string{cond}
	}
	if !everyone {
		stmt.inField = "OwnerId"
		for _, m := range set {
			stmt.inValues = append(stmt.inValues, m.id)
		}
		slices.Sort(stmt.inValues)
	}
	stmts, err := stmt.chunks(p.c.cfg.maxSOQLLength)
	if err != nil {
		return nil, syncerr.Wrap(syncerr.SyncInternal, err)
	}
	return stmts, nil
}

// page routes one page of rows to users and emits each user's changes.
func (p *poller) page(ctx context.Context, page *QueryResult, byOwner map[string]*member, everyone []*member, full bool) error {
	if p.served.IsZero() {
		p.served = page.served
	}
	var order []string
	changes := map[string][]*tandemv1.Change{}
	p.rows += len(page.Records)
	for _, row := range page.Records {
		id := row.String("Id")
		mod, ok, err := row.Time("SystemModstamp")
		if id == "" || !ok || err != nil {
			p.c.log.WarnContext(ctx, "salesforce row without Id or SystemModstamp skipped", slog.String("object", p.object), slog.String("id", id))
			continue
		}
		key := seenKey{id, mod.UnixMilli()}
		p.advance(id, key.modstamp)
		recipients := everyone
		if m := byOwner[row.String("OwnerId")]; m != nil {
			recipients = append(slices.Clip(everyone), m)
		}
		if len(recipients) == 0 {
			continue
		}
		// Hashed as Salesforce returned it, before paged invitees are fetched: a record read
		// back unchanged costs no further call.
		hash := contentHash(row)
		if !full && p.reported(key, hash) {
			p.seen[key] = hash
			continue // read back within the overlap, unchanged
		}
		p.seen[key] = hash
		if p.object == objEvent && !row.Bool("IsDeleted") {
			if err := p.moreRelations(ctx, row); err != nil {
				return fmt.Errorf("read the invitees of event %s: %w", id, err)
			}
		}
		change, err := p.change(row)
		if err != nil {
			// Salesforce's typed fields make this all but impossible; one unreadable row must
			// not stop the org's sync.
			p.c.log.WarnContext(ctx, "salesforce row could not be mapped; skipped",
				slog.String("object", p.object), slog.String("id", id), slog.String("error", err.Error()))
			continue
		}
		for k, m := range recipients {
			ch := change
			if k > 0 {
				ch = proto.Clone(change).(*tandemv1.Change)
			}
			if ch.Type == tandemv1.ChangeType_CHANGE_TYPE_UPSERT {
				ch.OutOfScope = !m.matches(row)
			}
			if _, ok := changes[m.id]; !ok {
				order = append(order, m.id)
			}
			changes[m.id] = append(changes[m.id], ch)
		}
	}
	emitStart := time.Now()
	defer func() { p.emitting += time.Since(emitStart) }()
	for _, uid := range order {
		p.emitted[uid] = true
		if err := p.emit(ctx, uid, changes[uid], full); err != nil {
			return fmt.Errorf("emit for user %s: %w", uid, err)
		}
	}
	return nil
}

// change maps a row to a change.
func (p *poller) change(row SObject) (*tandemv1.Change, error) {
	if row.Bool("IsDeleted") {
		return &tandemv1.Change{Type: tandemv1.ChangeType_CHANGE_TYPE_DELETE, Record: &tandemv1.Record{Id: row.String("Id")}}, nil
	}
	var rec *tandemv1.Record
	var err error
	if p.object == objContact {
		rec, err = contactFromRow(row)
	} else {
		rec, err = eventFromRow(row)
	}
	if err != nil {
		return nil, err
	}
	return &tandemv1.Change{Type: tandemv1.ChangeType_CHANGE_TYPE_UPSERT, Record: rec}, nil
}

// moreRelations fetches the rest of an event's EventRelations when the subquery was paged.
func (p *poller) moreRelations(ctx context.Context, row SObject) error {
	rows, next := row.Child("EventRelations")
	if next == "" {
		return nil
	}
	list := make([]any, 0, len(rows))
	for _, r := range rows {
		list = append(list, r)
	}
	for next != "" {
		resp, err := p.c.do(ctx, request{op: "queryMore", method: http.MethodGet, path: next, subject: p.c.auth.integrationSubject(), idempotent: true})
		if err != nil {
			return err
		}
		res, err := ParseQueryResult(resp.body)
		if err != nil {
			return syncerr.Wrap(syncerr.SalesforceMalformedResponse, err)
		}
		for _, r := range res.Records {
			list = append(list, r)
		}
		next = ""
		if !res.Done {
			next = res.NextRecordsURL
		}
	}
	row["EventRelations"] = SObject{"done": true, "totalSize": len(list), "records": list}
	return nil
}

// reported reports whether a record version read back was reported already, by the previous
// poll or earlier in this one, with the same content. A version 1 cursor's records count as
// unchanged while their SystemModstamp is.
func (p *poller) reported(key seenKey, hash uint64) bool {
	if h, ok := p.seen[key]; ok && h == hash {
		return true
	}
	h, ok := p.known[key]
	return ok && (h == hash || h == unknownHash)
}

// contentHash identifies a row's content as the API returned it: every selected field, parent
// and child, without the parts that name the query rather than the record ("attributes" with
// its record URL, and a child subquery's "nextRecordsUrl"). Each field is hashed with FNV-1a,
// its value tagged with its type and strings with their length so that no two contents share
// an encoding; an object sums its fields' mixed hashes, which needs no key order.
func contentHash(row SObject) uint64 {
	h := fnvHash(fnvOffset)
	h.value(row)
	if h == unknownHash {
		return 1
	}
	return uint64(h)
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnvHash is FNV-1a, 64 bits, fed without allocating.
type fnvHash uint64

func (h *fnvHash) byte(b byte) { *h = (*h ^ fnvHash(b)) * fnvPrime }

func (h *fnvHash) string(s string) {
	for n := len(s); ; n >>= 7 {
		h.byte(byte(n & 0x7f))
		if n < 0x80 {
			break
		}
	}
	for i := 0; i < len(s); i++ {
		h.byte(s[i])
	}
}

func (h *fnvHash) value(v any) {
	switch t := v.(type) {
	case SObject:
		var sum uint64
		for k, e := range t {
			if k == "attributes" || k == "nextRecordsUrl" {
				continue
			}
			f := fnvHash(fnvOffset)
			f.string(k)
			f.value(e)
			sum += mix(uint64(f))
		}
		h.byte('{')
		for i := range 8 {
			h.byte(byte(sum >> (8 * i)))
		}
	case []any:
		h.byte('[')
		for _, e := range t {
			h.value(e)
		}
		h.byte(']')
	case string:
		h.byte('s')
		h.string(t)
	case json.Number:
		h.byte('n')
		h.string(t.String())
	case bool:
		if t {
			h.byte('t')
		} else {
			h.byte('f')
		}
	case nil:
		h.byte('0')
	default: // not produced by ParseQueryResult
		h.byte('?')
		h.string(fmt.Sprint(t))
	}
}

// mix is SplitMix64's finalizer: it spreads a field's hash over all bits before it is summed.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
