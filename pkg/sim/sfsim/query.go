package sfsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandem-sync/tandem/pkg/sim/soql"
)

const (
	defaultBatchSize = 2000
	minBatchSize     = 200
	// cursorIdleTimeout is how long Salesforce keeps an unused query cursor.
	cursorIdleTimeout = 15 * time.Minute
	// maxCursorsPerUser is how many open cursors a user may hold; opening another closes the
	// least recently used.
	maxCursorsPerUser = 10
)

// view adapts a stored record to soql.Record, following parent relationships through the
// store. Callers hold s.mu.
type view struct {
	st *store
	r  *record
}

func (v view) Get(path []string) (any, bool) {
	r := v.r
	for _, part := range path[:len(path)-1] {
		f := r.obj.parents[strings.ToLower(part)]
		if f == nil {
			return nil, false
		}
		id, _ := r.get(f.Name).(string)
		parent := v.st.records[id]
		if id == "" || parent == nil {
			// An empty relationship makes every field behind it null.
			return nil, true
		}
		r = parent
	}
	name := path[len(path)-1]
	f := r.obj.field(name)
	if f == nil {
		// Behind a polymorphic relationship, a Name field the target lacks is null.
		if len(path) > 1 {
			if info, ok := nameObjectFields[strings.ToLower(name)]; ok {
				if info.Name == "Type" {
					return r.obj.name, true
				}
				return nil, true
			}
		}
		return nil, false
	}
	val := r.get(f.Name)
	if val == nil {
		return nil, true
	}
	if f.Type == TypeID || f.Type == TypeReference {
		return soql.ID(val.(string)), true
	}
	return val, true
}

// column is one node of a query's output shape: a field, a parent relationship with its own
// columns, or a child subquery.
type column struct {
	key      string // the JSON key: the field or relationship's API name
	field    *Field
	nameOnly string    // a field of the polymorphic Name object
	ref      *Field    // parent relationship: the reference field
	children []*column // parent relationship: its columns
	sub      *subquery
}

type subquery struct {
	q       *soql.Query
	rel     childRel
	columns []*column
	matcher *soql.Matcher
}

// plan is a checked query ready to run and render.
type plan struct {
	q       *soql.Query
	obj     *object
	columns []*column
	matcher *soql.Matcher
}

func (s *Server) compile(text string) (*plan, *apiError) {
	q, err := soql.Parse(text)
	if err == nil {
		err = q.Check(soqlSchema{s.schema})
	}
	if err != nil {
		var e *soql.Error
		if errors.As(err, &e) {
			return nil, &apiError{ErrorCode: e.Code, Message: e.Describe(text)}
		}
		return nil, &apiError{ErrorCode: soql.CodeMalformedQuery, Message: err.Error()}
	}
	env := soql.Env{Now: s.now()}
	m, err := q.Matcher(env)
	if err != nil {
		return nil, &apiError{ErrorCode: soql.CodeMalformedQuery, Message: err.Error()}
	}
	p := &plan{q: q, obj: s.schema.object(q.From.Name), matcher: m}
	for _, item := range q.Select {
		switch {
		case item.Field != nil:
			p.columns = addColumn(p.columns, p.obj, item.Field.Parts)
		case item.Subquery != nil:
			rel, _ := p.obj.child(item.Subquery.From.Name)
			sm, err := item.Subquery.Matcher(env)
			if err != nil {
				return nil, &apiError{ErrorCode: soql.CodeMalformedQuery, Message: err.Error()}
			}
			sub := &subquery{q: item.Subquery, rel: rel, matcher: sm}
			for _, si := range item.Subquery.Select {
				if si.Field != nil {
					sub.columns = addColumn(sub.columns, rel.child, si.Field.Parts)
				}
			}
			p.columns = append(p.columns, &column{key: rel.name, sub: sub})
		}
	}
	return p, nil
}

// addColumn adds a field path to a column list, merging paths through the same relationship
// into one nested object as Salesforce does. o is nil behind a polymorphic relationship.
func addColumn(cols []*column, o *object, parts []string) []*column {
	if len(parts) == 1 {
		if o == nil {
			info := nameObjectFields[strings.ToLower(parts[0])]
			return append(cols, &column{key: info.Name, nameOnly: info.Name})
		}
		f := o.field(parts[0])
		return append(cols, &column{key: f.Name, field: f})
	}
	ref := o.parents[strings.ToLower(parts[0])]
	for _, c := range cols {
		if c.ref == ref {
			c.children = addColumn(c.children, targetObject(o, ref), parts[1:])
			return cols
		}
	}
	c := &column{key: ref.RelationshipName, ref: ref}
	c.children = addColumn(nil, targetObject(o, ref), parts[1:])
	return append(cols, c)
}

func targetObject(o *object, ref *Field) *object {
	if len(ref.ReferenceTo) != 1 {
		return nil
	}
	return o.schemaRef(ref.ReferenceTo[0])
}

// schemaRef resolves an object of the same schema by name.
func (o *object) schemaRef(name string) *object { return o.owner.object(name) }

// run evaluates a plan. all includes the recycle bin (queryAll). Callers hold s.mu.
func (s *Server) run(p *plan, all bool) ([]*record, *apiError) {
	now := s.now()
	var matched []*record
	var evalErr error
	visit := func(r *record) bool {
		if r.deleted && (!all || !inBin(r, now)) {
			return true
		}
		ok, err := p.matcher.Match(view{s.st, r})
		if err != nil {
			evalErr = err
			return false
		}
		if ok {
			matched = append(matched, r)
		}
		return true
	}
	if ids, ok := s.indexedCandidates(p.obj, p.q.Where); ok {
		for _, id := range ids {
			if r := s.st.records[id]; r != nil && r.obj == p.obj && !visit(r) {
				break
			}
		}
	} else {
		s.st.each(p.obj, visit)
	}
	if evalErr != nil {
		return nil, toAPIError(evalErr)
	}
	if len(p.q.OrderBy) > 0 {
		views := make([]soql.Record, len(matched))
		for i, r := range matched {
			views[i] = view{s.st, r}
		}
		if err := p.q.Sort(views); err != nil {
			return nil, toAPIError(err)
		}
		for i, v := range views {
			matched[i] = v.(view).r
		}
	}
	lo, hi := p.q.Window(len(matched))
	return matched[lo:hi], nil
}

func toAPIError(err error) *apiError {
	var e *soql.Error
	if errors.As(err, &e) {
		return &apiError{ErrorCode: e.Code, Message: e.Message}
	}
	return &apiError{ErrorCode: "UNKNOWN_EXCEPTION", Message: err.Error()}
}

// indexedCandidates narrows a scan with the indexes when the condition is, or is a
// conjunction that contains, Id or a reference field compared with = or IN. The ids come
// back in creation order.
func (s *Server) indexedCandidates(o *object, where soql.Expr) ([]string, bool) {
	var terms []soql.Expr
	switch w := where.(type) {
	case *soql.And:
		terms = w.Terms
	case *soql.Comparison:
		terms = []soql.Expr{w}
	default:
		return nil, false
	}
	for _, t := range terms {
		c, ok := t.(*soql.Comparison)
		if !ok || len(c.Field.Parts) != 1 || (c.Op != soql.OpEq && c.Op != soql.OpIn) {
			continue
		}
		f := o.field(c.Field.Parts[0])
		if f == nil || (f.Type != TypeID && f.Type != TypeReference) {
			continue
		}
		values := c.Values
		if c.Op == soql.OpEq {
			values = []soql.Value{c.Value}
		}
		set := map[string]struct{}{}
		usable := true
		for _, v := range values {
			if v.Kind == soql.KindNull {
				usable = false // "= null" needs a scan
				break
			}
			id, ok := NormalizeID(v.Str)
			if !ok {
				continue
			}
			if f.Type == TypeID {
				set[id] = struct{}{}
				continue
			}
			for rid := range s.st.refs[f][id] {
				set[rid] = struct{}{}
			}
		}
		if !usable {
			continue
		}
		ids := make([]string, 0, len(set))
		for id := range set {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return ids, true
	}
	return nil, false
}

// jsonObject is a JSON object that keeps its keys in insertion order, as Salesforce's
// responses list fields in the order the query selected them.
type jsonObject struct {
	keys   []string
	values []any
}

func (o *jsonObject) add(k string, v any) {
	o.keys = append(o.keys, k)
	o.values = append(o.values, v)
}

func (o *jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(k)
		b.Write(key)
		b.WriteByte(':')
		val, err := json.Marshal(o.values[i])
		if err != nil {
			return nil, err
		}
		b.Write(val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (s *Server) attributes(version string, r *record, typeName string) *jsonObject {
	a := &jsonObject{}
	a.add("type", typeName)
	a.add("url", fmt.Sprintf("/services/data/v%s/sobjects/%s/%s", version, r.obj.name, r.id))
	return a
}

// render builds a record's JSON for the columns. Callers hold s.mu.
func (s *Server) render(version string, r *record, typeName string, cols []*column, all bool) *jsonObject {
	out := &jsonObject{}
	out.add("attributes", s.attributes(version, r, typeName))
	for _, c := range cols {
		switch {
		case c.field != nil:
			out.add(c.key, jsonValue(r.get(c.field.Name)))
		case c.nameOnly != "":
			if c.nameOnly == "Type" {
				out.add(c.key, r.obj.name)
			} else if f := r.obj.field(c.nameOnly); f != nil {
				out.add(c.key, jsonValue(r.get(f.Name)))
			} else {
				out.add(c.key, nil)
			}
		case c.ref != nil:
			id, _ := r.get(c.ref.Name).(string)
			parent := s.st.records[id]
			if parent == nil {
				out.add(c.key, nil)
				continue
			}
			typeName := parent.obj.name
			if len(c.ref.ReferenceTo) != 1 {
				typeName = nameObject
			}
			out.add(c.key, s.render(version, parent, typeName, c.children, all))
		case c.sub != nil:
			out.add(c.key, s.renderChildren(version, r, c.sub, all))
		}
	}
	return out
}

// renderChildren answers a child subquery for one parent: null when no child matches, as
// Salesforce does, else a nested query result.
func (s *Server) renderChildren(version string, parent *record, sub *subquery, all bool) any {
	now := s.now()
	var matched []soql.Record
	for _, child := range s.st.referencing(sub.rel.field, parent.id) {
		if child.obj != sub.rel.child || (child.deleted && (!all || !inBin(child, now))) {
			continue
		}
		if ok, err := sub.matcher.Match(view{s.st, child}); err != nil || !ok {
			continue
		}
		matched = append(matched, view{s.st, child})
	}
	if err := sub.q.Sort(matched); err != nil {
		return nil
	}
	lo, hi := sub.q.Window(len(matched))
	matched = matched[lo:hi]
	if len(matched) == 0 {
		return nil
	}
	records := make([]*jsonObject, len(matched))
	for i, m := range matched {
		child := m.(view).r
		records[i] = s.render(version, child, child.obj.name, sub.columns, all)
	}
	res := &jsonObject{}
	res.add("totalSize", len(records))
	res.add("done", true)
	res.add("records", records)
	return res
}

// cursor is an open query result being paged through nextRecordsUrl.
type cursor struct {
	id       string
	userID   string
	plan     *plan
	all      bool
	rows     []*record
	batch    int
	lastUsed time.Time
}

type cursorState struct {
	mu      sync.Mutex
	cursors map[string]*cursor
	seq     uint64
}

func (cs *cursorState) init() { cs.cursors = map[string]*cursor{} }

// open registers a cursor, closing expired ones and the user's least recently used beyond
// the per-user limit.
func (cs *cursorState) open(c *cursor, instance string, now time.Time) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.seq++
	c.id = makeID(prefixQueryLocator, instance, cs.seq)
	c.lastUsed = now
	var mine []*cursor
	for id, other := range cs.cursors {
		if now.Sub(other.lastUsed) >= cursorIdleTimeout {
			delete(cs.cursors, id)
			continue
		}
		if other.userID == c.userID {
			mine = append(mine, other)
		}
	}
	if len(mine) >= maxCursorsPerUser {
		slices.SortFunc(mine, func(a, b *cursor) int { return a.lastUsed.Compare(b.lastUsed) })
		for _, old := range mine[:len(mine)-maxCursorsPerUser+1] {
			delete(cs.cursors, old.id)
		}
	}
	cs.cursors[c.id] = c
}

func (cs *cursorState) get(id, userID string, now time.Time) *cursor {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.cursors[id]
	if c == nil || c.userID != userID {
		return nil
	}
	if now.Sub(c.lastUsed) >= cursorIdleTimeout {
		delete(cs.cursors, id)
		return nil
	}
	c.lastUsed = now
	return c
}

func (cs *cursorState) close(id string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.cursors, id)
}

// batchSize reads Sforce-Query-Options: batchSize=n; Salesforce treats it as a request,
// keeping it between 200 and 2,000.
func batchSize(r *http.Request) int {
	for _, opt := range strings.Split(r.Header.Get("Sforce-Query-Options"), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(opt), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "batchSize") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return defaultBatchSize
		}
		return min(max(n, minBatchSize), defaultBatchSize)
	}
	return defaultBatchSize
}

func (s *Server) serveQuery(c *call) {
	text := c.r.URL.Query().Get("q")
	if text == "" {
		writeError(c.w, http.StatusBadRequest, "MALFORMED_QUERY", "A query string has to be specified")
		return
	}
	all := c.segs[0] == "queryAll"
	s.mu.RLock()
	p, apiErr := s.compile(text)
	var rows []*record
	if apiErr == nil {
		rows, apiErr = s.run(p, all)
	}
	s.mu.RUnlock()
	if apiErr != nil {
		writeJSON(c.w, http.StatusBadRequest, []apiError{*apiErr})
		return
	}
	if p.q.IsCount() {
		res := &jsonObject{}
		res.add("totalSize", len(rows))
		res.add("done", true)
		res.add("records", []any{})
		writeJSON(c.w, http.StatusOK, res)
		return
	}
	cur := &cursor{userID: c.userID, plan: p, all: all, rows: rows, batch: batchSize(c.r)}
	s.writePage(c, cur, 0)
}

func (s *Server) serveQueryMore(c *call) {
	locator, offsetText, ok := strings.Cut(c.segs[1], "-")
	offset, err := strconv.Atoi(offsetText)
	var cur *cursor
	if ok && err == nil && offset >= 0 {
		cur = s.cursors.get(locator, c.userID, s.now())
	}
	if cur == nil || offset > len(cur.rows) {
		writeError(c.w, http.StatusBadRequest, "INVALID_QUERY_LOCATOR", "invalid query locator")
		return
	}
	s.writePage(c, cur, offset)
}

// writePage answers one page of a cursor, opening the cursor if more pages follow and
// closing it after the last.
func (s *Server) writePage(c *call, cur *cursor, offset int) {
	end := min(offset+cur.batch, len(cur.rows))
	s.mu.RLock()
	records := make([]*jsonObject, 0, end-offset)
	for _, r := range cur.rows[offset:end] {
		records = append(records, s.render(c.version, r, r.obj.name, cur.plan.columns, cur.all))
	}
	s.mu.RUnlock()
	res := &jsonObject{}
	res.add("totalSize", len(cur.rows))
	done := end >= len(cur.rows)
	res.add("done", done)
	if done {
		if cur.id != "" {
			s.cursors.close(cur.id)
		}
	} else {
		if cur.id == "" {
			s.cursors.open(cur, s.st.instance, s.now())
		}
		// Salesforce points queryAll's next pages at the query resource too; the locator
		// remembers that deleted records belong in the result.
		res.add("nextRecordsUrl", fmt.Sprintf("/services/data/v%s/query/%s-%d", c.version, cur.id, end))
	}
	res.add("records", records)
	writeJSON(c.w, http.StatusOK, res)
}
