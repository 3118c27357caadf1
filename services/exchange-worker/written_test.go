package exchangeworker

import (
	"fmt"
	"testing"

	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestWrittenVersions: the versions good writes left are noted, failed ones not; the notes of
// a mailbox stay within maxWritten, starting again from the batch that goes over.
func TestWrittenVersions(t *testing.T) {
	ctx := t.Context()
	e, _ := newFakeEnv(t)
	uk := store.UserKey{OrgID: testOrg, UserID: rep1}
	result := func(id, version string, ok bool) *tandemv1.WriteResult {
		return &tandemv1.WriteResult{Ok: ok, Record: &tandemv1.Record{Id: id, Version: version}}
	}
	if err := e.w.noteWritten(ctx, uk, contact, []*tandemv1.WriteResult{result("a", "ck1", true), result("b", "ck1", false), result("c", "", true)}); err != nil {
		t.Fatal(err)
	}
	got, err := e.w.written(ctx, uk, contact, []string{"a", "b", "c"})
	if err != nil || len(got) != 1 || got["a"] != "ck1" {
		t.Fatalf("written %v, %v; want only a at ck1", got, err)
	}
	if other, err := e.w.written(ctx, uk, event, []string{"a"}); err != nil || len(other) != 0 {
		t.Fatalf("another kind's notes %v, %v", other, err)
	}
	var batch []*tandemv1.WriteResult
	for i := range maxWritten {
		batch = append(batch, result(fmt.Sprintf("item-%d", i), "ck", true))
	}
	if err := e.w.noteWritten(ctx, uk, contact, batch); err != nil {
		t.Fatal(err)
	}
	n, err := e.st.Client().HLen(ctx, mustWrittenKey(t, uk)).Result()
	if err != nil || n != maxWritten {
		t.Fatalf("%d notes (%v), want %d: the batch that went over starts them again", n, err, maxWritten)
	}
	if got, _ := e.w.written(ctx, uk, contact, []string{"a"}); len(got) != 0 {
		t.Errorf("an older note kept past the bound: %v", got)
	}
}

func mustWrittenKey(t *testing.T, uk store.UserKey) string {
	t.Helper()
	key, err := writtenKey(uk, contact)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
