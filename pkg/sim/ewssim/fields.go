package ewssim

import (
	"slices"
	"strings"
	"time"
)

// This file implements UpdateItem's SetItemField, AppendToItemField and DeleteItemField on
// the item structs, and reading a property by path for restrictions and sorting.

var errPropertyCount = &ewsError{code: "ErrorIncorrectUpdatePropertyCount", text: "An object within a change description must contain one and only one property to modify."}

// applySet sets the property at p on dst from the carrier item of a SetItemField.
func applySet(dst *Item, p propPath, carrier *decodedItem) *ewsError {
	if carrier.err != nil {
		return carrier.err
	}
	el, ok := p.element(dst.kind())
	if !ok {
		return &ewsError{code: "ErrorInvalidPropertySet", text: "The property " + p.String() + " does not apply to a " + dst.kind().element() + "."}
	}
	if carrier.item.kind() != dst.kind() {
		return &ewsError{code: "ErrorObjectTypeChanged", text: "The change description uses a " + carrier.item.kind().element() + " for a " + dst.kind().element() + "."}
	}
	if len(carrier.present) != 1 || carrier.present[0] != el {
		return errPropertyCount
	}
	src := &carrier.item
	switch p.kind {
	case pathExtended:
		props := src.Base().ExtendedProperties
		if len(props) != 1 || props[0].key() != p.extKey {
			return errPropertyCount
		}
		setExtended(dst.Base(), props[0])
		return nil
	case pathIndexed:
		return setIndexed(dst.Contact, src.Contact, p)
	}
	copyProp(dst, src, el)
	return nil
}

func setExtended(b *ItemBase, p ExtendedProperty) {
	key := p.key()
	if i := slices.IndexFunc(b.ExtendedProperties, func(x ExtendedProperty) bool { return x.key() == key }); i >= 0 {
		b.ExtendedProperties[i] = p
		return
	}
	b.ExtendedProperties = append(b.ExtendedProperties, p)
}

func setIndexed(dst, src *Contact, p propPath) *ewsError {
	d := dictionaryURIs[p.uri]
	switch d.element {
	case "EmailAddresses":
		if len(src.EmailAddresses) != 1 || src.EmailAddresses[0].Key != p.index {
			return errPropertyCount
		}
		dst.SetEmail(p.index, src.EmailAddresses[0].Address)
		for i := range dst.EmailAddresses {
			if dst.EmailAddresses[i].Key == p.index {
				dst.EmailAddresses[i].Name = orDefault(src.EmailAddresses[0].Name, src.EmailAddresses[0].Address)
			}
		}
	case "PhoneNumbers":
		if len(src.PhoneNumbers) != 1 || src.PhoneNumbers[0].Key != p.index {
			return errPropertyCount
		}
		dst.SetPhone(p.index, src.PhoneNumbers[0].Number)
	default:
		if len(src.PhysicalAddresses) != 1 || src.PhysicalAddresses[0].Key != p.index {
			return errPropertyCount
		}
		in := src.PhysicalAddresses[0]
		for _, part := range addressParts {
			if part != d.part && in.part(part) != "" {
				return errPropertyCount
			}
		}
		a, _ := dst.Address(p.index)
		a.Key = p.index
		a.setPart(d.part, in.part(d.part))
		dst.SetAddress(a)
	}
	return nil
}

// copyProp copies the property element el from src to dst (both of the same kind).
func copyProp(dst, src *Item, el string) {
	db, sb := dst.Base(), src.Base()
	if v, ok := sb.Other[el]; ok {
		if db.Other == nil {
			db.Other = map[string]string{}
		}
		db.Other[el] = v
		return
	}
	switch el {
	case "ItemClass":
		db.ItemClass = sb.ItemClass
	case "Subject":
		db.Subject = sb.Subject
	case "Sensitivity":
		db.Sensitivity = sb.Sensitivity
	case "Body":
		db.Body, db.BodyType = sb.Body, sb.BodyType
	case "Categories":
		db.Categories = slices.Clone(sb.Categories)
	case "Importance":
		db.Importance = sb.Importance
	}
	if d, s := dst.Contact, src.Contact; d != nil {
		switch el {
		case "FileAs":
			d.FileAs = s.FileAs
		case "DisplayName":
			d.DisplayName = s.DisplayName
		case "GivenName":
			d.GivenName = s.GivenName
		case "MiddleName":
			d.MiddleName = s.MiddleName
		case "Surname":
			d.Surname = s.Surname
		case "CompanyName":
			d.CompanyName = s.CompanyName
		case "JobTitle":
			d.JobTitle = s.JobTitle
		case "Department":
			d.Department = s.Department
		case "Birthday":
			d.Birthday = birthdayInstant(s.Birthday)
		case "EmailAddresses":
			d.EmailAddresses = slices.Clone(s.EmailAddresses)
		case "PhoneNumbers":
			d.PhoneNumbers = slices.Clone(s.PhoneNumbers)
		case "PhysicalAddresses":
			d.PhysicalAddresses = slices.Clone(s.PhysicalAddresses)
		}
	}
	if d, s := dst.CalendarItem, src.CalendarItem; d != nil {
		switch el {
		case "UID":
			d.UID = s.UID
		case "Start":
			d.Start = s.Start.UTC().Truncate(time.Second)
		case "End":
			d.End = s.End.UTC().Truncate(time.Second)
		case "IsAllDayEvent":
			d.IsAllDayEvent = s.IsAllDayEvent
		case "LegacyFreeBusyStatus":
			d.LegacyFreeBusyStatus = s.LegacyFreeBusyStatus
		case "Location":
			d.Location = s.Location
		case "RequiredAttendees":
			d.RequiredAttendees = s.RequiredAttendees
		case "OptionalAttendees":
			d.OptionalAttendees = s.OptionalAttendees
		case "Resources":
			d.Resources = s.Resources
		case "Recurrence":
			d.Recurrence = s.Recurrence
		case "StartTimeZone":
			d.StartTimeZone = s.StartTimeZone
		case "EndTimeZone":
			d.EndTimeZone = s.EndTimeZone
		}
	}
	if d, s := dst.Message, src.Message; d != nil && el == "IsRead" {
		d.IsRead = s.IsRead
	}
}

// appendable are the properties AppendToItemField accepts.
var appendable = map[string]bool{"Body": true, "RequiredAttendees": true, "OptionalAttendees": true, "Resources": true}

// applyAppend appends the carrier's value of the property at p to dst.
func applyAppend(dst *Item, p propPath, carrier *decodedItem) *ewsError {
	if carrier.err != nil {
		return carrier.err
	}
	el, ok := p.element(dst.kind())
	if !ok || p.kind != pathField || !appendable[el] {
		return &ewsError{code: "ErrorInvalidPropertyAppend", text: "The property " + p.String() + " can't be used with AppendToItemField."}
	}
	if carrier.item.kind() != dst.kind() {
		return &ewsError{code: "ErrorObjectTypeChanged", text: "The change description uses a " + carrier.item.kind().element() + " for a " + dst.kind().element() + "."}
	}
	if len(carrier.present) != 1 || carrier.present[0] != el {
		return errPropertyCount
	}
	src := &carrier.item
	if el == "Body" {
		db, sb := dst.Base(), src.Base()
		if db.Body == "" {
			db.BodyType = sb.BodyType
		}
		db.Body += sb.Body
		return nil
	}
	d, s := dst.CalendarItem, src.CalendarItem
	switch el {
	case "RequiredAttendees":
		d.RequiredAttendees = append(d.RequiredAttendees, s.RequiredAttendees...)
	case "OptionalAttendees":
		d.OptionalAttendees = append(d.OptionalAttendees, s.OptionalAttendees...)
	case "Resources":
		d.Resources = append(d.Resources, s.Resources...)
	}
	return nil
}

// undeletable are modeled properties an item must keep.
var undeletable = map[string]bool{"ItemClass": true, "Start": true, "End": true, "UID": true}

// applyDelete removes the property at p from dst.
func applyDelete(dst *Item, p propPath) *ewsError {
	k := dst.kind()
	el, ok := p.element(k)
	if !ok {
		return &ewsError{code: "ErrorInvalidPropertyDelete", text: "The property " + p.String() + " does not apply to a " + k.element() + "."}
	}
	b := dst.Base()
	switch p.kind {
	case pathExtended:
		key := p.extKey
		b.ExtendedProperties = slices.DeleteFunc(b.ExtendedProperties, func(x ExtendedProperty) bool { return x.key() == key })
		return nil
	case pathIndexed:
		c := dst.Contact
		d := dictionaryURIs[p.uri]
		switch d.element {
		case "EmailAddresses":
			c.SetEmail(p.index, "")
		case "PhoneNumbers":
			c.SetPhone(p.index, "")
		default:
			if a, ok := c.Address(p.index); ok {
				a.setPart(d.part, "")
				c.SetAddress(a)
			}
		}
		return nil
	}
	prop, _ := schemas[k].prop(el)
	if prop.access == accessReadOnly || prop.access == accessUnsupported || undeletable[el] {
		return &ewsError{code: "ErrorInvalidPropertyDelete", text: "The property " + p.uri + " can't be deleted."}
	}
	if prop.access == accessOther {
		delete(b.Other, el)
		return nil
	}
	var empty Item
	switch k {
	case kindContact:
		empty.Contact = &Contact{}
	case kindCalendar:
		empty.CalendarItem = &CalendarItem{}
	default:
		empty.Message = &Message{}
	}
	copyProp(dst, &empty, el)
	if el == "Birthday" {
		dst.Contact.Birthday = time.Time{}
	}
	return nil
}

// pathValues reads the property at p from si as text, for restrictions and sorting. ok is false
// when the item has no such property.
func pathValues(si *storedItem, mb *mailbox, p propPath) (vals []string, vt valueType, ok bool) {
	k := si.kind()
	el, applies := p.element(k)
	if !applies {
		return nil, vtString, false
	}
	b := si.Base()
	switch p.kind {
	case pathExtended:
		key := p.extKey
		i := slices.IndexFunc(b.ExtendedProperties, func(x ExtendedProperty) bool { return x.key() == key })
		if i < 0 {
			return nil, vtString, false
		}
		x := b.ExtendedProperties[i]
		vals = x.Values
		if !isArrayType(x.PropertyType) {
			vals = []string{x.Value}
		}
		return vals, mapiValueType(x.PropertyType), true
	case pathIndexed:
		c := si.Contact
		d := dictionaryURIs[p.uri]
		var v string
		switch d.element {
		case "EmailAddresses":
			v = c.Email(p.index)
		case "PhoneNumbers":
			v = c.Phone(p.index)
		default:
			a, _ := c.Address(p.index)
			v = a.part(d.part)
		}
		return []string{v}, vtString, v != ""
	}
	prop, _ := schemas[k].prop(el)
	if prop.vt != vtComplex {
		v, ok := simpleValue(si, mb, el)
		return []string{v}, prop.vt, ok
	}
	switch el {
	case "ItemId":
		return []string{si.ItemID}, vtString, true
	case "ParentFolderId":
		return []string{si.folder.id}, vtString, true
	case "Body":
		return []string{b.Body}, vtString, b.Body != ""
	case "Categories":
		return b.Categories, vtString, len(b.Categories) > 0
	}
	if c := si.Contact; c != nil {
		switch el {
		case "EmailAddresses":
			for _, e := range c.EmailAddresses {
				vals = append(vals, e.Address)
			}
		case "PhoneNumbers":
			for _, n := range c.PhoneNumbers {
				vals = append(vals, n.Number)
			}
		case "CompleteName":
			vals = nonEmpty(c.DisplayName)
		}
	}
	if c := si.CalendarItem; c != nil {
		switch el {
		case "Organizer":
			if c.Organizer != nil {
				vals = []string{c.Organizer.Address}
			}
		case "RequiredAttendees", "OptionalAttendees", "Resources":
			list := map[string][]Attendee{"RequiredAttendees": c.RequiredAttendees, "OptionalAttendees": c.OptionalAttendees, "Resources": c.Resources}[el]
			for _, a := range list {
				vals = append(vals, a.Address)
			}
		case "StartTimeZone":
			vals = nonEmpty(c.StartTimeZone)
		case "EndTimeZone":
			vals = nonEmpty(c.EndTimeZone)
		}
	}
	return vals, vtString, len(vals) > 0
}

func mapiValueType(t string) valueType {
	switch strings.TrimSuffix(t, "Array") {
	case "Short", "Integer", "Long":
		return vtInt
	case "Boolean":
		return vtBool
	case "SystemTime":
		return vtDateTime
	}
	return vtString
}
