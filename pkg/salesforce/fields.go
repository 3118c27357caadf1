package salesforce

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/tandem-sync/tandem/pkg/syncerr"
)

// SyncKeyField is the external id field on Contact and Event that holds Tandem's sync key.
const SyncKeyField = "Tandem_Sync_Key__c"

// Salesforce object names.
const (
	objContact       = "Contact"
	objEvent         = "Event"
	objEventRelation = "EventRelation"
	objUser          = "User"
	objLead          = "Lead"
)

// standardLengths are the maximum lengths, in characters, of the standard text fields Tandem
// writes, as Salesforce documents them. RefreshFieldLengths replaces them with what the org's
// describe says (admins can shorten some, and custom setups differ).
func standardLengths() map[string]map[string]int {
	return map[string]map[string]int{
		objContact: {
			"FirstName": 40, "MiddleName": 40, "LastName": 80, "Title": 128, "Department": 80,
			"Email": 80, "Phone": 40, "MobilePhone": 40, "HomePhone": 40, "OtherPhone": 40,
			"Fax": 40, "AssistantPhone": 40, "AssistantName": 40, "Suffix": 40,
			"MailingStreet": 255, "MailingCity": 40, "MailingState": 80, "MailingPostalCode": 20, "MailingCountry": 80,
			"OtherStreet": 255, "OtherCity": 40, "OtherState": 80, "OtherPostalCode": 20, "OtherCountry": 80,
			"Description": 32000,
		},
		objEvent: {"Subject": 255, "Location": 255, "Description": 32000},
	}
}

// optionalFields are standard fields an org may not have: Contact.MiddleName and Contact.Suffix
// exist only when the org enabled middle names and suffixes. Selecting or writing a missing one
// fails the whole request, so the connector stops using it once it learns it is missing.
var optionalFields = map[string][]string{objContact: {"MiddleName", "Suffix"}}

// fieldInfo is what the connector knows about the org's fields.
type fieldInfo struct {
	mu      sync.RWMutex
	lengths map[string]map[string]int
	missing map[string]map[string]bool
}

func newFieldInfo() *fieldInfo {
	return &fieldInfo{lengths: standardLengths(), missing: map[string]map[string]bool{}}
}

// maxLen returns the length limit of object.field; 0 means none known.
func (f *fieldInfo) maxLen(object, field string) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.lengths[object][field]
}

// has reports whether the org has object.field, as far as the connector knows.
func (f *fieldInfo) has(object, field string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return !f.missing[object][field]
}

// learnMissing records the optional fields of object that an error message says are missing,
// and reports whether there were any.
func (f *fieldInfo) learnMissing(object, message string) bool {
	learned := false
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range optionalFields[object] {
		if strings.Contains(message, "'"+name+"'") && !f.missing[object][name] {
			if f.missing[object] == nil {
				f.missing[object] = map[string]bool{}
			}
			f.missing[object][name] = true
			learned = true
		}
	}
	return learned
}

// describeField is the part of a describe answer's field the connector reads.
type describeField struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Length     int    `json:"length"`
	ExternalID bool   `json:"externalId"`
	Nillable   bool   `json:"nillable"`
}

// RefreshFieldLengths reads the field lengths of Contact and Event from the org's describe (two
// API calls), learns which optional fields exist, and checks that the sync key field is there.
// It is never called on the write path: call it when an org is connected or changed.
func (c *Connector) RefreshFieldLengths(ctx context.Context) error {
	for _, object := range []string{objContact, objEvent} {
		resp, err := c.do(ctx, request{op: "describe", method: http.MethodGet,
			path: "sobjects/" + object + "/describe", subject: c.auth.integrationSubject(), idempotent: true})
		if err != nil {
			return fmt.Errorf("describe %s: %w", object, err)
		}
		var d struct {
			Fields []describeField `json:"fields"`
		}
		if err := resp.decode("describe "+object, &d); err != nil {
			return err
		}
		c.fields.apply(object, d.Fields)
		found := false
		for _, fd := range d.Fields {
			if strings.EqualFold(fd.Name, SyncKeyField) {
				found = fd.ExternalID
			}
		}
		if !found {
			return &syncerr.Error{Code: syncerr.SalesforceFieldMissing, Upstream: "INVALID_FIELD",
				Detail: fmt.Sprintf("%s has no external id field %s visible to the integration user", object, SyncKeyField)}
		}
	}
	return nil
}

func (f *fieldInfo) apply(object string, fields []describeField) {
	f.mu.Lock()
	defer f.mu.Unlock()
	lengths := map[string]int{}
	present := map[string]bool{}
	for _, fd := range fields {
		present[fd.Name] = true
		switch fd.Type {
		case "string", "textarea", "phone", "email", "url", "picklist", "combobox":
			if fd.Length > 0 {
				lengths[fd.Name] = fd.Length
			}
		}
	}
	f.lengths[object] = lengths
	missing := map[string]bool{}
	for _, name := range optionalFields[object] {
		if !present[name] {
			missing[name] = true
		}
	}
	f.missing[object] = missing
}

// truncate shortens s to at most limit characters as Salesforce counts them (UTF-16 code
// units, so a character outside the Basic Multilingual Plane counts twice), never splitting a
// character. It reports whether it cut anything.
func truncate(s string, limit int) (string, bool) {
	if limit <= 0 || len(s) <= limit {
		// Every UTF-16 code unit takes at least one byte in UTF-8, so a string of at most
		// limit bytes fits.
		return s, false
	}
	n := 0
	for i, r := range s {
		w := 1
		if r > 0xFFFF {
			w = 2
		}
		if n+w > limit {
			return s[:i], true
		}
		n += w
	}
	return s, false
}

// charCount counts s as Salesforce does (UTF-16 code units).
func charCount(s string) int {
	n := 0
	for _, r := range s {
		if r > 0xFFFF {
			n += 2
		} else {
			n++
		}
	}
	return n
}
