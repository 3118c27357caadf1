package ews

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// fakeConnector is a connector talking to a fakeServer at a fixed EWS URL.
func fakeConnector(t *testing.T, srv *fakeServer) *Connector {
	t.Helper()
	c, err := NewConnector(ConnectorConfig{
		Connection: &tandemv1.ExchangeConnection{
			Auth: tandemv1.ExchangeAuth_EXCHANGE_AUTH_BASIC, ServiceAccount: "svc@contoso.com", Password: "pw",
			EwsUrl: srv.URL + "/EWS/Exchange.asmx",
		},
		AllowHTTP: true,
		Client:    Config{RetryBaseDelay: 1, MaxRetryDelay: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestChangesStuckServer guards against a server that neither advances nor finishes.
func TestChangesStuckServer(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, req capturedRequest, n int) {
		if req.op == "SyncFolderItems" {
			respond(w, 200, opResponse("SyncFolderItems", okMessage("SyncFolderItems",
				`<m:SyncState>same</m:SyncState><m:IncludesLastItemInRange>false</m:IncludesLastItemInRange><m:Changes/>`)))
			return
		}
		answering(w, req, n)
	})
	c := fakeConnector(t, srv)
	_, err := readAll(t, c, mailboxOf(testMailbox), tandemv1.RecordKind_RECORD_KIND_CONTACT, "same")
	if se := syncerr.As(err); se.Code != syncerr.ExchangeMalformedResponse {
		t.Fatalf("got %v, want %s", err, syncerr.ExchangeMalformedResponse)
	}
}

// TestChangesSkipsWhatIsNotSynced checks that distribution lists and read-flag changes are not
// reported, that an item deleted between SyncFolderItems and GetItem is reported deleted, and
// that a permanently unreadable item is skipped while the rest is read.
func TestChangesSkipsWhatIsNotSynced(t *testing.T) {
	sync := `<m:SyncState>s1</m:SyncState><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange><m:Changes>` +
		`<t:Create><t:Contact><t:ItemId Id="c1" ChangeKey="k1"/></t:Contact></t:Create>` +
		`<t:Create><t:DistributionList><t:ItemId Id="dl" ChangeKey="k"/></t:DistributionList></t:Create>` +
		`<t:Update><t:Contact><t:ItemId Id="gone" ChangeKey="k2"/></t:Contact></t:Update>` +
		`<t:Update><t:Contact><t:ItemId Id="corrupt" ChangeKey="k3"/></t:Contact></t:Update>` +
		`<t:ReadFlagChange><t:ItemId Id="c1" ChangeKey="k1"/><t:IsRead>true</t:IsRead></t:ReadFlagChange>` +
		`<t:Delete><t:ItemId Id="d1"/></t:Delete></m:Changes>`
	srv := newFakeServer(t, func(w http.ResponseWriter, req capturedRequest, n int) {
		switch req.op {
		case "SyncFolderItems":
			respond(w, 200, opResponse("SyncFolderItems", okMessage("SyncFolderItems", sync)))
		case "GetItem":
			if strings.Contains(string(req.body), `Id="dl"`) {
				t.Error("GetItem asked for a distribution list")
			}
			respond(w, 200, opResponse("GetItem",
				okMessage("GetItem", `<m:Items><t:Contact><t:ItemId Id="c1" ChangeKey="k1"/><t:GivenName>Ann</t:GivenName></t:Contact></m:Items>`),
				errorMessage("GetItem", "ErrorItemNotFound", "The specified object was not found in the store."),
				errorMessage("GetItem", "ErrorCorruptData", "The item is corrupt.")))
		default:
			answering(w, req, n)
		}
	})
	c := fakeConnector(t, srv)
	pages, err := readAll(t, c, mailboxOf(testMailbox), tandemv1.RecordKind_RECORD_KIND_CONTACT, "s0")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ch := range pages[0].Changes {
		got = append(got, fmt.Sprintf("%v %s", ch.GetType(), ch.GetRecord().GetId()))
	}
	want := []string{"CHANGE_TYPE_UPSERT c1", "CHANGE_TYPE_DELETE gone", "CHANGE_TYPE_DELETE d1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("changes %v, want %v", got, want)
	}
	if pages[0].Cursor != "s1" || !pages[0].Last || pages[0].Full {
		t.Errorf("page %+v", pages[0])
	}
}

// TestApplyPerItemErrors checks that an item Exchange refuses fails alone.
func TestApplyPerItemErrors(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, req capturedRequest, n int) {
		switch req.op {
		case "CreateItem":
			respond(w, 200, opResponse("CreateItem",
				okMessage("CreateItem", `<m:Items><t:Contact><t:ItemId Id="new-1" ChangeKey="ck"/></t:Contact></m:Items>`),
				errorMessage("CreateItem", "ErrorQuotaExceeded", "The mailbox quota has been exceeded."),
				errorMessage("CreateItem", "ErrorInvalidPropertySet", "bad property")))
		case "UpdateItem":
			respond(w, 200, fixture(t, "irresolvable-conflict.xml"))
		default:
			answering(w, req, n)
		}
	})
	c := fakeConnector(t, srv)
	cmd := func(key string) *tandemv1.WriteCommand {
		return &tandemv1.WriteCommand{CommandId: key, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key, Record: contactRecord("", &tandemv1.Contact{GivenName: key})}
	}
	upd := &tandemv1.WriteCommand{CommandId: "u", Op: tandemv1.WriteOp_WRITE_OP_UPDATE, SyncKey: "u", TargetId: "x", ExpectedVersion: "old",
		Record: contactRecord("", &tandemv1.Contact{JobTitle: "CTO"}), Fields: []string{"job_title"}}
	res, err := c.Apply(t.Context(), mailboxOf(testMailbox), tandemv1.RecordKind_RECORD_KIND_CONTACT, []*tandemv1.WriteCommand{cmd("a"), cmd("b"), cmd("c"), upd})
	if err != nil {
		t.Fatal(err)
	}
	wantCodes := []string{"", string(syncerr.ExchangeQuotaExceeded), string(syncerr.ExchangeInvalidItem), string(syncerr.ExchangeConflict)}
	for i, r := range res {
		if r.GetError().GetCode() != wantCodes[i] || r.GetOk() != (wantCodes[i] == "") {
			t.Errorf("result %d: ok=%v error %v, want %q", i, r.GetOk(), r.GetError(), wantCodes[i])
		}
	}
	if r := res[0].GetRecord(); r.GetId() != "new-1" || r.GetVersion() != "ck" || r.GetSyncKey() != "a" || r.GetContact().GetGivenName() != "a" {
		t.Errorf("created record %v, want the command's content with the id and change key CreateItem returned", r)
	}
	if up := res[2].GetError().GetUpstreamCode(); up != "ErrorInvalidPropertySet" {
		t.Errorf("upstream code %q", up)
	}
}

func folderXML(id, name, created string) string {
	ext := ""
	if created != "" {
		ext = `<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x3007" PropertyType="SystemTime"/><t:Value>` + created + `</t:Value></t:ExtendedProperty>`
	}
	return `<t:ContactsFolder><t:FolderId Id="` + id + `" ChangeKey="ck"/><t:FolderClass>IPF.Contact</t:FolderClass><t:DisplayName>` + name + `</t:DisplayName>` + ext + `</t:ContactsFolder>`
}

func findFolderAnswer(folders ...string) string {
	return opResponse("FindFolder", okMessage("FindFolder", fmt.Sprintf(`<m:RootFolder TotalItemsInView="%d" IncludesLastItemInRange="true"><t:Folders>%s</t:Folders></m:RootFolder>`,
		len(folders), strings.Join(folders, ""))))
}

// TestPrepareFolderChoice covers how Prepare settles on one Salesforce_Sync folder.
func TestPrepareFolderChoice(t *testing.T) {
	tests := []struct {
		name        string
		find        func(restricted bool, call int) string // FindFolder answers
		create      string                                 // CreateFolder answer, "" if none expected
		wantFolder  string
		wantCreated bool
	}{
		{name: "existing folder is reused",
			find:       func(bool, int) string { return findFolderAnswer(folderXML("existing", "Salesforce_Sync", "")) },
			wantFolder: "existing"},
		{name: "oldest of duplicates wins",
			find: func(bool, int) string {
				return findFolderAnswer(folderXML("b-newer", "Salesforce_Sync", "2026-01-02T00:00:00Z"), folderXML("a-older", "Salesforce_Sync", "2026-01-01T00:00:00Z"))
			},
			wantFolder: "a-older"},
		{name: "smallest id wins without creation times",
			find: func(bool, int) string {
				return findFolderAnswer(folderXML("zz", "Salesforce_Sync", ""), folderXML("aa", "Salesforce_Sync", ""))
			},
			wantFolder: "aa"},
		{name: "created",
			find: func(_ bool, call int) string {
				if call == 1 {
					return findFolderAnswer()
				}
				return findFolderAnswer(folderXML("mine", "Salesforce_Sync", "2026-01-02T00:00:00Z"))
			},
			create:     opResponse("CreateFolder", okMessage("CreateFolder", `<m:Folders>`+folderXML("mine", "", "")+`</m:Folders>`)),
			wantFolder: "mine", wantCreated: true},
		{name: "racer created an older one",
			find: func(_ bool, call int) string {
				if call == 1 {
					return findFolderAnswer()
				}
				return findFolderAnswer(folderXML("mine", "Salesforce_Sync", "2026-01-02T00:00:00Z"), folderXML("theirs", "Salesforce_Sync", "2026-01-01T00:00:00Z"))
			},
			create:     opResponse("CreateFolder", okMessage("CreateFolder", `<m:Folders>`+folderXML("mine", "", "")+`</m:Folders>`)),
			wantFolder: "theirs"},
		{name: "racer won, folder exists",
			find: func(_ bool, call int) string {
				if call == 1 {
					return findFolderAnswer()
				}
				return findFolderAnswer(folderXML("theirs", "Salesforce_Sync", ""))
			},
			create:     fixture(t, "folder-exists.xml"),
			wantFolder: "theirs"},
		{name: "existing folder in another case",
			find: func(restricted bool, _ int) string {
				if restricted {
					return findFolderAnswer()
				}
				return findFolderAnswer(folderXML("other", "Friends", ""), folderXML("lower", "salesforce_sync", ""))
			},
			create:     fixture(t, "folder-exists.xml"),
			wantFolder: "lower"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			finds := 0
			srv := newFakeServer(t, func(w http.ResponseWriter, req capturedRequest, n int) {
				switch req.op {
				case "FindFolder":
					finds++
					respond(w, 200, tc.find(strings.Contains(string(req.body), "Restriction"), finds))
				case "CreateFolder":
					if tc.create == "" {
						t.Error("unexpected CreateFolder")
					}
					respond(w, 200, tc.create)
				default:
					answering(w, req, n)
				}
			})
			f, err := fakeConnector(t, srv).Prepare(t.Context(), mailboxOf(testMailbox))
			if err != nil {
				t.Fatal(err)
			}
			if f.ContactsFolderID != tc.wantFolder || f.CreatedContactsFolder != tc.wantCreated {
				t.Errorf("folder %q created %v, want %q %v", f.ContactsFolderID, f.CreatedContactsFolder, tc.wantFolder, tc.wantCreated)
			}
		})
	}
}

// TestApplyCreateLookupAnswers covers the FindItem answers a retried create's lookup must cope with:
// an item that vanishes between the lookup and the update, and a folder the lookup fails on.
func TestApplyCreateLookupAnswers(t *testing.T) {
	const taggedContact = `<t:Contact><t:ItemId Id="earlier" ChangeKey="ck"/><t:ExtendedProperty><t:ExtendedFieldURI PropertySetId="` +
		SyncKeyPropertySetID + `" PropertyName="` + SyncKeyPropertyName + `" PropertyType="String"/><t:Value>k</t:Value></t:ExtendedProperty></t:Contact>`
	page := func(items string) string {
		return `<m:RootFolder TotalItemsInView="1" IncludesLastItemInRange="true"><t:Items>` + items + `</t:Items></m:RootFolder>`
	}
	tests := []struct {
		name     string
		find     string // FindItem answer
		update   string // UpdateItem answer, "" if none expected
		wantErr  syncerr.Code
		wantCode syncerr.Code
		wantID   string
	}{
		{name: "item deleted between lookup and update",
			find:     opResponse("FindItem", okMessage("FindItem", page(taggedContact)), okMessage("FindItem", page("")), okMessage("FindItem", page(""))),
			update:   opResponse("UpdateItem", errorMessage("UpdateItem", "ErrorItemNotFound", "The specified object was not found in the store.")),
			wantCode: syncerr.ExchangeItemNotFound, wantID: "earlier"},
		{name: "Deleted Items cannot be searched",
			find:    opResponse("FindItem", okMessage("FindItem", page("")), errorMessage("FindItem", "ErrorAccessDenied", "Access is denied."), okMessage("FindItem", page(""))),
			wantErr: syncerr.ExchangeAccessDenied},
		{name: "one answer for three folders",
			find:    opResponse("FindItem", okMessage("FindItem", page(""))),
			wantErr: syncerr.ExchangeMalformedResponse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t, func(w http.ResponseWriter, req capturedRequest, n int) {
				switch req.op {
				case "FindItem":
					respond(w, 200, tc.find)
				case "UpdateItem":
					if tc.update == "" {
						t.Error("unexpected UpdateItem")
					}
					respond(w, 200, tc.update)
				case "CreateItem":
					t.Error("unexpected CreateItem")
					answering(w, req, n)
				default:
					answering(w, req, n)
				}
			})
			res, err := fakeConnector(t, srv).Apply(t.Context(), mailboxOf(testMailbox), tandemv1.RecordKind_RECORD_KIND_CONTACT, []*tandemv1.WriteCommand{
				{CommandId: "c", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "k", Retry: true, Record: contactRecord("", &tandemv1.Contact{GivenName: "New"})},
			})
			if tc.wantErr != "" {
				if se := syncerr.As(err); err == nil || se.Code != tc.wantErr {
					t.Fatalf("Apply: %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := res[0]
			if r.GetOk() || r.GetError().GetCode() != string(tc.wantCode) || r.GetRecord().GetId() != tc.wantID {
				t.Errorf("result %v, want %s naming %q", r, tc.wantCode, tc.wantID)
			}
		})
	}
}
