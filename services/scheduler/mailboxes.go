package scheduler

import (
	"context"
	"errors"
	"log/slog"

	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// A mailbox is synced by one org at a time (store/mailboxes.go): two orgs syncing one mailbox
// would carry each org's contacts and events into the other through it, the contamination
// the Lightning Sync admin guide warns about. Every cycle the scheduler claims the mailboxes
// of the org's syncing users. A user whose mailbox another org holds is left out of the cycle
// as if it were not assigned — no Exchange job, not among the Salesforce job's users — so
// nothing is read or written for it; its status names the org that holds the mailbox
// (mailbox_claimed_by_org) and the error report has an entry saying what to do.
//
// A claim ends in one of two ways. The holder's own scheduler releases the claims on
// mailboxes none of its users syncs any more (unassigned, inactive, configuration deleted or
// made inactive), every cycle. And a claim whose holder no longer syncs the mailbox — the org
// was deleted or disabled, so its scheduler no longer runs, or it stopped syncing the user and
// has not run a cycle since — is stale: the next org that wants the mailbox takes it over, by a
// compare-and-set against the holder it found stale, so that of two orgs that both find it
// stale only one gets it.

// claimMailboxes claims the mailboxes of the org's syncing users (those whose configuration
// syncs something), taking over stale claims, and releases the org's claims on mailboxes it no
// longer syncs. It returns the holder of each syncing user's mailbox, by store.MailboxAddress:
// orgID, or the other org that syncs it. holders is nil when the claims could not be made at
// all; err may also report a stale claim that could not be checked or taken over (the user is
// then left out this cycle) or a failed release (retried next cycle).
func (s *Scheduler) claimMailboxes(ctx context.Context, orgID string, assigned []store.Assignment) (holders map[string]string, err error) {
	var addrs []string
	for _, a := range assigned {
		if len(store.SyncedKinds(a.Config)) > 0 {
			addrs = append(addrs, a.User.GetEmail())
		}
	}
	holders, err = s.st.ClaimMailboxes(ctx, orgID, addrs)
	if err != nil {
		return nil, err
	}
	errs := []error{s.takeOverStale(ctx, orgID, holders)}
	// The org's set lists every mailbox it holds (and maybe a few it does not): those of users
	// it no longer syncs are released.
	claimed, err := s.st.ClaimedMailboxes(ctx, orgID)
	if err != nil {
		return holders, errors.Join(append(errs, err)...)
	}
	var gone []string
	for _, addr := range claimed {
		if _, ok := holders[addr]; !ok {
			gone = append(gone, addr)
		}
	}
	if len(gone) > 0 {
		if err := s.st.ReleaseMailboxes(ctx, orgID, gone); err != nil {
			errs = append(errs, err)
		} else {
			s.log.InfoContext(ctx, "released the claims on mailboxes the org no longer syncs", slog.Int("mailboxes", len(gone)))
		}
	}
	return holders, errors.Join(errs...)
}

// takeOverStale takes over, for orgID, the claims in holders held by orgs that no longer sync
// the mailbox (store.MailboxesSyncedBy), and updates holders with the outcome. Each holder's
// mailboxes are read once per cycle, whatever the number of its claims in the way.
func (s *Scheduler) takeOverStale(ctx context.Context, orgID string, holders map[string]string) error {
	var errs []error
	syncedBy := map[string]map[string]bool{}
	for addr, holder := range holders {
		if holder == orgID {
			continue
		}
		synced, ok := syncedBy[holder]
		if !ok {
			var err error
			if synced, err = s.st.MailboxesSyncedBy(ctx, holder); err != nil {
				// Undecided: the user stays out of this cycle, as if the claim held.
				errs = append(errs, err)
				continue
			}
			syncedBy[holder] = synced
		}
		if synced[addr] {
			continue
		}
		now, err := s.st.TakeOverMailbox(ctx, orgID, addr, holder)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		holders[addr] = now
		if now == orgID {
			s.log.InfoContext(ctx, "took over a mailbox claim its holder no longer uses", slog.String("previous_org", holder))
		}
	}
	return errors.Join(errs...)
}

// leaveOut completes the status part of a syncing user whose mailbox another org holds
// (part.MailboxClaimedByOrg) and records the conflict in the org's error report when it is
// found: when the user's last scheduler part did not name the same holder with the report's
// error. The entry is not recorded again every cycle while the conflict lasts; if the holder
// changes, the same entry is recorded again, naming the new one. The user is also marked left
// out of the org's Salesforce jobs (status.MarkLeftOut), as a suspended user is: once it gets
// its mailbox, the org's incremental polls went on without it, and its Salesforce side is read
// in full.
func (s *Scheduler) leaveOut(ctx context.Context, uk store.UserKey, part *tandemv1.UserStatus) error {
	holder := part.GetMailboxClaimedByOrg()
	var errs []error
	prev, err := s.status.GetPart(ctx, uk, status.PartScheduler)
	switch {
	case err != nil:
		// Whether it was recorded is unknown: the next cycle looks again.
		errs = append(errs, err)
	case prev.GetMailboxClaimedByOrg() == holder && prev.GetLastError().GetCode() == string(syncerr.SyncMailboxClaimed):
		part.LastError = prev.GetLastError()
	default:
		se := syncerr.New(syncerr.SyncMailboxClaimed,
			"the mailbox %s is synced by org %s; org %s syncs nothing for user %s until org %s stops syncing it",
			part.GetEmail(), holder, uk.OrgID, uk.UserID, holder).Proto()
		if _, err := s.st.RecordError(ctx, uk.OrgID, uk.UserID, tandemv1.RecordKind_RECORD_KIND_UNSPECIFIED, se); err != nil {
			// Without the error in the part, the next cycle records it again.
			errs = append(errs, err)
		} else {
			part.LastError = se
			s.log.WarnContext(ctx, "the user's mailbox is synced by another org; the user is left out",
				slog.String("user", uk.UserID), slog.String("holder_org", holder))
		}
	}
	sch, err := s.status.Scheduling(ctx, uk)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if !sch.LeftOut {
		if err := s.status.MarkLeftOut(ctx, uk); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
