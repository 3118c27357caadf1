package salesforce

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestRefreshFieldLengths(t *testing.T) {
	var mu sync.Mutex
	var written map[string]any
	f := newFakeOrg(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/sobjects/Contact/describe"):
			// An org whose admin shortened LastName, without middle names and suffixes enabled.
			fmt.Fprint(w, `{"name":"Contact","fields":[{"name":"Id","type":"id","length":18},{"name":"LastName","type":"string","length":10},
				{"name":"FirstName","type":"string","length":40},{"name":"Birthdate","type":"date","length":0},
				{"name":"Tandem_Sync_Key__c","type":"string","length":80,"externalId":true}]}`)
		case strings.HasSuffix(r.URL.Path, "/sobjects/Event/describe"):
			fmt.Fprint(w, `{"name":"Event","fields":[{"name":"Subject","type":"combobox","length":255},{"name":"Tandem_Sync_Key__c","type":"string","length":80,"externalId":true}]}`)
		default:
			var body struct {
				Records []map[string]any `json:"records"`
			}
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				t.Error(err)
			}
			mu.Lock()
			written = body.Records[0]
			mu.Unlock()
			fmt.Fprint(w, `[{"id":"003000000000001AAA","success":true,"errors":[],"created":true}]`)
		}
	})
	c := newTestConnector(t, jwtOrg(t, f.srv.URL))
	if err := c.RefreshFieldLengths(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"MiddleName", "Suffix"} {
		if c.fields.has(objContact, f) {
			t.Errorf("%s not learned as missing", f)
		}
	}
	res, err := c.Apply(t.Context(), &tandemv1.SyncUser{UserId: "005000000000001AAA", Username: "rep@acme.example"}, contactKind,
		[]*tandemv1.WriteCommand{contactCreate("sk", &tandemv1.Contact{GivenName: "Ada", MiddleName: "King", Surname: "Lovelace-Byron", Suffix: "Jr."})})
	if err != nil {
		t.Fatal(err)
	}
	if w := res[0].GetWarnings(); len(w) != 1 || w[0].GetField() != fSurname {
		t.Errorf("warnings %v, want one for surname", w)
	}
	mu.Lock()
	defer mu.Unlock()
	if written["LastName"] != "Lovelace-B" || written["MiddleName"] != nil || written["Suffix"] != nil || written["FirstName"] != "Ada" {
		t.Errorf("written %v", written)
	}
}
