package planner

import (
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// maxListedIDs bounds the record ids a hold's summary lists.
const maxListedIDs = 100

// guardDeletes carries out the cycle's removals, or holds them for an admin when they exceed the
// configured share of the user's synced pairs or when a side suddenly looks empty.
func (p *planner) guardDeletes() {
	if h := p.s.Hold; h != nil && h.Decision == HoldUndecided {
		// While a hold awaits a decision, no removals happen for this user and kind.
		return
	}
	var apply, guarded []removal
	for _, r := range p.removals {
		if p.approved[r.key] {
			apply = append(apply, r)
		} else {
			guarded = append(guarded, r)
		}
	}
	set := p.s.Settings
	// The pairs relinked this cycle count as synced: after lost state the ledger holds no
	// mappings, and a handful of removals measured against zero would look like a mass delete.
	synced := len(p.s.Mappings) + p.newLinks()
	n := len(guarded)
	sideEmpty := ""
	if synced >= set.MassDeleteMinimum {
		switch {
		case liveCount(p.s.Exchange) == 0:
			sideEmpty = "Exchange"
		case liveCount(p.s.Salesforce) == 0:
			sideEmpty = "Salesforce"
		}
	}
	massive := n >= set.MassDeleteMinimum && n*100 > set.MassDeletePercent*synced
	if n > 0 && (massive || sideEmpty != "") {
		p.hold(guarded, synced, sideEmpty)
	} else {
		apply = append(apply, guarded...)
	}
	for _, r := range apply {
		if r.write != nil {
			p.plan.Writes = append(p.plan.Writes, *r.write)
			continue
		}
		p.unlink(r.key, r.mapping)
		p.plan.Tombstones = append(p.plan.Tombstones, r.tombstone)
		// The survivor keeps the pair's key: should the ledger (and this tombstone) be lost, it
		// is then an orphan, decided the same way again, instead of a record that looks new.
		mirror := p.s.Exchange
		if r.survivorSide == salesforce {
			mirror = p.s.Salesforce
		}
		if mr := live(mirror, r.survivor.GetId()); mr != nil {
			p.stampKey(r.key, r.survivorSide, mr)
		}
	}
}

func liveCount(mirror map[string]*tandemv1.MirrorRecord) int {
	n := 0
	for id := range mirror {
		if live(mirror, id) != nil {
			n++
		}
	}
	return n
}

func (p *planner) hold(rs []removal, synced int, sideEmpty string) {
	id := fmt.Sprintf("%s-c%d-%s", kindName(p.s.Kind), p.s.Cycle, shortHash(fmt.Sprint(len(rs), rs[0].key)))
	summary := &tandemv1.HeldDeletes{
		HoldId: id, Kind: p.s.Kind, Count: int64(len(rs)), Synced: int64(synced),
		ThresholdPercent: int32(p.s.Settings.MassDeletePercent),
	}
	h := &tandemv1.Hold{Summary: summary, CreatedAt: timestamppb.New(p.s.Now), Cycle: p.s.Cycle}
	targets := map[tandemv1.System]int{}
	for _, r := range rs {
		var pw *tandemv1.PendingWrite
		if r.write != nil {
			pw = r.write.PendingWrite
		} else {
			// An unlink: recorded with the record that would lose its link.
			pw = &tandemv1.PendingWrite{
				Command: &tandemv1.WriteCommand{SyncKey: r.key, TargetId: r.survivor.GetId()},
				Target:  r.survivorSide,
			}
		}
		targets[pw.GetTarget()]++
		h.Deletes = append(h.Deletes, pw)
		if len(summary.RecordIds) < maxListedIDs {
			summary.RecordIds = append(summary.RecordIds, pw.GetCommand().GetTargetId())
		}
	}
	summary.Target = exchange
	if targets[salesforce] > targets[exchange] {
		summary.Target = salesforce
	}
	p.plan.NewHold = h
	if sideEmpty != "" {
		p.plan.Errors = append(p.plan.Errors, syncerr.New(syncerr.SyncSideLooksEmpty,
			"%s reports no %s records for a user with %d synced; %d removals are held (hold %s)", sideEmpty, kindName(p.s.Kind), synced, len(rs), id))
		return
	}
	p.plan.Errors = append(p.plan.Errors, syncerr.New(syncerr.SyncMassDeleteHeld,
		"%d of %d synced %s records would be removed, more than %d%%; held as %s", len(rs), synced, kindName(p.s.Kind), p.s.Settings.MassDeletePercent, id))
}
