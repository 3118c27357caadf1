package ews

import (
	"testing"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestConnectorUpdateStampsSyncKey: an update tags the item with the pair's sync key, and an
// update listing only the key changes nothing else — a contact the user made and Tandem linked
// by matching then carries its pair's key, so lost state relinks it by key.
func TestConnectorUpdateStampsSyncKey(t *testing.T) {
	const address = "alice@contoso.com"
	tests := []struct {
		name      string
		fields    []string
		wantTitle string
	}{
		{"key only", []string{record.SyncKeyField}, "Countess"},
		{"with a field", []string{"job_title"}, "Analyst"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newSimEnv(t, ewssim.Config{})
			if err := env.sim.AddMailbox(address); err != nil {
				t.Fatal(err)
			}
			c := env.connector(t, env.connection())
			mb := mailboxOf(address)
			if _, err := c.Prepare(t.Context(), mb); err != nil {
				t.Fatal(err)
			}
			mine := ewssim.Contact{GivenName: "Ada", Surname: "Lovelace", JobTitle: "Countess"}
			mine.SetEmail("EmailAddress1", "ada@example.com")
			id, err := env.sim.PutContact(address, exchange.SyncFolderName, mine)
			if err != nil {
				t.Fatal(err)
			}
			// The command's content differs from the item's everywhere but in the listed fields:
			// nothing unlisted may be written.
			cmd := &tandemv1.WriteCommand{CommandId: "u", Op: tandemv1.WriteOp_WRITE_OP_UPDATE, SyncKey: "t1PAIR", TargetId: id, Fields: tc.fields,
				Record: contactRecord("t1PAIR", &tandemv1.Contact{GivenName: "Other", Surname: "Person", JobTitle: "Analyst"})}
			res, err := c.Apply(t.Context(), mb, tandemv1.RecordKind_RECORD_KIND_CONTACT, []*tandemv1.WriteCommand{cmd})
			if err != nil || !res[0].GetOk() {
				t.Fatalf("apply: %v %v", res, err)
			}
			items := env.sim.Items(address, exchange.SyncFolderName)
			if len(items) != 1 {
				t.Fatalf("%d items in the folder", len(items))
			}
			got := items[0].Contact
			if key := simSyncKey(got.ExtendedProperties); key != "t1PAIR" {
				t.Errorf("sync key = %q, want t1PAIR", key)
			}
			if got.GivenName != "Ada" || got.Surname != "Lovelace" || got.Email("EmailAddress1") != "ada@example.com" || got.JobTitle != tc.wantTitle {
				t.Errorf("contact after the update: %s %s <%s> %q", got.GivenName, got.Surname, got.Email("EmailAddress1"), got.JobTitle)
			}
		})
	}
}
