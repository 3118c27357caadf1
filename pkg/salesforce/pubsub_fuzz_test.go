package salesforce

import (
	"slices"
	"testing"

	"github.com/hamba/avro/v2"
)

// contactChangeSchema is a ContactChangeEvent schema shaped like Salesforce's: the header,
// then nullable fields, the compound Name as a nested record.
const contactChangeSchema = `{"type":"record","name":"ContactChangeEvent","namespace":"com.sforce.eventbus","fields":[
 {"name":"ChangeEventHeader","type":{"type":"record","name":"ChangeEventHeader","fields":[
  {"name":"entityName","type":"string"},
  {"name":"recordIds","type":{"type":"array","items":"string"}},
  {"name":"changeType","type":{"type":"enum","name":"ChangeType","symbols":["CREATE","UPDATE","DELETE","UNDELETE","GAP_CREATE","GAP_UPDATE","GAP_DELETE","GAP_UNDELETE","GAP_OVERFLOW","SNAPSHOT"]}},
  {"name":"changeOrigin","type":"string"},
  {"name":"transactionKey","type":"string"},
  {"name":"sequenceNumber","type":"int"},
  {"name":"commitTimestamp","type":"long"},
  {"name":"commitNumber","type":"long"},
  {"name":"commitUser","type":"string"},
  {"name":"nulledFields","type":{"type":"array","items":"string"}},
  {"name":"diffFields","type":{"type":"array","items":"string"}},
  {"name":"changedFields","type":{"type":"array","items":"string"}}]}},
 {"name":"Name","type":["null",{"type":"record","name":"Switchable_PersonName","fields":[
  {"name":"Salutation","type":["null","string"],"default":null},
  {"name":"FirstName","type":["null","string"],"default":null},
  {"name":"LastName","type":["null","string"],"default":null}]}],"default":null},
 {"name":"Email","type":["null","string"],"default":null},
 {"name":"OwnerId","type":["null","string"],"doc":"Data:EntityId","default":null},
 {"name":"LastModifiedDate","type":["null","long"],"default":null}]}`

func changeSeed(t testing.TB, s avro.Schema, changeType, owner string, changed []string) []byte {
	header := map[string]any{
		"entityName": "Contact", "recordIds": []string{"003000000000001AAA"}, "changeType": changeType,
		"changeOrigin": "com/salesforce/api/rest/62.0;client=tandem", "transactionKey": "0001-abcd", "sequenceNumber": 1,
		"commitTimestamp": int64(1767225600000), "commitNumber": int64(42), "commitUser": "005000000000001AAA",
		"nulledFields": []string{}, "diffFields": []string{}, "changedFields": changed,
	}
	body := map[string]any{"ChangeEventHeader": header, "Name": nil, "Email": nil, "OwnerId": nil, "LastModifiedDate": nil}
	if owner != "" {
		body["OwnerId"] = map[string]any{"string": owner}
	}
	data, err := avro.Marshal(s, body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestDecodeChangeEvent(t *testing.T) {
	s, err := parseChangeSchema(contactChangeSchema)
	if err != nil {
		t.Fatal(err)
	}
	// Email is at position 2, LastModifiedDate at 4: bits 2 and 4 = 0x14. Name (1), part 1.
	ev, err := s.decode(changeSeed(t, s.schema, "UPDATE", "", []string{"0x14", "1-0x02"}))
	if err != nil {
		t.Fatal(err)
	}
	if ev.ChangeType != ChangeUpdate || ev.OwnerID != "" || !slices.Equal(ev.ChangedFields, []string{"Email", "LastModifiedDate", "Name.FirstName"}) {
		t.Errorf("update: %+v", ev)
	}
	ev, err = s.decode(changeSeed(t, s.schema, "CREATE", "005000000000002AAA", nil))
	if err != nil || ev.OwnerID != "005000000000002AAA" || ev.CommitTime.UnixMilli() != 1767225600000 || ev.Client() != "tandem" {
		t.Errorf("create: %+v, %v", ev, err)
	}
	for _, bad := range [][]string{{"0x80"}, {"9-0x01"}, {"1-Email"}, {"0xZZ"}} {
		if _, err := s.decode(changeSeed(t, s.schema, "UPDATE", "", bad)); err == nil {
			t.Errorf("changedFields %v accepted", bad)
		}
	}
}

func FuzzDecodeChangeEvent(f *testing.F) {
	s, err := parseChangeSchema(contactChangeSchema)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(changeSeed(f, s.schema, "CREATE", "005000000000002AAA", nil))
	f.Add(changeSeed(f, s.schema, "UPDATE", "", []string{"0x650004E0", "1-0x06"}))
	f.Add(changeSeed(f, s.schema, "DELETE", "", nil))
	f.Add(changeSeed(f, s.schema, "GAP_OVERFLOW", "", []string{"Email"}))
	full := changeSeed(f, s.schema, "UPDATE", "", []string{"0x14"})
	f.Add(full[:len(full)/2])                                                            // cut short
	f.Add([]byte{0x0e, 'C', 'o', 'n', 't', 'a', 'c', 't', 0xfe, 0xff, 0xff, 0xff, 0x0f}) // an array claiming 2^31 items
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := s.decode(data)
		if err != nil {
			return
		}
		if ev.Entity == "" || ev.ChangeType == "" {
			t.Fatalf("accepted an event without entity or change type: %+v", ev)
		}
		for _, name := range ev.ChangedFields {
			if name == "" {
				t.Fatal("an empty changed field name")
			}
		}
	})
}

func FuzzExpandBitmap(f *testing.F) {
	s, err := parseChangeSchema(contactChangeSchema)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"0x14", "1-0x06", "0x650004E0", "4-0x10", "-0x", "0x", "1-", "Email", "99999999999999999999-0x1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		names, err := s.expandBitmap([]string{v})
		if err != nil {
			return
		}
		if len(names) > len(v)*4+1 {
			t.Fatalf("%q expanded to %d names", v, len(names))
		}
	})
}
