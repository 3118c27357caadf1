package salesforce

import (
	"testing"

	"github.com/tandem-sync/tandem/pkg/record"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestSimUpdateStampsSyncKey: an update writes the pair's sync key to Tandem_Sync_Key__c, and
// an update listing only the key writes nothing else — a contact the user made and Tandem
// linked by matching then carries its pair's key, so lost state relinks it by key.
func TestSimUpdateStampsSyncKey(t *testing.T) {
	tests := []struct {
		name      string
		fields    []string
		wantTitle string
	}{
		{"key only", []string{record.SyncKeyField}, "Countess"},
		{"with a field", []string{fJobTitle}, "Analyst"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newSimEnv(t, simOptions{users: 1})
			rep := env.users[0]
			id, err := env.sim.Insert("Contact", map[string]any{"FirstName": "Ada", "LastName": "Lovelace", "Title": "Countess", "Email": "ada@example.com"}, rep.UserId)
			if err != nil {
				t.Fatal(err)
			}
			upd := contactUpdate(id, &tandemv1.Contact{GivenName: "Other", Surname: "Person", JobTitle: "Analyst"}, tc.fields...)
			upd.SyncKey = "t1PAIR"
			res, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{upd})
			if err != nil || !res[0].GetOk() {
				t.Fatalf("update: %v %v", res, err)
			}
			if got := res[0].GetRecord().GetSyncKey(); got != "t1PAIR" {
				t.Errorf("result's record sync key = %q", got)
			}
			got, _ := env.sim.Get("Contact", id)
			if got[SyncKeyField] != "t1PAIR" {
				t.Errorf("%s = %v, want t1PAIR", SyncKeyField, got[SyncKeyField])
			}
			if got["FirstName"] != "Ada" || got["LastName"] != "Lovelace" || got["Email"] != "ada@example.com" || got["Title"] != tc.wantTitle {
				t.Errorf("contact after the update: %v", got)
			}
		})
	}
}
