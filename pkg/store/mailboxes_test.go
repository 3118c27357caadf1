package store

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	mailboxOrgA = "00Dmailbox0000A"
	mailboxOrgB = "00Dmailbox0000B"
	mailboxOrgC = "00Dmailbox0000C"
)

func claimedBy(t *testing.T, s *Store, orgID string) []string {
	t.Helper()
	got, err := s.ClaimedMailboxes(t.Context(), orgID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func holderOf(t *testing.T, s *Store, email string) string {
	t.Helper()
	h, ok, err := s.MailboxHolder(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return ""
	}
	return h
}

func TestMailboxKeysSlots(t *testing.T) {
	for k, want := range map[string]string{mailboxClaimsKey(): globalTag, orgMailboxesKey(mailboxOrgA): mailboxOrgA} {
		if tag, ok := hashTag(k); !ok || tag != want {
			t.Errorf("key %q has hash tag %q, want %q", k, tag, want)
		}
	}
	if got := mailboxClaimsKey(); got != "tandem:{global}:mailboxes" {
		t.Errorf("claims key = %q", got)
	}
	if got := orgMailboxesKey(mailboxOrgA); got != "tandem:{"+mailboxOrgA+"}:mailboxes" {
		t.Errorf("org's mailboxes key = %q", got)
	}
}

func TestClaimMailboxes(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)

		// The first org to claim a mailbox holds it; addresses compare case-insensitively, and
		// empty ones are skipped.
		got, err := s.ClaimMailboxes(ctx, mailboxOrgA, []string{"Bob.Smith@Acme.example", "alice@acme.example", "", " bob.smith@acme.example "})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"bob.smith@acme.example": mailboxOrgA, "alice@acme.example": mailboxOrgA}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("org A's claims (-want +got):\n%s", diff)
		}

		// A second org gets the free mailbox and learns who holds the other.
		got, err = s.ClaimMailboxes(ctx, mailboxOrgB, []string{"BOB.SMITH@acme.example", "carol@acme.example"})
		if err != nil {
			t.Fatal(err)
		}
		want = map[string]string{"bob.smith@acme.example": mailboxOrgA, "carol@acme.example": mailboxOrgB}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("org B's claims (-want +got):\n%s", diff)
		}
		if h := holderOf(t, s, "Bob.Smith@ACME.example"); h != mailboxOrgA {
			t.Fatalf("holder of bob = %q, want org A", h)
		}

		// Claiming again changes nothing.
		got, err = s.ClaimMailboxes(ctx, mailboxOrgA, []string{"bob.smith@acme.example"})
		if err != nil || got["bob.smith@acme.example"] != mailboxOrgA {
			t.Fatalf("org A claiming its own mailbox again: %v, %v", got, err)
		}
		// Each org's set lists what it claimed or tried to: a superset of its claims.
		if diff := cmp.Diff([]string{"alice@acme.example", "bob.smith@acme.example"}, claimedBy(t, s, mailboxOrgA)); diff != "" {
			t.Errorf("org A's set (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"bob.smith@acme.example", "carol@acme.example"}, claimedBy(t, s, mailboxOrgB)); diff != "" {
			t.Errorf("org B's set (-want +got):\n%s", diff)
		}
		if h := holderOf(t, s, "nobody@acme.example"); h != "" {
			t.Errorf("holder of an unclaimed mailbox = %q", h)
		}
		if _, err := s.ClaimMailboxes(ctx, "bad id", []string{"x@acme.example"}); err == nil {
			t.Error("a claim for an invalid org id succeeded")
		}
	})
}

func TestClaimManyMailboxes(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		// More than one chunk.
		var emails []string
		for i := range 2*mailboxChunk + 7 {
			emails = append(emails, fmt.Sprintf("User%04d@Acme.example", i))
		}
		got, err := s.ClaimMailboxes(ctx, mailboxOrgA, emails)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(emails) {
			t.Fatalf("%d holders for %d mailboxes", len(got), len(emails))
		}
		for _, e := range emails {
			if got[MailboxAddress(e)] != mailboxOrgA {
				t.Fatalf("%s held by %q", e, got[MailboxAddress(e)])
			}
		}
		if n := len(claimedBy(t, s, mailboxOrgA)); n != len(emails) {
			t.Fatalf("org's set has %d addresses, want %d", n, len(emails))
		}
		if err := s.ReleaseMailboxes(ctx, mailboxOrgA, emails); err != nil {
			t.Fatal(err)
		}
		if n, err := rdb.HLen(ctx, mailboxClaimsKey()).Result(); err != nil || n != 0 {
			t.Fatalf("%d claims left after releasing all, %v", n, err)
		}
		if n := len(claimedBy(t, s, mailboxOrgA)); n != 0 {
			t.Fatalf("org's set has %d addresses after releasing all", n)
		}
	})
}

func TestTakeOverAndReleaseMailbox(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		const bob = "bob@acme.example"
		if _, err := s.ClaimMailboxes(ctx, mailboxOrgA, []string{bob}); err != nil {
			t.Fatal(err)
		}

		// A take-over that names the wrong previous holder changes nothing.
		h, err := s.TakeOverMailbox(ctx, mailboxOrgC, "Bob@Acme.example", mailboxOrgB)
		if err != nil || h != mailboxOrgA {
			t.Fatalf("take-over from the wrong holder = %q, %v; want org A still", h, err)
		}
		// One that names the holder moves the claim.
		h, err = s.TakeOverMailbox(ctx, mailboxOrgC, "Bob@Acme.example", mailboxOrgA)
		if err != nil || h != mailboxOrgC {
			t.Fatalf("take-over from org A = %q, %v; want org C", h, err)
		}
		if !slices.Contains(claimedBy(t, s, mailboxOrgC), bob) {
			t.Fatalf("org C's set %v lacks the mailbox it took over", claimedBy(t, s, mailboxOrgC))
		}

		// Org A releasing it now forgets it, and leaves org C's claim alone.
		if err := s.ReleaseMailboxes(ctx, mailboxOrgA, []string{bob}); err != nil {
			t.Fatal(err)
		}
		if h := holderOf(t, s, bob); h != mailboxOrgC {
			t.Fatalf("holder after another org's release = %q, want org C", h)
		}
		if got := claimedBy(t, s, mailboxOrgA); len(got) != 0 {
			t.Fatalf("org A's set after its release = %v", got)
		}

		// The holder's release frees the mailbox for anyone.
		if err := s.ReleaseMailboxes(ctx, mailboxOrgC, []string{"BOB@acme.example"}); err != nil {
			t.Fatal(err)
		}
		if h := holderOf(t, s, bob); h != "" {
			t.Fatalf("holder after its release = %q, want none", h)
		}
		if got := claimedBy(t, s, mailboxOrgC); len(got) != 0 {
			t.Fatalf("org C's set after its release = %v", got)
		}
		// A take-over of a mailbox nobody holds claims it.
		if h, err := s.TakeOverMailbox(ctx, mailboxOrgB, bob, mailboxOrgA); err != nil || h != mailboxOrgB {
			t.Fatalf("take-over of a free mailbox = %q, %v; want org B", h, err)
		}
	})
}

// TestMailboxCrashBetweenWrites: the org's set and the claim are written one after the other
// (different slots). A crash between them leaves an address in the set that the org does not
// hold, which must be harmless.
func TestMailboxCrashBetweenWrites(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		const bob, carol = "bob@acme.example", "carol@acme.example"
		// A claim that died after adding to the set, and a release that died after deleting the
		// claim.
		if err := rdb.SAdd(ctx, orgMailboxesKey(mailboxOrgA), bob, carol).Err(); err != nil {
			t.Fatal(err)
		}
		// Meanwhile org B holds bob.
		if _, err := s.ClaimMailboxes(ctx, mailboxOrgB, []string{bob}); err != nil {
			t.Fatal(err)
		}
		// Org A's release of what it does not hold only cleans its set.
		if err := s.ReleaseMailboxes(ctx, mailboxOrgA, []string{bob, carol}); err != nil {
			t.Fatal(err)
		}
		if h := holderOf(t, s, bob); h != mailboxOrgB {
			t.Fatalf("holder of bob = %q, want org B", h)
		}
		if got := claimedBy(t, s, mailboxOrgA); len(got) != 0 {
			t.Fatalf("org A's set = %v, want empty", got)
		}
		// And a claim of carol, which nobody holds, goes through.
		got, err := s.ClaimMailboxes(ctx, mailboxOrgA, []string{carol})
		if err != nil || got[carol] != mailboxOrgA {
			t.Fatalf("claim after the crash = %v, %v", got, err)
		}
	})
}

// TestMailboxClaimsAreAtomic: orgs claiming and taking over the same mailboxes at once never
// both hold one, and every org is told the one holder.
func TestMailboxClaimsAreAtomic(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		const orgs = 12
		var emails []string
		for i := range 40 {
			emails = append(emails, fmt.Sprintf("rep%02d@acme.example", i))
		}
		orgID := func(i int) string { return fmt.Sprintf("00Dconcurrent%02d", i) }

		replies := make([]map[string]string, orgs)
		var wg sync.WaitGroup
		for i := range orgs {
			wg.Go(func() {
				// Each org claims in its own order.
				mine := slices.Clone(emails)
				if i%2 == 1 {
					slices.Reverse(mine)
				}
				got, err := s.ClaimMailboxes(ctx, orgID(i), mine)
				if err != nil {
					t.Error(err)
				}
				replies[i] = got
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		stored, err := rdb.HGetAll(ctx, mailboxClaimsKey()).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != len(emails) {
			t.Fatalf("%d claims stored, want %d", len(stored), len(emails))
		}
		for i, got := range replies {
			if !maps.Equal(got, stored) {
				t.Fatalf("org %d was told holders %v, but the claims are %v", i, got, stored)
			}
		}

		// Every other org finds the first mailbox's claim stale at once: one takes it over.
		const bob = "rep00@acme.example"
		previous := stored[bob]
		taken := make([]string, orgs)
		for i := range orgs {
			if orgID(i) == previous {
				continue
			}
			wg.Go(func() {
				h, err := s.TakeOverMailbox(ctx, orgID(i), bob, previous)
				if err != nil {
					t.Error(err)
				}
				taken[i] = h
			})
		}
		wg.Wait()
		winner := holderOf(t, s, bob)
		if winner == previous || winner == "" {
			t.Fatalf("holder after the take-overs = %q, want one of the others", winner)
		}
		for i, h := range taken {
			if orgID(i) != previous && h != winner {
				t.Fatalf("org %d was told %q holds the mailbox, but %q does", i, h, winner)
			}
		}
	})
}

func TestMailboxesSyncedBy(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		synced := func(orgID string) map[string]bool {
			t.Helper()
			got, err := s.MailboxesSyncedBy(ctx, orgID)
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		if got := synced(mailboxOrgA); len(got) != 0 {
			t.Fatalf("an org that does not exist syncs %v", got)
		}
		if _, err := s.PutOrg(ctx, &tandemv1.Org{OrgId: mailboxOrgA, Name: "A", Enabled: true}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutUsers(ctx, mailboxOrgA, []*tandemv1.SyncUser{
			{UserId: "005synced", Email: "Bob@Acme.example", Active: true},
			{UserId: "005profile", Email: "dora@acme.example", Active: true, ProfileId: "00eSales"},
			{UserId: "005inactive", Email: "ina@acme.example", Active: false},
			{UserId: "005unassigned", Email: "una@acme.example", Active: true},
			{UserId: "005paused", Email: "pau@acme.example", Active: true},
			{UserId: "005noemail", Active: true},
		}); err != nil {
			t.Fatal(err)
		}
		reps := validConfig("reps")
		reps.UserIds = []string{"005synced", "005inactive", "005noemail"}
		reps.ProfileIds = []string{"00eSales"}
		paused := validConfig("paused")
		paused.Active = false
		paused.UserIds = []string{"005paused"}
		for _, c := range []*tandemv1.SyncConfiguration{reps, paused} {
			if _, err := s.PutConfiguration(ctx, mailboxOrgA, c); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(map[string]bool{"bob@acme.example": true, "dora@acme.example": true}, synced(mailboxOrgA)); diff != "" {
			t.Fatalf("synced mailboxes (-want +got):\n%s", diff)
		}
		// A disabled org syncs nothing.
		if _, err := s.PutOrg(ctx, &tandemv1.Org{OrgId: mailboxOrgA, Name: "A", Enabled: false}); err != nil {
			t.Fatal(err)
		}
		if got := synced(mailboxOrgA); len(got) != 0 {
			t.Fatalf("a disabled org syncs %v", got)
		}
	})
}

func TestHeldElsewhereNamesOtherOrgsMailboxes(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t, redisServer.start(t))
	if _, err := s.ClaimMailboxes(ctx, "00Dfirst", []string{"a@acme.example"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimMailboxes(ctx, "00Dsecond", []string{"b@acme.example"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.HeldElsewhere(ctx, "00Dsecond", []string{"A@Acme.example", "b@acme.example", "c@acme.example", ""})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got["a@acme.example"] {
		t.Fatalf("HeldElsewhere = %v, want only a@acme.example (held by the first org)", got)
	}
}
