package ledger

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestCommandIDFieldsAreTheDescriptors(t *testing.T) {
	if got := (&tandemv1.PendingWrite{}).ProtoReflect().Descriptor().Fields().ByName("command").Number(); got != pendingCommandField {
		t.Errorf("PendingWrite.command is field %d, commandID reads %d", got, pendingCommandField)
	}
	if got := (&tandemv1.WriteCommand{}).ProtoReflect().Descriptor().Fields().ByName("command_id").Number(); got != commandIDField {
		t.Errorf("WriteCommand.command_id is field %d, commandID reads %d", got, commandIDField)
	}
}

// fullPendingWrite is a pending write with every kind of field set around the command id.
func fullPendingWrite(id string) *tandemv1.PendingWrite {
	return &tandemv1.PendingWrite{
		Command: &tandemv1.WriteCommand{CommandId: id, Op: tandemv1.WriteOp_WRITE_OP_UPDATE, SyncKey: "sk1", TargetId: "003x",
			ExpectedVersion: "v1", Fields: []string{"job_title"}, ContentHash: "h", IssuedAt: timestamppb.Now(), CheckVersion: true,
			Record: &tandemv1.Record{Id: "003x", Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: "Ada", JobTitle: "Countess"}}}},
		Target: tandemv1.System_SYSTEM_SALESFORCE, SourceId: "AAMk", SourceHash: "sh", SourceVersion: "ck", Cycle: 7, OtherId: "003x",
		SourceFieldHashes: map[string]string{"given_name": "a", "job_title": "b"},
	}
}

func TestCommandIDReadsWhatUnmarshalReads(t *testing.T) {
	for _, pw := range []*tandemv1.PendingWrite{fullPendingWrite("ex-UPDATE-sk1-c7-abc"), {Cycle: 3}, {Command: &tandemv1.WriteCommand{SyncKey: "k"}}} {
		b, err := proto.Marshal(pw)
		if err != nil {
			t.Fatal(err)
		}
		got, err := commandID(b)
		if err != nil || got != pw.GetCommand().GetCommandId() {
			t.Errorf("commandID = %q, %v; want %q", got, err, pw.GetCommand().GetCommandId())
		}
	}
	// Two encoded pending writes concatenated merge: the later command id wins.
	a, _ := proto.Marshal(fullPendingWrite("first"))
	b, _ := proto.Marshal(fullPendingWrite("second"))
	if got, err := commandID(append(a, b...)); err != nil || got != "second" {
		t.Errorf("commandID of merged writes = %q, %v; want second", got, err)
	}
}

func TestCommandIDRefusesATruncatedWrite(t *testing.T) {
	b, err := proto.Marshal(fullPendingWrite("ex-UPDATE-sk1-c7-abc"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{1, len(b) / 2, len(b) - 1} {
		if _, err := commandID(b[:cut]); err == nil {
			t.Errorf("commandID of the first %d of %d bytes: no error", cut, len(b))
		}
	}
}

// FuzzCommandID checks that commandID reads the command id proto.Unmarshal reads from anything
// Unmarshal accepts.
func FuzzCommandID(f *testing.F) {
	for _, pw := range []*tandemv1.PendingWrite{fullPendingWrite("ex-UPDATE-sk1-c7-abc"), {}, {Command: &tandemv1.WriteCommand{}}} {
		b, err := proto.Marshal(pw)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var pw tandemv1.PendingWrite
		if proto.Unmarshal(b, &pw) != nil {
			return
		}
		got, err := commandID(b)
		if err != nil || got != pw.GetCommand().GetCommandId() {
			t.Fatalf("commandID = %q, %v; Unmarshal reads %q", got, err, pw.GetCommand().GetCommandId())
		}
	})
}

func BenchmarkCommandID(b *testing.B) {
	raw, err := proto.Marshal(fullPendingWrite("ex-UPDATE-sk1-c7-abc"))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("protowire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := commandID(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var pw tandemv1.PendingWrite
			if err := proto.Unmarshal(raw, &pw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
