package sfsim

import (
	"fmt"
	"strings"
	"time"
)

// User is a Salesforce user to add to the org.
type User struct {
	// ID is optional: a valid user id (005...) to use instead of a generated one.
	ID        string
	Username  string
	Email     string
	FirstName string
	LastName  string
	// ProfileID is optional: the Standard User profile by default.
	ProfileID string
	IsActive  bool
	// TimeZoneSidKey is optional: America/Los_Angeles by default.
	TimeZoneSidKey string
	// ModifyAll grants "Modify All" on every object (a permission set): under
	// Config.PrivateSharing the user may write records owned by others. Users of the System
	// Administrator profile have it anyway ("Modify All Data").
	ModifyAll bool
}

// AddProfile returns the id of the profile with this name, creating it if needed.
func (s *Server) AddProfile(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.schema.object("Profile")
	var found string
	s.st.each(o, func(r *record) bool {
		if strings.EqualFold(r.str("Name"), name) {
			found = r.id
			return false
		}
		return true
	})
	if found != "" {
		return found
	}
	now := s.now()
	stamp := s.st.stamp(now)
	r := &record{obj: o, id: s.st.nextID(o), fields: map[string]any{
		"Name": name, "IsDeleted": false, "CreatedDate": stamp, "LastModifiedDate": stamp, "SystemModstamp": stamp,
	}}
	r.fields["Id"] = r.id
	if s.adminID != "" {
		r.fields["CreatedById"], r.fields["LastModifiedById"] = s.adminID, s.adminID
	}
	s.st.put(r)
	return r.id
}

// AddUser adds a user, as an administrator would in Setup. Usernames are unique (case-
// insensitively) and shaped like email addresses.
func (s *Server) AddUser(u User) (string, error) {
	if u.Username == "" || !strings.Contains(u.Username, "@") {
		return "", fmt.Errorf("sfsim: add user: username %q is not of the form name@domain", u.Username)
	}
	if u.LastName == "" {
		u.LastName = strings.SplitN(u.Username, "@", 2)[0]
	}
	if u.Email == "" {
		u.Email = u.Username
	}
	if u.TimeZoneSidKey == "" {
		u.TimeZoneSidKey = "America/Los_Angeles"
	}
	if u.ProfileID == "" {
		u.ProfileID = s.AddProfile("Standard User")
	}
	admin := s.AddProfile("System Administrator")
	alias := strings.ToLower(u.FirstName + u.LastName)
	if len(alias) > 8 {
		alias = alias[:8]
	}
	if alias == "" {
		alias = "user"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.schema.object("User")
	values := fields{"Username": u.Username, "Email": u.Email, "LastName": u.LastName, "Alias": alias,
		"ProfileId": u.ProfileID, "IsActive": u.IsActive, "TimeZoneSidKey": u.TimeZoneSidKey}
	if u.FirstName != "" {
		values["FirstName"] = u.FirstName
	}
	id := ""
	if u.ID != "" {
		norm, ok := NormalizeID(u.ID)
		if !ok || !strings.HasPrefix(norm, PrefixUser) {
			return "", fmt.Errorf("sfsim: add user %s: id %q is not a user id", u.Username, u.ID)
		}
		if s.st.records[norm] != nil {
			return "", fmt.Errorf("sfsim: add user %s: id %s is taken", u.Username, norm)
		}
		id = norm
	}
	now := s.now()
	t := s.st.begin(now, nil)
	newID, errs := t.create(o, values, s.adminID, true, id)
	if errs != nil {
		return "", &RecordError{Object: "User", Errors: errs}
	}
	t.commit()
	if u.ModifyAll || u.ProfileID == admin {
		s.st.modifyAll[newID] = true
	}
	return newID, nil
}

// backdoorValues resolves field names and coerces Go values for a backdoor edit.
func (s *Server) backdoorValues(o *object, in map[string]any) (fields, error) {
	out := fields{}
	for name, v := range in {
		if strings.EqualFold(name, "Id") {
			continue
		}
		f := o.field(name)
		if f == nil {
			return nil, fmt.Errorf("%w: %s.%s", ErrUnknownField, o.name, name)
		}
		val, err := coerce(f, v)
		if err != nil {
			return nil, fmt.Errorf("sfsim: %s.%s: %w", o.name, f.Name, err)
		}
		out[f.Name] = val
	}
	return out, nil
}

func (s *Server) actor(asUserID string) (string, error) {
	if asUserID == "" {
		return s.adminID, nil
	}
	id, ok := NormalizeID(asUserID)
	if !ok || s.st.records[id] == nil || s.st.records[id].obj.name != "User" {
		return "", fmt.Errorf("sfsim: %q is not a user of the org", asUserID)
	}
	return id, nil
}

// Insert creates a record as the user asUserID (the administrator when empty) would in the
// Salesforce UI: the same validation as the API, OwnerId defaulting to that user. Values are
// Go values: string, bool, int, int64, float64, time.Time (datetime, or a date's day), soql.Date
// or a "2006-01-02" string for dates, nil for null.
func (s *Server) Insert(object string, values map[string]any, asUserID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.backdoorTxn()
	id, err := s.insertIn(t, object, values, asUserID)
	if err != nil {
		return "", err
	}
	t.commit()
	return id, nil
}

// backdoorTxn starts the transaction of one backdoor write, purging the recycle bin first.
// The caller holds s.mu.
func (s *Server) backdoorTxn() *txn {
	now := s.now()
	s.st.purge(now)
	return s.st.begin(now, nil)
}

// insertIn creates a record in t as asUserID; see Insert. The caller holds s.mu.
func (s *Server) insertIn(t *txn, object string, values map[string]any, asUserID string) (string, error) {
	o := s.schema.object(object)
	if o == nil {
		return "", fmt.Errorf("%w: %s", ErrUnknownObject, object)
	}
	actor, err := s.actor(asUserID)
	if err != nil {
		return "", err
	}
	vals, err := s.backdoorValues(o, values)
	if err != nil {
		return "", err
	}
	id, errs := t.create(o, vals, actor, true, "")
	if errs != nil {
		return "", &RecordError{Object: o.name, Errors: errs}
	}
	return id, nil
}

// Update changes a record as a person in the UI would (an administrator may also edit
// users, e.g. deactivate one, which ends the user's sessions). SystemModstamp moves on.
func (s *Server) Update(object, id string, values map[string]any, asUserID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.backdoorTxn()
	if err := s.updateIn(t, object, id, values, asUserID); err != nil {
		return err
	}
	t.commit()
	s.afterCommit(t)
	return nil
}

// updateIn changes a record in t as asUserID; see Update. The caller holds s.mu.
func (s *Server) updateIn(t *txn, object, id string, values map[string]any, asUserID string) error {
	o := s.schema.object(object)
	if o == nil {
		return fmt.Errorf("%w: %s", ErrUnknownObject, object)
	}
	actor, err := s.actor(asUserID)
	if err != nil {
		return err
	}
	vals, err := s.backdoorValues(o, values)
	if err != nil {
		return err
	}
	old, errs := t.lookup(o, id)
	if errs == nil {
		errs = t.apply(old, vals, actor, func(f *Field) bool { return f.Updateable })
	}
	return recordErrors(o, id, errs, "")
}

// recordErrors turns a write's errors on the record id of o into the backdoor's error: a
// record that is not there is ErrNotFound (where, when given, says where it was looked for).
func recordErrors(o *object, id string, errs []FieldError, where string) error {
	if errs == nil {
		return nil
	}
	if errs[0].StatusCode == "INVALID_CROSS_REFERENCE_KEY" {
		return fmt.Errorf("%w: %s %s%s", ErrNotFound, o.name, id, where)
	}
	return &RecordError{Object: o.name, ID: id, Errors: errs}
}

// Delete moves a record (and the records whose deletion cascades from it) to the recycle
// bin, as the administrator.
func (s *Server) Delete(object, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.backdoorTxn()
	if err := s.deleteIn(t, object, id); err != nil {
		return err
	}
	t.commit()
	return nil
}

// deleteIn moves a record to the recycle bin in t, as the administrator; see Delete. The
// caller holds s.mu.
func (s *Server) deleteIn(t *txn, object, id string) error {
	o := s.schema.object(object)
	if o == nil {
		return fmt.Errorf("%w: %s", ErrUnknownObject, object)
	}
	_, errs := t.remove(o, id, s.adminID)
	return recordErrors(o, id, errs, "")
}

// Undelete restores a record from the recycle bin, with the records its deletion cascaded to.
func (s *Server) Undelete(object, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.schema.object(object)
	if o == nil {
		return fmt.Errorf("%w: %s", ErrUnknownObject, object)
	}
	t := s.backdoorTxn()
	if err := recordErrors(o, id, t.undelete(o, id, s.adminID), " in the recycle bin"); err != nil {
		return err
	}
	t.commit()
	return nil
}

// snapshot copies a record's non-null fields: datetimes as time.Time, dates as soql.Date.
func snapshot(r *record) map[string]any {
	out := make(map[string]any, len(r.fields))
	for k, v := range r.fields {
		out[k] = v
	}
	return out
}

// Get returns a record's fields, also for a record in the recycle bin (IsDeleted true).
func (s *Server) Get(object, id string) (map[string]any, bool) {
	norm, ok := NormalizeID(id)
	if !ok {
		return nil, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	o := s.schema.object(object)
	r := s.st.records[norm]
	if o == nil || r == nil || r.obj != o || (r.deleted && !inBin(r, s.now())) {
		return nil, false
	}
	return snapshot(r), true
}

// List returns the live (not deleted) records of an object in creation order.
func (s *Server) List(object string) []map[string]any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o := s.schema.object(object)
	if o == nil {
		return nil
	}
	var out []map[string]any
	s.st.each(o, func(r *record) bool {
		if !r.deleted {
			out = append(out, snapshot(r))
		}
		return true
	})
	return out
}

// SetDuplicateRule makes records of object whose fields all match (case-insensitively, blank
// fields never matching) duplicates: saving one fails with DUPLICATES_DETECTED. No fields
// removes the rule.
func (s *Server) SetDuplicateRule(object string, fieldNames ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.schema.object(object)
	if o == nil {
		return fmt.Errorf("%w: %s", ErrUnknownObject, object)
	}
	var rule []*Field
	for _, name := range fieldNames {
		f := o.field(name)
		if f == nil {
			return fmt.Errorf("%w: %s.%s", ErrUnknownField, o.name, name)
		}
		rule = append(rule, f)
	}
	s.st.setDupRule(o, rule)
	return nil
}

// AddField adds a custom field (its name ending in __c) to an object, e.g. Region__c on
// Contact.
func (s *Server) AddField(object string, f Field) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.schema.object(object)
	if o == nil {
		return fmt.Errorf("%w: %s", ErrUnknownObject, object)
	}
	if err := validateCustomField(o, f); err != nil {
		return fmt.Errorf("sfsim: %w", err)
	}
	f.Custom = true
	if f.Type == TypeBoolean {
		f.DefaultedOnCreate = true
		if f.Default == nil {
			f.Default = false
		}
	}
	o.addField(&f)
	return nil
}

// RemoveField deletes a field from an object, as an org that lacks it (Tandem_Sync_Key__c not
// installed, MiddleName not enabled). Stored values of the field disappear with it.
func (s *Server) RemoveField(object, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.schema.object(object)
	if o == nil {
		return fmt.Errorf("%w: %s", ErrUnknownObject, object)
	}
	f := o.field(name)
	if f == nil {
		return fmt.Errorf("%w: %s.%s", ErrUnknownField, o.name, name)
	}
	if f.Name == "Id" || f.Name == "SystemModstamp" || f.Name == "IsDeleted" {
		return fmt.Errorf("sfsim: %s.%s is a system field", o.name, f.Name)
	}
	s.st.each(o, func(r *record) bool {
		if _, ok := r.fields[f.Name]; ok {
			c := r.clone()
			delete(c.fields, f.Name)
			s.st.put(c)
		}
		return true
	})
	o.removeField(f.Name)
	delete(s.st.unique, f)
	delete(s.st.refs, f)
	return nil
}

// Now returns the simulator's current time.
func (s *Server) Now() time.Time { return s.now() }
