package sfsim

import (
	"slices"
	"strings"
	"time"
)

// recycleBinRetention is how long deleted records stay in the recycle bin, visible to
// queryAll and getDeleted, before they are purged.
const recycleBinRetention = 15 * 24 * time.Hour

// record is one stored record. Records are immutable once stored: a change stores a new
// version, so query cursors can hold the versions they matched without copying them.
type record struct {
	obj *object
	id  string
	// fields holds values by API name: string (text, ids), bool, float64 (double), int64
	// (int), time.Time (datetime, UTC, millisecond precision) or soql.Date. A null field is
	// absent.
	fields    map[string]any
	deleted   bool
	deletedAt time.Time
	// deletedWith is the parent whose deletion cascaded to this record, so that undeleting
	// the parent restores it too.
	deletedWith string
}

func (r *record) get(name string) any { return r.fields[name] }

func (r *record) str(name string) string {
	s, _ := r.fields[name].(string)
	return s
}

func (r *record) clone() *record {
	c := *r
	c.fields = make(map[string]any, len(r.fields)+4)
	for k, v := range r.fields {
		c.fields[k] = v
	}
	return &c
}

// store holds an org's records and the indexes that keep lookups by id, owner, parent and
// external id cheap at 100,000 records. Callers hold Server.mu.
type store struct {
	schema   *schema
	instance string
	records  map[string]*record   // by 18-character id, including the recycle bin
	ids      map[*object][]string // per object, in creation order
	bin      map[string]*record   // deleted records not yet purged
	// refs indexes every reference field: field → referenced id → ids of records holding it.
	refs map[*Field]map[string]map[string]struct{}
	// unique indexes unique fields of live records: field → key → id.
	unique map[*Field]map[string]string
	// dupRules are the fields whose equality makes two records of an object duplicates.
	dupRules map[*object][]*Field
	dups     map[*object]map[string]map[string]struct{}
	seq      uint64
	// lastStamp makes SystemModstamp strictly increasing across the org (never decreasing,
	// with wholeSeconds).
	lastStamp time.Time
	// wholeSeconds keeps stamps in whole seconds, shared by the records saved in one second.
	wholeSeconds bool
	// purgedUntil is, per object, the deletion time of the last record purged from the bin:
	// getDeleted's earliestDateAvailable.
	purgedUntil map[*object]time.Time
	created     time.Time
	// changes receives the change events of every commit (changes.go); nil records none.
	changes *changeLog
	// privateSharing restricts API writes to the records a user owns (Config.PrivateSharing),
	// except for the users in modifyAll.
	privateSharing bool
	modifyAll      map[string]bool
}

func newStore(s *schema, instance string, now time.Time) *store {
	return &store{
		schema:      s,
		instance:    instance,
		records:     map[string]*record{},
		modifyAll:   map[string]bool{},
		ids:         map[*object][]string{},
		bin:         map[string]*record{},
		refs:        map[*Field]map[string]map[string]struct{}{},
		unique:      map[*Field]map[string]string{},
		dupRules:    map[*object][]*Field{},
		dups:        map[*object]map[string]map[string]struct{}{},
		purgedUntil: map[*object]time.Time{},
		created:     now.UTC().Truncate(time.Millisecond),
	}
}

func (st *store) nextID(o *object) string {
	st.seq++
	return makeID(o.keyPrefix, st.instance, st.seq)
}

// stamp returns the next SystemModstamp: now at millisecond precision, but always after the
// previous one, so that "changed since" polling never misses a change made in the same
// millisecond as the watermark.
//
// With wholeSeconds, the stamp is now's second, as Salesforce's API reports SystemModstamp:
// records saved in the same second share it.
func (st *store) stamp(now time.Time) time.Time {
	if st.wholeSeconds {
		t := now.UTC().Truncate(time.Second)
		if t.Before(st.lastStamp) {
			t = st.lastStamp
		}
		st.lastStamp = t
		return t
	}
	t := now.UTC().Truncate(time.Millisecond)
	if !t.After(st.lastStamp) {
		t = st.lastStamp.Add(time.Millisecond)
	}
	st.lastStamp = t
	return t
}

func uniqueKey(f *Field, v string) string {
	if f.CaseSensitive {
		return v
	}
	return strings.ToLower(v)
}

// dupKey is the duplicate-rule key of a record, or "" when a rule field is blank: blank
// fields never match, as in Salesforce's default matching rules.
func dupKey(fields []*Field, r *record) string {
	var b strings.Builder
	for i, f := range fields {
		v := r.get(f.Name)
		if v == nil {
			return ""
		}
		s := strings.ToLower(strings.TrimSpace(formatPlain(v)))
		if s == "" {
			return ""
		}
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(s)
	}
	return b.String()
}

// put stores a new version of a record and updates the indexes.
func (st *store) put(r *record) {
	old := st.records[r.id]
	if old != nil {
		st.unindex(old)
	} else {
		st.ids[r.obj] = append(st.ids[r.obj], r.id)
	}
	st.records[r.id] = r
	st.index(r)
	if r.deleted {
		st.bin[r.id] = r
	} else {
		delete(st.bin, r.id)
	}
}

func (st *store) index(r *record) {
	for _, f := range r.obj.fields {
		v, ok := r.fields[f.Name].(string)
		if !ok {
			continue
		}
		if f.Type == TypeReference {
			m := st.refs[f]
			if m == nil {
				m = map[string]map[string]struct{}{}
				st.refs[f] = m
			}
			set := m[v]
			if set == nil {
				set = map[string]struct{}{}
				m[v] = set
			}
			set[r.id] = struct{}{}
		}
		if f.Unique && !r.deleted {
			m := st.unique[f]
			if m == nil {
				m = map[string]string{}
				st.unique[f] = m
			}
			m[uniqueKey(f, v)] = r.id
		}
	}
	if rule := st.dupRules[r.obj]; rule != nil && !r.deleted {
		if key := dupKey(rule, r); key != "" {
			m := st.dups[r.obj]
			set := m[key]
			if set == nil {
				set = map[string]struct{}{}
				m[key] = set
			}
			set[r.id] = struct{}{}
		}
	}
}

func (st *store) unindex(r *record) {
	for _, f := range r.obj.fields {
		v, ok := r.fields[f.Name].(string)
		if !ok {
			continue
		}
		if f.Type == TypeReference {
			if set := st.refs[f][v]; set != nil {
				delete(set, r.id)
				if len(set) == 0 {
					delete(st.refs[f], v)
				}
			}
		}
		if f.Unique && !r.deleted {
			if m := st.unique[f]; m != nil && m[uniqueKey(f, v)] == r.id {
				delete(m, uniqueKey(f, v))
			}
		}
	}
	if rule := st.dupRules[r.obj]; rule != nil && !r.deleted {
		if key := dupKey(rule, r); key != "" {
			if set := st.dups[r.obj][key]; set != nil {
				delete(set, r.id)
				if len(set) == 0 {
					delete(st.dups[r.obj], key)
				}
			}
		}
	}
}

// setDupRule replaces an object's duplicate rule and rebuilds its index.
func (st *store) setDupRule(o *object, fields []*Field) {
	if len(fields) == 0 {
		delete(st.dupRules, o)
		delete(st.dups, o)
		return
	}
	st.dupRules[o] = fields
	st.dups[o] = map[string]map[string]struct{}{}
	for _, id := range st.ids[o] {
		r := st.records[id]
		if r == nil || r.deleted {
			continue
		}
		if key := dupKey(fields, r); key != "" {
			set := st.dups[o][key]
			if set == nil {
				set = map[string]struct{}{}
				st.dups[o][key] = set
			}
			set[id] = struct{}{}
		}
	}
}

// inBin reports whether a deleted record is still in the recycle bin at now.
func inBin(r *record, now time.Time) bool {
	return r.deleted && now.Sub(r.deletedAt) < recycleBinRetention
}

// purge removes records that left the recycle bin.
func (st *store) purge(now time.Time) {
	var gone []*record
	for _, r := range st.bin {
		if !inBin(r, now) {
			gone = append(gone, r)
		}
	}
	if len(gone) == 0 {
		return
	}
	drop := map[*object]map[string]bool{}
	for _, r := range gone {
		st.unindex(r)
		delete(st.records, r.id)
		delete(st.bin, r.id)
		if r.deletedAt.After(st.purgedUntil[r.obj]) {
			st.purgedUntil[r.obj] = r.deletedAt
		}
		if drop[r.obj] == nil {
			drop[r.obj] = map[string]bool{}
		}
		drop[r.obj][r.id] = true
	}
	for o, ids := range drop {
		st.ids[o] = slices.DeleteFunc(st.ids[o], func(id string) bool { return ids[id] })
	}
}

// each calls fn for every stored record of o (including the recycle bin) in creation order.
func (st *store) each(o *object, fn func(r *record) bool) {
	for _, id := range st.ids[o] {
		if r := st.records[id]; r != nil && !fn(r) {
			return
		}
	}
}

// referencing returns the records of any object whose reference field f holds id, in
// creation order.
func (st *store) referencing(f *Field, id string) []*record {
	set := st.refs[f][id]
	if len(set) == 0 {
		return nil
	}
	ids := make([]string, 0, len(set))
	for rid := range set {
		ids = append(ids, rid)
	}
	slices.Sort(ids)
	out := make([]*record, 0, len(ids))
	for _, rid := range ids {
		if r := st.records[rid]; r != nil {
			out = append(out, r)
		}
	}
	return out
}
