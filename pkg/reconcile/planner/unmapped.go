package planner

import (
	"sort"
	"time"

	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// free returns the live records of a mirror that are not linked, sorted by id.
func free(mirror map[string]*tandemv1.MirrorRecord, linked map[string]string) []*tandemv1.MirrorRecord {
	var out []*tandemv1.MirrorRecord
	for id := range mirror {
		if _, ok := linked[id]; ok {
			continue
		}
		if e := live(mirror, id); e != nil {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetRecord().GetId() < out[j].GetRecord().GetId() })
	return out
}

// unmapped links records that were never linked (by sync key, then email, then first + last name
// + company) and creates the rest on the other side where the direction allows.
func (p *planner) unmapped() {
	exFree := p.adopt(exchange, free(p.s.Exchange, p.linkedEx))
	sfFree := p.adopt(salesforce, free(p.s.Salesforce, p.linkedSF))

	// 1. By sync key: records Tandem wrote carry their pair's key (this relinks after a reset, or
	//    after a crash between a write and its commit).
	sfByKey := map[string]*tandemv1.MirrorRecord{}
	for _, s := range sfFree {
		if k := s.GetRecord().GetSyncKey(); k != "" && p.keyFree(k) {
			if _, dup := sfByKey[k]; !dup {
				sfByKey[k] = s
			}
		}
	}
	for _, e := range exFree {
		k := e.GetRecord().GetSyncKey()
		if k == "" || !p.keyFree(k) {
			continue
		}
		if s, ok := sfByKey[k]; ok && !p.linked(e, s) {
			p.link(k, e, s)
			p.plan.Relinked++
		}
	}

	// 2. By email.
	candidates := map[string]*tandemv1.MirrorRecord{}
	for _, s := range sfFree {
		if _, taken := p.linkedSF[s.GetRecord().GetId()]; taken {
			continue
		}
		if mk := record.EmailKey(s.GetRecord()); mk != "" {
			if _, dup := candidates[mk]; !dup {
				candidates[mk] = s
			}
		}
	}
	for _, e := range exFree {
		if _, taken := p.linkedEx[e.GetRecord().GetId()]; taken {
			continue
		}
		mk := record.EmailKey(e.GetRecord())
		s, ok := candidates[mk]
		if mk == "" || !ok {
			continue
		}
		if _, taken := p.linkedSF[s.GetRecord().GetId()]; taken {
			continue
		}
		p.link(p.keyForLink(e, s), e, s)
	}

	// 3. By first + last name + company, where that cannot merge different people.
	p.matchByName(exFree, sfFree)

	// Records that carry a key and found no partner by it, nor by email or name: the partner is
	// gone.
	p.orphans(exFree, sfFree)

	// 4. Create what is left, within the user's record limit.
	count := len(p.s.Mappings) + p.newLinks()
	limitHit := false
	create := func(target tandemv1.System, src *tandemv1.MirrorRecord) {
		rec := src.GetRecord()
		key := rec.GetSyncKey()
		if pw := p.s.Pending[PendingKey(other(target), key)]; key != "" && pw.GetCommand().GetOp() == tandemv1.WriteOp_WRITE_OP_CREATE {
			// What an unanswered create of the pair made, read before its result came: the
			// result links it (or, if the result is lost, adoption does). It is not new.
			return
		}
		if key == "" || !p.keyFree(key) {
			key = record.SyncKey(p.s.OrgID, p.s.UserID, p.s.Kind, other(target), rec.GetId())
		}
		if p.inFlight(target, key) {
			p.busy[key] = true
			p.plan.InFlight++
			return
		}
		if p.busy[key] || p.refusedRecord(target, key, rec) {
			return
		}
		if count >= p.s.Settings.MaxRecords {
			limitHit = true
			return
		}
		count++
		// The source is tagged with the pair's key only once the pair is linked (see pair): a
		// source carrying a key whose partner does not exist would be taken for an orphan.
		p.addWrite(target, tandemv1.WriteOp_WRITE_OP_CREATE, key, rec, nil, nil, "new in "+systemName(other(target)))
		p.mayRepeatForgottenCreate(p.plan.Writes[len(p.plan.Writes)-1].GetCommand(), rec)
	}
	if p.s.Settings.ToSalesforce() {
		for _, e := range exFree {
			tk := TombstoneKey(exchange, e.GetRecord().GetId())
			if _, taken := p.linkedEx[e.GetRecord().GetId()]; taken || p.s.Tombstones[tk] || p.ambiguous[tk] || p.orphaned[tk] {
				continue
			}
			create(salesforce, e)
		}
	}
	if p.s.Settings.ToExchange() {
		for _, s := range sfFree {
			tk := TombstoneKey(salesforce, s.GetRecord().GetId())
			if _, taken := p.linkedSF[s.GetRecord().GetId()]; taken || s.GetOutOfScope() || p.s.Tombstones[tk] || p.ambiguous[tk] || p.orphaned[tk] {
				continue
			}
			create(exchange, s)
		}
	}
	if limitHit {
		p.plan.Errors = append(p.plan.Errors, syncerr.New(syncerr.SyncRecordLimit,
			"the user has more than %d %s records to sync; the rest are not synced", p.s.Settings.MaxRecords, kindName(p.s.Kind)))
	}
}

// orphans decides the free records that carry a sync key no link uses and no record on the
// other side carries. A record carries a pair's key only once the pair existed: Tandem writes it
// on the records it creates (whose source existed) and tags both records of a linked pair. So
// such a record's partner was removed — deleted, or moved out of the synced folder — while
// Tandem's state did not see it go (Redis flushed or restored from an older snapshot, a lost
// ledger). Creating the partner again would bring back what a user removed; instead the record is
// decided as a pair whose partner was deleted, per the configuration, and never created on the
// other side. (What cannot be known without the lost state is whether the record was changed
// since the pair last synced, so a modification does not win here: the removal stands.)
//
// The partner's absence counts only once the other side was read well after the record got its
// key (its last modification): the two sides are read at different times, and a partner created
// just before the record was tagged may not be in the other side's last read yet. Until then the
// record waits, neither removed nor created.
func (p *planner) orphans(exFree, sfFree []*tandemv1.MirrorRecord) {
	set := p.s.Settings
	readUntil := map[tandemv1.System]time.Time{exchange: newestObservation(p.s.Exchange), salesforce: newestObservation(p.s.Salesforce)}
	candidate := func(r *tandemv1.MirrorRecord, side tandemv1.System, linked map[string]string) (string, bool) {
		k := r.GetRecord().GetSyncKey()
		if _, taken := linked[r.GetRecord().GetId()]; taken || k == "" || !p.keyFree(k) {
			return "", false
		}
		if p.s.Tombstones[TombstoneKey(side, r.GetRecord().GetId())] {
			return "", false // decided before: it stays where it is, unlinked
		}
		// A create towards the other side still unanswered is what will give it a partner; a
		// removal of the record itself still unanswered is this rule's earlier decision. Either
		// way the record waits: neither decided again nor created.
		if p.inFlight(other(side), k) || p.inFlight(side, k) {
			p.orphaned[TombstoneKey(side, r.GetRecord().GetId())] = true
			p.busy[k] = true
			return "", false
		}
		// Both connectors report when a record last changed; without that time there is
		// nothing to wait for.
		changed := r.GetRecord().GetModifiedAt()
		if changed != nil && !readUntil[other(side)].After(changed.AsTime().Add(OrphanSettle)) {
			p.orphaned[TombstoneKey(side, r.GetRecord().GetId())] = true // not created meanwhile
			p.busy[k] = true
			p.plan.Waiting++
			return "", false
		}
		return k, true
	}
	for _, e := range exFree {
		k, ok := candidate(e, exchange, p.linkedEx)
		if !ok {
			continue
		}
		p.plan.Orphaned++
		p.orphaned[TombstoneKey(exchange, e.GetRecord().GetId())] = true
		p.busy[k] = true
		if set.ToExchange() {
			p.addWrite(exchange, tandemv1.WriteOp_WRITE_OP_DELETE, k, nil, e.GetRecord(), nil, "its Salesforce record is gone")
		} else {
			p.plan.Tombstones = append(p.plan.Tombstones, TombstoneKey(exchange, e.GetRecord().GetId()))
		}
	}
	for _, s := range sfFree {
		k, ok := candidate(s, salesforce, p.linkedSF)
		if !ok || s.GetOutOfScope() {
			continue
		}
		p.plan.Orphaned++
		p.orphaned[TombstoneKey(salesforce, s.GetRecord().GetId())] = true
		p.busy[k] = true
		if set.ToSalesforce() && set.ExchangeDelete == tandemv1.ExchangeDeletePolicy_EXCHANGE_DELETE_POLICY_DELETE {
			p.addWrite(salesforce, tandemv1.WriteOp_WRITE_OP_DELETE, k, nil, s.GetRecord(), nil, "its Exchange item is gone")
		} else {
			p.plan.Tombstones = append(p.plan.Tombstones, TombstoneKey(salesforce, s.GetRecord().GetId()))
		}
	}
}

// OrphanSettle is how much later than a keyed record's last change the other side must have
// been read before the record's partner counts as gone: it covers the two sides being read at
// different moments and clocks that differ between Exchange, Salesforce and Tandem.
const OrphanSettle = 30 * time.Second

// newestObservation is when the latest read reflected in a mirror started.
func newestObservation(mirror map[string]*tandemv1.MirrorRecord) time.Time {
	var t time.Time
	for _, m := range mirror {
		if o := m.GetObservedAt().AsTime(); m.GetObservedAt() != nil && o.After(t) {
			t = o
		}
	}
	return t
}

// adopt links records that are the effect of a create still in flight: the record carries the
// sync key of a pending create towards its side, so it is that create's result, arrived by
// observation before (or instead of) the worker's report — a worker that crashed after writing.
// Linking it now, exactly as the result would, keeps it from being mistaken for a new record and
// synced back. It returns the records that remain free.
func (p *planner) adopt(side tandemv1.System, recs []*tandemv1.MirrorRecord) []*tandemv1.MirrorRecord {
	out := recs[:0:0]
	for _, r := range recs {
		key := r.GetRecord().GetSyncKey()
		pw := p.s.Pending[PendingKey(side, key)]
		if key == "" || pw == nil || pw.GetCommand().GetOp() != tandemv1.WriteOp_WRITE_OP_CREATE || p.busy[key] {
			out = append(out, r)
			continue
		}
		// The base is what Tandem wrote, not what is there now: the user may have edited the
		// record since, and that edit must count as a change.
		written := record.CopyFields(r.GetRecord(), pw.GetCommand().GetRecord(), record.SyncFields(p.s.Kind))
		res := &tandemv1.WriteResult{CommandId: pw.GetCommand().GetCommandId(), SyncKey: key, Op: tandemv1.WriteOp_WRITE_OP_CREATE, Ok: true, AlreadyApplied: true, Record: written}
		eff := ApplyResult(p.s.Kind, pw, p.s.Mappings[key], nil, res, r.GetObservedAt().AsTime())
		eff.Mirror = nil // the observation is already in the mirror
		p.plan.Adopted = append(p.plan.Adopted, eff)
		p.plan.Links = append(p.plan.Links, eff.Mapping)
		p.linkedEx[eff.Mapping.GetExchangeId()] = key
		p.linkedSF[eff.Mapping.GetSalesforceId()] = key
		p.busy[key] = true
	}
	return out
}

// keyFree reports whether a sync key is not already used by a link or a planned write.
func (p *planner) keyFree(k string) bool {
	_, mapped := p.s.Mappings[k]
	return !mapped && !p.busy[k]
}

func (p *planner) linked(e, s *tandemv1.MirrorRecord) bool {
	_, a := p.linkedEx[e.GetRecord().GetId()]
	_, b := p.linkedSF[s.GetRecord().GetId()]
	return a || b
}

// keyForLink picks the sync key of a pair linked by matching: a key either record already
// carries, else one derived from the Salesforce record.
func (p *planner) keyForLink(e, s *tandemv1.MirrorRecord) string {
	for _, k := range []string{s.GetRecord().GetSyncKey(), e.GetRecord().GetSyncKey()} {
		if k != "" && p.keyFree(k) {
			return k
		}
	}
	return record.SyncKey(p.s.OrgID, p.s.UserID, p.s.Kind, salesforce, s.GetRecord().GetId())
}

// link links e and s under key and makes them agree.
func (p *planner) link(key string, e, s *tandemv1.MirrorRecord) {
	origin := salesforce
	if s.GetOutOfScope() {
		origin = exchange
	}
	p.newLink(key, origin, e.GetRecord(), s.GetRecord())
	p.busy[key] = true
	p.resolveNewLink(key, e.GetRecord(), s.GetRecord())
	p.stampKey(key, exchange, e)
	p.stampKey(key, salesforce, s)
}

func (p *planner) newLinks() int {
	n := 0
	for _, l := range p.plan.Links {
		if _, existed := p.s.Mappings[l.GetSyncKey()]; !existed {
			n++
		}
	}
	return n
}

func systemName(s tandemv1.System) string {
	if s == exchange {
		return "Exchange"
	}
	return "Salesforce"
}

func kindName(k tandemv1.RecordKind) string {
	if k == tandemv1.RecordKind_RECORD_KIND_EVENT {
		return "event"
	}
	return "contact"
}

// mayRepeatForgottenCreate marks cmd, a create from src, as a retry when src has not changed
// since before the ledger began: Tandem's state was lost or reset since, and the Tandem that
// had it may have made this very create (the key is derived from src) before its result could
// be recorded. The target then looks for that earlier record, from when src last changed on,
// and a record the user has deleted since is carried over as a deletion instead of coming back.
//
// A user none of whose records carries a sync key has never been synced — every record Tandem
// creates carries its pair's key, and so does the source once the pair is linked — so a first
// sync's creates are not retries and cost no look-up.
func (p *planner) mayRepeatForgottenCreate(cmd *tandemv1.WriteCommand, src *tandemv1.Record) {
	changed := src.GetModifiedAt()
	if changed == nil || p.s.LedgerBegan.IsZero() || !changed.AsTime().Before(p.s.LedgerBegan) || !p.everSynced() {
		return
	}
	cmd.Retry = true
	if changed.AsTime().Before(cmd.GetIssuedAt().AsTime()) {
		cmd.IssuedAt = changed
	}
}

// everSynced reports whether the user's records show that Tandem has synced them before: a
// link, or a record on either side carrying a sync key.
func (p *planner) everSynced() bool {
	if p.synced == nil {
		synced := len(p.s.Mappings) > 0 || carriesKey(p.s.Exchange) || carriesKey(p.s.Salesforce)
		p.synced = &synced
	}
	return *p.synced
}

// carriesKey reports whether a live record of mirror carries a sync key.
func carriesKey(mirror map[string]*tandemv1.MirrorRecord) bool {
	for _, m := range mirror {
		if !m.GetDeleted() && m.GetRecord().GetSyncKey() != "" {
			return true
		}
	}
	return false
}
