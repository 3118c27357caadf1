package planner

import (
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// This file keeps the records themselves carrying their links: every linked pair holds its sync
// key on both sides (stampKey), a linked record that reappears under a new id with its pair's
// key is relinked rather than treated as deleted (movedRecord), and matching by name never
// merges two different people (matchByName).

// stampKey plans a key-only update of a side's record of a pair when the record does not carry
// the pair's key and no other write to it is planned: pairs linked by matching, and the records
// that were the source of a create, would otherwise carry no key (or another one) and, were the
// ledger lost, restored from an older snapshot or the mailbox moved to new item ids, could only
// be matched again by email or name. The key is Tandem's own tag (an external-id field in
// Salesforce, a hidden extended property in Exchange), not synced content, so it is stamped
// whatever the configured direction.
func (p *planner) stampKey(key string, side tandemv1.System, mr *tandemv1.MirrorRecord) {
	rec := mr.GetRecord()
	pk := PendingKey(side, key)
	if rec.GetId() == "" || rec.GetSyncKey() == key || mr.GetOutOfScope() || p.planned[pk] || p.inFlight(side, key) {
		return
	}
	// An update planned to the side carries the key already; a refused stamp waits for the
	// record to change before it is tried again.
	hash := record.ContentHash(rec)
	if p.refused(side, key, hash) {
		return
	}
	target := proto.Clone(rec).(*tandemv1.Record)
	target.SyncKey = key
	cmd := &tandemv1.WriteCommand{
		Op: tandemv1.WriteOp_WRITE_OP_UPDATE, SyncKey: key, TargetId: rec.GetId(), ExpectedVersion: rec.GetVersion(),
		Record: target, Fields: []string{record.SyncKeyField}, IssuedAt: timestamppb.New(p.s.Now),
	}
	cmd.ContentHash = record.ContentHash(target)
	cmd.CommandId = CommandID(side, p.s.Cycle, cmd)
	pw := &tandemv1.PendingWrite{
		Command: cmd, Target: side, IssuedAt: timestamppb.New(p.s.Now), Cycle: p.s.Cycle,
		OtherId: rec.GetId(), SourceHash: hash,
	}
	p.planned[pk] = true
	p.plan.Writes = append(p.plan.Writes, Write{PendingWrite: pw, Reason: "tag with the pair's sync key", Display: record.DisplayName(rec)})
}

// indexMoved indexes the live records that no mapping links but that carry the sync key of a
// mapping: the pair's record under a new id (an item moved out of the folder and back, a mailbox
// moved to another server, a record restored).
func (p *planner) indexMoved() {
	p.moved = map[tandemv1.System]map[string]*tandemv1.MirrorRecord{}
	for _, side := range []tandemv1.System{exchange, salesforce} {
		mirror, linked := p.s.Exchange, p.linkedEx
		if side == salesforce {
			mirror, linked = p.s.Salesforce, p.linkedSF
		}
		byKey := map[string]*tandemv1.MirrorRecord{}
		for _, r := range free(mirror, linked) {
			k := r.GetRecord().GetSyncKey()
			if _, mapped := p.s.Mappings[k]; !mapped || k == "" {
				continue
			}
			if _, dup := byKey[k]; !dup { // free lists by id: the smallest id wins
				byKey[k] = r
			}
		}
		p.moved[side] = byKey
	}
}

// movedRecord returns the record that now stands for a pair's vanished record on side: a free
// record carrying the pair's key. A write towards the side still unanswered may be what
// created it; then the result (or adopt) links it instead.
func (p *planner) movedRecord(side tandemv1.System, key string) *tandemv1.MirrorRecord {
	if _, pending := p.s.Pending[PendingKey(side, key)]; pending {
		return nil
	}
	return p.moved[side][key]
}

// relinkMoved points a pair's mapping at its record's new id on side. The content is the same
// record's, so the pair's bases stand: what changed since the last sync still shows as changed.
func (p *planner) relinkMoved(key string, m *tandemv1.Mapping, side tandemv1.System, r *tandemv1.MirrorRecord) *tandemv1.Mapping {
	n := proto.Clone(m).(*tandemv1.Mapping)
	rec := r.GetRecord()
	if side == exchange {
		delete(p.linkedEx, n.GetExchangeId())
		n.ExchangeId, n.ExchangeVersion = rec.GetId(), rec.GetVersion()
		p.linkedEx[rec.GetId()] = key
	} else {
		delete(p.linkedSF, n.GetSalesforceId())
		n.SalesforceId, n.SalesforceVersion = rec.GetId(), rec.GetVersion()
		p.linkedSF[rec.GetId()] = key
	}
	delete(p.moved[side], key)
	n.SyncedAt = timestamppb.New(p.s.Now)
	p.plan.Links = append(p.plan.Links, n)
	p.plan.Relinked++
	return n
}

// matchByName links free records by first + last name + company, only where that cannot merge
// different people: two records whose email addresses are both present and differ are never
// candidates (record.CanMatchByName), and a record with more than one candidate — or whose
// candidate has other candidates — is ambiguous. Ambiguous records are neither linked nor
// created (creating them would duplicate whichever one is the same person); an error-report
// entry names them until an email address or a name tells them apart.
func (p *planner) matchByName(exFree, sfFree []*tandemv1.MirrorRecord) {
	type group struct{ ex, sf []*tandemv1.MirrorRecord }
	groups := map[string]*group{}
	at := func(nk string) *group {
		if groups[nk] == nil {
			groups[nk] = &group{}
		}
		return groups[nk]
	}
	for _, e := range exFree {
		if _, taken := p.linkedEx[e.GetRecord().GetId()]; !taken {
			if nk := record.NameKey(e.GetRecord()); nk != "" {
				at(nk).ex = append(at(nk).ex, e)
			}
		}
	}
	for _, s := range sfFree {
		if _, taken := p.linkedSF[s.GetRecord().GetId()]; !taken {
			if nk := record.NameKey(s.GetRecord()); nk != "" {
				at(nk).sf = append(at(nk).sf, s)
			}
		}
	}
	for _, nk := range sortedKeys(groups) {
		g := groups[nk]
		if len(g.ex) == 0 || len(g.sf) == 0 {
			continue
		}
		// Records of the group are nodes (Exchange first, then Salesforce); candidates are
		// joined into components, and only a component of exactly one pair is unambiguous.
		parent := make([]int, len(g.ex)+len(g.sf))
		for i := range parent {
			parent[i] = i
		}
		var find func(int) int
		find = func(i int) int {
			if parent[i] != i {
				parent[i] = find(parent[i])
			}
			return parent[i]
		}
		for i, e := range g.ex {
			for j, s := range g.sf {
				if record.CanMatchByName(e.GetRecord(), s.GetRecord()) {
					parent[find(i)] = find(len(g.ex) + j)
				}
			}
		}
		members := map[int][]int{}
		for i := range parent {
			members[find(i)] = append(members[find(i)], i)
		}
		roots := make([]int, 0, len(members))
		for r := range members {
			roots = append(roots, r)
		}
		sort.Ints(roots)
		for _, r := range roots {
			nodes := members[r]
			switch {
			case len(nodes) == 1:
				// No candidate: created like any other new record.
			case len(nodes) == 2:
				e, s := g.ex[nodes[0]], g.sf[nodes[1]-len(g.ex)]
				p.link(p.keyForLink(e, s), e, s)
			default:
				p.ambiguousMatch(g.ex, g.sf, nodes)
			}
		}
	}
}

// ambiguousMatch holds the records of an ambiguous name match (nodes index ex, then sf) and
// reports them.
func (p *planner) ambiguousMatch(ex, sf []*tandemv1.MirrorRecord, nodes []int) {
	var exIDs, sfIDs []string
	for _, n := range nodes {
		if n < len(ex) {
			id := ex[n].GetRecord().GetId()
			exIDs = append(exIDs, id)
			p.ambiguous[TombstoneKey(exchange, id)] = true
		} else {
			id := sf[n-len(ex)].GetRecord().GetId()
			sfIDs = append(sfIDs, id)
			p.ambiguous[TombstoneKey(salesforce, id)] = true
		}
	}
	name := record.DisplayName(ex[nodes[0]].GetRecord())
	e := syncerr.New(syncerr.SyncAmbiguousMatch,
		"%d %ss named %q in Exchange (%s) and %d in Salesforce (%s) may be the same people and no email address tells which; none is linked or created",
		len(exIDs), kindName(p.s.Kind), name, strings.Join(exIDs, ", "), len(sfIDs), strings.Join(sfIDs, ", "))
	e.RecordID = exIDs[0]
	p.plan.Errors = append(p.plan.Errors, e)
}
