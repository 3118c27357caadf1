package sfsim

import (
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tandem-sync/tandem/pkg/sim/soql"
)

// FieldError is one error Salesforce reports for a record, with its status code
// (REQUIRED_FIELD_MISSING, STRING_TOO_LONG, DUPLICATES_DETECTED ...) and the fields concerned.
type FieldError struct {
	StatusCode string   `json:"statusCode"`
	Message    string   `json:"message"`
	Fields     []string `json:"fields"`
}

// RecordError is a save Salesforce refused; backdoor edits return it.
type RecordError struct {
	Object string
	ID     string
	Errors []FieldError
}

func (e *RecordError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.StatusCode + ": " + fe.Message
	}
	subject := e.Object
	if e.ID != "" {
		subject += " " + e.ID
	}
	return fmt.Sprintf("sfsim: save %s: %s", subject, strings.Join(parts, "; "))
}

// Errors of backdoor edits.
var (
	ErrUnknownObject = errors.New("sfsim: unknown object")
	ErrUnknownField  = errors.New("sfsim: unknown field")
	ErrNotFound      = errors.New("sfsim: record not found")
)

func fieldErr(code, msg string, fields ...string) []FieldError {
	if fields == nil {
		fields = []string{}
	}
	return []FieldError{{StatusCode: code, Message: msg, Fields: fields}}
}

// txn stages writes so that an allOrNone request can be rolled back: nothing reaches the
// store before commit, and lookups (uniqueness, duplicates, references) see staged records.
type txn struct {
	st      *store
	now     time.Time
	pending map[string]*record
	order   []string
	// locked reports whether a record is locked by an injected fault; nil for backdoor edits.
	locked func(id string) bool
	// deactivated lists users the transaction deactivates: their sessions end on commit.
	deactivated []string
	// sharing checks that the actor may write each record (Config.PrivateSharing): set for API
	// writes, never for backdoor edits, which an administrator makes.
	sharing bool
	// stamped is the SystemModstamp of the transaction's saves, once its first save took it,
	// or as the call that runs the transaction gave it (see saveAll).
	stamped time.Time
}

// stamp is the SystemModstamp of the transaction's saves: every record it saves shares it.
func (t *txn) stamp() time.Time {
	if t.stamped.IsZero() {
		t.stamped = t.st.stamp(t.now)
	}
	return t.stamped
}

func (st *store) begin(now time.Time, locked func(string) bool) *txn {
	return &txn{st: st, now: now, pending: map[string]*record{}, locked: locked}
}

func (t *txn) get(id string) *record {
	if r, ok := t.pending[id]; ok {
		return r
	}
	return t.st.records[id]
}

func (t *txn) stage(r *record) {
	if _, ok := t.pending[r.id]; !ok {
		t.order = append(t.order, r.id)
	}
	t.pending[r.id] = r
}

func (t *txn) commit() {
	t.st.changes.capture(t)
	for _, id := range t.order {
		t.st.put(t.pending[id])
	}
}

// fields maps API names to coerced values; a nil value sets the field to null.
type fields map[string]any

func (t *txn) insert(o *object, values fields, actor string) (string, []FieldError) {
	return t.create(o, values, actor, false, "")
}

// create inserts a record. system creates records of objects the API cannot create (users,
// by an administrator in Setup); id, when set, is the new record's id instead of a fresh one.
// An empty actor makes the record its own creator: the org's first user.
func (t *txn) create(o *object, values fields, actor string, system bool, id string) (string, []FieldError) {
	if !o.createable && !system {
		return "", fieldErr("INVALID_TYPE_FOR_OPERATION", "entity type cannot be inserted: "+o.name)
	}
	if errs := notWritable(o, values, func(f *Field) bool { return f.Createable }); errs != nil {
		return "", errs
	}
	if id == "" {
		id = t.st.nextID(o)
	}
	if actor == "" {
		actor = id
	}
	r := &record{obj: o, id: id, fields: map[string]any{}}
	for _, f := range o.fields {
		if f.Default != nil {
			r.fields[f.Name] = f.Default
		}
	}
	if o.field("OwnerId") != nil {
		r.fields["OwnerId"] = actor
	}
	for name, v := range values {
		if v == nil {
			delete(r.fields, name)
		} else {
			r.fields[name] = v
		}
	}
	if errs := t.validate(r, values, nil); errs != nil {
		return "", errs
	}
	if !system && !t.mayWrite(actor, r) {
		field := "OwnerId"
		if o.field(field) == nil {
			field = "EventId"
		}
		return "", fieldErr("INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", "insufficient access rights on cross-reference id: "+t.ownerOf(r), field)
	}
	stamp := t.stamp()
	r.fields["Id"] = r.id
	r.fields["IsDeleted"] = false
	r.fields["CreatedDate"] = stamp
	r.fields["CreatedById"] = actor
	r.fields["LastModifiedDate"] = stamp
	r.fields["LastModifiedById"] = actor
	r.fields["SystemModstamp"] = stamp
	t.stage(r)
	return r.id, nil
}

// lookup resolves an id for an update or delete of object o (nil: any object).
func (t *txn) lookup(o *object, id string) (*record, []FieldError) {
	norm, ok := NormalizeID(id)
	if !ok {
		return nil, fieldErr("MALFORMED_ID", "malformed id "+id)
	}
	owner := t.st.schema.objectOfID(norm)
	if o != nil && owner != o {
		return nil, fieldErr("MALFORMED_ID", fmt.Sprintf("%s ID: id value of incorrect type: %s", o.name, id), "Id")
	}
	r := t.get(norm)
	switch {
	case r == nil:
		return nil, fieldErr("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
	case r.deleted:
		return nil, fieldErr("ENTITY_IS_DELETED", "entity is deleted")
	}
	return r, nil
}

// mayWrite reports whether actor may write r under private sharing: as its owner, or holding
// Modify All. A record without an owner is governed by the record it belongs to (an invitee
// by its event); records of neither kind (users, profiles) are not restricted.
func (t *txn) mayWrite(actor string, r *record) bool {
	if !t.sharing || !t.st.privateSharing || t.st.modifyAll[actor] {
		return true
	}
	owner := t.ownerOf(r)
	return owner == "" || owner == actor
}

// ownerOf returns the user who owns r, or the owner of the event an EventRelation belongs to;
// empty for records nobody owns.
func (t *txn) ownerOf(r *record) string {
	if r.obj.field("OwnerId") != nil {
		return r.str("OwnerId")
	}
	if r.obj.name == "EventRelation" {
		if ev := t.get(r.str("EventId")); ev != nil {
			return ev.str("OwnerId")
		}
	}
	return ""
}

func (t *txn) lockError(id string) []FieldError {
	if t.locked != nil && t.locked(id) {
		return fieldErr("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records: "+id)
	}
	return nil
}

func (t *txn) update(o *object, id string, values fields, actor string) []FieldError {
	old, errs := t.lookup(o, id)
	if errs != nil {
		return errs
	}
	if errs := t.lockError(old.id); errs != nil {
		return errs
	}
	if !old.obj.updateable {
		return fieldErr("INVALID_TYPE_FOR_OPERATION", "entity type cannot be updated: "+old.obj.name)
	}
	if !t.mayWrite(actor, old) {
		return fieldErr("INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id")
	}
	return t.apply(old, values, actor, func(f *Field) bool { return f.Updateable })
}

// apply stores a changed version of old; writable says which fields the caller may set.
func (t *txn) apply(old *record, values fields, actor string, writable func(*Field) bool) []FieldError {
	if errs := notWritable(old.obj, values, writable); errs != nil {
		return errs
	}
	r := old.clone()
	for name, v := range values {
		if v == nil {
			delete(r.fields, name)
		} else {
			r.fields[name] = v
		}
	}
	if errs := t.validate(r, values, old); errs != nil {
		return errs
	}
	// Salesforce bumps SystemModstamp on every save, changed or not.
	stamp := t.stamp()
	r.fields["LastModifiedDate"] = stamp
	r.fields["LastModifiedById"] = actor
	r.fields["SystemModstamp"] = stamp
	t.stage(r)
	if old.obj.name == "User" && old.get("IsActive") == true && r.get("IsActive") == false {
		t.deactivated = append(t.deactivated, r.id)
	}
	return nil
}

func (t *txn) remove(o *object, id, actor string) (string, []FieldError) {
	r, errs := t.lookup(o, id)
	if errs != nil {
		return "", errs
	}
	if errs := t.lockError(r.id); errs != nil {
		return r.id, errs
	}
	if !r.obj.deletable {
		return r.id, fieldErr("INVALID_TYPE_FOR_OPERATION", "entity type cannot be deleted: "+r.obj.name)
	}
	if !t.mayWrite(actor, r) {
		return r.id, fieldErr("INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id")
	}
	t.softDelete(r, actor, "")
	return r.id, nil
}

func (t *txn) softDelete(r *record, actor, parent string) {
	d := r.clone()
	stamp := t.stamp()
	d.deleted, d.deletedAt, d.deletedWith = true, stamp, parent
	d.fields["IsDeleted"] = true
	d.fields["LastModifiedDate"] = stamp
	d.fields["LastModifiedById"] = actor
	d.fields["SystemModstamp"] = stamp
	t.stage(d)
	for _, c := range r.obj.children {
		if !c.cascade {
			continue
		}
		for _, child := range t.st.referencing(c.field, r.id) {
			if current := t.get(child.id); current != nil && !current.deleted && current.obj == c.child {
				t.softDelete(current, actor, r.id)
			}
		}
	}
}

func (t *txn) undelete(o *object, id, actor string) []FieldError {
	norm, ok := NormalizeID(id)
	if !ok {
		return fieldErr("MALFORMED_ID", "malformed id "+id)
	}
	r := t.get(norm)
	if r == nil || r.obj != o || !inBin(r, t.now) {
		return fieldErr("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
	}
	return t.restore(r, actor)
}

func (t *txn) restore(r *record, actor string) []FieldError {
	u := r.clone()
	u.deleted, u.deletedAt, u.deletedWith = false, time.Time{}, ""
	u.fields["IsDeleted"] = false
	if errs := t.checkUnique(u); errs != nil {
		return errs
	}
	stamp := t.stamp()
	u.fields["LastModifiedDate"] = stamp
	u.fields["LastModifiedById"] = actor
	u.fields["SystemModstamp"] = stamp
	t.stage(u)
	for _, c := range r.obj.children {
		if !c.cascade {
			continue
		}
		for _, child := range t.st.referencing(c.field, r.id) {
			if current := t.get(child.id); current != nil && current.deleted && current.deletedWith == r.id {
				if errs := t.restore(current, actor); errs != nil {
					return errs
				}
			}
		}
	}
	return nil
}

// notWritable rejects values for fields the operation may not set.
func notWritable(o *object, values fields, writable func(*Field) bool) []FieldError {
	var bad []string
	for name := range values {
		if f := o.field(name); f != nil && !writable(f) {
			bad = append(bad, f.Name)
		}
	}
	if bad == nil {
		return nil
	}
	slices.Sort(bad)
	return fieldErr("INVALID_FIELD_FOR_INSERT_UPDATE",
		fmt.Sprintf("Unable to create/update fields: %s. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", strings.Join(bad, ", ")),
		bad...)
}

// validate checks a record about to be saved; old is the stored version for an update.
// It also derives the computed fields (Name, the Event date fields).
func (t *txn) validate(r *record, values fields, old *record) []FieldError {
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	var errs []FieldError
	for _, name := range names {
		f := r.obj.field(name)
		v := r.get(f.Name)
		if v == nil {
			continue
		}
		errs = append(errs, t.checkValue(f, v, r)...)
	}
	if errs != nil {
		return errs
	}
	if r.obj.name == "Event" {
		if errs := normalizeEvent(r, values, old); errs != nil {
			return errs
		}
		t.deriveEventAccount(r)
	}
	if r.obj.nameFields != nil {
		var parts []string
		for _, n := range r.obj.nameFields {
			if n == "Salutation" {
				continue
			}
			if s := r.str(n); s != "" {
				parts = append(parts, s)
			}
		}
		if len(parts) > 0 {
			r.fields["Name"] = strings.Join(parts, " ")
		} else {
			delete(r.fields, "Name")
		}
	}
	var missing []string
	for _, f := range r.obj.fields {
		if f.required() && r.get(f.Name) == nil {
			missing = append(missing, f.Name)
		}
	}
	if missing != nil {
		return fieldErr("REQUIRED_FIELD_MISSING", fmt.Sprintf("Required fields are missing: [%s]", strings.Join(missing, ", ")), missing...)
	}
	if errs := t.checkUnique(r); errs != nil {
		return errs
	}
	return t.checkDuplicates(r)
}

// checkValue validates one field's value: length, email syntax, picklist values, references.
// It normalises reference ids to their 18-character form in place.
func (t *txn) checkValue(f *Field, v any, r *record) []FieldError {
	s, isString := v.(string)
	if f.isText() && isString {
		if n := utf8.RuneCountInString(s); f.Length > 0 && n > f.Length {
			shown := s
			if utf8.RuneCountInString(shown) > 80 {
				shown = string([]rune(shown)[:80]) + "..."
			}
			return fieldErr("STRING_TOO_LONG", fmt.Sprintf("%s: data value too large: %s (max length=%d)", f.Label, shown, f.Length), f.Name)
		}
	}
	switch {
	case f.Type == TypeEmail && isString:
		if !validEmail(s) {
			return fieldErr("INVALID_EMAIL_ADDRESS", fmt.Sprintf("%s: invalid email address: %s", f.Label, s), f.Name)
		}
	case (f.Type == TypePicklist || f.Type == TypeMultiPicklist) && f.RestrictedPicklist && isString:
		for _, part := range strings.Split(s, ";") {
			if !slices.Contains(f.PicklistValues, part) {
				return fieldErr("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", fmt.Sprintf("%s: bad value for restricted picklist field: %s", f.Label, part), f.Name)
			}
		}
	case f.Type == TypeReference && isString:
		id, errs := t.checkReference(f, s)
		if errs != nil {
			return errs
		}
		r.fields[f.Name] = id
	case f.Type == TypeID:
		return fieldErr("INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: Id.", f.Name)
	}
	return nil
}

func validEmail(s string) bool {
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	return at > 0 && strings.Contains(s[at+1:], ".") && !strings.ContainsAny(s, " ,;<>")
}

func (t *txn) checkReference(f *Field, v string) (string, []FieldError) {
	id, ok := NormalizeID(v)
	if !ok {
		return "", fieldErr("MALFORMED_ID", fmt.Sprintf("%s: id value of incorrect type: %s", f.Label, v), f.Name)
	}
	target := t.st.schema.objectOfID(id)
	if target == nil || !slices.Contains(f.ReferenceTo, target.name) {
		return "", fieldErr("FIELD_INTEGRITY_EXCEPTION", fmt.Sprintf("%s: id value of incorrect type: %s", f.Label, v), f.Name)
	}
	r := t.get(id)
	switch {
	case r == nil:
		return "", fieldErr("INVALID_CROSS_REFERENCE_KEY", fmt.Sprintf("invalid cross reference id: %s", v), f.Name)
	case r.deleted:
		return "", fieldErr("ENTITY_IS_DELETED", "entity is deleted", f.Name)
	case f.Name == "OwnerId" && r.get("IsActive") == false:
		return "", fieldErr("INACTIVE_OWNER_OR_USER", fmt.Sprintf("operation performed with inactive user [%s] as owner of %s", id, strings.ToLower(f.ReferenceTo[0])), f.Name)
	}
	return id, nil
}

func (t *txn) checkUnique(r *record) []FieldError {
	for _, f := range r.obj.fields {
		if !f.Unique {
			continue
		}
		v, ok := r.get(f.Name).(string)
		if !ok {
			continue
		}
		if holder := t.uniqueHolder(f, v, r.id); holder != "" {
			return fieldErr("DUPLICATE_VALUE", fmt.Sprintf("duplicate value found: %s duplicates value on record with id: %s", f.Name, holder), f.Name)
		}
	}
	return nil
}

// uniqueHolder returns the id of another live record whose unique field f holds v.
func (t *txn) uniqueHolder(f *Field, v, self string) string {
	key := uniqueKey(f, v)
	for _, id := range t.order {
		p := t.pending[id]
		if id == self || p.deleted {
			continue
		}
		if s, ok := p.get(f.Name).(string); ok && uniqueKey(f, s) == key && p.obj.field(f.Name) == f {
			return id
		}
	}
	id, ok := t.st.unique[f][key]
	if !ok || id == self {
		return ""
	}
	if p, staged := t.pending[id]; staged {
		s, _ := p.get(f.Name).(string)
		if p.deleted || uniqueKey(f, s) != key {
			return ""
		}
	}
	return id
}

func (t *txn) checkDuplicates(r *record) []FieldError {
	rule := t.st.dupRules[r.obj]
	if rule == nil {
		return nil
	}
	key := dupKey(rule, r)
	if key == "" {
		return nil
	}
	dup := false
	for _, id := range t.order {
		p := t.pending[id]
		if id != r.id && !p.deleted && p.obj == r.obj && dupKey(rule, p) == key {
			dup = true
			break
		}
	}
	if !dup {
		for id := range t.st.dups[r.obj][key] {
			if id == r.id {
				continue
			}
			if p, staged := t.pending[id]; staged && (p.deleted || dupKey(rule, p) != key) {
				continue
			}
			dup = true
			break
		}
	}
	if dup {
		return fieldErr("DUPLICATES_DETECTED", "Use one of these records?")
	}
	return nil
}

// maxEventDuration is the longest event Salesforce allows.
const maxEventDuration = 14 * 24 * time.Hour

// normalizeEvent derives an event's date fields from what was set, as Salesforce does:
// StartDateTime/EndDateTime, ActivityDateTime, ActivityDate and DurationInMinutes stay
// consistent, and an all-day event spans whole days from midnight GMT.
func normalizeEvent(r *record, values fields, old *record) []FieldError {
	set := func(name string) bool { _, ok := values[name]; return ok }
	allDay, _ := r.get("IsAllDayEvent").(bool)
	start, hasStart := r.get("StartDateTime").(time.Time)
	if set("ActivityDateTime") && !set("StartDateTime") {
		start, hasStart = r.get("ActivityDateTime").(time.Time)
	}
	end, hasEnd := r.get("EndDateTime").(time.Time)
	duration, hasDuration := r.get("DurationInMinutes").(int64)

	if allDay {
		day, hasDay := r.get("ActivityDate").(soql.Date)
		if !set("ActivityDate") && hasStart && (set("StartDateTime") || set("ActivityDateTime") || !hasDay) {
			day, hasDay = soql.DateOf(start.UTC()), true
		}
		if !hasDay {
			return fieldErr("REQUIRED_FIELD_MISSING", "Required fields are missing: [ActivityDate]", "ActivityDate")
		}
		days := int64(1)
		switch {
		case set("EndDateTime") && hasEnd:
			days = int64(soql.DateOf(end.UTC()).In(time.UTC).Sub(day.In(time.UTC))/(24*time.Hour)) + 1
		case set("DurationInMinutes") && hasDuration:
			days = (duration + 1439) / 1440
		case old != nil && old.get("IsAllDayEvent") == true:
			if d, ok := old.get("DurationInMinutes").(int64); ok {
				days = (d + 1439) / 1440
			}
		}
		if days < 1 {
			return fieldErr("FIELD_INTEGRITY_EXCEPTION", "End Date Time: End Date can't be earlier than the Start Date.", "EndDateTime")
		}
		if time.Duration(days)*24*time.Hour > maxEventDuration {
			return fieldErr("FIELD_INTEGRITY_EXCEPTION", "Event duration cannot exceed 14 days.", "DurationInMinutes")
		}
		startAt := day.In(time.UTC)
		r.fields["ActivityDate"] = day
		r.fields["StartDateTime"] = startAt
		r.fields["EndDateTime"] = startAt.Add(time.Duration(days-1) * 24 * time.Hour)
		r.fields["EndDate"] = day.AddDays(int(days - 1))
		r.fields["DurationInMinutes"] = days * 1440
		delete(r.fields, "ActivityDateTime")
		return nil
	}

	if !hasStart {
		return fieldErr("REQUIRED_FIELD_MISSING", "Required fields are missing: [StartDateTime]", "StartDateTime")
	}
	switch {
	case set("EndDateTime") && hasEnd:
	case set("DurationInMinutes") && hasDuration:
		end = start.Add(time.Duration(duration) * time.Minute)
	case old != nil && old.get("IsAllDayEvent") == false && hasDuration:
		// Moving an event keeps its length.
		end = start.Add(time.Duration(duration) * time.Minute)
	case !hasEnd:
		return fieldErr("REQUIRED_FIELD_MISSING", "Required fields are missing: [EndDateTime]", "EndDateTime")
	}
	if end.Before(start) {
		return fieldErr("FIELD_INTEGRITY_EXCEPTION", "End Date Time: End time can't be before start time.", "EndDateTime")
	}
	if end.Sub(start) > maxEventDuration {
		return fieldErr("FIELD_INTEGRITY_EXCEPTION", "Event duration cannot exceed 14 days.", "DurationInMinutes")
	}
	r.fields["StartDateTime"] = start
	r.fields["EndDateTime"] = end
	r.fields["ActivityDateTime"] = start
	r.fields["ActivityDate"] = soql.DateOf(start.UTC())
	r.fields["EndDate"] = soql.DateOf(end.UTC())
	r.fields["DurationInMinutes"] = int64(end.Sub(start) / time.Minute)
	return nil
}

// deriveEventAccount sets Event.AccountId from WhatId (an account) or the Who contact's account.
func (t *txn) deriveEventAccount(r *record) {
	delete(r.fields, "AccountId")
	if what := r.str("WhatId"); strings.HasPrefix(what, PrefixAccount) {
		r.fields["AccountId"] = what
		return
	}
	if who := r.str("WhoId"); strings.HasPrefix(who, PrefixContact) {
		if c := t.get(who); c != nil {
			if acct := c.str("AccountId"); acct != "" {
				r.fields["AccountId"] = acct
			}
		}
	}
}
