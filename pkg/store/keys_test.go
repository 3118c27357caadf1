package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"00D5g000004XyzAEAS", true},
		{"005-user_1", true},
		{strings.Repeat("a", 128), true},
		{"", false},
		{strings.Repeat("a", 129), false},
		{"a:b", false},
		{"a{b}", false},
		{"a.b", false},
		{"a b", false},
		{"a*", false},
		{"ünï", false},
		{"user@example.com", false},
	}
	for _, tc := range tests {
		if got := ValidID(tc.id); got != tc.want {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestHashTag(t *testing.T) {
	tests := []struct {
		key    string
		tag    string
		tagged bool
	}{
		{"tandem:{00D:005}:lease:reconcile", "00D:005", true},
		{"tandem:{00D}:configs", "00D", true},
		{"plain", "", false},
		{"a{}b{c}", "", false}, // Redis hashes the whole key when the first {} is empty
		{"a{b", "", false},
		{"a}b{c}", "c", true},
		{"{x}{y}", "x", true},
	}
	for _, tc := range tests {
		tag, ok := hashTag(tc.key)
		if tag != tc.tag || ok != tc.tagged {
			t.Errorf("hashTag(%q) = %q, %v; want %q, %v", tc.key, tag, ok, tc.tag, tc.tagged)
		}
	}
}

// TestKeyLayoutCarriesHashTags walks every key constructor: each key is in the tandem
// namespace, per-user keys carry {org:user}, org keys carry {org}.
func TestKeyLayoutCarriesHashTags(t *testing.T) {
	const org, user = "00D000000000001", "005000000000001"
	uk := UserKey{OrgID: org, UserID: user}
	userTag, orgTag := org+":"+user, org

	mustKey := func(k string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keys := map[string]string{
		uk.leaseKey("reconcile"):                                     userTag,
		uk.fenceKey("reconcile"):                                     userTag,
		mustKey(CursorKey{Org: org, User: user, Name: "sync"}.Key()): userTag,
		mustKey(CursorKey{Org: org, Name: "Contact"}.Key()):          orgTag,
		orgKey(org, orgSettingsName):                                 orgTag,
		orgKey(org, orgConfigsName):                                  orgTag,
		orgKey(org, orgUsersName):                                    orgTag,
		orgKey(org, orgEmailIndexName):                               orgTag,
		orgKey(org, orgResetsName):                                   orgTag,
		orgKey(org, orgErrorsData):                                   orgTag,
		orgKey(org, orgErrorsRecent):                                 orgTag,
		orgKey(org, orgErrorsUser, user):                             orgTag,
		orgLeaseKey(org, "watch-exchange"):                           orgTag,
		orgFenceKey(org, "watch-exchange"):                           orgTag,
		orgIndexKey():                                                globalTag,
	}
	for name := range userNames {
		keys[mustKey(uk.Key(name, "part"))] = userTag
	}
	for k, want := range keys {
		if !strings.HasPrefix(k, keyPrefix) {
			t.Errorf("key %q is outside the %q namespace", k, keyPrefix)
		}
		tag, ok := hashTag(k)
		if !ok || tag != want {
			t.Errorf("key %q has hash tag %q (%v), want %q", k, tag, ok, want)
		}
	}
	if got := uk.leaseKey("reconcile"); got != "tandem:{"+userTag+"}:lease:reconcile" {
		t.Errorf("lease key = %q", got)
	}
	if got := orgLeaseKey(org, "watch-exchange"); got != "tandem:{"+orgTag+"}:lease:watch-exchange" {
		t.Errorf("org lease key = %q", got)
	}
}

func TestKeyConstructorsRejectBadIDs(t *testing.T) {
	good := UserKey{OrgID: "00D1", UserID: "0051"}
	tests := []struct {
		name string
		fn   func() error
	}{
		{"org with colon", func() error { _, err := (UserKey{OrgID: "00D:x", UserID: "005"}).Key("mapping"); return err }},
		{"user with brace", func() error { _, err := (UserKey{OrgID: "00D", UserID: "0{5}"}).Key("mapping"); return err }},
		{"empty user", func() error { _, err := (UserKey{OrgID: "00D"}).Key("mapping"); return err }},
		{"unregistered name", func() error { _, err := good.Key("anything"); return err }},
		{"part with colon", func() error { _, err := good.Key("mapping", "a:b"); return err }},
		{"cursor name with dot", func() error { _, err := CursorKey{Org: "00D", Name: "a.b"}.Key(); return err }},
		{"cursor user with space", func() error { _, err := CursorKey{Org: "00D", User: "a b", Name: "n"}.Key(); return err }},
		{"cursor without org", func() error { _, err := CursorKey{Name: "n"}.Key(); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.fn(); !errors.Is(err, ErrInvalidID) {
				t.Fatalf("error = %v, want ErrInvalidID", err)
			}
		})
	}
}

// TestEveryStoredKeyIsTagged runs every repository against redis-server, then walks the keys
// Redis actually holds: each must be in the namespace and carry a hash tag.
func TestEveryStoredKeyIsTagged(t *testing.T) {
	rdb := redisServer.start(t)
	s := newTestStore(t, rdb)
	ctx := t.Context()
	const org = "00D000000000001"
	uk := UserKey{OrgID: org, UserID: "005000000000001"}

	if _, err := s.PutOrg(ctx, &tandemv1.Org{OrgId: org, Exchange: &tandemv1.ExchangeConnection{Password: "pw"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutConfiguration(ctx, org, &tandemv1.SyncConfiguration{Name: "Sales", Active: true, UserIds: []string{uk.UserID}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutUsers(ctx, org, []*tandemv1.SyncUser{{UserId: uk.UserID, Email: "a@example.com", Active: true}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCursor(ctx, CursorKey{Org: org, Name: "Contact"}, "2026-01-01T00:00:00Z"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCursor(ctx, CursorKey{Org: org, User: uk.UserID, Name: "contacts"}, "H4sI"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordError(ctx, org, uk.UserID, tandemv1.RecordKind_RECORD_KIND_CONTACT, &tandemv1.SyncError{Code: "X"}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkReset(ctx, uk); err != nil {
		t.Fatal(err)
	}
	lease, err := s.AcquireLease(ctx, uk, "reconcile", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	mapping, err := uk.Key("mapping", "k1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, lease, HSet(mapping, "exchange_id", "AAMk")); err != nil {
		t.Fatal(err)
	}

	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 12 {
		t.Fatalf("only %d keys stored: %v", len(keys), keys)
	}
	for _, k := range keys {
		tag, ok := hashTag(k)
		if !strings.HasPrefix(k, keyPrefix) || !ok {
			t.Errorf("stored key %q lacks the namespace or a hash tag", k)
			continue
		}
		if tag != globalTag && tag != org && tag != uk.tag() {
			t.Errorf("stored key %q has unexpected tag %q", k, tag)
		}
	}
}
