package ews

import (
	"strings"

	"github.com/beevik/etree"
)

// Tandem's sync key lives in a named MAPI property of its own property set. Both values are
// part of the data Tandem leaves in mailboxes: changing either orphans every item created
// before, so they never change.
const (
	SyncKeyPropertySetID = "f805e062-ad82-4369-9330-8c44cf7c5e30"
	SyncKeyPropertyName  = "TandemSyncKey"
)

// fieldURI appends <t:FieldURI FieldURI="uri"/>.
func fieldURI(parent *etree.Element, uri string) {
	add(parent, "t:FieldURI").CreateAttr("FieldURI", uri)
}

// indexedFieldURI appends <t:IndexedFieldURI FieldURI="uri" FieldIndex="index"/>.
func indexedFieldURI(parent *etree.Element, uri, index string) {
	e := add(parent, "t:IndexedFieldURI")
	e.CreateAttr("FieldURI", uri)
	e.CreateAttr("FieldIndex", index)
}

// syncKeyURI appends the ExtendedFieldURI of the sync key property.
func syncKeyURI(parent *etree.Element) {
	e := add(parent, "t:ExtendedFieldURI")
	e.CreateAttr("PropertySetId", SyncKeyPropertySetID)
	e.CreateAttr("PropertyName", SyncKeyPropertyName)
	e.CreateAttr("PropertyType", "String")
}

// syncKeyProperty appends the sync key as an item's t:ExtendedProperty.
func syncKeyProperty(item *etree.Element, key string) {
	ep := add(item, "t:ExtendedProperty")
	syncKeyURI(ep)
	addText(ep, "t:Value", key)
}

// isSyncKeyURI reports whether an ExtendedFieldURI element names the sync key property.
func isSyncKeyURI(e *etree.Element) bool {
	return e != nil &&
		strings.EqualFold(e.SelectAttrValue("PropertySetId", ""), SyncKeyPropertySetID) &&
		e.SelectAttrValue("PropertyName", "") == SyncKeyPropertyName
}

// syncKeyOf reads the sync key from an item's extended properties.
func syncKeyOf(item *etree.Element) string {
	for _, ep := range children(item, nsTypes, "ExtendedProperty") {
		if isSyncKeyURI(child(ep, nsTypes, "ExtendedFieldURI")) {
			return childText(ep, nsTypes, "Value")
		}
	}
	return ""
}

// isEqualTo appends <t:IsEqualTo>path<t:FieldURIOrConstant><t:Constant Value=v/></...></t:IsEqualTo>.
func isEqualTo(parent *etree.Element, path func(*etree.Element), value string) {
	eq := add(parent, "t:IsEqualTo")
	path(eq)
	add(add(eq, "t:FieldURIOrConstant"), "t:Constant").CreateAttr("Value", value)
}

// itemShape appends an m:ItemShape: IdOnly plus the given properties, bodies as text.
func itemShape(parent *etree.Element, withBody bool, props []string, withSyncKey bool) {
	shape := add(parent, "m:ItemShape")
	addText(shape, "t:BaseShape", "IdOnly")
	if withBody {
		addText(shape, "t:BodyType", "Text")
	}
	if len(props) == 0 && !withSyncKey {
		return
	}
	ap := add(shape, "t:AdditionalProperties")
	for _, p := range props {
		fieldURI(ap, p)
	}
	if withSyncKey {
		syncKeyURI(ap)
	}
}

// contactProperties are what GetItem reads of a contact.
var contactProperties = []string{
	"item:ItemClass", "item:ParentFolderId", "item:Body", "item:LastModifiedTime",
	"contacts:GivenName", "contacts:MiddleName", "contacts:Surname", "contacts:CompanyName",
	"contacts:JobTitle", "contacts:Department", "contacts:EmailAddresses", "contacts:PhoneNumbers",
	"contacts:PhysicalAddresses", "contacts:Birthday", "contacts:AssistantName", "contacts:Generation",
}

// eventProperties are what GetItem reads of a calendar item.
var eventProperties = []string{
	"item:ItemClass", "item:ParentFolderId", "item:Subject", "item:Sensitivity", "item:Body",
	"item:Categories", "item:LastModifiedTime",
	"calendar:UID", "calendar:Start", "calendar:End", "calendar:OriginalStart", "calendar:IsAllDayEvent",
	"calendar:LegacyFreeBusyStatus", "calendar:Location", "calendar:CalendarItemType", "calendar:Organizer",
	"calendar:RequiredAttendees", "calendar:OptionalAttendees", "calendar:Resources", "calendar:Recurrence",
	"calendar:ModifiedOccurrences", "calendar:DeletedOccurrences", "calendar:StartTimeZone", "calendar:EndTimeZone",
}
