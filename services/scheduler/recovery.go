package scheduler

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// gapCycles is how many cycles a read has to arrive before it counts as lost: a read of cycle
// C that the ledger still misses when cycle C+gapCycles starts had a whole interval and more.
// It is also how long a full read asked for to fill a gap has before it is asked for again.
// Together they bound recovery: the side is read again at most two intervals after the read
// that was lost.
const gapCycles = 2

// gaps finds, for each side, whether one of the user's reads was lost on the way to the
// reconciler (a broker restarted without its store, a purged stream, a dead letter) and asks
// that side for a full read, which keeps links and restarts the chain of reads.
//
// A lost read leaves evidence in the ledger's cycle bookkeeping as soon as the side's next
// read arrives: each read names the read it continues from, and the engine keeps a complete
// read whose predecessor never arrived as Waiting, and the pages of an incomplete read under
// Pages. Either, for a cycle past the side's Ready and gapCycles old, is a gap. This holds for
// a user's first sync too (nothing reconciled yet), which a lag behind the last reconciled
// cycle cannot tell from a user who was never read.
//
// A read is also late, not lost, while its side's job is still on the bus (pool is the org's
// worker pool): a slow poll of a large org may still be publishing the pages of cycle C while a
// concurrent job's read of C+1 has already arrived.
func (s *Scheduler) gaps(ctx context.Context, uk store.UserKey, pool string, cycle uint64, kinds []tandemv1.RecordKind) (sides, error) {
	var full sides
	asked, err := s.st.FullReadRequests(ctx, uk)
	if err != nil {
		return full, err
	}
	queued := -1 // the user's changes still on the bus; -1 until looked up
	full.exchangeUnplanned = len(kinds) > 0
	for _, kind := range kinds {
		cyc, err := s.led.LoadCycle(ctx, uk, kind)
		if err != nil {
			return full, err
		}
		full.exchangeUnplanned = full.exchangeUnplanned && firstSyncWaits(cyc)
		for _, side := range []tandemv1.System{tandemv1.System_SYSTEM_EXCHANGE, tandemv1.System_SYSTEM_SALESFORCE} {
			key := store.FullReadKey{Kind: kind, Side: side}
			need := asked[key] == cycle // this cycle asked already and is being published again
			if !need {
				if _, ok := lostRead(cyc, side, cycle); !ok || asked[key]+gapCycles > cycle {
					continue
				}
				if queued < 0 {
					if queued, err = s.changesQueued(ctx, uk); err != nil {
						return full, err
					}
				}
				if queued > 0 {
					// Late, not lost: a read's pages are all published before the read that
					// continues from it starts, so they are still on the bus waiting for the
					// reconciler (a backlog), and another read would only add to it.
					continue
				}
				running, err := s.jobsQueued(ctx, uk, pool, side)
				if err != nil {
					return full, err
				}
				if running > 0 {
					// Late, not lost: a job of the side is still queued or being carried out, and
					// its pages may be on their way yet.
					continue
				}
				// The count was taken after the ledger was read: confirm the gap with a ledger
				// read taken after it, so that pages handled in between are not taken for lost.
				if cyc, err = s.led.LoadCycle(ctx, uk, kind); err != nil {
					return full, err
				}
				lost, ok := lostRead(cyc, side, cycle)
				if !ok {
					continue
				}
				s.log.WarnContext(ctx, "a read never reached the reconciler; reading the side in full",
					slog.String("user", uk.UserID), slog.String("side", store.SideName(side)), slog.String("kind", store.KindName(kind)),
					slog.Uint64("lost_cycle", lost), slog.Uint64(telemetry.KeyCycle, cycle))
				if err := s.st.RequestFullRead(ctx, uk, key, cycle); err != nil {
					return full, err
				}
				need = true
			}
			if side == tandemv1.System_SYSTEM_EXCHANGE {
				full.exchange = full.exchange || need
			} else {
				full.salesforce = full.salesforce || need
			}
		}
	}
	return full, nil
}

// reading reports whether the bus still holds a job reading the user (either side's, queued or
// being carried out) or pages of the user's changes waiting for the reconciler.
func (s *Scheduler) reading(ctx context.Context, uk store.UserKey, pool string) (bool, error) {
	for _, side := range []tandemv1.System{tandemv1.System_SYSTEM_SALESFORCE, tandemv1.System_SYSTEM_EXCHANGE} {
		if n, err := s.jobsQueued(ctx, uk, pool, side); err != nil || n > 0 {
			return n > 0, err
		}
	}
	n, err := s.changesQueued(ctx, uk)
	return n > 0, err
}

// jobsQueued returns how many jobs reading side for the user the bus still holds: queued, or
// taken by a worker and not yet done (a work queue keeps a job until it is acknowledged).
func (s *Scheduler) jobsQueued(ctx context.Context, uk store.UserKey, pool string, side tandemv1.System) (int, error) {
	subject, err := bus.SalesforceJobSubject(uk.OrgID, pool)
	if side == tandemv1.System_SYSTEM_EXCHANGE {
		subject, err = bus.ExchangeJobSubject(uk.OrgID, pool, uk.UserID)
	}
	if err != nil {
		return 0, err
	}
	return s.stored(ctx, uk, subject)
}

// changesQueued returns how many of the user's change pages the bus still holds.
func (s *Scheduler) changesQueued(ctx context.Context, uk store.UserKey) (int, error) {
	subject, err := bus.ChangesSubject(uk.OrgID, uk.UserID)
	if err != nil {
		return 0, err
	}
	return s.stored(ctx, uk, subject)
}

// stored counts the messages the bus holds on subject, one of the user's.
func (s *Scheduler) stored(ctx context.Context, uk store.UserKey, subject string) (int, error) {
	n, err := s.queue.Stored(ctx, subject)
	if err != nil {
		return 0, fmt.Errorf("look for %s's messages on %s: %w", uk, subject, err)
	}
	return int(n), nil
}

// lostRead returns the oldest read of side the ledger is missing that is at least gapCycles
// older than cycle: the predecessor a complete read waits for, or a read with incomplete pages
// once a later read of the side has arrived (before that, its last pages may still be on the
// way). Reads up to the side's Ready are complete, whatever bookkeeping they left.
func lostRead(cyc ledger.Cycle, side tandemv1.System, cycle uint64) (uint64, bool) {
	ready := cyc.Ready[store.SideName(side)]
	var latest uint64 // the latest read of side the ledger has pages of
	for cs := range cyc.Waiting {
		if s, c, ok := ledger.ParseCycleSide(cs); ok && s == side {
			latest = max(latest, c)
		}
	}
	for cs := range cyc.Pages {
		if s, c, ok := ledger.ParseCycleSide(cs); ok && s == side {
			latest = max(latest, c)
		}
	}
	var oldest uint64
	consider := func(c uint64) {
		if c > ready && c+gapCycles <= cycle && (oldest == 0 || c < oldest) {
			oldest = c
		}
	}
	for cs, previous := range cyc.Waiting {
		if s, _, ok := ledger.ParseCycleSide(cs); ok && s == side {
			consider(previous)
		}
	}
	for cs := range cyc.Pages {
		if s, c, ok := ledger.ParseCycleSide(cs); ok && s == side && c < latest {
			consider(c)
		}
	}
	return oldest, oldest > 0
}

// firstSyncWaits reports whether the user's first sync (since the ledger began: a new user, a
// reset, lost state) has a complete Exchange read that waits to be planned, for the Salesforce
// side's (a first poll reads everyone in full, which takes a while in a large org). Until that
// first plan nothing can sync — no pair is linked, so no change can be planned on its own — and
// reading the mailbox again would only queue reads for the reconciler. An incomplete read does
// not count: the read after it is what shows it lost.
func firstSyncWaits(cyc ledger.Cycle) bool {
	return cyc.Reconciled == 0 && cyc.Ready[store.SideName(tandemv1.System_SYSTEM_EXCHANGE)] > 0
}
