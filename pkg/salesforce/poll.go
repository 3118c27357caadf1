package salesforce

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
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
// changed, get a full read of their own. After a gap of more than an hour since the last poll,
// one getDeleted call checks whether the recycle bin was purged in between.
//
// It returns the cursor to store once everything emitted is durably published: the watermark,
// the records seen in the overlap window, and the audience it covers. If Poll fails, nothing
// was committed: poll again with the old cursor (emitted changes may then repeat).
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

	p := &poller{c: c, object: object, kind: req.Kind, emit: emit, emitted: map[string]bool{}, seen: map[seenKey]bool{}}
	next := &pollCursor{Version: cursorVersion, Kind: req.Kind.String(), PolledAt: now.UnixMilli(), Users: map[string]string{}}
	if prev != nil {
		next.Watermark, next.FullAt = prev.Watermark, prev.FullAt
		for _, g := range prev.Seen {
			for _, id := range g.IDs {
				p.seen[seenKey{id, g.Modstamp}] = true
			}
		}
	}
	if fullAll {
		next.FullAt = now.UnixMilli()
	}
	for _, m := range members {
		next.Users[m.id] = m.fingerprint
	}
	// The incremental read goes first: its snapshot is then older than the full read's, so
	// the watermark it sets cannot skip a change made while the full read ran.
	if len(incremental) > 0 {
		since := time.Time{}
		if next.Watermark > 0 {
			since = time.UnixMilli(next.Watermark).Add(-c.cfg.overlap)
		}
		if err := p.read(ctx, incremental, since, false); err != nil {
			return "", fmt.Errorf("poll %s changes for org %s: %w", object, c.orgID, err)
		}
	}
	if len(full) > 0 {
		if err := p.read(ctx, full, time.Time{}, true); err != nil {
			return "", fmt.Errorf("poll all %s records for org %s: %w", object, c.orgID, err)
		}
	}
	fullUsers := map[string]bool{}
	for _, m := range full {
		fullUsers[m.id] = true
	}
	for _, m := range members {
		if !p.emitted[m.id] {
			if err := emit(ctx, m.id, nil, fullUsers[m.id]); err != nil {
				return "", fmt.Errorf("poll %s for org %s: emit for user %s: %w", object, c.orgID, m.id, err)
			}
		}
	}
	if p.maxModstamp > next.Watermark {
		next.Watermark = p.maxModstamp
	}
	next.Seen = p.overlapSet(next.Watermark - c.cfg.overlap.Milliseconds())
	return encodeCursor(next)
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

type seenKey struct {
	id       string
	modstamp int64
}

// poller is one Poll in progress.
type poller struct {
	c      *Connector
	object string
	kind   tandemv1.RecordKind
	emit   EmitFunc

	emitted     map[string]bool
	seen        map[seenKey]bool // (Id, SystemModstamp) already reported, from the cursor and this poll
	maxModstamp int64
}

// read lists the members' records: changed since since (when not full) via queryAll, which
// includes deletes, or all of them via query.
func (p *poller) read(ctx context.Context, set []*member, since time.Time, full bool) error {
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
		stmts, err := p.statements(set, since, full, len(everyone) > 0)
		if err != nil {
			return err
		}
		started := false
		for _, q := range stmts {
			err = p.c.queryPages(ctx, p.c.auth.integrationSubject(), q, !full, func(page *QueryResult) error {
				started = true
				return p.page(ctx, page, byOwner, everyone, full)
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
func (p *poller) statements(set []*member, since time.Time, full, everyone bool) ([]string, error) {
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
	if !full && !since.IsZero() {
		stmt.where = []string{"SystemModstamp >= " + soqlDateTime(since)}
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
	var order []string
	changes := map[string][]*tandemv1.Change{}
	for _, row := range page.Records {
		id := row.String("Id")
		mod, _, err := row.Time("SystemModstamp")
		if id == "" || err != nil {
			p.c.log.WarnContext(ctx, "salesforce row without Id or SystemModstamp skipped", slog.String("object", p.object), slog.String("id", id))
			continue
		}
		key := seenKey{id, mod.UnixMilli()}
		if key.modstamp > p.maxModstamp {
			p.maxModstamp = key.modstamp
		}
		if !full && p.seen[key] {
			continue // reported by an earlier poll: the overlap window reads it again
		}
		p.seen[key] = true
		recipients := everyone
		if m := byOwner[row.String("OwnerId")]; m != nil {
			recipients = append(slices.Clip(everyone), m)
		}
		if len(recipients) == 0 {
			continue
		}
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

// overlapSet lists the records seen at or after from (unix ms), grouped by SystemModstamp.
func (p *poller) overlapSet(from int64) []seenGroup {
	groups := map[int64][]string{}
	for k := range p.seen {
		if k.modstamp >= from {
			groups[k.modstamp] = append(groups[k.modstamp], k.id)
		}
	}
	out := make([]seenGroup, 0, len(groups))
	for t, ids := range groups {
		slices.Sort(ids)
		out = append(out, seenGroup{Modstamp: t, IDs: ids})
	}
	slices.SortFunc(out, func(a, b seenGroup) int { return cmp.Compare(a.Modstamp, b.Modstamp) })
	return out
}
