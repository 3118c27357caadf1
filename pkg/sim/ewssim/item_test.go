package ewssim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

const syncKeyURI = `<t:ExtendedFieldURI PropertySetId="8a58e8c4-1d39-4c4b-9f1e-1f0a9a2b7c11" PropertyName="TandemSyncKey" PropertyType="String"/>`

func createContact(t *testing.T, e *env, folderID, syncKey string) (id, changeKey string) {
	t.Helper()
	r := e.file("create-contact.xml", map[string]any{
		"Mailbox": alice, "FolderID": folderID, "Notes": "Met at the fair & liked the demo.", "SyncKey": syncKey,
		"Surname": "Müller", "GivenName": "François", "Company": "Société Générale", "Email": "francois@example.com",
	}, reqOpts{})
	if got := r.codes(); !slices.Equal(got, []string{"NoError"}) {
		t.Fatalf("CreateItem codes = %v: %s", got, r.body)
	}
	ids, keys := itemIDs(r.response())
	return ids[0], keys[0]
}

func TestCreateAndGetContact(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	id, ck := createContact(t, e, folder, "sk-0001")
	r := e.file("get-item.xml", map[string]any{"Mailbox": alice, "IDs": []string{id}}, reqOpts{})
	if got := r.codes(); !slices.Equal(got, []string{"NoError"}) {
		t.Fatalf("GetItem codes = %v: %s", got, r.body)
	}
	c := r.response().FindElement(".//Items/Contact")
	for _, a := range []struct{ path, name, want string }{
		{"ItemId", "ChangeKey", ck}, {"ParentFolderId", "Id", folder}, {"Body", "BodyType", "Text"},
	} {
		if got := attr(c, a.path, a.name); got != a.want {
			t.Errorf("%s/@%s = %q, want %q", a.path, a.name, got, a.want)
		}
	}
	checks := map[string]string{
		"ItemClass":         "IPM.Contact",
		"Subject":           "François Q. Müller",
		"DisplayName":       "François Q. Müller",
		"FileAs":            "Müller, François",
		"GivenName":         "François",
		"MiddleName":        "Q.",
		"Nickname":          "Fran",
		"Surname":           "Müller",
		"CompanyName":       "Société Générale",
		"JobTitle":          "Directrice commerciale",
		"Department":        "Achats",
		"Body":              "Met at the fair & liked the demo.",
		"Birthday":          "1980-05-17T11:59:00Z",
		"Categories/String": "Customer",
		"EmailAddresses/Entry[@Key='EmailAddress1']":      "francois@example.com",
		"EmailAddresses/Entry[@Key='EmailAddress2']":      "private@example.org",
		"PhoneNumbers/Entry[@Key='BusinessPhone']":        "+33 1 99 00 12 34",
		"PhoneNumbers/Entry[@Key='MobilePhone']":          "+33 6 99 00 12 34",
		"PhoneNumbers/Entry[@Key='BusinessFax']":          "+33 1 99 00 12 35",
		"PhysicalAddresses/Entry[@Key='Business']/Street": "1 Rue de Rivoli\nBâtiment B",
		"PhysicalAddresses/Entry[@Key='Business']/State":  "Île-de-France",
		"PhysicalAddresses/Entry[@Key='Home']/City":       "Lyon",
		"CompleteName/FullName":                           "François Q. Müller",
	}
	for path, want := range checks {
		if got := text(c, path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if v, _ := extValue(c, "PropertyName", "TandemSyncKey"); v != "sk-0001" {
		t.Errorf("sync key = %q", v)
	}
	if v, _ := extValue(c, "PropertyId", "34567"); v != "42" {
		t.Errorf("integer property = %q", v)
	}
	// The tag-addressed property was asked for but never set: it must be absent.
	if _, ok := extValue(c, "PropertyTag", "0x3A45"); ok {
		t.Error("an unset extended property was returned")
	}
	items := e.sim.Items(alice, SyncFolderName)
	if len(items) != 1 || items[0].Contact.Email("EmailAddress1") != "francois@example.com" {
		t.Fatalf("Items = %+v", items)
	}

	// Indexed additional properties return just the requested entries and parts.
	g := e.mustOK(`<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>` +
		`<t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress2"/>` +
		`<t:IndexedFieldURI FieldURI="contacts:PhysicalAddress:City" FieldIndex="Business"/>` +
		`</t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="` + id + `"/></m:ItemIds></m:GetItem>`)
	c = g.FindElement(".//Items/Contact")
	var got []string
	for _, x := range c.FindElements(".//Entry") {
		got = append(got, x.SelectAttrValue("Key", "")+"="+strings.TrimSpace(x.Text()))
		for _, part := range x.ChildElements() {
			got = append(got, part.Tag+"="+part.Text())
		}
	}
	if want := []string{"EmailAddress2=private@example.org", "Business=", "City=Paris"}; !slices.Equal(got, want) {
		t.Errorf("indexed properties = %q, want %q", got, want)
	}
}

func TestCreateAndGetEvent(t *testing.T) {
	e := newEnv(t)
	r := e.file("create-event.xml", map[string]any{"Mailbox": alice, "Subject": "Revue trimestrielle", "SyncKey": "ev-1", "Invitations": "SendToNone"}, reqOpts{})
	if got := r.codes(); !slices.Equal(got, []string{"NoError"}) {
		t.Fatalf("codes = %v: %s", got, r.body)
	}
	ids, _ := itemIDs(r.response())
	if got := e.sim.Counts()["MeetingInvitationsSent"]; got != 0 {
		t.Errorf("MeetingInvitationsSent = %d with SendToNone", got)
	}
	g := e.mustOK(`<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="` + ids[0] + `"/></m:ItemIds></m:GetItem>`)
	ci := g.FindElement(".//Items/CalendarItem")
	checks := map[string]string{
		// Times without an offset are wall-clock times in the item's StartTimeZone (CET here).
		"Start":                          "2026-03-16T08:00:00Z",
		"End":                            "2026-03-16T09:30:00Z",
		"Duration":                       "PT1H30M",
		"Subject":                        "Revue trimestrielle",
		"Sensitivity":                    "Private",
		"Location":                       "Salle Vendôme",
		"LegacyFreeBusyStatus":           "Tentative",
		"CalendarItemType":               "RecurringMaster",
		"IsMeeting":                      "true",
		"ReminderIsSet":                  "false",
		"Organizer/Mailbox/EmailAddress": alice,
		"RequiredAttendees/Attendee/Mailbox/EmailAddress":   bob,
		"RequiredAttendees/Attendee/ResponseType":           "Unknown",
		"OptionalAttendees/Attendee/Mailbox/EmailAddress":   "carol@fabrikam.example.com",
		"Recurrence/WeeklyRecurrence/DaysOfWeek":            "Monday Thursday",
		"Recurrence/NumberedRecurrence/NumberOfOccurrences": "10",
		"Body": "<p>Agenda &amp; goals</p>",
	}
	for p, want := range checks {
		if got := text(ci, p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if got := attr(ci, "StartTimeZone", "Id"); got != "W. Europe Standard Time" {
		t.Errorf("StartTimeZone = %q", got)
	}
	if uid := text(ci, "UID"); !strings.HasPrefix(uid, "040000008200E00074C5B7101A82E008") {
		t.Errorf("UID = %q, want an Outlook global object id", uid)
	}
	// Text body requested: the HTML is converted.
	g = e.mustOK(`<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:BodyType>Text</t:BodyType><t:AdditionalProperties><t:FieldURI FieldURI="item:Body"/></t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="` + ids[0] + `"/></m:ItemIds></m:GetItem>`)
	if got := text(g, ".//Body"); got != "Agenda & goals" {
		t.Errorf("text body = %q", got)
	}
}

func TestCreateItemErrors(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	contact := `<t:Contact><t:GivenName>A</t:GivenName></t:Contact>`
	event := `<t:CalendarItem><t:Subject>S</t:Subject><t:Start>2026-03-16T09:00:00Z</t:Start><t:End>2026-03-16T10:00:00Z</t:End></t:CalendarItem>`
	tests := []struct {
		name  string
		op    string
		codes []string
		fault string
	}{
		{"contact in calendar", `<m:CreateItem><m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId><m:Items>` + contact + `</m:Items></m:CreateItem>`, []string{"ErrorCannotCreateContactInNonContactFolder"}, ""},
		{"event without SendMeetingInvitations", `<m:CreateItem><m:Items>` + event + `</m:Items></m:CreateItem>`, []string{"ErrorSendMeetingInvitationsRequired"}, ""},
		{"event in contacts", `<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId><t:FolderId Id="` + folder + `"/></m:SavedItemFolderId><m:Items>` + event + `</m:Items></m:CreateItem>`, []string{"ErrorCannotCreateCalendarItemInNonCalendarFolder"}, ""},
		{"end before start", `<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem><t:Start>2026-03-16T10:00:00Z</t:Start><t:End>2026-03-16T09:00:00Z</t:End></t:CalendarItem></m:Items></m:CreateItem>`, []string{"ErrorCalendarEndDateIsEarlierThanStartDate"}, ""},
		{"read-only property", `<m:CreateItem><m:Items><t:Contact><t:DateTimeCreated>2026-01-01T00:00:00Z</t:DateTimeCreated></t:Contact></m:Items></m:CreateItem>`, []string{"ErrorInvalidPropertySet"}, ""},
		{"unsupported item type", `<m:CreateItem><m:Items><t:Task><t:Subject>x</t:Subject></t:Task></m:Items></m:CreateItem>`, []string{"ErrorInvalidItemForOperationCreateItem"}, ""},
		{"message saved", `<m:CreateItem MessageDisposition="SaveOnly"><m:Items><t:Message><t:Subject>x</t:Subject><t:IsRead>false</t:IsRead></t:Message></m:Items></m:CreateItem>`, []string{"NoError"}, ""},
		{"message sent", `<m:CreateItem MessageDisposition="SendOnly"><m:Items><t:Message><t:Subject>x</t:Subject></t:Message></m:Items></m:CreateItem>`, []string{"ErrorInvalidOperation"}, ""},
		{"message without disposition", `<m:CreateItem><m:Items><t:Message><t:Subject>x</t:Subject></t:Message></m:Items></m:CreateItem>`, []string{"ErrorMessageDispositionRequired"}, ""},
		{"weekly without days", `<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem><t:Recurrence><t:DailyRecurrence><t:Interval>0</t:Interval></t:DailyRecurrence><t:NoEndRecurrence><t:StartDate>2026-03-16</t:StartDate></t:NoEndRecurrence></t:Recurrence></t:CalendarItem></m:Items></m:CreateItem>`, []string{"ErrorCalendarInvalidRecurrence"}, ""},
		{"bad extended value", `<m:CreateItem><m:Items><t:Contact><t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="n" PropertyType="Integer"/><t:Value>abc</t:Value></t:ExtendedProperty></t:Contact></m:Items></m:CreateItem>`, []string{"ErrorInvalidExtendedPropertyValue"}, ""},
		{"bad extended uri", `<m:CreateItem><m:Items><t:Contact><t:ExtendedProperty><t:ExtendedFieldURI PropertyName="n" PropertyType="String"/><t:Value>abc</t:Value></t:ExtendedProperty></t:Contact></m:Items></m:CreateItem>`, []string{"ErrorInvalidExtendedProperty"}, ""},
		{"out of order", `<m:CreateItem><m:Items><t:Contact><t:Surname>Z</t:Surname><t:GivenName>A</t:GivenName></t:Contact></m:Items></m:CreateItem>`, nil, "ErrorSchemaValidation"},
		{"unknown element", `<m:CreateItem><m:Items><t:Contact><t:FirstName>A</t:FirstName></t:Contact></m:Items></m:CreateItem>`, nil, "ErrorSchemaValidation"},
		{"wrong namespace", `<m:CreateItem><m:Items><m:Contact><t:GivenName>A</t:GivenName></m:Contact></m:Items></m:CreateItem>`, nil, "ErrorSchemaValidation"},
		{"bad email key", `<m:CreateItem><m:Items><t:Contact><t:EmailAddresses><t:Entry Key="Email1">a@b.c</t:Entry></t:EmailAddresses></t:Contact></m:Items></m:CreateItem>`, nil, "ErrorSchemaValidation"},
		{"bad boolean", `<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem><t:IsAllDayEvent>yes</t:IsAllDayEvent></t:CalendarItem></m:Items></m:CreateItem>`, nil, "ErrorSchemaValidation"},
		{"body without type", `<m:CreateItem><m:Items><t:Contact><t:Body>x</t:Body></t:Contact></m:Items></m:CreateItem>`, nil, "ErrorSchemaValidation"},
		{"batch with one bad item", `<m:CreateItem><m:SavedItemFolderId><t:FolderId Id="` + folder + `"/></m:SavedItemFolderId><m:Items>` + contact + `<t:Contact><t:Size>3</t:Size></t:Contact>` + contact + `</m:Items></m:CreateItem>`, []string{"NoError", "ErrorInvalidPropertySet", "NoError"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.ews(tc.op, reqOpts{})
			if tc.fault != "" {
				if r.status != http.StatusInternalServerError || r.faultCode() != tc.fault {
					t.Fatalf("status %d fault %q, want 500 %s: %s", r.status, r.faultCode(), tc.fault, r.body)
				}
				return
			}
			if got := r.codes(); !slices.Equal(got, tc.codes) {
				t.Fatalf("codes = %v, want %v: %s", got, tc.codes, r.body)
			}
		})
	}
}

// TestBatchPerItemErrors checks that a batch answers one response message per item, in order,
// with errors confined to the items they concern.
func TestBatchPerItemErrors(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	id, _ := createContact(t, e, folder, "k1")
	bobID, err := e.sim.PutContact(bob, "contacts", Contact{GivenName: "Bob's"})
	if err != nil {
		t.Fatal(err)
	}
	unknown := encodeID(mailboxGUID(alice), objItem, 999999)
	r := e.file("get-item.xml", map[string]any{"Mailbox": alice, "IDs": []string{id, unknown, "!!not base64!!", bobID, id}}, reqOpts{})
	want := []string{"NoError", "ErrorItemNotFound", "ErrorInvalidIdMalformed", "ErrorItemNotFound", "NoError"}
	if got := r.codes(); !slices.Equal(got, want) {
		t.Fatalf("GetItem codes = %v, want %v", got, want)
	}
	for i, m := range r.messages() {
		n := len(m.FindElements("Items/*"))
		if (want[i] == "NoError") != (n == 1) {
			t.Errorf("message %d has %d items", i, n)
		}
	}
	r = e.file("delete-item.xml", map[string]any{"Mailbox": alice, "IDs": []string{unknown, id, id}, "DeleteType": "HardDelete"}, reqOpts{})
	if got, want := r.codes(), []string{"ErrorItemNotFound", "NoError", "ErrorItemNotFound"}; !slices.Equal(got, want) {
		t.Fatalf("DeleteItem codes = %v, want %v", got, want)
	}
}

func TestUpdateContact(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	id, ck := createContact(t, e, folder, "sk-1")
	r := e.file("update-contact.xml", map[string]any{"Mailbox": alice, "ID": id, "ChangeKey": ck, "Conflict": "NeverOverwrite", "GivenName": "Françoise", "SyncKey": "sk-2"}, reqOpts{})
	if got := r.codes(); !slices.Equal(got, []string{"NoError"}) {
		t.Fatalf("codes = %v: %s", got, r.body)
	}
	_, keys := itemIDs(r.response())
	if keys[0] == ck || keys[0] == "" {
		t.Errorf("ChangeKey did not change: %q", keys[0])
	}
	if got := text(r.response(), ".//ConflictResults/Count"); got != "0" {
		t.Errorf("ConflictResults/Count = %q", got)
	}
	items := e.sim.Items(alice, SyncFolderName)
	c := items[0].Contact
	if c.GivenName != "Françoise" || c.Email("EmailAddress3") != "third@example.org" || c.Email("EmailAddress1") != "francois@example.com" {
		t.Errorf("names/emails after update: %+v", c)
	}
	if a, _ := c.Address("Business"); a.Street != "99 Avenue des Champs-Élysées" || a.City != "Paris" {
		t.Errorf("business address = %+v", a)
	}
	if _, ok := c.Address("Home"); ok {
		t.Error("home address should be gone once its only part was deleted")
	}
	if c.JobTitle != "" || c.Phone("MobilePhone") != "" || c.Phone("BusinessPhone") == "" {
		t.Errorf("deletes: JobTitle %q Mobile %q Business %q", c.JobTitle, c.Phone("MobilePhone"), c.Phone("BusinessPhone"))
	}
	if c.Body != "Met at the fair & liked the demo. (updated)" {
		t.Errorf("Body = %q", c.Body)
	}
	if got := dumpExtended(c.ExtendedProperties)["TandemSyncKey"]; got != "sk-2" {
		t.Errorf("sync key = %q", got)
	}
	if items[0].ChangeKey != keys[0] {
		t.Errorf("stored ChangeKey %q != returned %q", items[0].ChangeKey, keys[0])
	}
}

func TestUpdateEvent(t *testing.T) {
	e := newEnv(t)
	r := e.file("create-event.xml", map[string]any{"Mailbox": alice, "Subject": "S", "SyncKey": "k", "Invitations": "SendToNone"}, reqOpts{})
	ids, keys := itemIDs(r.response())
	r = e.file("update-event.xml", map[string]any{"Mailbox": alice, "ID": ids[0], "ChangeKey": keys[0]}, reqOpts{})
	if got := r.codes(); !slices.Equal(got, []string{"ErrorSendMeetingInvitationsOrCancellationsRequired"}) {
		t.Fatalf("without SendMeetingInvitationsOrCancellations: %v", got)
	}
	r = e.file("update-event.xml", map[string]any{"Mailbox": alice, "ID": ids[0], "ChangeKey": keys[0], "Send": "SendToNone"}, reqOpts{})
	if got := r.codes(); !slices.Equal(got, []string{"NoError"}) {
		t.Fatalf("codes = %v: %s", got, r.body)
	}
	ev := e.sim.Items(alice, "calendar")[0].CalendarItem
	if !ev.Start.Equal(time.Date(2026, 3, 17, 14, 0, 0, 0, time.UTC)) || ev.Location != "Room 2" || ev.Recurrence != nil ||
		len(ev.RequiredAttendees) != 2 || ev.CalendarItemType() != "Single" {
		t.Errorf("event after update: %+v", ev)
	}
	if got := e.sim.Counts()["MeetingInvitationsSent"]; got != 0 {
		t.Errorf("MeetingInvitationsSent = %d", got)
	}
}

func TestChangeKeyConflicts(t *testing.T) {
	tests := []struct {
		name     string
		conflict string
		stale    bool
		omitKey  bool
		want     string
	}{
		{"current key, NeverOverwrite", "NeverOverwrite", false, false, "NoError"},
		{"stale key, NeverOverwrite", "NeverOverwrite", true, false, "ErrorIrresolvableConflict"},
		{"stale key, AutoResolve", "AutoResolve", true, false, "ErrorIrresolvableConflict"},
		{"stale key, AlwaysOverwrite", "AlwaysOverwrite", true, false, "NoError"},
		{"no key", "NeverOverwrite", false, true, "NoError"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			id, ck := createContact(t, e, e.syncFolderID(alice), "k")
			if tc.stale {
				if err := e.sim.UpdateItem(alice, id, func(it *Item) { it.Contact.JobTitle = "CEO" }); err != nil {
					t.Fatal(err)
				}
			}
			if tc.omitKey {
				ck = ""
			}
			r := e.file("update-contact.xml", map[string]any{"Mailbox": alice, "ID": id, "ChangeKey": ck, "Conflict": tc.conflict, "GivenName": "X", "SyncKey": "k"}, reqOpts{})
			if got := r.codes(); !slices.Equal(got, []string{tc.want}) {
				t.Fatalf("codes = %v, want %s", got, tc.want)
			}
			given := e.sim.Items(alice, SyncFolderName)[0].Contact.GivenName
			if (tc.want == "NoError") != (given == "X") {
				t.Errorf("GivenName = %q after %s", given, tc.want)
			}
		})
	}
}

func TestUpdateItemErrors(t *testing.T) {
	e := newEnv(t)
	id, _ := createContact(t, e, e.syncFolderID(alice), "k")
	change := func(updates string) string {
		return `<m:UpdateItem ConflictResolution="AlwaysOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="` + id + `"/><t:Updates>` + updates + `</t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>`
	}
	tests := []struct {
		name, updates, want string
	}{
		{"two properties in one set", `<t:SetItemField><t:FieldURI FieldURI="contacts:GivenName"/><t:Contact><t:GivenName>A</t:GivenName><t:Surname>B</t:Surname></t:Contact></t:SetItemField>`, "ErrorIncorrectUpdatePropertyCount"},
		{"path and property differ", `<t:SetItemField><t:FieldURI FieldURI="contacts:GivenName"/><t:Contact><t:Surname>B</t:Surname></t:Contact></t:SetItemField>`, "ErrorIncorrectUpdatePropertyCount"},
		{"index and entry differ", `<t:SetItemField><t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress1"/><t:Contact><t:EmailAddresses><t:Entry Key="EmailAddress2">x@y.z</t:Entry></t:EmailAddresses></t:Contact></t:SetItemField>`, "ErrorIncorrectUpdatePropertyCount"},
		{"calendar path on contact", `<t:SetItemField><t:FieldURI FieldURI="calendar:Location"/><t:CalendarItem><t:Location>x</t:Location></t:CalendarItem></t:SetItemField>`, "ErrorInvalidPropertySet"},
		{"wrong item type", `<t:SetItemField><t:FieldURI FieldURI="item:Subject"/><t:CalendarItem><t:Subject>x</t:Subject></t:CalendarItem></t:SetItemField>`, "ErrorObjectTypeChanged"},
		{"read-only", `<t:SetItemField><t:FieldURI FieldURI="item:Size"/><t:Contact><t:Size>1</t:Size></t:Contact></t:SetItemField>`, "ErrorInvalidPropertySet"},
		{"append to name", `<t:AppendToItemField><t:FieldURI FieldURI="contacts:GivenName"/><t:Contact><t:GivenName>x</t:GivenName></t:Contact></t:AppendToItemField>`, "ErrorInvalidPropertyAppend"},
		{"delete read-only", `<t:DeleteItemField><t:FieldURI FieldURI="item:DateTimeCreated"/></t:DeleteItemField>`, "ErrorInvalidPropertyDelete"},
		{"bad email index", `<t:DeleteItemField><t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress4"/></t:DeleteItemField>`, "ErrorInvalidContactEmailIndex"},
		{"second change fails whole change", `<t:SetItemField><t:FieldURI FieldURI="contacts:Surname"/><t:Contact><t:Surname>Changed</t:Surname></t:Contact></t:SetItemField><t:DeleteItemField><t:FieldURI FieldURI="item:ItemClass"/></t:DeleteItemField>`, "ErrorInvalidPropertyDelete"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.ews(change(tc.updates), reqOpts{})
			if got := r.codes(); !slices.Equal(got, []string{tc.want}) {
				t.Fatalf("codes = %v, want %s: %s", got, tc.want, r.body)
			}
		})
	}
	if got := e.sim.Items(alice, SyncFolderName)[0].Contact.Surname; got != "Müller" {
		t.Errorf("a failed ItemChange was partly applied: Surname = %q", got)
	}
	r := e.ews(`<m:UpdateItem ConflictResolution="Sometimes"><m:ItemChanges><t:ItemChange><t:ItemId Id="`+id+`"/><t:Updates><t:DeleteItemField><t:FieldURI FieldURI="contacts:JobTitle"/></t:DeleteItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>`, reqOpts{})
	if r.faultCode() != "ErrorSchemaValidation" {
		t.Errorf("bad ConflictResolution: fault %q", r.faultCode())
	}
}

// TestFindItemOnExtendedProperty is the lookup Tandem's connector makes before creating items:
// one FindItem restricted on the sync key extended property.
func TestFindItemOnExtendedProperty(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	var contacts []map[string]string
	for i := range 5 {
		contacts = append(contacts, map[string]string{"SyncKey": fmt.Sprintf("key-%d", i), "GivenName": fmt.Sprintf("Person%d", i), "Surname": []string{"Zed", "Alpha", "Müller", "Beta", "Müllerova"}[i], "Company": []string{"Initech", "Globex", "Initech", "Globex", "Globex"}[i], "Email": fmt.Sprintf("p%d@example.com", i)})
	}
	r := e.file("create-contacts.xml", map[string]any{"Mailbox": alice, "FolderID": folder, "Contacts": contacts}, reqOpts{})
	if got := r.codes(); len(got) != 5 || slices.ContainsFunc(got, func(c string) bool { return c != "NoError" }) {
		t.Fatalf("create codes = %v", got)
	}
	if _, err := e.sim.PutContact(alice, SyncFolderName, Contact{GivenName: "No", Surname: "Key"}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		keys []string
		want []string
	}{
		{[]string{"key-1", "key-3"}, []string{"key-1", "key-3"}},
		{[]string{"KEY-4"}, []string{"key-4"}}, // string restrictions are case-insensitive
		{[]string{"missing"}, nil},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.keys, ","), func(t *testing.T) {
			r := e.file("find-item-synckeys.xml", map[string]any{"Mailbox": alice, "FolderID": folder, "Keys": tc.keys}, reqOpts{})
			if got := r.codes(); !slices.Equal(got, []string{"NoError"}) {
				t.Fatalf("codes = %v: %s", got, r.body)
			}
			var got []string
			for _, v := range r.response().FindElements(".//Items/Contact/ExtendedProperty/Value") {
				got = append(got, v.Text())
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("found %v, want %v", got, tc.want)
			}
		})
	}

	// And/Exists/Contains/Not with sorting and paging.
	r = e.file("find-item-subject.xml", map[string]any{"Mailbox": alice, "FolderID": folder, "Word": "PERSON", "NotCompany": "initech", "Max": 2, "Offset": 0}, reqOpts{})
	root := r.response().FindElement(".//RootFolder")
	var surnames []string
	for _, s := range root.FindElements("Items/Contact/Surname") {
		surnames = append(surnames, s.Text())
	}
	if !slices.Equal(surnames, []string{"Alpha", "Beta"}) || root.SelectAttrValue("TotalItemsInView", "") != "3" ||
		root.SelectAttrValue("IncludesLastItemInRange", "") != "false" || root.SelectAttrValue("IndexedPagingOffset", "") != "2" {
		t.Errorf("first page: surnames %v attrs %v", surnames, root.Attr)
	}
	if got := text(root, "Items/Contact/EmailAddresses/Entry"); got != "p1@example.com" {
		t.Errorf("indexed additional property = %q", got)
	}
}

// TestFindItemInSeveralFolders checks FindItem over several ParentFolderIds: one response
// message per folder in request order, each with its folder's matches and its own paging and
// errors, and items moved to Deleted Items found there by the extended property they kept.
func TestFindItemInSeveralFolders(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	kept, _ := createContact(t, e, folder, "k-kept")
	deleted, _ := createContact(t, e, folder, "k-deleted")
	if r := e.file("delete-item.xml", map[string]any{"Mailbox": alice, "IDs": []string{deleted}, "DeleteType": "MoveToDeletedItems"}, reqOpts{}); !slices.Equal(r.codes(), []string{"NoError"}) {
		t.Fatalf("DeleteItem codes = %v", r.codes())
	}
	trash, err := e.sim.FolderID(alice, "deleteditems")
	if err != nil {
		t.Fatal(err)
	}
	eq := func(k string) string {
		return `<t:IsEqualTo>` + syncKeyURI + `<t:FieldURIOrConstant><t:Constant Value="` + k + `"/></t:FieldURIOrConstant></t:IsEqualTo>`
	}
	r := e.ews(`<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>`+
		`<t:FieldURI FieldURI="item:ParentFolderId"/>`+syncKeyURI+`</t:AdditionalProperties></m:ItemShape>`+
		`<m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" BasePoint="Beginning"/>`+
		`<m:Restriction><t:Or>`+eq("k-kept")+eq("k-deleted")+`</t:Or></m:Restriction>`+
		`<m:ParentFolderIds><t:FolderId Id="`+folder+`"/><t:DistinguishedFolderId Id="deleteditems"/><t:FolderId Id="not-an-id"/></m:ParentFolderIds></m:FindItem>`, reqOpts{})
	if got := r.codes(); !slices.Equal(got, []string{"NoError", "NoError", "ErrorInvalidIdMalformed"}) {
		t.Fatalf("codes = %v: %s", got, r.body)
	}
	msgs := r.messages()
	for i, want := range []struct{ folder, key, notID string }{{folder, "k-kept", ""}, {trash, "k-deleted", deleted}} {
		items := msgs[i].FindElements("RootFolder/Items/Contact")
		if len(items) != 1 {
			t.Fatalf("message %d lists %d contacts, want 1", i, len(items))
		}
		it := items[0]
		if got := text(it, "ExtendedProperty/Value"); got != want.key {
			t.Errorf("message %d: sync key %q, want %q", i, got, want.key)
		}
		if got := it.FindElement("ParentFolderId").SelectAttrValue("Id", ""); got != want.folder {
			t.Errorf("message %d: ParentFolderId %q, want %q", i, got, want.folder)
		}
		if id := it.FindElement("ItemId").SelectAttrValue("Id", ""); id == want.notID || (i == 0 && id != kept) {
			t.Errorf("message %d: item id %q (created as %q, deleted as %q)", i, id, kept, deleted)
		}
		if root := msgs[i].FindElement("RootFolder"); root.SelectAttrValue("IncludesLastItemInRange", "") != "true" || root.SelectAttrValue("TotalItemsInView", "") != "1" {
			t.Errorf("message %d: paging %v", i, root.Attr)
		}
	}
}

func TestFindItemRefusesGetItemOnlyProperties(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	r := e.ews(`<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:Body"/></t:AdditionalProperties></m:ItemShape><m:ParentFolderIds><t:FolderId Id="`+folder+`"/></m:ParentFolderIds></m:FindItem>`, reqOpts{})
	if got := r.codes(); !slices.Equal(got, []string{"ErrorInvalidPropertyRequest"}) {
		t.Fatalf("codes = %v", got)
	}
	r = e.ews(`<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:Restriction><t:IsEqualTo><t:FieldURI FieldURI="contact:GivenName"/><t:FieldURIOrConstant><t:Constant Value="x"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction><m:ParentFolderIds><t:FolderId Id="`+folder+`"/></m:ParentFolderIds></m:FindItem>`, reqOpts{})
	if r.faultCode() != "ErrorSchemaValidation" {
		t.Errorf("misspelt FieldURI: fault %q", r.faultCode())
	}
}

func TestDeleteItemModes(t *testing.T) {
	tests := []struct {
		deleteType  string
		wantDeleted int // items in Deleted Items afterwards
	}{
		{"HardDelete", 0},
		{"SoftDelete", 0},
		{"MoveToDeletedItems", 1},
	}
	for _, tc := range tests {
		t.Run(tc.deleteType, func(t *testing.T) {
			e := newEnv(t)
			id, _ := createContact(t, e, e.syncFolderID(alice), "k")
			r := e.file("delete-item.xml", map[string]any{"Mailbox": alice, "IDs": []string{id}, "DeleteType": tc.deleteType}, reqOpts{})
			if got := r.codes(); !slices.Equal(got, []string{"NoError"}) {
				t.Fatalf("codes = %v", got)
			}
			if n := len(e.sim.Items(alice, SyncFolderName)); n != 0 {
				t.Errorf("%d items left in the folder", n)
			}
			deleted := e.sim.Items(alice, "deleteditems")
			if len(deleted) != tc.wantDeleted {
				t.Fatalf("%d items in Deleted Items, want %d", len(deleted), tc.wantDeleted)
			}
			if len(deleted) == 1 && deleted[0].ItemID == id {
				t.Error("a moved item must get a new id")
			}
			r = e.file("get-item.xml", map[string]any{"Mailbox": alice, "IDs": []string{id}}, reqOpts{})
			if got := r.codes(); !slices.Equal(got, []string{"ErrorItemNotFound"}) {
				t.Errorf("GetItem after delete: %v", got)
			}
		})
	}
}

func TestDeleteCalendarItemNeedsCancellationChoice(t *testing.T) {
	e := newEnv(t)
	r := e.file("create-event.xml", map[string]any{"Mailbox": alice, "Subject": "S", "SyncKey": "k", "Invitations": "SendToNone"}, reqOpts{})
	ids, _ := itemIDs(r.response())
	r = e.file("delete-item.xml", map[string]any{"Mailbox": alice, "IDs": ids, "DeleteType": "HardDelete"}, reqOpts{})
	if got := r.codes(); !slices.Equal(got, []string{"ErrorSendMeetingCancellationsRequired"}) {
		t.Fatalf("codes = %v", got)
	}
	r = e.file("delete-item.xml", map[string]any{"Mailbox": alice, "IDs": ids, "DeleteType": "HardDelete", "Cancellations": "SendOnlyToAll"}, reqOpts{})
	if got := r.codes(); !slices.Equal(got, []string{"NoError"}) {
		t.Fatalf("codes = %v", got)
	}
	if got := e.sim.Counts()["MeetingCancellationsSent"]; got != 1 {
		t.Errorf("MeetingCancellationsSent = %d, want 1 (the client asked Exchange to email attendees)", got)
	}
}

func TestExtendedPropertyIdentity(t *testing.T) {
	tests := []struct {
		a, b ExtendedProperty
		same bool
	}{
		{ExtendedProperty{PropertyTag: "0x3A45"}, ExtendedProperty{PropertyTag: "14917"}, true},
		{ExtendedProperty{PropertyTag: "0x3a45"}, ExtendedProperty{PropertyTag: "0x3A45", PropertyType: "Integer"}, true},
		{ExtendedProperty{PropertySetID: "8A58E8C4-1D39-4C4B-9F1E-1F0A9A2B7C11", PropertyName: "K"}, ExtendedProperty{PropertySetID: "{8a58e8c4-1d39-4c4b-9f1e-1f0a9a2b7c11}", PropertyName: "K"}, true},
		{ExtendedProperty{PropertySetID: "8a58e8c4-1d39-4c4b-9f1e-1f0a9a2b7c11", PropertyName: "K"}, ExtendedProperty{PropertySetID: "8a58e8c4-1d39-4c4b-9f1e-1f0a9a2b7c11", PropertyName: "k"}, false},
		{ExtendedProperty{DistinguishedPropertySetID: "PublicStrings", PropertyID: "1"}, ExtendedProperty{DistinguishedPropertySetID: "PublicStrings", PropertyName: "1"}, false},
	}
	for _, tc := range tests {
		if got := tc.a.key() == tc.b.key(); got != tc.same {
			t.Errorf("%+v vs %+v: same = %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}
