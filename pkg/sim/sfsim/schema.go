package sfsim

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tandem-sync/tandem/pkg/sim/soql"
)

// FieldType is a field's type as describe reports it.
type FieldType string

// Field types.
const (
	TypeID            FieldType = "id"
	TypeString        FieldType = "string"
	TypeTextArea      FieldType = "textarea"
	TypeEmail         FieldType = "email"
	TypePhone         FieldType = "phone"
	TypeURL           FieldType = "url"
	TypePicklist      FieldType = "picklist"
	TypeMultiPicklist FieldType = "multipicklist"
	TypeCombobox      FieldType = "combobox"
	TypeBoolean       FieldType = "boolean"
	TypeDateTime      FieldType = "datetime"
	TypeDate          FieldType = "date"
	TypeDouble        FieldType = "double"
	TypeInt           FieldType = "int"
	TypeReference     FieldType = "reference"
)

// Field describes one field of an object. Tests add custom fields with AddField.
type Field struct {
	Name  string
	Label string
	Type  FieldType
	// Length is the maximum length of a text field, in characters.
	Length        int
	ExternalID    bool
	Unique        bool
	CaseSensitive bool
	Nillable      bool
	Createable    bool
	Updateable    bool
	// DefaultedOnCreate fields get a value when a create leaves them out (OwnerId, booleans).
	DefaultedOnCreate bool
	Custom            bool
	// ReferenceTo lists the objects a reference field may point at; more than one makes the
	// relationship polymorphic (Event.Who: Contact or Lead).
	ReferenceTo      []string
	RelationshipName string
	PicklistValues   []string
	// RestrictedPicklist rejects values outside PicklistValues.
	RestrictedPicklist bool
	// Default is the value a create that leaves the field out gets.
	Default any
}

func (f *Field) isText() bool {
	switch f.Type {
	case TypeString, TypeTextArea, TypeEmail, TypePhone, TypeURL, TypePicklist, TypeMultiPicklist, TypeCombobox:
		return true
	}
	return false
}

// longText fields (long text areas) cannot be filtered or sorted in SOQL.
func (f *Field) longText() bool { return f.Type == TypeTextArea && f.Length > 255 }

func (f *Field) required() bool {
	return !f.Nillable && f.Createable && !f.DefaultedOnCreate && f.Type != TypeBoolean
}

func (f *Field) soqlType() soql.Type {
	switch f.Type {
	case TypeID, TypeReference:
		return soql.TypeID
	case TypeBoolean:
		return soql.TypeBoolean
	case TypeDouble, TypeInt:
		return soql.TypeNumber
	case TypeDate:
		return soql.TypeDate
	case TypeDateTime:
		return soql.TypeDateTime
	case TypeMultiPicklist:
		return soql.TypeMultiPicklist
	}
	return soql.TypeString
}

type childRel struct {
	name  string
	child *object
	field *Field
	// cascade deletes the children with the parent (Event's relations, Account's contacts).
	cascade bool
}

// object is one sObject type of the org's schema.
type object struct {
	name, label, labelPlural, keyPrefix string
	fields                              []*Field
	byName                              map[string]*Field // lower-cased name
	exact                               map[string]*Field // API name as spelt: the common case, without lower-casing
	parents                             map[string]*Field // lower-cased relationship name
	children                            []childRel
	createable, updateable, deletable   bool
	// nameFields compose the read-only Name field (FirstName MiddleName LastName).
	nameFields []string
	owner      *schema
}

func (o *object) field(name string) *Field {
	if f, ok := o.exact[name]; ok {
		return f
	}
	return o.byName[strings.ToLower(name)]
}

func (o *object) addField(f *Field) {
	if f.Label == "" {
		f.Label = labelOf(f.Name)
	}
	o.fields = append(o.fields, f)
	o.byName[strings.ToLower(f.Name)] = f
	o.exact[f.Name] = f
	if f.RelationshipName != "" {
		o.parents[strings.ToLower(f.RelationshipName)] = f
	}
}

func (o *object) removeField(name string) {
	f := o.field(name)
	if f == nil {
		return
	}
	o.fields = slices.DeleteFunc(o.fields, func(x *Field) bool { return x == f })
	delete(o.byName, strings.ToLower(name))
	delete(o.exact, f.Name)
	if f.RelationshipName != "" {
		delete(o.parents, strings.ToLower(f.RelationshipName))
	}
}

func (o *object) child(name string) (childRel, bool) {
	for _, c := range o.children {
		if strings.EqualFold(c.name, name) {
			return c, true
		}
	}
	return childRel{}, false
}

// labelOf turns an API name into a label: MailingPostalCode → Mailing Postal Code.
func labelOf(name string) string {
	name = strings.TrimSuffix(name, "__c")
	name = strings.TrimSuffix(name, "Id")
	var b strings.Builder
	for i, r := range name {
		if r == '_' {
			b.WriteByte(' ')
			continue
		}
		if i > 0 && 'A' <= r && r <= 'Z' && !('A' <= rune(name[i-1]) && rune(name[i-1]) <= 'Z') && name[i-1] != '_' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "Id"
	}
	return b.String()
}

// schema is the org's set of objects. Each Server has its own, since tests add fields.
type schema struct {
	objects  map[string]*object // lower-cased name
	byPrefix map[string]*object
	order    []*object
}

func (s *schema) object(name string) *object { return s.objects[strings.ToLower(name)] }

func (s *schema) objectOfID(id string) *object {
	if len(id) < 3 {
		return nil
	}
	return s.byPrefix[id[:3]]
}

func (s *schema) add(o *object) {
	o.owner = s
	s.objects[strings.ToLower(o.name)] = o
	s.byPrefix[o.keyPrefix] = o
	s.order = append(s.order, o)
}

func newObject(name, label, labelPlural, prefix string) *object {
	o := &object{
		name: name, label: label, labelPlural: labelPlural, keyPrefix: prefix,
		byName: map[string]*Field{}, exact: map[string]*Field{}, parents: map[string]*Field{},
		createable: true, updateable: true, deletable: true,
	}
	o.addField(&Field{Name: "Id", Label: label + " ID", Type: TypeID, Length: 18, DefaultedOnCreate: true})
	return o
}

// text builds a createable, updateable, nillable text field.
func text(name string, t FieldType, length int) *Field {
	return &Field{Name: name, Type: t, Length: length, Nillable: true, Createable: true, Updateable: true}
}

func required(f *Field) *Field {
	f.Nillable = false
	return f
}

func readOnly(f *Field) *Field {
	f.Createable, f.Updateable = false, false
	return f
}

func boolean(name string, def bool) *Field {
	return &Field{Name: name, Type: TypeBoolean, Createable: true, Updateable: true, DefaultedOnCreate: true, Default: def}
}

func reference(name, relationship string, to ...string) *Field {
	return &Field{Name: name, Type: TypeReference, Length: 18, Nillable: true, Createable: true, Updateable: true,
		ReferenceTo: to, RelationshipName: relationship}
}

func picklist(name string, restricted bool, values ...string) *Field {
	return &Field{Name: name, Type: TypePicklist, Length: 255, Nillable: true, Createable: true, Updateable: true,
		PicklistValues: values, RestrictedPicklist: restricted}
}

func (o *object) addOwner() {
	o.addField(&Field{Name: "OwnerId", Label: "Owner ID", Type: TypeReference, Length: 18, Createable: true, Updateable: true,
		DefaultedOnCreate: true, ReferenceTo: []string{"User"}, RelationshipName: "Owner"})
}

// addSystemFields adds the audit fields every object has.
func (o *object) addSystemFields() {
	o.addField(&Field{Name: "IsDeleted", Label: "Deleted", Type: TypeBoolean, DefaultedOnCreate: true})
	o.addField(&Field{Name: "CreatedDate", Label: "Created Date", Type: TypeDateTime, DefaultedOnCreate: true})
	o.addField(&Field{Name: "CreatedById", Label: "Created By ID", Type: TypeReference, Length: 18, DefaultedOnCreate: true,
		ReferenceTo: []string{"User"}, RelationshipName: "CreatedBy"})
	o.addField(&Field{Name: "LastModifiedDate", Label: "Last Modified Date", Type: TypeDateTime, DefaultedOnCreate: true})
	o.addField(&Field{Name: "LastModifiedById", Label: "Last Modified By ID", Type: TypeReference, Length: 18, DefaultedOnCreate: true,
		ReferenceTo: []string{"User"}, RelationshipName: "LastModifiedBy"})
	o.addField(&Field{Name: "SystemModstamp", Label: "System Modstamp", Type: TypeDateTime, DefaultedOnCreate: true})
}

// SyncKeyField is the external id field Tandem stores its sync key in, on Contact and Event.
const SyncKeyField = "Tandem_Sync_Key__c"

func syncKey() *Field {
	return &Field{Name: SyncKeyField, Label: "Tandem Sync Key", Type: TypeString, Length: 80, Nillable: true,
		Createable: true, Updateable: true, ExternalID: true, Unique: true, CaseSensitive: true, Custom: true}
}

// nameObject is the pseudo-object behind polymorphic relationships (Event.Who,
// EventRelation.Relation): the fields Salesforce exposes whatever the target's type.
const nameObject = "Name"

var nameObjectFields = map[string]soql.FieldInfo{
	"id":        {Name: "Id", Type: soql.TypeID, Filterable: true, Sortable: true},
	"name":      {Name: "Name", Type: soql.TypeString, Filterable: true, Sortable: true},
	"firstname": {Name: "FirstName", Type: soql.TypeString, Filterable: true, Sortable: true},
	"lastname":  {Name: "LastName", Type: soql.TypeString, Filterable: true, Sortable: true},
	"email":     {Name: "Email", Type: soql.TypeString, Filterable: true, Sortable: true},
	"phone":     {Name: "Phone", Type: soql.TypeString, Filterable: true, Sortable: true},
	"title":     {Name: "Title", Type: soql.TypeString, Filterable: true, Sortable: true},
	"type":      {Name: "Type", Type: soql.TypeString, Filterable: true, Sortable: true},
	"username":  {Name: "Username", Type: soql.TypeString, Filterable: true, Sortable: true},
	"isactive":  {Name: "IsActive", Type: soql.TypeBoolean, Filterable: true, Sortable: true},
	"alias":     {Name: "Alias", Type: soql.TypeString, Filterable: true, Sortable: true},
}

// defaultSchema builds the standard objects Tandem touches, with the fields, lengths and
// relationships Salesforce gives them.
func defaultSchema() *schema {
	s := &schema{objects: map[string]*object{}, byPrefix: map[string]*object{}}

	profile := newObject("Profile", "Profile", "Profile", PrefixProfile)
	profile.createable, profile.updateable, profile.deletable = false, false, false
	profile.addField(required(text("Name", TypeString, 255)))
	profile.addSystemFields()
	s.add(profile)

	user := newObject("User", "User", "Users", PrefixUser)
	user.createable, user.updateable, user.deletable = false, false, false
	user.addField(required(text("Username", TypeString, 80)))
	user.field("Username").Unique = true
	user.addField(text("FirstName", TypeString, 40))
	user.addField(required(text("LastName", TypeString, 80)))
	user.addField(readOnly(text("Name", TypeString, 121)))
	user.addField(required(text("Email", TypeEmail, 128)))
	user.addField(required(text("Alias", TypeString, 8)))
	user.addField(boolean("IsActive", true))
	user.addField(&Field{Name: "ProfileId", Label: "Profile ID", Type: TypeReference, Length: 18, Createable: true, Updateable: true,
		ReferenceTo: []string{"Profile"}, RelationshipName: "Profile"})
	user.addField(picklist("TimeZoneSidKey", true, "America/Los_Angeles", "America/New_York", "Europe/London", "Europe/Paris", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney", "GMT"))
	user.field("TimeZoneSidKey").Length = 40
	user.addField(text("Title", TypeString, 80))
	user.addField(text("Phone", TypePhone, 40))
	user.addField(picklist("UserType", true, "Standard"))
	user.field("UserType").Createable, user.field("UserType").Updateable = false, false
	user.field("UserType").DefaultedOnCreate, user.field("UserType").Default = true, "Standard"
	user.addSystemFields()
	user.nameFields = []string{"FirstName", "LastName"}
	s.add(user)

	account := newObject("Account", "Account", "Accounts", PrefixAccount)
	account.addField(required(text("Name", TypeString, 255)))
	account.addField(text("Phone", TypePhone, 40))
	account.addField(text("Website", TypeURL, 255))
	account.addField(picklist("Industry", false, "Agriculture", "Banking", "Consulting", "Education", "Energy", "Healthcare", "Manufacturing", "Media", "Retail", "Technology", "Transportation"))
	account.addField(text("BillingStreet", TypeTextArea, 255))
	account.addField(text("BillingCity", TypeString, 40))
	account.addField(text("BillingState", TypeString, 80))
	account.addField(text("BillingPostalCode", TypeString, 20))
	account.addField(text("BillingCountry", TypeString, 80))
	account.addField(text("Description", TypeTextArea, 32000))
	account.addOwner()
	account.addSystemFields()
	s.add(account)

	contact := newObject("Contact", "Contact", "Contacts", PrefixContact)
	contact.addField(reference("AccountId", "Account", "Account"))
	contact.field("AccountId").Label = "Account ID"
	contact.addField(picklist("Salutation", false, "Mr.", "Ms.", "Mrs.", "Dr.", "Prof."))
	contact.field("Salutation").Length = 40
	contact.addField(text("FirstName", TypeString, 40))
	contact.addField(text("MiddleName", TypeString, 40))
	contact.addField(required(text("LastName", TypeString, 80)))
	contact.addField(text("Suffix", TypeString, 40))
	contact.addField(readOnly(text("Name", TypeString, 121)))
	for _, prefix := range []string{"Mailing", "Other"} {
		contact.addField(text(prefix+"Street", TypeTextArea, 255))
		contact.addField(text(prefix+"City", TypeString, 40))
		contact.addField(text(prefix+"State", TypeString, 80))
		contact.addField(text(prefix+"PostalCode", TypeString, 20))
		contact.addField(text(prefix+"Country", TypeString, 80))
	}
	contact.addField(text("Phone", TypePhone, 40))
	contact.field("Phone").Label = "Business Phone"
	contact.addField(text("Fax", TypePhone, 40))
	contact.field("Fax").Label = "Business Fax"
	contact.addField(text("MobilePhone", TypePhone, 40))
	contact.addField(text("HomePhone", TypePhone, 40))
	contact.addField(text("OtherPhone", TypePhone, 40))
	contact.addField(text("AssistantPhone", TypePhone, 40))
	contact.field("AssistantPhone").Label = "Asst. Phone"
	contact.addField(text("AssistantName", TypeString, 40))
	contact.field("AssistantName").Label = "Assistant's Name"
	contact.addField(text("Email", TypeEmail, 80))
	contact.addField(text("Title", TypeString, 128))
	contact.addField(text("Department", TypeString, 80))
	contact.addField(picklist("LeadSource", false, "Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"))
	contact.addField(text("Birthdate", TypeDate, 0))
	contact.addField(text("Description", TypeTextArea, 32000))
	contact.field("Description").Label = "Contact Description"
	contact.addOwner()
	contact.addField(syncKey())
	contact.addSystemFields()
	contact.nameFields = []string{"Salutation", "FirstName", "MiddleName", "LastName", "Suffix"}
	s.add(contact)

	lead := newObject("Lead", "Lead", "Leads", PrefixLead)
	lead.addField(text("FirstName", TypeString, 40))
	lead.addField(required(text("LastName", TypeString, 80)))
	lead.addField(readOnly(text("Name", TypeString, 121)))
	lead.addField(required(text("Company", TypeString, 255)))
	lead.addField(text("Title", TypeString, 128))
	lead.addField(text("Email", TypeEmail, 80))
	lead.addField(text("Phone", TypePhone, 40))
	lead.addField(picklist("Status", true, "Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"))
	lead.field("Status").DefaultedOnCreate, lead.field("Status").Default = true, "Open - Not Contacted"
	lead.addField(boolean("IsConverted", false))
	lead.field("IsConverted").Createable, lead.field("IsConverted").Updateable = false, false
	lead.addOwner()
	lead.addSystemFields()
	lead.nameFields = []string{"FirstName", "LastName"}
	s.add(lead)

	event := newObject("Event", "Event", "Events", PrefixEvent)
	event.addField(reference("WhoId", "Who", "Contact", "Lead"))
	event.field("WhoId").Label = "Name ID"
	event.addField(reference("WhatId", "What", "Account"))
	event.field("WhatId").Label = "Related To ID"
	event.addField(&Field{Name: "Subject", Type: TypeCombobox, Length: 255, Nillable: true, Createable: true, Updateable: true,
		PicklistValues: []string{"Call", "Email", "Meeting", "Send Letter/Quote", "Other"}})
	event.addField(text("Location", TypeString, 255))
	event.addField(boolean("IsAllDayEvent", false))
	event.field("IsAllDayEvent").Label = "All-Day Event"
	event.addField(text("ActivityDateTime", TypeDateTime, 0))
	event.field("ActivityDateTime").Label = "Due Date Time"
	event.addField(text("ActivityDate", TypeDate, 0))
	event.field("ActivityDate").Label = "Due Date Only"
	event.addField(text("DurationInMinutes", TypeInt, 0))
	event.field("DurationInMinutes").Label = "Duration"
	event.addField(text("StartDateTime", TypeDateTime, 0))
	event.field("StartDateTime").Label = "Start Date Time"
	event.addField(text("EndDateTime", TypeDateTime, 0))
	event.field("EndDateTime").Label = "End Date Time"
	event.addField(readOnly(text("EndDate", TypeDate, 0)))
	event.addField(text("Description", TypeTextArea, 32000))
	event.addField(readOnly(reference("AccountId", "Account", "Account")))
	event.field("AccountId").Label = "Account ID"
	event.addOwner()
	event.field("OwnerId").Label = "Assigned To ID"
	event.addField(boolean("IsPrivate", false))
	event.field("IsPrivate").Label = "Private"
	event.addField(picklist("ShowAs", true, "Busy", "OutOfOffice", "Free"))
	event.field("ShowAs").Label = "Show Time As"
	event.field("ShowAs").Length = 40
	event.field("ShowAs").DefaultedOnCreate, event.field("ShowAs").Default = true, "Busy"
	event.addField(picklist("Type", false, "Call", "Email", "Meeting", "Other"))
	event.addField(readOnly(boolean("IsChild", false)))
	event.addField(readOnly(boolean("IsGroupEvent", false)))
	event.addField(boolean("IsReminderSet", false))
	event.addField(text("ReminderDateTime", TypeDateTime, 0))
	// Recurring series are stored as given; the simulator does not expand occurrences.
	event.addField(boolean("IsRecurrence", false))
	event.field("IsRecurrence").Label = "Create Recurring Series of Events"
	event.addField(text("RecurrenceStartDateTime", TypeDateTime, 0))
	event.addField(text("RecurrenceEndDateOnly", TypeDate, 0))
	event.addField(picklist("RecurrenceType", true, "RecursDaily", "RecursEveryWeekday", "RecursMonthly", "RecursMonthlyNth", "RecursWeekly", "RecursYearly", "RecursYearlyNth"))
	event.field("RecurrenceType").Length = 40
	event.addField(text("RecurrenceInterval", TypeInt, 0))
	event.addField(text("RecurrenceDayOfWeekMask", TypeInt, 0))
	event.addField(text("RecurrenceDayOfMonth", TypeInt, 0))
	event.addField(picklist("RecurrenceInstance", true, "First", "Second", "Third", "Fourth", "Last"))
	event.addField(picklist("RecurrenceMonthOfYear", true, "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"))
	event.addField(picklist("RecurrenceTimeZoneSidKey", false, "America/Los_Angeles", "America/New_York", "Europe/London", "Europe/Paris", "GMT"))
	event.addField(readOnly(reference("RecurrenceActivityId", "RecurrenceActivity", "Event")))
	event.addField(syncKey())
	event.addSystemFields()
	s.add(event)

	relation := newObject("EventRelation", "Event Relation", "Event Relations", PrefixEventRelation)
	relation.addField(required(reference("EventId", "Event", "Event")))
	relation.field("EventId").Updateable = false
	relation.addField(required(reference("RelationId", "Relation", "User", "Contact", "Lead")))
	relation.field("RelationId").Updateable = false
	relation.addField(picklist("Status", true, "New", "Accepted", "Declined"))
	relation.field("Status").Length = 40
	relation.field("Status").DefaultedOnCreate, relation.field("Status").Default = true, "New"
	relation.addField(text("Response", TypeString, 255))
	relation.addField(text("RespondedDate", TypeDateTime, 0))
	relation.addField(boolean("IsInvitee", true))
	relation.addField(boolean("IsParent", false))
	relation.addField(boolean("IsWhat", false))
	relation.addSystemFields()
	s.add(relation)

	// Child relationships: the names Salesforce gives them.
	account.children = append(account.children, childRel{name: "Contacts", child: contact, field: contact.field("AccountId"), cascade: true})
	contact.children = append(contact.children, childRel{name: "Events", child: event, field: event.field("WhoId")})
	event.children = append(event.children, childRel{name: "EventRelations", child: relation, field: relation.field("EventId"), cascade: true})
	return s
}

// soqlSchema adapts the schema to soql.Check.
type soqlSchema struct{ s *schema }

func (a soqlSchema) Object(name string) (string, bool) {
	o := a.s.object(name)
	if o == nil {
		return "", false
	}
	return o.name, true
}

func (a soqlSchema) Field(object, field string) (soql.FieldInfo, bool) {
	if object == nameObject {
		f, ok := nameObjectFields[strings.ToLower(field)]
		return f, ok
	}
	o := a.s.object(object)
	if o == nil {
		return soql.FieldInfo{}, false
	}
	f := o.field(field)
	if f == nil {
		return soql.FieldInfo{}, false
	}
	return soql.FieldInfo{Name: f.Name, Type: f.soqlType(), Filterable: !f.longText(), Sortable: !f.longText()}, true
}

func (a soqlSchema) Parent(object, relationship string) (string, bool) {
	o := a.s.object(object)
	if o == nil {
		return "", false
	}
	f := o.parents[strings.ToLower(relationship)]
	if f == nil {
		return "", false
	}
	if len(f.ReferenceTo) != 1 {
		return nameObject, true
	}
	return f.ReferenceTo[0], true
}

func (a soqlSchema) Child(object, relationship string) (string, bool) {
	o := a.s.object(object)
	if o == nil {
		return "", false
	}
	c, ok := o.child(relationship)
	if !ok {
		return "", false
	}
	return c.child.name, true
}

// validateCustomField checks a field a test adds.
func validateCustomField(o *object, f Field) error {
	if !strings.HasSuffix(f.Name, "__c") {
		return fmt.Errorf("custom field %s.%s: API name must end in __c", o.name, f.Name)
	}
	if o.field(f.Name) != nil {
		return fmt.Errorf("custom field %s.%s already exists", o.name, f.Name)
	}
	switch f.Type {
	case TypeString, TypeTextArea, TypeEmail, TypePhone, TypeURL, TypePicklist, TypeMultiPicklist, TypeCombobox:
		if f.Length <= 0 {
			return fmt.Errorf("custom field %s.%s: a text field needs a length", o.name, f.Name)
		}
	case TypeBoolean, TypeDateTime, TypeDate, TypeDouble, TypeInt, TypeReference:
	default:
		return fmt.Errorf("custom field %s.%s: unsupported type %q", o.name, f.Name, f.Type)
	}
	return nil
}
