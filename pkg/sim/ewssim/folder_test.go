package ewssim

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
)

func TestGetFolder(t *testing.T) {
	e := newEnv(t)
	contactsID, err := e.sim.FolderID(alice, "contacts")
	if err != nil {
		t.Fatal(err)
	}
	bobContacts, _ := e.sim.FolderID(bob, "contacts")
	tests := []struct {
		name      string
		data      map[string]any
		wantCodes []string
		wantNames []string
	}{
		{"distinguished", map[string]any{"Distinguished": []string{"contacts", "calendar", "msgfolderroot"}}, []string{"NoError", "NoError", "NoError"}, []string{"Contacts", "Calendar", "Top of Information Store"}},
		{"by id", map[string]any{"FolderIDs": []string{contactsID}}, []string{"NoError"}, []string{"Contacts"}},
		{"not in this mailbox", map[string]any{"FolderIDs": []string{bobContacts}}, []string{"ErrorFolderNotFound"}, nil},
		{"malformed id", map[string]any{"FolderIDs": []string{"bm90IGFuIGlk"}}, []string{"ErrorInvalidIdMalformed"}, nil},
		{"valid name, no such folder", map[string]any{"Distinguished": []string{"archiveinbox"}}, []string{"ErrorFolderNotFound"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.data["Mailbox"] = alice
			tc.data["Shape"] = "AllProperties"
			r := e.file("get-folder.xml", tc.data, reqOpts{})
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if got := r.codes(); !slices.Equal(got, tc.wantCodes) {
				t.Fatalf("codes = %v, want %v", got, tc.wantCodes)
			}
			var names []string
			for _, n := range r.response().FindElements(".//Folders/*/DisplayName") {
				names = append(names, n.Text())
			}
			if !slices.Equal(names, tc.wantNames) {
				t.Errorf("names = %v, want %v", names, tc.wantNames)
			}
		})
	}
}

func TestGetFolderElementTypes(t *testing.T) {
	e := newEnv(t)
	resp := e.mustOK(`<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds>` +
		`<t:DistinguishedFolderId Id="contacts"/><t:DistinguishedFolderId Id="calendar"/><t:DistinguishedFolderId Id="inbox"/><t:DistinguishedFolderId Id="tasks"/>` +
		`</m:FolderIds></m:GetFolder>`)
	var kinds []string
	for _, f := range resp.FindElements(".//Folders/*") {
		kinds = append(kinds, f.Tag)
	}
	if want := []string{"ContactsFolder", "CalendarFolder", "Folder", "TasksFolder"}; !slices.Equal(kinds, want) {
		t.Errorf("folder elements = %v, want %v", kinds, want)
	}
}

func TestFindFolder(t *testing.T) {
	e := newEnv(t)
	if _, err := e.sim.CreateFolder(alice, "contacts", SyncFolderName, "IPF.Contact"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.CreateFolder(alice, SyncFolderName, "Nested", "IPF.Contact"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		data      map[string]any
		wantNames []string
		wantTotal string
		wantLast  string
	}{
		{"shallow by name", map[string]any{"Traversal": "Shallow", "Parent": "contacts", "Name": "salesforce_sync"}, []string{SyncFolderName}, "1", "true"},
		{"shallow all", map[string]any{"Traversal": "Shallow", "Parent": "contacts"}, []string{"Recipient Cache", SyncFolderName}, "2", "true"},
		{"deep", map[string]any{"Traversal": "Deep", "Parent": "contacts"}, []string{"Recipient Cache", SyncFolderName, "Nested"}, "3", "true"},
		{"deep by name", map[string]any{"Traversal": "Deep", "Parent": "msgfolderroot", "Name": "Nested"}, []string{"Nested"}, "1", "true"},
		{"no match", map[string]any{"Traversal": "Shallow", "Parent": "calendar", "Name": SyncFolderName}, nil, "0", "true"},
		{"paged", map[string]any{"Traversal": "Deep", "Parent": "contacts", "Max": 2, "Offset": 1}, []string{SyncFolderName, "Nested"}, "3", "true"},
		{"first page", map[string]any{"Traversal": "Deep", "Parent": "contacts", "Max": 1, "Offset": 0}, []string{"Recipient Cache"}, "3", "false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.data["Mailbox"] = alice
			r := e.file("find-folder.xml", tc.data, reqOpts{})
			if got := r.codes(); !slices.Equal(got, []string{"NoError"}) {
				t.Fatalf("codes = %v: %s", got, r.body)
			}
			root := r.response().FindElement(".//RootFolder")
			var names []string
			for _, n := range root.FindElements("Folders/*/DisplayName") {
				names = append(names, n.Text())
			}
			if !slices.Equal(names, tc.wantNames) {
				t.Errorf("names = %v, want %v", names, tc.wantNames)
			}
			if got := root.SelectAttrValue("TotalItemsInView", ""); got != tc.wantTotal {
				t.Errorf("TotalItemsInView = %s, want %s", got, tc.wantTotal)
			}
			if got := root.SelectAttrValue("IncludesLastItemInRange", ""); got != tc.wantLast {
				t.Errorf("IncludesLastItemInRange = %s, want %s", got, tc.wantLast)
			}
		})
	}
}

// TestCreateFolderRace has many clients create the same folder at once: exactly one wins and
// the others get ErrorFolderExists, leaving one folder.
func TestCreateFolderRace(t *testing.T) {
	e := newEnv(t)
	const clients = 16
	codes := make([]string, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			r := e.file("create-folder.xml", map[string]any{"Mailbox": alice, "Parent": "contacts", "Name": SyncFolderName}, reqOpts{})
			if c := r.codes(); len(c) == 1 {
				codes[i] = c[0]
			} else {
				codes[i] = fmt.Sprintf("status %d", r.status)
			}
		})
	}
	wg.Wait()
	count := map[string]int{}
	for _, c := range codes {
		count[c]++
	}
	if count["NoError"] != 1 || count["ErrorFolderExists"] != clients-1 {
		t.Fatalf("codes = %v, want one NoError and %d ErrorFolderExists", count, clients-1)
	}
	r := e.file("find-folder.xml", map[string]any{"Mailbox": alice, "Traversal": "Shallow", "Parent": "contacts", "Name": SyncFolderName}, reqOpts{})
	if got := r.response().FindElements(".//Folders/ContactsFolder"); len(got) != 1 {
		t.Errorf("found %d Salesforce_Sync folders, want 1", len(got))
	}
}

func TestCreateFolderErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name     string
		op       string
		wantCode string
		fault    bool
	}{
		{"empty name", `<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderId><m:Folders><t:ContactsFolder><t:DisplayName> </t:DisplayName></t:ContactsFolder></m:Folders></m:CreateFolder>`, "ErrorFolderSavePropertyError", false},
		{"read-only property", `<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderId><m:Folders><t:ContactsFolder><t:DisplayName>X</t:DisplayName><t:TotalCount>3</t:TotalCount></t:ContactsFolder></m:Folders></m:CreateFolder>`, "ErrorInvalidPropertySet", false},
		{"search folder", `<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderId><m:Folders><t:SearchFolder><t:DisplayName>S</t:DisplayName></t:SearchFolder></m:Folders></m:CreateFolder>`, "ErrorInvalidFolderTypeForOperation", false},
		{"unknown parent", `<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="archiveroot"/></m:ParentFolderId><m:Folders><t:Folder><t:DisplayName>X</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>`, "ErrorFolderNotFound", false},
		{"bad distinguished name", `<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="kontakte"/></m:ParentFolderId><m:Folders><t:Folder><t:DisplayName>X</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>`, "ErrorSchemaValidation", true},
		{"misordered", `<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderId><m:Folders><t:Folder><t:DisplayName>X</t:DisplayName><t:FolderClass>IPF.Note</t:FolderClass></t:Folder></m:Folders></m:CreateFolder>`, "ErrorSchemaValidation", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.ews(tc.op, reqOpts{})
			if tc.fault {
				if r.status != http.StatusInternalServerError || r.faultCode() != tc.wantCode {
					t.Fatalf("status %d fault %q, want 500 %s: %s", r.status, r.faultCode(), tc.wantCode, r.body)
				}
				return
			}
			if got := r.codes(); !slices.Equal(got, []string{tc.wantCode}) {
				t.Fatalf("codes = %v, want %s: %s", got, tc.wantCode, r.body)
			}
		})
	}
}
