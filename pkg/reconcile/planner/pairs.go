package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/record"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// pair decides one linked pair.
func (p *planner) pair(key string, m *tandemv1.Mapping) {
	if p.inFlight(exchange, key) || p.inFlight(salesforce, key) {
		p.busy[key] = true
		p.plan.InFlight++
		return
	}
	ex := live(p.s.Exchange, m.GetExchangeId())
	sf := live(p.s.Salesforce, m.GetSalesforceId())
	// A record gone from its id but present under a new one with the pair's key is the same
	// record (moved back into the folder, a mailbox moved to new item ids): relink, never treat
	// it as a deletion plus a new record.
	if ex == nil {
		if r := p.movedRecord(exchange, key); r != nil {
			m, ex = p.relinkMoved(key, m, exchange, r), r
		}
	}
	if sf == nil {
		if r := p.movedRecord(salesforce, key); r != nil {
			m, sf = p.relinkMoved(key, m, salesforce, r), r
		}
	}
	switch {
	case ex == nil && sf == nil:
		p.unlink(key, m)
	case ex == nil:
		p.exchangeGone(key, m, sf)
	case sf == nil:
		p.salesforceGone(key, m, ex)
	default:
		p.bothPresent(key, m, ex, sf)
		p.stampKey(key, exchange, ex)
		p.stampKey(key, salesforce, sf)
	}
}

func (p *planner) unlink(key string, m *tandemv1.Mapping) {
	p.plan.Unlinks = append(p.plan.Unlinks, key)
	delete(p.linkedEx, m.GetExchangeId())
	delete(p.linkedSF, m.GetSalesforceId())
}

// changed reports whether a side's record differs from the pair's base for that side.
func changed(kind tandemv1.RecordKind, rec *tandemv1.Record, base map[string]string) []string {
	return record.ChangedFields(kind, record.FieldHashes(rec), base)
}

// exchangeGone: the Exchange item was deleted or moved out of the synced folder.
func (p *planner) exchangeGone(key string, m *tandemv1.Mapping, sf *tandemv1.MirrorRecord) {
	set := p.s.Settings
	sfChanged := len(set.flowing(exchange, changed(p.s.Kind, sf.GetRecord(), m.GetSalesforceFieldHashes()))) > 0
	switch {
	case sf.GetOutOfScope():
		// Gone from Exchange and outside the user's scope in Salesforce: nothing links them any more.
		p.unlink(key, m)
	case (sfChanged || p.restore[key]) && set.ToExchange():
		// A modification beats a concurrent deletion (and a rejected hold restores).
		p.addWrite(exchange, tandemv1.WriteOp_WRITE_OP_CREATE, key, sf.GetRecord(), nil, nil,
			restoreReason(p.restore[key], "changed in Salesforce after it was deleted in Exchange: the modification wins"))
	case !sfChanged && !p.restore[key] && set.ToSalesforce() &&
		set.ExchangeDelete == tandemv1.ExchangeDeletePolicy_EXCHANGE_DELETE_POLICY_DELETE:
		p.addWrite(salesforce, tandemv1.WriteOp_WRITE_OP_DELETE, key, nil, sf.GetRecord(), nil, "deleted in Exchange")
	default:
		// Unlink, and never bring the Salesforce record back into Exchange.
		p.removeLink(key, m, TombstoneKey(salesforce, sf.GetRecord().GetId()), salesforce, sf.GetRecord())
	}
}

// salesforceGone: the Salesforce record was deleted.
func (p *planner) salesforceGone(key string, m *tandemv1.Mapping, ex *tandemv1.MirrorRecord) {
	set := p.s.Settings
	exChanged := len(set.flowing(salesforce, changed(p.s.Kind, ex.GetRecord(), m.GetExchangeFieldHashes()))) > 0
	switch {
	case (exChanged || p.restore[key]) && set.ToSalesforce():
		p.addWrite(salesforce, tandemv1.WriteOp_WRITE_OP_CREATE, key, ex.GetRecord(), nil, nil,
			restoreReason(p.restore[key], "changed in Exchange after it was deleted in Salesforce: the modification wins"))
	case !exChanged && !p.restore[key] && set.ToExchange():
		p.addWrite(exchange, tandemv1.WriteOp_WRITE_OP_DELETE, key, nil, ex.GetRecord(), nil, "deleted in Salesforce")
	default:
		p.removeLink(key, m, TombstoneKey(exchange, ex.GetRecord().GetId()), exchange, ex.GetRecord())
	}
}

func restoreReason(restore bool, reason string) string {
	if restore {
		return "restored: an admin rejected the held deletes"
	}
	return reason
}

// bothPresent compares a pair three ways.
func (p *planner) bothPresent(key string, m *tandemv1.Mapping, exm, sfm *tandemv1.MirrorRecord) {
	set := p.s.Settings
	kind := p.s.Kind
	ex, sf := exm.GetRecord(), sfm.GetRecord()
	exFH, sfFH := record.FieldHashes(ex), record.FieldHashes(sf)
	// A change counts only where it may go: a field mapped one way or not at all keeps the other
	// side's changes where they are.
	exChanged := set.flowing(salesforce, record.ChangedFields(kind, exFH, m.GetExchangeFieldHashes()))
	sfChanged := set.flowing(exchange, record.ChangedFields(kind, sfFH, m.GetSalesforceFieldHashes()))

	if sfm.GetOutOfScope() && m.GetOrigin() == salesforce && set.ToExchange() {
		// The Salesforce record stopped matching the configuration: take it out of Exchange (never
		// delete it in Salesforce). Edits made in Exchange go to Salesforce first.
		if len(exChanged) > 0 && set.ToSalesforce() {
			p.addWrite(salesforce, tandemv1.WriteOp_WRITE_OP_UPDATE, key, ex, sf, exChanged, "changed in Exchange")
			return
		}
		p.addWrite(exchange, tandemv1.WriteOp_WRITE_OP_DELETE, key, nil, ex, nil, "no longer matches the configuration's scope or filters")
		return
	}

	switch {
	case len(exChanged) == 0 && len(sfChanged) == 0:
		p.plan.Unchanged++
		p.refresh(m, ex, sf, exFH, sfFH)
	case len(sfChanged) == 0:
		if set.ToSalesforce() {
			p.addWrite(salesforce, tandemv1.WriteOp_WRITE_OP_UPDATE, key, ex, sf, exChanged, "changed in Exchange")
		} else {
			p.refresh(m, ex, sf, exFH, sfFH)
		}
	case len(exChanged) == 0:
		if set.ToExchange() {
			p.addWrite(exchange, tandemv1.WriteOp_WRITE_OP_UPDATE, key, sf, ex, sfChanged, "changed in Salesforce")
		} else {
			p.refresh(m, ex, sf, exFH, sfFH)
		}
	default:
		p.conflict(key, m, ex, sf, exFH, sfFH, exChanged, sfChanged)
	}
}

// conflict resolves a pair changed on both sides since the last sync.
func (p *planner) conflict(key string, m *tandemv1.Mapping, ex, sf *tandemv1.Record, exFH, sfFH map[string]string, exChanged, sfChanged []string) {
	set := p.s.Settings
	switch {
	case !set.ToExchange():
		// One way: only the source's changes travel.
		p.addWrite(salesforce, tandemv1.WriteOp_WRITE_OP_UPDATE, key, ex, sf, exChanged, "changed in Exchange")
		return
	case !set.ToSalesforce():
		p.addWrite(exchange, tandemv1.WriteOp_WRITE_OP_UPDATE, key, sf, ex, sfChanged, "changed in Salesforce")
		return
	}
	// The fields the two sides disagree on that may sync at all; a field mapped one way takes
	// its source's value whoever wins (see oneWay).
	differing, toSF, toEx := set.oneWay(record.DifferingFields(ex, sf))
	if len(differing)+len(toSF)+len(toEx) == 0 {
		// Both sides made the same change.
		p.plan.Unchanged++
		p.refresh(m, ex, sf, exFH, sfFH)
		return
	}
	c := Conflict{SyncKey: key, ExchangeID: ex.GetId(), SalesforceID: sf.GetId(), ExchangeFields: exChanged, SalesforceFields: sfChanged}
	policy := set.Conflict
	if policy == tandemv1.ConflictPolicy_CONFLICT_POLICY_FIELD_MERGE && disjoint(exChanged, sfChanged) {
		c.Resolution = "merged: the changed fields were disjoint"
		p.plan.Conflicts = append(p.plan.Conflicts, c)
		p.addWrite(salesforce, tandemv1.WriteOp_WRITE_OP_UPDATE, key, ex, sf, exChanged, "conflict: merged fields changed in Exchange")
		p.addWrite(exchange, tandemv1.WriteOp_WRITE_OP_UPDATE, key, sf, ex, sfChanged, "conflict: merged fields changed in Salesforce")
		return
	}
	sfReason, exReason := "conflict: field mapped from Exchange to Salesforce", "conflict: field mapped from Salesforce to Exchange"
	if policy == tandemv1.ConflictPolicy_CONFLICT_POLICY_EXCHANGE_WINS {
		c.Resolution = "Exchange wins"
		toSF, sfReason = append(toSF, differing...), "conflict: Exchange wins"
	} else {
		c.Resolution = "Salesforce wins"
		toEx, exReason = append(toEx, differing...), "conflict: Salesforce wins"
	}
	p.plan.Conflicts = append(p.plan.Conflicts, c)
	if len(toSF) > 0 {
		p.addWrite(salesforce, tandemv1.WriteOp_WRITE_OP_UPDATE, key, ex, sf, record.InSyncOrder(p.s.Kind, toSF), sfReason)
	}
	if len(toEx) > 0 {
		p.addWrite(exchange, tandemv1.WriteOp_WRITE_OP_UPDATE, key, sf, ex, record.InSyncOrder(p.s.Kind, toEx), exReason)
	}
}

func disjoint(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// refresh stores what changed without needing a write: new versions (the echo of Tandem's own
// write, or an edit that left the synced content as it was), and the bases of fields on which
// both sides now agree.
func (p *planner) refresh(m *tandemv1.Mapping, ex, sf *tandemv1.Record, exFH, sfFH map[string]string) {
	if p.fresh(m, ex, sf, exFH, sfFH) {
		return
	}
	n := proto.Clone(m).(*tandemv1.Mapping)
	n.ExchangeVersion = ex.GetVersion()
	if sf.GetVersion() != "" {
		n.SalesforceVersion = sf.GetVersion()
	}
	if n.ExchangeFieldHashes == nil {
		n.ExchangeFieldHashes = map[string]string{}
	}
	if n.SalesforceFieldHashes == nil {
		n.SalesforceFieldHashes = map[string]string{}
	}
	for _, f := range record.SyncFields(p.s.Kind) {
		if exFH[f] == sfFH[f] {
			n.ExchangeFieldHashes[f] = exFH[f]
			n.SalesforceFieldHashes[f] = sfFH[f]
		}
	}
	n.ExchangeHash = record.Hash(p.s.Kind, n.ExchangeFieldHashes)
	n.SalesforceHash = record.Hash(p.s.Kind, n.SalesforceFieldHashes)
	if proto.Equal(n, m) {
		return
	}
	n.SyncedAt = timestamppb.New(p.s.Now)
	p.plan.Links = append(p.plan.Links, n)
}

// fresh reports whether refresh would leave m as it is — the common case of a pair in sync
// that nothing touched — without the clone and comparison that tell it in general: the
// versions are the ones recorded, every field on which the records agree has that value as its
// base on both sides, and the stored content hashes are those of the bases.
func (p *planner) fresh(m *tandemv1.Mapping, ex, sf *tandemv1.Record, exFH, sfFH map[string]string) bool {
	if m.GetExchangeVersion() != ex.GetVersion() || (sf.GetVersion() != "" && m.GetSalesforceVersion() != sf.GetVersion()) {
		return false
	}
	exBase, sfBase := m.GetExchangeFieldHashes(), m.GetSalesforceFieldHashes()
	for f, h := range exFH { // FieldHashes has every sync field
		if h != sfFH[f] {
			continue
		}
		if b, ok := exBase[f]; !ok || b != h {
			return false
		}
		if b, ok := sfBase[f]; !ok || b != h {
			return false
		}
	}
	return m.GetExchangeHash() == record.Hash(p.s.Kind, exBase) && m.GetSalesforceHash() == record.Hash(p.s.Kind, sfBase)
}

// newLink links two records that were never linked. Fields on which they agree get their bases
// now; fields on which they differ are left without a base, so they are resolved as a conflict.
func (p *planner) newLink(key string, origin tandemv1.System, ex, sf *tandemv1.Record) *tandemv1.Mapping {
	exFH, sfFH := record.FieldHashes(ex), record.FieldHashes(sf)
	m := &tandemv1.Mapping{
		SyncKey: key, Kind: p.s.Kind, Origin: origin,
		ExchangeId: ex.GetId(), ExchangeVersion: ex.GetVersion(),
		SalesforceId: sf.GetId(), SalesforceVersion: sf.GetVersion(),
		ExchangeFieldHashes: map[string]string{}, SalesforceFieldHashes: map[string]string{},
		SyncedAt: timestamppb.New(p.s.Now),
	}
	for _, f := range record.SyncFields(p.s.Kind) {
		if exFH[f] == sfFH[f] {
			m.ExchangeFieldHashes[f] = exFH[f]
			m.SalesforceFieldHashes[f] = sfFH[f]
		}
	}
	m.ExchangeHash = record.Hash(p.s.Kind, m.ExchangeFieldHashes)
	m.SalesforceHash = record.Hash(p.s.Kind, m.SalesforceFieldHashes)
	p.plan.Links = append(p.plan.Links, m)
	p.linkedEx[ex.GetId()] = key
	p.linkedSF[sf.GetId()] = key
	return m
}

// resolveNewLink makes freshly linked records agree, as a conflict without a base: field merge
// fills each side's blanks from the other and lets Salesforce win where both hold values.
func (p *planner) resolveNewLink(key string, ex, sf *tandemv1.Record) {
	set := p.s.Settings
	// Fields mapped one way take their source's value (toSF, toEx); the others follow the
	// direction and the policy.
	differing, toSF, toEx := set.oneWay(record.DifferingFields(ex, sf))
	if len(differing)+len(toSF)+len(toEx) == 0 {
		p.plan.Unchanged++
		return
	}
	sfReason, exReason := "linked: Exchange wins", "linked: Salesforce wins"
	switch {
	case !set.ToExchange():
		toSF, sfReason = append(toSF, differing...), "linked: Exchange is the source"
	case !set.ToSalesforce():
		toEx, exReason = append(toEx, differing...), "linked: Salesforce is the source"
	case set.Conflict == tandemv1.ConflictPolicy_CONFLICT_POLICY_EXCHANGE_WINS:
		toSF = append(toSF, differing...)
	case set.Conflict == tandemv1.ConflictPolicy_CONFLICT_POLICY_FIELD_MERGE:
		sfFH := record.FieldHashes(sf)
		for _, f := range differing {
			if sfFH[f] == record.EmptyHash {
				toSF = append(toSF, f)
				sfReason = "linked: filled blanks from Exchange"
			} else {
				toEx = append(toEx, f)
			}
		}
	default:
		toEx = append(toEx, differing...)
	}
	if len(toSF) > 0 && set.ToSalesforce() {
		p.addWrite(salesforce, tandemv1.WriteOp_WRITE_OP_UPDATE, key, ex, sf, record.InSyncOrder(p.s.Kind, toSF), sfReason)
	}
	if len(toEx) > 0 && set.ToExchange() {
		p.addWrite(exchange, tandemv1.WriteOp_WRITE_OP_UPDATE, key, sf, ex, record.InSyncOrder(p.s.Kind, toEx), exReason)
	}
}

// oneWay splits fields the two sides disagree on: those that sync both ways (or as the kind's
// direction says), those mapped to go to Salesforce only, and those mapped to go to Exchange
// only. Fields mapped not to sync are left out.
func (s Settings) oneWay(fields []string) (both, toSF, toEx []string) {
	if len(s.Fields) == 0 {
		return fields, nil, nil
	}
	for _, f := range fields {
		switch s.Fields[f] {
		case tandemv1.FieldDirection_FIELD_DIRECTION_NONE:
		case tandemv1.FieldDirection_FIELD_DIRECTION_EXCHANGE_TO_SALESFORCE:
			toSF = append(toSF, f)
		case tandemv1.FieldDirection_FIELD_DIRECTION_SALESFORCE_TO_EXCHANGE:
			toEx = append(toEx, f)
		default:
			both = append(both, f)
		}
	}
	return both, toSF, toEx
}
