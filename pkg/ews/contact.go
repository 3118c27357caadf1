package ews

import (
	"strings"

	"github.com/beevik/etree"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// contactPhones pairs canonical phone fields with EWS PhoneNumbers keys, in the order they are written.
var contactPhones = []struct {
	field, key string
	get        func(*tandemv1.Contact) string
	set        func(*tandemv1.Contact, string)
}{
	{"business_phone", "BusinessPhone", (*tandemv1.Contact).GetBusinessPhone, func(c *tandemv1.Contact, v string) { c.BusinessPhone = v }},
	{"mobile_phone", "MobilePhone", (*tandemv1.Contact).GetMobilePhone, func(c *tandemv1.Contact, v string) { c.MobilePhone = v }},
	{"home_phone", "HomePhone", (*tandemv1.Contact).GetHomePhone, func(c *tandemv1.Contact, v string) { c.HomePhone = v }},
	{"other_phone", "OtherTelephone", (*tandemv1.Contact).GetOtherPhone, func(c *tandemv1.Contact, v string) { c.OtherPhone = v }},
	{"business_fax", "BusinessFax", (*tandemv1.Contact).GetBusinessFax, func(c *tandemv1.Contact, v string) { c.BusinessFax = v }},
	{"assistant_phone", "AssistantPhone", (*tandemv1.Contact).GetAssistantPhone, func(c *tandemv1.Contact, v string) { c.AssistantPhone = v }},
}

// contactEmails pairs canonical email fields with EWS EmailAddresses keys.
var contactEmails = []struct {
	field, key string
	get        func(*tandemv1.Contact) string
	set        func(*tandemv1.Contact, string)
}{
	{"email_address1", "EmailAddress1", (*tandemv1.Contact).GetEmailAddress1, func(c *tandemv1.Contact, v string) { c.EmailAddress1 = v }},
	{"email_address2", "EmailAddress2", (*tandemv1.Contact).GetEmailAddress2, func(c *tandemv1.Contact, v string) { c.EmailAddress2 = v }},
	{"email_address3", "EmailAddress3", (*tandemv1.Contact).GetEmailAddress3, func(c *tandemv1.Contact, v string) { c.EmailAddress3 = v }},
}

// contactAddresses pairs canonical address fields with EWS PhysicalAddresses keys.
var contactAddresses = []struct {
	field, key string
	get        func(*tandemv1.Contact) *tandemv1.PostalAddress
	set        func(*tandemv1.Contact, *tandemv1.PostalAddress)
}{
	{"business_address", "Business", (*tandemv1.Contact).GetBusinessAddress, func(c *tandemv1.Contact, a *tandemv1.PostalAddress) { c.BusinessAddress = a }},
	{"home_address", "Home", (*tandemv1.Contact).GetHomeAddress, func(c *tandemv1.Contact, a *tandemv1.PostalAddress) { c.HomeAddress = a }},
	{"other_address", "Other", (*tandemv1.Contact).GetOtherAddress, func(c *tandemv1.Contact, a *tandemv1.PostalAddress) { c.OtherAddress = a }},
}

// addressParts are the sub-fields of a physical address in schema order, with their field URIs.
var addressParts = []struct {
	tag, uri string
	get      func(*tandemv1.PostalAddress) string
}{
	{"Street", "contacts:PhysicalAddress:Street", (*tandemv1.PostalAddress).GetStreet},
	{"City", "contacts:PhysicalAddress:City", (*tandemv1.PostalAddress).GetCity},
	{"State", "contacts:PhysicalAddress:State", (*tandemv1.PostalAddress).GetState},
	{"CountryOrRegion", "contacts:PhysicalAddress:CountryOrRegion", (*tandemv1.PostalAddress).GetCountry},
	{"PostalCode", "contacts:PhysicalAddress:PostalCode", (*tandemv1.PostalAddress).GetPostalCode},
}

// contactFromXML maps a t:Contact to the canonical contact. Values Exchange returns in a form
// Tandem cannot read (a malformed birthday) are left out rather than failing the whole item.
func contactFromXML(e *etree.Element) *tandemv1.Contact {
	c := &tandemv1.Contact{
		GivenName:   childText(e, nsTypes, "GivenName"),
		MiddleName:  childText(e, nsTypes, "MiddleName"),
		Surname:     childText(e, nsTypes, "Surname"),
		CompanyName: childText(e, nsTypes, "CompanyName"),
		JobTitle:    childText(e, nsTypes, "JobTitle"),
		Department:  childText(e, nsTypes, "Department"),
		Notes:       childText(e, nsTypes, "Body"),
		// AssistantName and Generation (the name suffix) are contact properties of their own.
		AssistantName: childText(e, nsTypes, "AssistantName"),
		Suffix:        childText(e, nsTypes, "Generation"),
	}
	for _, entry := range children(child(e, nsTypes, "EmailAddresses"), nsTypes, "Entry") {
		key := entry.SelectAttrValue("Key", "")
		for _, m := range contactEmails {
			if m.key == key {
				m.set(c, strings.TrimSpace(entry.Text()))
			}
		}
	}
	for _, entry := range children(child(e, nsTypes, "PhoneNumbers"), nsTypes, "Entry") {
		key := entry.SelectAttrValue("Key", "")
		for _, m := range contactPhones {
			if m.key == key {
				m.set(c, strings.TrimSpace(entry.Text()))
			}
		}
	}
	for _, entry := range children(child(e, nsTypes, "PhysicalAddresses"), nsTypes, "Entry") {
		key := entry.SelectAttrValue("Key", "")
		for _, m := range contactAddresses {
			if m.key != key {
				continue
			}
			a := &tandemv1.PostalAddress{
				Street:     childText(entry, nsTypes, "Street"),
				City:       childText(entry, nsTypes, "City"),
				State:      childText(entry, nsTypes, "State"),
				Country:    childText(entry, nsTypes, "CountryOrRegion"),
				PostalCode: childText(entry, nsTypes, "PostalCode"),
			}
			if !emptyAddress(a) {
				m.set(c, a)
			}
		}
	}
	if b := childText(e, nsTypes, "Birthday"); b != "" {
		if t, err := parseDateTime(b); err == nil {
			c.Birthday = birthdayFromEWS(t)
		}
	}
	return c
}

func emptyAddress(a *tandemv1.PostalAddress) bool {
	return a.GetStreet() == "" && a.GetCity() == "" && a.GetState() == "" && a.GetCountry() == "" && a.GetPostalCode() == ""
}

// displayName is what Outlook would show for the contact: the full name, else the company,
// else the email address.
func displayName(c *tandemv1.Contact) string {
	name := strings.Join(nonEmpty(c.GetGivenName(), c.GetMiddleName(), c.GetSurname()), " ")
	switch {
	case name != "":
		return name
	case c.GetCompanyName() != "":
		return c.GetCompanyName()
	default:
		return c.GetEmailAddress1()
	}
}

// fileAs is Outlook's default "Last, First" filing name.
func fileAs(c *tandemv1.Contact) string {
	last, first := c.GetSurname(), strings.Join(nonEmpty(c.GetGivenName(), c.GetMiddleName()), " ")
	switch {
	case last != "" && first != "":
		return last + ", " + first
	case last != "" || first != "":
		return last + first
	default:
		return displayName(c)
	}
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// contactToXML appends a t:Contact for CreateItem, children in the order ContactItemType's
// xs:sequence requires (ItemType's part first), tagged with the sync key.
func contactToXML(parent *etree.Element, c *tandemv1.Contact, syncKey string) {
	e := add(parent, "t:Contact")
	if c.GetNotes() != "" {
		addText(e, "t:Body", c.GetNotes()).CreateAttr("BodyType", "Text")
	}
	if syncKey != "" {
		syncKeyProperty(e, syncKey)
	}
	if v := fileAs(c); v != "" {
		addText(e, "t:FileAs", v)
	}
	if v := displayName(c); v != "" {
		addText(e, "t:DisplayName", v)
	}
	optText(e, "t:GivenName", c.GetGivenName())
	optText(e, "t:MiddleName", c.GetMiddleName())
	optText(e, "t:CompanyName", c.GetCompanyName())
	var emails *etree.Element
	for _, m := range contactEmails {
		if v := m.get(c); v != "" {
			if emails == nil {
				emails = add(e, "t:EmailAddresses")
			}
			addText(emails, "t:Entry", v).CreateAttr("Key", m.key)
		}
	}
	var addresses *etree.Element
	for _, m := range contactAddresses {
		a := m.get(c)
		if a == nil || emptyAddress(a) {
			continue
		}
		if addresses == nil {
			addresses = add(e, "t:PhysicalAddresses")
		}
		entry := add(addresses, "t:Entry")
		entry.CreateAttr("Key", m.key)
		for _, p := range addressParts {
			optText(entry, "t:"+p.tag, p.get(a))
		}
	}
	var phones *etree.Element
	for _, m := range contactPhones {
		if v := m.get(c); v != "" {
			if phones == nil {
				phones = add(e, "t:PhoneNumbers")
			}
			addText(phones, "t:Entry", v).CreateAttr("Key", m.key)
		}
	}
	optText(e, "t:AssistantName", c.GetAssistantName())
	if validDate(c.GetBirthday()) {
		addText(e, "t:Birthday", birthdayToEWS(c.GetBirthday()))
	}
	optText(e, "t:Department", c.GetDepartment())
	optText(e, "t:Generation", c.GetSuffix())
	optText(e, "t:JobTitle", c.GetJobTitle())
	optText(e, "t:Surname", c.GetSurname())
}

func optText(parent *etree.Element, tag, v string) {
	if v != "" {
		addText(parent, tag, v)
	}
}

// contactFieldNames are the canonical contact fields Exchange holds, in update order.
var contactFieldNames = []string{
	"given_name", "middle_name", "surname", "company_name", "job_title", "department",
	"email_address1", "email_address2", "email_address3",
	"business_phone", "mobile_phone", "home_phone", "other_phone", "business_fax", "assistant_phone",
	"business_address", "home_address", "other_address", "birthday", "notes", "assistant_name", "suffix",
}

// contactIgnoredFields are canonical fields that never go to Exchange.
var contactIgnoredFields = map[string]bool{"salesforce_account_id": true}

// contactChanges returns the UpdateItem changes writing fields of c (all when fields is
// empty). Empty values delete the property.
func contactChanges(c *tandemv1.Contact, fields []string) ([]fieldChange, error) {
	var out []fieldChange
	nameChanged := false
	for _, f := range selectFields(fields, contactFieldNames) {
		switch f {
		case "given_name":
			out = append(out, textField("contacts:GivenName", "t:Contact", "t:GivenName", c.GetGivenName()))
			nameChanged = true
		case "middle_name":
			out = append(out, textField("contacts:MiddleName", "t:Contact", "t:MiddleName", c.GetMiddleName()))
			nameChanged = true
		case "surname":
			out = append(out, textField("contacts:Surname", "t:Contact", "t:Surname", c.GetSurname()))
			nameChanged = true
		case "company_name":
			out = append(out, textField("contacts:CompanyName", "t:Contact", "t:CompanyName", c.GetCompanyName()))
			nameChanged = true
		case "job_title":
			out = append(out, textField("contacts:JobTitle", "t:Contact", "t:JobTitle", c.GetJobTitle()))
		case "department":
			out = append(out, textField("contacts:Department", "t:Contact", "t:Department", c.GetDepartment()))
		case "assistant_name":
			out = append(out, textField("contacts:AssistantName", "t:Contact", "t:AssistantName", c.GetAssistantName()))
		case "suffix":
			out = append(out, textField("contacts:Generation", "t:Contact", "t:Generation", c.GetSuffix()))
		case "birthday":
			if validDate(c.GetBirthday()) {
				out = append(out, textField("contacts:Birthday", "t:Contact", "t:Birthday", birthdayToEWS(c.GetBirthday())))
			} else {
				out = append(out, deleteField("contacts:Birthday", ""))
			}
		case "notes":
			out = append(out, bodyField("t:Contact", c.GetNotes()))
		default:
			fc, ok := contactIndexedChange(c, f)
			if !ok {
				if contactIgnoredFields[f] {
					continue
				}
				return nil, unknownFieldError("contact", f)
			}
			out = append(out, fc...)
			if f == "email_address1" {
				nameChanged = true
			}
		}
	}
	if nameChanged {
		// Keep what Outlook lists the contact as in step with the names it is made of.
		if v := displayName(c); v != "" {
			out = append(out, textField("contacts:DisplayName", "t:Contact", "t:DisplayName", v))
		}
		if v := fileAs(c); v != "" {
			out = append(out, textField("contacts:FileAs", "t:Contact", "t:FileAs", v))
		}
	}
	return out, nil
}

// contactIndexedChange handles the dictionary-backed fields: emails, phones and addresses.
func contactIndexedChange(c *tandemv1.Contact, field string) ([]fieldChange, bool) {
	for _, m := range contactEmails {
		if m.field == field {
			return []fieldChange{indexedText("contacts:EmailAddress", m.key, "t:EmailAddresses", m.get(c))}, true
		}
	}
	for _, m := range contactPhones {
		if m.field == field {
			return []fieldChange{indexedText("contacts:PhoneNumber", m.key, "t:PhoneNumbers", m.get(c))}, true
		}
	}
	for _, m := range contactAddresses {
		if m.field != field {
			continue
		}
		a := m.get(c)
		var out []fieldChange
		for _, p := range addressParts {
			v := p.get(a)
			if v == "" {
				out = append(out, deleteField(p.uri, m.key))
				continue
			}
			key, tag := m.key, p.tag
			out = append(out, setField(p.uri, key, "t:Contact", func(item *etree.Element) {
				entry := add(add(item, "t:PhysicalAddresses"), "t:Entry")
				entry.CreateAttr("Key", key)
				addText(entry, "t:"+tag, v)
			}))
		}
		return out, true
	}
	return nil, false
}

// indexedText sets or deletes one entry of a string dictionary (EmailAddresses, PhoneNumbers).
func indexedText(uri, key, dictTag, value string) fieldChange {
	if value == "" {
		return deleteField(uri, key)
	}
	return setField(uri, key, "t:Contact", func(item *etree.Element) {
		addText(add(item, dictTag), "t:Entry", value).CreateAttr("Key", key)
	})
}
