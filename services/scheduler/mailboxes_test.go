package scheduler_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tandem-sync/tandem/pkg/api"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const orgB = "00Dorg00000000B"

// sharedMailbox is the address both orgs' users have, spelt differently in each.
const (
	sharedInA = "Rep.One@Acme.example"
	sharedInB = "REP.ONE@acme.EXAMPLE"
	sharedKey = "rep.one@acme.example"
)

func withEmail(u *tandemv1.SyncUser, email string) *tandemv1.SyncUser {
	u.Email = email
	return u
}

// cycleOf makes orgID due, starts its cycle and returns its Salesforce job and Exchange jobs by
// user.
func (e *env) cycleOf(t *testing.T, orgID string) (*tandemv1.SyncJob, map[string]*tandemv1.SyncJob) {
	t.Helper()
	e.dueNow(t, orgID)
	e.tick(t)
	return split(t, orgID, e.newJobs(t))
}

func (e *env) userStatus(t *testing.T, orgID, userID string) *tandemv1.UserStatus {
	t.Helper()
	us, err := e.status.Get(t.Context(), store.UserKey{OrgID: orgID, UserID: userID})
	if err != nil {
		t.Fatal(err)
	}
	return us
}

func (e *env) holder(t *testing.T, email string) string {
	t.Helper()
	h, _, err := e.st.MailboxHolder(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (e *env) errorReport(t *testing.T, orgID string) []*tandemv1.SyncErrorEntry {
	t.Helper()
	entries, _, err := e.st.ListErrors(t.Context(), orgID, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// syncs reports whether the cycle's jobs read userID: an Exchange job, and the user among the
// Salesforce job's users.
func syncs(sf *tandemv1.SyncJob, ex map[string]*tandemv1.SyncJob, userID string) (exchange, salesforce bool) {
	return ex[userID] != nil, slices.Contains(sf.GetUserIds(), userID)
}

// TestMailboxSyncedByOneOrgAtATime: org A syncs a mailbox first; org B, whose user has the same
// address, leaves that user out — no Exchange job, not in the Salesforce job — with a status
// and one error-report entry naming org A, until org A stops syncing the user.
func TestMailboxSyncedByOneOrgAtATime(t *testing.T) {
	e := newEnv(t, testConfig())
	ctx := t.Context()
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, withEmail(user(user1, true), sharedInA), userIn(orgA, user2, true))
	cfgA := e.putConfig(t, orgA, contactsOnly(user1, user2))

	sf, ex := e.cycleOf(t, orgA)
	if got := sortedKeys(ex); !slices.Equal(got, []string{user1, user2}) || !slices.Equal(sf.GetUserIds(), []string{user1, user2}) {
		t.Fatalf("org A: Exchange jobs %v, Salesforce job users %v; want both users", got, sf.GetUserIds())
	}
	if h := e.holder(t, sharedInB); h != orgA {
		t.Fatalf("the mailbox is held by %q, want org A", h)
	}

	// Org B assigns a user with the same mailbox, and another with its own.
	e.putOrg(t, org(orgB))
	e.putUsers(t, orgB, withEmail(user(user3, true), sharedInB), userIn(orgB, user4, true))
	e.putConfig(t, orgB, contactsAndEvents("reps", true, user3, user4))
	// An earlier sync of org B had linked the user (its Exchange part says so).
	earlier := &tandemv1.UserStatus{Kinds: []*tandemv1.KindStatus{
		{Kind: contactKind, FolderFound: tandemv1.CheckResult_CHECK_RESULT_PASSED, AddressesLinked: tandemv1.CheckResult_CHECK_RESULT_PASSED},
	}}
	for _, u := range []string{user3, user4} {
		if err := e.status.Put(ctx, store.UserKey{OrgID: orgB, UserID: u}, status.PartExchange, earlier); err != nil {
			t.Fatal(err)
		}
	}
	for cycle := range 2 {
		sf, ex = e.cycleOf(t, orgB)
		if exJob, sfUser := syncs(sf, ex, user3); exJob || sfUser {
			t.Fatalf("org B's cycle %d reads the user whose mailbox org A syncs: Exchange job %v, in the Salesforce job %v", cycle+1, exJob, sfUser)
		}
		if exJob, sfUser := syncs(sf, ex, user4); !exJob || !sfUser {
			t.Fatalf("org B's cycle %d: its other user is not read (Exchange %v, Salesforce %v)", cycle+1, exJob, sfUser)
		}
		us := e.userStatus(t, orgB, user3)
		if us.GetMailboxClaimedByOrg() != orgA || us.GetAssignedToActiveConfiguration() != tandemv1.CheckResult_CHECK_RESULT_PASSED {
			t.Fatalf("org B's user: claimed by %q, assigned %s; want org A, passed", us.GetMailboxClaimedByOrg(), us.GetAssignedToActiveConfiguration())
		}
		if us.GetLastError().GetCode() != string(syncerr.SyncMailboxClaimed) {
			t.Errorf("org B's user: last error %v, want %s", us.GetLastError(), syncerr.SyncMailboxClaimed)
		}
		if ks := status.Kind(us, contactKind); ks.GetAddressesLinked() != tandemv1.CheckResult_CHECK_RESULT_FAILED {
			t.Errorf("org B's blocked user: addresses linked %s, want failed", ks.GetAddressesLinked())
		}
		if us := e.userStatus(t, orgB, user4); us.GetMailboxClaimedByOrg() != "" || status.Kind(us, contactKind).GetAddressesLinked() != tandemv1.CheckResult_CHECK_RESULT_PASSED {
			t.Errorf("org B's other user: claimed by %q, linked %s", us.GetMailboxClaimedByOrg(), status.Kind(us, contactKind).GetAddressesLinked())
		}
		// One entry, recorded when the conflict was found, not once a cycle.
		report := e.errorReport(t, orgB)
		if len(report) != 1 {
			t.Fatalf("org B's error report after cycle %d: %v, want one entry", cycle+1, report)
		}
		entry := report[0]
		if entry.GetUserId() != user3 || entry.GetError().GetCode() != string(syncerr.SyncMailboxClaimed) || entry.GetOccurrences() != 1 ||
			!strings.Contains(entry.GetError().GetMessage(), orgA) || !strings.Contains(entry.GetError().GetSuggestion(), "other org") {
			t.Fatalf("org B's error report entry %v", entry)
		}
	}
	if h := e.holder(t, sharedKey); h != orgA {
		t.Fatalf("the mailbox is held by %q after org B's cycles, want org A", h)
	}
	// Through the API: the user's status names org A, and the org's count does not take the
	// user for linked.
	a := api.New(e.st, e.reconciler, nil, nil)
	us, err := a.GetUserStatus(ctx, &tandemv1.GetUserStatusRequest{OrgId: orgB, UserId: user3})
	if err != nil {
		t.Fatal(err)
	}
	if us.GetStatus().GetMailboxClaimedByOrg() != orgA {
		t.Errorf("GetUserStatus: claimed by %q, want org A", us.GetStatus().GetMailboxClaimedByOrg())
	}
	os, err := a.GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: orgB})
	if err != nil {
		t.Fatal(err)
	}
	if os.GetStatus().GetUsersLinked() != 1 || os.GetStatus().GetUsersExpected() != 2 {
		t.Errorf("org B's status: %d of %d users linked, want 1 of 2", os.GetStatus().GetUsersLinked(), os.GetStatus().GetUsersExpected())
	}
	// Org A goes on syncing the mailbox.
	sf, ex = e.cycleOf(t, orgA)
	if exJob, sfUser := syncs(sf, ex, user1); !exJob || !sfUser {
		t.Fatalf("org A no longer reads its user: Exchange %v, Salesforce %v", exJob, sfUser)
	}
	if us := e.userStatus(t, orgA, user1); us.GetMailboxClaimedByOrg() != "" {
		t.Fatalf("org A's user: claimed by %q, want empty", us.GetMailboxClaimedByOrg())
	}

	// Org A stops syncing the user: its next cycle releases the mailbox...
	cfgA.UserIds = []string{user2}
	e.putConfig(t, orgA, cfgA)
	sf, ex = e.cycleOf(t, orgA)
	if exJob, sfUser := syncs(sf, ex, user1); exJob || sfUser {
		t.Fatalf("org A still reads the user it no longer syncs")
	}
	if h := e.holder(t, sharedKey); h != "" {
		t.Fatalf("the mailbox is held by %q after org A stopped syncing it, want nobody", h)
	}
	// ... and org B's next cycle has it, reading Salesforce in full since its polls went on
	// without the user.
	sf, ex = e.cycleOf(t, orgB)
	if exJob, sfUser := syncs(sf, ex, user3); !exJob || !sfUser || !slices.Contains(sf.GetFullUserIds(), user3) {
		t.Fatalf("org B's user once the mailbox is free: Exchange %v, Salesforce %v, full %v", exJob, sfUser, sf.GetFullUserIds())
	}
	if h := e.holder(t, sharedKey); h != orgB {
		t.Fatalf("the mailbox is held by %q, want org B", h)
	}
	us2 := e.userStatus(t, orgB, user3)
	if us2.GetMailboxClaimedByOrg() != "" || us2.GetLastError() != nil || status.Kind(us2, contactKind).GetAddressesLinked() != tandemv1.CheckResult_CHECK_RESULT_PASSED {
		t.Fatalf("org B's user once it has the mailbox: %v", us2)
	}
	// Org A assigning the user again now finds the mailbox org B's.
	cfgA.UserIds = []string{user1, user2}
	e.putConfig(t, orgA, cfgA)
	sf, ex = e.cycleOf(t, orgA)
	if exJob, sfUser := syncs(sf, ex, user1); exJob || sfUser {
		t.Fatalf("org A reads the mailbox org B now syncs")
	}
	if us := e.userStatus(t, orgA, user1); us.GetMailboxClaimedByOrg() != orgB {
		t.Fatalf("org A's user: claimed by %q, want org B", us.GetMailboxClaimedByOrg())
	}
}

// TestStaleMailboxClaimsAreTakenOver: a claim whose org no longer syncs the mailbox — the org is
// gone or disabled, or stopped syncing the user and ran no cycle since — is taken over by the
// next org that wants the mailbox.
func TestStaleMailboxClaimsAreTakenOver(t *testing.T) {
	for _, tc := range []struct {
		name string
		// stale makes org A's claim stale, without a cycle of org A.
		stale func(t *testing.T, e *env, cfgA *tandemv1.SyncConfiguration)
		// back undoes it, if org A can come back; nil otherwise.
		back func(t *testing.T, e *env, cfgA *tandemv1.SyncConfiguration)
	}{
		{"org deleted", func(t *testing.T, e *env, _ *tandemv1.SyncConfiguration) {
			// What a deletion leaves: the claim, without the org's keys.
			if err := e.st.Client().Del(t.Context(), "tandem:{"+orgA+"}:org").Err(); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"org disabled", func(t *testing.T, e *env, _ *tandemv1.SyncConfiguration) {
			o := org(orgA)
			o.Enabled = false
			e.putOrg(t, o)
		}, func(t *testing.T, e *env, _ *tandemv1.SyncConfiguration) { e.putOrg(t, org(orgA)) }},
		{"configuration made inactive", func(t *testing.T, e *env, cfgA *tandemv1.SyncConfiguration) {
			cfgA.Active = false
			e.putConfig(t, orgA, cfgA)
		}, func(t *testing.T, e *env, cfgA *tandemv1.SyncConfiguration) {
			cfgA.Active = true
			e.putConfig(t, orgA, cfgA)
		}},
		{"user unassigned", func(t *testing.T, e *env, cfgA *tandemv1.SyncConfiguration) {
			cfgA.UserIds = []string{user2}
			e.putConfig(t, orgA, cfgA)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testConfig())
			e.putOrg(t, org(orgA))
			e.putUsers(t, orgA, withEmail(user(user1, true), sharedInA), userIn(orgA, user2, true))
			cfgA := e.putConfig(t, orgA, contactsOnly(user1, user2))
			e.cycleOf(t, orgA)
			e.putOrg(t, org(orgB))
			e.putUsers(t, orgB, withEmail(user(user3, true), sharedInB))
			e.putConfig(t, orgB, contactsOnly(user3))
			if sf, ex := e.cycleOf(t, orgB); ex[user3] != nil || slices.Contains(sf.GetUserIds(), user3) {
				t.Fatal("org B reads the mailbox org A syncs")
			}

			tc.stale(t, e, cfgA)
			sf, ex := e.cycleOf(t, orgB)
			if exJob, sfUser := syncs(sf, ex, user3); !exJob || !sfUser {
				t.Fatalf("org B after org A's claim went stale: Exchange %v, Salesforce %v; want both", exJob, sfUser)
			}
			if h := e.holder(t, sharedKey); h != orgB {
				t.Fatalf("the mailbox is held by %q, want org B", h)
			}
			if us := e.userStatus(t, orgB, user3); us.GetMailboxClaimedByOrg() != "" || us.GetLastError() != nil {
				t.Fatalf("org B's user: %v, want no claim and no error", us)
			}
			if tc.back == nil {
				return
			}
			// Org A comes back: the mailbox is org B's now, and stays so.
			tc.back(t, e, cfgA)
			sf, ex = e.cycleOf(t, orgA)
			if exJob, sfUser := syncs(sf, ex, user1); exJob || sfUser {
				t.Fatal("org A, back, reads the mailbox org B took over")
			}
			if us := e.userStatus(t, orgA, user1); us.GetMailboxClaimedByOrg() != orgB {
				t.Fatalf("org A's user: claimed by %q, want org B", us.GetMailboxClaimedByOrg())
			}
			if h := e.holder(t, sharedKey); h != orgB {
				t.Fatalf("the mailbox is held by %q, want org B still", h)
			}
		})
	}
}

// TestOneTickTwoOrgs: two orgs due in the same tick, whose users share a mailbox nobody holds:
// exactly one of them reads it, and the other's status names that one.
func TestOneTickTwoOrgs(t *testing.T) {
	e := newEnv(t, testConfig())
	e.putOrg(t, org(orgA))
	e.putOrg(t, org(orgB))
	e.putUsers(t, orgA, withEmail(user(user1, true), sharedInA))
	e.putUsers(t, orgB, withEmail(user(user3, true), sharedInB))
	e.putConfig(t, orgA, contactsOnly(user1))
	e.putConfig(t, orgB, contactsOnly(user3))
	e.tick(t)
	byOrg := map[string][]job{}
	for _, j := range e.newJobs(t) {
		byOrg[j.job.GetOrgId()] = append(byOrg[j.job.GetOrgId()], j)
	}
	sfA, exA := split(t, orgA, byOrg[orgA])
	sfB, exB := split(t, orgB, byOrg[orgB])
	aReads, _ := syncs(sfA, exA, user1)
	bReads, _ := syncs(sfB, exB, user3)
	if aReads == bReads {
		t.Fatalf("org A reads the mailbox: %v, org B: %v; want exactly one", aReads, bReads)
	}
	winner, loser, loserUser := orgA, orgB, user3
	if bReads {
		winner, loser, loserUser = orgB, orgA, user1
	}
	if h := e.holder(t, sharedKey); h != winner {
		t.Fatalf("the mailbox is held by %q, want %s", h, winner)
	}
	if us := e.userStatus(t, loser, loserUser); us.GetMailboxClaimedByOrg() != winner {
		t.Fatalf("the other org's user: claimed by %q, want %s", us.GetMailboxClaimedByOrg(), winner)
	}
}
