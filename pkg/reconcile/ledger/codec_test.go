package ledger

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/record"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestStringMapFieldsAreTheDescriptors(t *testing.T) {
	for _, f := range []struct {
		m    proto.Message
		name protoreflect.Name
		num  protowire.Number
	}{
		{&tandemv1.Mapping{}, "exchange_field_hashes", mappingExchangeHashesField},
		{&tandemv1.Mapping{}, "salesforce_field_hashes", mappingSalesforceHashesField},
		{&tandemv1.PendingWrite{}, "source_field_hashes", pendingSourceHashesField},
	} {
		fd := f.m.ProtoReflect().Descriptor().Fields().ByName(f.name)
		if fd.Number() != f.num || !fd.IsMap() || fd.MapKey().Number() != mapKeyField || fd.MapValue().Number() != mapValueField {
			t.Errorf("%s is field %d, the codec reads %d", fd.FullName(), fd.Number(), f.num)
		}
	}
}

// fullMapping is a mapping with every kind of field set around its field-hash maps.
func fullMapping() *tandemv1.Mapping {
	ex, sf := map[string]string{}, map[string]string{}
	for i, f := range record.SyncFields(tandemv1.RecordKind_RECORD_KIND_CONTACT) {
		ex[f], sf[f] = record.EmptyHash, record.EmptyHash
		if i%3 == 0 {
			ex[f], sf[f] = "0123456789abcdef01234567", "76543210fedcba9876543210"
		}
	}
	ex["not_a_sync_field"] = "x"
	sf[""] = ""
	return &tandemv1.Mapping{
		SyncKey: "sk1", Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT, ExchangeId: "AAMk=", SalesforceId: "003x",
		ExchangeVersion: "ck1", SalesforceVersion: "2026-03-01T09:00:00.000Z", ExchangeHash: "eh", SalesforceHash: "sh",
		ExchangeFieldHashes: ex, SyncedAt: timestamppb.Now(), SalesforceFieldHashes: sf, Origin: tandemv1.System_SYSTEM_SALESFORCE,
	}
}

// entries are ledger entries of each type the codec handles specially, and of one it does not.
func entries() []proto.Message {
	return []proto.Message{
		fullMapping(), &tandemv1.Mapping{}, &tandemv1.Mapping{SyncKey: "k", ExchangeFieldHashes: map[string]string{}},
		fullPendingWrite("ex-UPDATE-sk1-c7-abc"), &tandemv1.PendingWrite{},
		&tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: "003x"}, SeenCycle: 3},
	}
}

// TestEntriesAreProtobuf: what marshalEntry writes, proto.Unmarshal reads as the message that
// was written, and what proto.Marshal writes, unmarshalEntry reads as the message.
func TestEntriesAreProtobuf(t *testing.T) {
	for _, m := range entries() {
		b, err := marshalEntry(m)
		if err != nil {
			t.Fatal(err)
		}
		got := m.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(b, got); err != nil || !proto.Equal(got, m) {
			t.Errorf("proto.Unmarshal(marshalEntry(%T)) = %v, %v; want %v", m, got, err, m)
		}
		b, err = proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got = m.ProtoReflect().New().Interface()
		if err := unmarshalEntry(b, got); err != nil || !proto.Equal(got, m) {
			t.Errorf("unmarshalEntry(proto.Marshal(%T)) = %v, %v; want %v", m, got, err, m)
		}
	}
}

// TestEntriesKeepUnknownFields: a field this release does not know (written by a later one) is
// stored again as it was read.
func TestEntriesKeepUnknownFields(t *testing.T) {
	b, err := proto.Marshal(fullMapping())
	if err != nil {
		t.Fatal(err)
	}
	b = protowire.AppendTag(b, 999, protowire.BytesType)
	b = protowire.AppendString(b, "from a later release")
	var m tandemv1.Mapping
	if err := unmarshalEntry(b, &m); err != nil {
		t.Fatal(err)
	}
	again, err := marshalEntry(&m)
	if err != nil {
		t.Fatal(err)
	}
	var got tandemv1.Mapping
	if err := proto.Unmarshal(again, &got); err != nil {
		t.Fatal(err)
	}
	if want := protowire.AppendString(protowire.AppendTag(nil, 999, protowire.BytesType), "from a later release"); string(got.ProtoReflect().GetUnknown()) != string(want) {
		t.Errorf("unknown fields %q after a round trip, want %q", got.ProtoReflect().GetUnknown(), want)
	}
}

func TestEntryMapsKeepTheLastOfARepeatedKey(t *testing.T) {
	a, _ := proto.Marshal(&tandemv1.Mapping{SyncKey: "a", ExchangeFieldHashes: map[string]string{"surname": "1", "email_address1": "2"}})
	b, _ := proto.Marshal(&tandemv1.Mapping{ExchangeFieldHashes: map[string]string{"surname": "3"}})
	var got tandemv1.Mapping
	if err := unmarshalEntry(append(a, b...), &got); err != nil {
		t.Fatal(err)
	}
	want := &tandemv1.Mapping{SyncKey: "a", ExchangeFieldHashes: map[string]string{"surname": "3", "email_address1": "2"}}
	if !proto.Equal(&got, want) {
		t.Errorf("merged entries decode as %v, want %v", &got, want)
	}
}

func TestEntriesRefuseInvalidUTF8(t *testing.T) {
	if _, err := marshalEntry(&tandemv1.Mapping{ExchangeFieldHashes: map[string]string{"surname": "\xff"}}); err == nil {
		t.Error("marshalEntry of a hash that is not UTF-8: no error")
	}
	entry := protowire.AppendTag(nil, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, "\xfe")
	b := protowire.AppendTag(nil, mappingExchangeHashesField, protowire.BytesType)
	b = protowire.AppendBytes(b, entry)
	if err := unmarshalEntry(b, &tandemv1.Mapping{}); err == nil {
		t.Error("unmarshalEntry of a key that is not UTF-8: no error")
	}
}

// TestEntriesRefuseTruncation: an entry cut short within a field is refused, as proto.Unmarshal
// refuses it (one cut at a field's end is a shorter valid entry, for both).
func TestEntriesRefuseTruncation(t *testing.T) {
	b, err := marshalEntry(fullMapping())
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshalEntry(b[:len(b)-1], &tandemv1.Mapping{}); err == nil {
		t.Errorf("unmarshalEntry of the first %d of %d bytes: no error", len(b)-1, len(b))
	}
	for cut := range len(b) {
		werr := proto.Unmarshal(b[:cut], &tandemv1.Mapping{})
		if gerr := unmarshalEntry(b[:cut], &tandemv1.Mapping{}); (werr == nil) != (gerr == nil) {
			t.Errorf("the first %d of %d bytes: proto.Unmarshal %v, unmarshalEntry %v", cut, len(b), werr, gerr)
		}
	}
}

// FuzzUnmarshalEntry checks that unmarshalEntry accepts what proto.Unmarshal accepts, refuses
// what it refuses, and reads the same message.
func FuzzUnmarshalEntry(f *testing.F) {
	for _, m := range entries()[:5] {
		b, err := marshalEntry(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, m.ProtoReflect().Descriptor().Name() == "Mapping")
		// proto.Marshal writes the maps among the other fields, in field order.
		if b, err = (proto.MarshalOptions{Deterministic: true}).Marshal(m); err != nil {
			f.Fatal(err)
		}
		f.Add(b, m.ProtoReflect().Descriptor().Name() == "Mapping")
	}
	// A map field in the wrong wire type, and an entry with an unknown field and a key as a varint.
	f.Add([]byte{0x48, 0x01}, true)
	f.Add([]byte{0x4a, 0x06, 0x08, 0x01, 0x18, 0x02, 0x12, 0x00}, true)
	f.Fuzz(func(t *testing.T, b []byte, mapping bool) {
		var want, got proto.Message = &tandemv1.PendingWrite{}, &tandemv1.PendingWrite{}
		if mapping {
			want, got = &tandemv1.Mapping{}, &tandemv1.Mapping{}
		}
		werr := proto.Unmarshal(b, want)
		gerr := unmarshalEntry(b, got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("proto.Unmarshal: %v, unmarshalEntry: %v", werr, gerr)
		}
		if werr == nil && !proto.Equal(want, got) {
			t.Fatalf("unmarshalEntry read %v, proto.Unmarshal %v", got, want)
		}
	})
}

func BenchmarkMappingEntry(b *testing.B) {
	m := fullMapping()
	b.ReportAllocs()
	for b.Loop() {
		raw, err := marshalEntry(m)
		if err != nil {
			b.Fatal(err)
		}
		var got tandemv1.Mapping
		if err := unmarshalEntry(raw, &got); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMappingProto(b *testing.B) {
	m := fullMapping()
	b.ReportAllocs()
	for b.Loop() {
		raw, err := proto.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		var got tandemv1.Mapping
		if err := proto.Unmarshal(raw, &got); err != nil {
			b.Fatal(err)
		}
	}
}
