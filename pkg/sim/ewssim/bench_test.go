package ewssim

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchServer is a simulator with one mailbox of n contacts that carry sync keys.
func benchServer(b *testing.B, n int) (*Server, string) {
	b.Helper()
	sim := New(Config{ServiceAccounts: []ServiceAccount{{Username: svcUser, Password: svcPassword, ImpersonateAll: true}}})
	if err := sim.Seed(alice, n, 0, 1); err != nil {
		b.Fatal(err)
	}
	for i, it := range sim.Items(alice, SyncFolderName) {
		err := sim.UpdateItem(alice, it.ItemID, func(x *Item) {
			x.Contact.ExtendedProperties = []ExtendedProperty{{PropertySetID: "8a58e8c4-1d39-4c4b-9f1e-1f0a9a2b7c11", PropertyName: "TandemSyncKey", PropertyType: "String", Value: fmt.Sprintf("key-%d", i)}}
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	folder, _ := sim.FolderID(alice, SyncFolderName)
	return sim, folder
}

func serve(b *testing.B, sim *Server, op string) {
	req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, "/EWS/Exchange.asmx", strings.NewReader(soap(reqOpts{}, op)))
	req.Header.Set("Authorization", basicHeader(svcUser, svcPassword))
	req.Header.Set("X-AnchorMailbox", alice)
	w := httptest.NewRecorder()
	sim.ServeHTTP(w, req)
	if w.Code != http.StatusOK || bytes.Contains(w.Body.Bytes(), []byte(`ResponseClass="Error"`)) {
		b.Fatalf("status %d: %.500s", w.Code, w.Body.Bytes())
	}
}

// BenchmarkSyncFolderItemsPage measures one full 512-change page with the shape Tandem uses.
func BenchmarkSyncFolderItemsPage(b *testing.B) {
	sim, folder := benchServer(b, 5000)
	op := syncRequest(folder, "", 512, `<t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/>`+syncKeyURI+`</t:AdditionalProperties>`)
	for b.Loop() {
		serve(b, sim, op)
	}
}

// BenchmarkGetItemBatch measures GetItem of 100 contacts with all properties.
func BenchmarkGetItemBatch(b *testing.B) {
	sim, _ := benchServer(b, 1000)
	var ids strings.Builder
	for _, it := range sim.Items(alice, SyncFolderName)[:100] {
		fmt.Fprintf(&ids, `<t:ItemId Id="%s"/>`, it.ItemID)
	}
	op := `<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape><t:AdditionalProperties>` + syncKeyURI + `</t:AdditionalProperties></m:ItemShape><m:ItemIds>` + ids.String() + `</m:ItemIds></m:GetItem>`
	for b.Loop() {
		serve(b, sim, op)
	}
}

// BenchmarkFindItemBySyncKeys measures the connector's duplicate check: one FindItem for 100
// sync keys in a folder of 5000 contacts.
func BenchmarkFindItemBySyncKeys(b *testing.B) {
	sim, folder := benchServer(b, 5000)
	var or strings.Builder
	for i := range 100 {
		fmt.Fprintf(&or, `<t:IsEqualTo>%s<t:FieldURIOrConstant><t:Constant Value="key-%d"/></t:FieldURIOrConstant></t:IsEqualTo>`, syncKeyURI, i*37)
	}
	op := `<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:Restriction><t:Or>` + or.String() +
		`</t:Or></m:Restriction><m:ParentFolderIds><t:FolderId Id="` + folder + `"/></m:ParentFolderIds></m:FindItem>`
	for b.Loop() {
		serve(b, sim, op)
	}
}

// BenchmarkSeedMailbox measures seeding a mailbox with 1000 contacts and 200 events, the unit
// `tandem dev` repeats for every simulated user.
func BenchmarkSeedMailbox(b *testing.B) {
	sim := New(Config{})
	i := 0
	for b.Loop() {
		if err := sim.Seed(fmt.Sprintf("user%d@contoso.com", i), 1000, 200, int64(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
