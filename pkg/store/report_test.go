package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	contact = tandemv1.RecordKind_RECORD_KIND_CONTACT
	event   = tandemv1.RecordKind_RECORD_KIND_EVENT
)

func syncErr(code, record, msg string) *tandemv1.SyncError {
	return &tandemv1.SyncError{Code: code, RecordId: record, Message: msg, System: tandemv1.System_SYSTEM_SALESFORCE}
}

func TestRecordErrorAggregates(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		clock := newFakeClock()
		s := newTestStore(t, rdb, WithClock(clock.Now))
		start := clock.Now()

		first, err := s.RecordError(ctx, testOrg, "005A", contact, syncErr("SALESFORCE_STRING_TOO_LONG", "003X", "LastName: 81 characters"))
		if err != nil {
			t.Fatal(err)
		}
		if first.Occurrences != 1 || !first.FirstSeenAt.AsTime().Equal(start) || !first.LastSeenAt.AsTime().Equal(start) {
			t.Fatalf("first entry = %v", first)
		}
		clock.Advance(time.Minute)
		again, err := s.RecordError(ctx, testOrg, "005A", contact, syncErr("SALESFORCE_STRING_TOO_LONG", "003X", "LastName: 90 characters"))
		if err != nil {
			t.Fatal(err)
		}
		if again.Id != first.Id || again.Occurrences != 2 || !again.FirstSeenAt.AsTime().Equal(start) || !again.LastSeenAt.AsTime().Equal(clock.Now()) {
			t.Fatalf("repeated entry = %v", again)
		}

		// Any difference in user, kind, code or record makes a separate entry.
		for _, e := range []struct {
			user string
			kind tandemv1.RecordKind
			err  *tandemv1.SyncError
		}{
			{"005B", contact, syncErr("SALESFORCE_STRING_TOO_LONG", "003X", "")},
			{"005A", event, syncErr("SALESFORCE_STRING_TOO_LONG", "003X", "")},
			{"005A", contact, syncErr("SALESFORCE_VALIDATION_FAILED", "003X", "")},
			{"005A", contact, syncErr("SALESFORCE_STRING_TOO_LONG", "003Y", "")},
			{"", tandemv1.RecordKind_RECORD_KIND_UNSPECIFIED, syncErr("SALESFORCE_AUTH_FAILED", "", "")},
		} {
			entry, err := s.RecordError(ctx, testOrg, e.user, e.kind, e.err)
			if err != nil {
				t.Fatal(err)
			}
			if entry.Id == first.Id || entry.Occurrences != 1 {
				t.Fatalf("entry %v aggregated with %s", entry, first.Id)
			}
		}

		entries, next, err := s.ListErrors(ctx, testOrg, "", 0, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 6 || next != "" {
			t.Fatalf("ListErrors = %d entries, next %q", len(entries), next)
		}
		var found *tandemv1.SyncErrorEntry
		for _, e := range entries {
			if e.Id == first.Id {
				found = e
			}
		}
		if found == nil || found.Occurrences != 2 || found.Error.Message != "LastName: 90 characters" ||
			found.UserId != "005A" || found.Kind != contact || found.OrgId != testOrg {
			t.Fatalf("listed entry = %v", found)
		}

		if _, err := s.RecordError(ctx, testOrg, "005A", contact, &tandemv1.SyncError{}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("RecordError without code = %v, want ErrInvalid", err)
		}
		if _, err := s.RecordError(ctx, testOrg, "bad user", contact, syncErr("X", "", "")); !errors.Is(err, ErrInvalidID) {
			t.Fatalf("RecordError with a bad user = %v, want ErrInvalidID", err)
		}
	})
}

// listAll pages through the report and returns the entry ids in order.
func listAll(t *testing.T, s *Store, user string, pageSize int) []string {
	t.Helper()
	var ids []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		entries, next, err := s.ListErrors(t.Context(), testOrg, user, pageSize, token)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) > pageSize {
			t.Fatalf("page of %d entries, page size %d", len(entries), pageSize)
		}
		for _, e := range entries {
			ids = append(ids, e.Error.RecordId)
		}
		if next == "" {
			return ids
		}
		token = next
	}
}

func TestListErrorsPagesNewestFirst(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		clock := newFakeClock()
		s := newTestStore(t, rdb, WithClock(clock.Now))
		record := func(user, rec string) {
			t.Helper()
			if _, err := s.RecordError(ctx, testOrg, user, contact, syncErr("SALESFORCE_VALIDATION_FAILED", rec, "")); err != nil {
				t.Fatal(err)
			}
		}
		// r1..r7 at distinct times, with r3/r4/r5 recorded in the same millisecond.
		record("005A", "r1")
		clock.Advance(time.Second)
		record("005B", "r2")
		clock.Advance(time.Second)
		record("005A", "r3")
		record("005B", "r4")
		record("005A", "r5")
		clock.Advance(time.Second)
		record("005A", "r6")
		clock.Advance(time.Second)
		record("005B", "r7")

		sameMs := map[string]bool{"r3": true, "r4": true, "r5": true}
		for _, size := range []int{1, 2, 3, 7, 100} {
			t.Run(fmt.Sprintf("page size %d", size), func(t *testing.T) {
				got := listAll(t, s, "", size)
				if len(got) != 7 {
					t.Fatalf("listed %v, want 7 entries", got)
				}
				// Newest first; the order inside one millisecond is arbitrary but stable.
				want := []string{"r7", "r6", "?", "?", "?", "r2", "r1"}
				seen := map[string]bool{}
				for i, id := range got {
					if seen[id] {
						t.Fatalf("entry %s listed twice: %v", id, got)
					}
					seen[id] = true
					if want[i] == "?" && !sameMs[id] || want[i] != "?" && want[i] != id {
						t.Fatalf("order %v, want %v", got, want)
					}
				}
			})
		}

		if got := listAll(t, s, "005A", 2); !cmp.Equal(got[:1], []string{"r6"}) || len(got) != 4 {
			t.Fatalf("005A's entries = %v", got)
		}
		if got := listAll(t, s, "005B", 10); !cmp.Equal(got, []string{"r7", "r4", "r2"}) {
			t.Fatalf("005B's entries = %v", got)
		}
		if got := listAll(t, s, "005C", 10); len(got) != 0 {
			t.Fatalf("005C's entries = %v", got)
		}

		// An entry that recurs while a client pages moves to the front and is not repeated.
		first, token, err := s.ListErrors(ctx, testOrg, "", 2, "")
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		record("005A", "r1")
		rest := listAllFrom(t, s, token)
		if len(first)+len(rest) != 6 {
			t.Fatalf("after a recurrence, paging listed %d + %v", len(first), rest)
		}

		for _, bad := range []string{"!!", "bm90LWEtdG9rZW4", "MTIzOnh5eg"} {
			if _, _, err := s.ListErrors(ctx, testOrg, "", 10, bad); !errors.Is(err, ErrInvalidPageToken) {
				t.Errorf("ListErrors with token %q = %v, want ErrInvalidPageToken", bad, err)
			}
		}
	})
}

func listAllFrom(t *testing.T, s *Store, token string) []string {
	t.Helper()
	var ids []string
	for token != "" {
		entries, next, err := s.ListErrors(t.Context(), testOrg, "", 2, token)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			ids = append(ids, e.Error.RecordId)
		}
		token = next
	}
	return ids
}

func TestErrorReportIsBounded(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		clock := newFakeClock()
		s := newTestStore(t, rdb, WithClock(clock.Now), WithErrorReportLimit(3))
		for i := range 6 {
			user := "005A"
			if i%2 == 1 {
				user = "005B"
			}
			if _, err := s.RecordError(ctx, testOrg, user, contact, syncErr("X", fmt.Sprintf("r%d", i), "")); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Second)
		}
		if got := listAll(t, s, "", 10); !cmp.Equal(got, []string{"r5", "r4", "r3"}) {
			t.Fatalf("report = %v, want the 3 newest", got)
		}
		// The user's index skips entries the bound dropped.
		if got := listAll(t, s, "005A", 1); !cmp.Equal(got, []string{"r4"}) {
			t.Fatalf("005A's report = %v, want [r4]", got)
		}
		fields, err := rdb.HLen(ctx, orgKey(testOrg, orgErrorsData)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if fields != int64(3*len(entryAttrs)) {
			t.Fatalf("data hash holds %d fields, want %d: dropped entries were not deleted", fields, 3*len(entryAttrs))
		}
	})
}

func TestResolveError(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		entry, err := s.RecordError(ctx, testOrg, "005A", contact, syncErr("X", "r1", ""))
		if err != nil {
			t.Fatal(err)
		}
		orgLevel, err := s.RecordError(ctx, testOrg, "", tandemv1.RecordKind_RECORD_KIND_UNSPECIFIED, syncErr("SALESFORCE_AUTH_FAILED", "", ""))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ResolveError(ctx, testOrg, entry.Id); err != nil {
			t.Fatal(err)
		}
		if err := s.ResolveError(ctx, testOrg, orgLevel.Id); err != nil {
			t.Fatal(err)
		}
		for _, user := range []string{"", "005A"} {
			if got := listAll(t, s, user, 10); len(got) != 0 {
				t.Fatalf("report for %q after resolve = %v", user, got)
			}
		}
		if n := rdb.ZCard(ctx, orgKey(testOrg, orgErrorsUser, "005A")).Val(); n != 0 {
			t.Fatalf("user index still holds %d entries", n)
		}
		for _, id := range []string{entry.Id, "0123456789abcdef0123456789abcdef", "not-an-id"} {
			if err := s.ResolveError(ctx, testOrg, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("ResolveError(%s) = %v, want ErrNotFound", id, err)
			}
		}
		// It comes back, as new, when it happens again.
		again, err := s.RecordError(ctx, testOrg, "005A", contact, syncErr("X", "r1", ""))
		if err != nil {
			t.Fatal(err)
		}
		if again.Id != entry.Id || again.Occurrences != 1 {
			t.Fatalf("recurring entry = %v", again)
		}
	})
}

// FuzzParsePageToken: page tokens come from clients; parsing must never panic, and every
// accepted token must round-trip.
func FuzzParsePageToken(f *testing.F) {
	f.Add(pageCursor{score: 1772442000000, id: "0123456789abcdef0123456789abcdef"}.token())
	f.Add("")
	f.Add("!!")
	f.Add("MTIzOnh5eg")
	f.Add("TmFOOjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := parsePageToken(tok)
		if err != nil {
			if !errors.Is(err, ErrInvalidPageToken) {
				t.Fatalf("error %v is not ErrInvalidPageToken", err)
			}
			return
		}
		again, err := parsePageToken(c.token())
		if err != nil || again != c {
			t.Fatalf("token %q parsed to %+v, which does not round-trip: %+v, %v", tok, c, again, err)
		}
	})
}

// FuzzHashTag checks hashTag against Redis's definition for arbitrary keys.
func FuzzHashTag(f *testing.F) {
	for _, k := range []string{"tandem:{00D:005}:lease:r", "{}", "a{b", "{a}{b}", "}{", ""} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		tag, ok := hashTag(key)
		if !ok {
			return
		}
		if tag == "" {
			t.Fatal("empty tag reported")
		}
		open := -1
		for i := range len(key) {
			if key[i] == '{' {
				open = i
				break
			}
		}
		if open < 0 || key[open+1:open+1+len(tag)] != tag || key[open+1+len(tag)] != '}' {
			t.Fatalf("hashTag(%q) = %q is not the first {...}", key, tag)
		}
	})
}
