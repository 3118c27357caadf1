package ewssim

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-sync/tandem/pkg/devkit/ewsschema"
)

// sampleData fills every field the request templates use.
func sampleData() map[string]any {
	id := encodeID(mailboxGUID(alice), objItem, 7)
	folder := encodeID(mailboxGUID(alice), objFolder, 3)
	return map[string]any{
		"Mailbox": alice, "Shape": "AllProperties", "Distinguished": []string{"contacts", "calendar"},
		"FolderIDs": []string{folder}, "Traversal": "Deep", "Parent": "contacts", "Name": SyncFolderName,
		"Max": 10, "Offset": 0, "FolderID": folder, "SyncState": "H4sIAAAAAAAA", "Ignore": []string{id},
		"IDs": []string{id, id}, "Keys": []string{"key-1", "key-2"}, "Word": "müller", "NotCompany": "Initech",
		"Notes": "Met at the fair & liked the demo.", "SyncKey": "sk-0001", "Surname": "Müller", "GivenName": "François",
		"Company": "Société Générale", "Email": "francois@example.com",
		"Contacts": []map[string]string{{"SyncKey": "a", "GivenName": "A", "Surname": "B", "Company": "C", "Email": "a@b.c"}},
		"Subject":  "Revue trimestrielle", "Invitations": "SendToNone", "ID": id, "ChangeKey": "AAAA", "Conflict": "NeverOverwrite",
		"Send": "SendToNone", "DeleteType": "MoveToDeletedItems", "Cancellations": "SendToNone",
		"URL": "https://autodiscover.contoso.com/autodiscover/autodiscover.svc", "Users": []string{alice},
		"Settings": []string{"ExternalEwsUrl"},
	}
}

// TestRequestFilesValidate checks that every handcrafted EWS request in testdata validates
// against Microsoft's schema, so the tests exercise the simulator with requests a schema-valid
// client would send.
func TestRequestFilesValidate(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "requests", "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no request files: %v", err)
	}
	var envelopes [][]byte
	for _, f := range files {
		name := filepath.Base(f)
		out := render(t, name, sampleData())
		if strings.HasPrefix(name, "autodiscover-") {
			// Autodiscover is not part of the EWS schema; it must at least be well-formed.
			if _, err := parseXML([]byte(out)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		parts, err := ewsschema.Parts([]byte(out))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(parts) < 3 {
			t.Errorf("%s: want two headers and a body, got %d parts", name, len(parts))
		}
		envelopes = append(envelopes, []byte(out))
	}
	validateEnvelopes(t, envelopes)
}

// TestValidatorCatchesInvalidDocuments makes sure the schema check used by every test can fail:
// a response with its elements out of schema order must be reported.
func TestValidatorCatchesInvalidDocuments(t *testing.T) {
	bad := `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="` + nsSOAP + `"><s:Body>` +
		`<m:GetItemResponse xmlns:m="` + nsMessages + `" xmlns:t="` + nsTypes + `"><m:ResponseMessages>` +
		`<m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items>` +
		`<t:Contact><t:Surname>Z</t:Surname><t:GivenName>A</t:GivenName></t:Contact>` +
		`</m:Items></m:GetItemResponseMessage></m:ResponseMessages></m:GetItemResponse></s:Body></s:Envelope>`
	problems, err := ewsschema.Validate(t.Context(), [][]byte{[]byte(bad)})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Detail, "GivenName") {
		t.Fatalf("problems = %+v, want one about GivenName out of order", problems)
	}
}
