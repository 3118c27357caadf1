package planner

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Effects is what one write result changes in the ledger. A mapping is committed only from a
// write's result: this is where links are born and updated.
type Effects struct {
	// Mapping is the link to store (nil: none).
	Mapping *tandemv1.Mapping
	// Unlink is the sync key of a link to drop.
	Unlink string
	// Mirror is the target side's new observation (nil: none), stored unless the mirror holds a
	// newer one.
	Mirror     *tandemv1.MirrorRecord
	MirrorSide tandemv1.System
	// PendingKey is the write in flight this result answers; always cleared.
	PendingKey string
	// Reject remembers a write the target refused, so it is not retried unchanged.
	Reject *tandemv1.RejectedWrite
	// ClearReject is true when an earlier refusal of this write no longer applies.
	ClearReject bool
	// Report are errors and warnings for the sync error report.
	Report []*tandemv1.SyncError
	// Synced is true when a record was written (for activity counts).
	Synced bool
}

// ApplyResult works out the effects of a result for the pending write pw. m is the pair's current
// mapping (nil when none) and targetMirror the target's current observation (nil when none).
func ApplyResult(kind tandemv1.RecordKind, pw *tandemv1.PendingWrite, m *tandemv1.Mapping, targetMirror *tandemv1.MirrorRecord, res *tandemv1.WriteResult, completedAt time.Time) Effects {
	cmd := pw.GetCommand()
	target := pw.GetTarget()
	eff := Effects{PendingKey: PendingKey(target, cmd.GetSyncKey()), MirrorSide: target}
	eff.Report = append(eff.Report, res.GetWarnings()...)
	observed := timestamppb.New(completedAt)

	if !res.GetOk() {
		code := syncerr.Code(res.GetError().GetCode())
		if gone(code) {
			switch cmd.GetOp() {
			case tandemv1.WriteOp_WRITE_OP_DELETE:
				// Already gone: the delete is done.
				return deleted(eff, cmd, m, observed)
			case tandemv1.WriteOp_WRITE_OP_CREATE:
				// An earlier attempt of this create took effect and the user has deleted its record
				// since: link the pair as created and observe the record deleted, so the deletion is
				// carried over instead of the record being created again.
				if id := res.GetRecord().GetId(); id != "" {
					eff = createdThenDeleted(kind, pw, m, id, observed, eff)
					return eff
				}
			case tandemv1.WriteOp_WRITE_OP_UPDATE:
				// The target was deleted holding what this update writes: an earlier attempt took
				// effect and its result was lost, or the user deleted a record that already agreed.
				// The pair was in sync when it was deleted, so the deletion is carried over rather
				// than the source's change bringing the record back.
				if res.GetAlreadyApplied() && m != nil {
					return updatedThenDeleted(kind, pw, m, targetMirror, res, observed, eff)
				}
				eff.Mapping = baseUnbased(kind, pw, m)
			}
			// The target vanished under the update: observe it as deleted; the next cycle decides.
			eff.Mirror = &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: cmd.GetTargetId()}, Deleted: true, ObservedAt: observed}
			return eff
		}
		e := res.GetError()
		if e == nil {
			e = syncerr.New(syncerr.SyncWriteRejected, "the write failed without an error").Proto()
		}
		if e.GetRecordId() == "" {
			e = proto.Clone(e).(*tandemv1.SyncError)
			e.RecordId = firstNonEmpty(cmd.GetTargetId(), pw.GetSourceId())
		}
		eff.Report = append(eff.Report, e)
		if !e.GetRetryable() {
			eff.Reject = &tandemv1.RejectedWrite{SourceHash: pw.GetSourceHash(), Error: e, RejectedAt: observed}
		}
		return eff
	}

	eff.ClearReject = true
	eff.Synced = true
	switch cmd.GetOp() {
	case tandemv1.WriteOp_WRITE_OP_DELETE:
		return deleted(eff, cmd, m, observed)
	case tandemv1.WriteOp_WRITE_OP_CREATE:
		written := writtenRecord(cmd, res, nil)
		written.SyncKey = cmd.GetSyncKey()
		var n *tandemv1.Mapping
		if m != nil {
			n = proto.Clone(m).(*tandemv1.Mapping)
		} else {
			n = &tandemv1.Mapping{SyncKey: cmd.GetSyncKey(), Kind: kind, Origin: other(target)}
		}
		setSide(n, target, written.GetId(), written.GetVersion())
		setSide(n, other(target), pw.GetSourceId(), pw.GetSourceVersion())
		rebase(n, kind, target, record.SyncFields(kind), record.FieldHashes(written), pw.GetSourceFieldHashes())
		n.SyncedAt = observed
		eff.Mapping = n
		eff.Mirror = &tandemv1.MirrorRecord{Record: written, ObservedAt: observed, WriteCycle: pw.GetCycle(), WriteSentAt: res.GetSentAt()}
		return eff
	default: // update
		base := targetMirror.GetRecord()
		if base == nil {
			base = &tandemv1.Record{Id: cmd.GetTargetId()}
		}
		written := writtenRecord(cmd, res, base)
		if base.GetBody() != nil || written.GetBody() != nil {
			eff.Mirror = &tandemv1.MirrorRecord{Record: written, ObservedAt: observed, OutOfScope: targetMirror.GetOutOfScope(),
				WriteCycle: pw.GetCycle(), WrittenOver: cmd.GetExpectedVersion(), WriteSentAt: res.GetSentAt()}
		}
		if m == nil {
			// Unlinked meanwhile (reset): the write stands; nothing to rebase.
			return eff
		}
		eff.Mapping = updatedMapping(kind, pw, m, written, observed)
		return eff
	}
}

// updatedMapping is m after pw, an update, wrote written: the target's base for the written
// fields is what it now holds, the source's what the update copied.
func updatedMapping(kind tandemv1.RecordKind, pw *tandemv1.PendingWrite, m *tandemv1.Mapping, written *tandemv1.Record, observed *timestamppb.Timestamp) *tandemv1.Mapping {
	target := pw.GetTarget()
	n := proto.Clone(m).(*tandemv1.Mapping)
	if v := written.GetVersion(); v != "" {
		setSide(n, target, written.GetId(), v)
	}
	if v := pw.GetSourceVersion(); v != "" {
		setSide(n, other(target), sideID(n, other(target)), v)
	}
	rebase(n, kind, target, pw.GetCommand().GetFields(), record.FieldHashes(written), pw.GetSourceFieldHashes())
	n.SyncedAt = observed
	return n
}

func createdThenDeleted(kind tandemv1.RecordKind, pw *tandemv1.PendingWrite, m *tandemv1.Mapping, id string, observed *timestamppb.Timestamp, eff Effects) Effects {
	cmd := pw.GetCommand()
	target := pw.GetTarget()
	var n *tandemv1.Mapping
	if m != nil {
		n = proto.Clone(m).(*tandemv1.Mapping)
	} else {
		n = &tandemv1.Mapping{SyncKey: cmd.GetSyncKey(), Kind: kind, Origin: other(target)}
	}
	setSide(n, target, id, "")
	setSide(n, other(target), pw.GetSourceId(), pw.GetSourceVersion())
	rebase(n, kind, target, record.SyncFields(kind), record.FieldHashes(cmd.GetRecord()), pw.GetSourceFieldHashes())
	n.SyncedAt = observed
	eff.Mapping = n
	eff.Mirror = &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: id}, Deleted: true, ObservedAt: observed}
	return eff
}

// updatedThenDeleted rebases the pair as a successful update would (the source's base is what
// the update copied, the target's what the deleted record held) and observes the target deleted.
func updatedThenDeleted(kind tandemv1.RecordKind, pw *tandemv1.PendingWrite, m *tandemv1.Mapping, targetMirror *tandemv1.MirrorRecord, res *tandemv1.WriteResult, observed *timestamppb.Timestamp, eff Effects) Effects {
	cmd := pw.GetCommand()
	base := targetMirror.GetRecord()
	if base == nil {
		base = &tandemv1.Record{Id: cmd.GetTargetId()}
	}
	eff.Mapping = updatedMapping(kind, pw, m, writtenRecord(cmd, res, base), observed)
	eff.Mirror = &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: cmd.GetTargetId()}, Deleted: true, ObservedAt: observed}
	return eff
}

// baseUnbased gives the source's side of m a base for the fields of pw, an update, that had
// none: a pair linked while its records differed has no base for the differing fields, and the
// update was to make the target agree (resolveNewLink). When the target is found deleted
// instead, those fields must not count as the source's changes since the last sync — there was
// none — or the deletion would be overruled as "modified on the other side" and the record
// created again. Fields with a base keep it: a real change of the source still wins over the
// deletion. It returns nil when every field had a base (or there is no mapping).
func baseUnbased(kind tandemv1.RecordKind, pw *tandemv1.PendingWrite, m *tandemv1.Mapping) *tandemv1.Mapping {
	if m == nil {
		return nil
	}
	source := other(pw.GetTarget())
	bases := m.GetSalesforceFieldHashes()
	if source == exchange {
		bases = m.GetExchangeFieldHashes()
	}
	sent := pw.GetSourceFieldHashes()
	var missing []string
	for _, f := range record.ContentFields(pw.GetCommand().GetFields()) {
		if _, ok := bases[f]; !ok {
			if _, known := sent[f]; known {
				missing = append(missing, f)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	n := proto.Clone(m).(*tandemv1.Mapping)
	if n.ExchangeFieldHashes == nil {
		n.ExchangeFieldHashes = map[string]string{}
	}
	if n.SalesforceFieldHashes == nil {
		n.SalesforceFieldHashes = map[string]string{}
	}
	nb := n.SalesforceFieldHashes
	if source == exchange {
		nb = n.ExchangeFieldHashes
	}
	for _, f := range missing {
		nb[f] = sent[f]
	}
	n.ExchangeHash = record.Hash(kind, n.ExchangeFieldHashes)
	n.SalesforceHash = record.Hash(kind, n.SalesforceFieldHashes)
	return n
}

func deleted(eff Effects, cmd *tandemv1.WriteCommand, m *tandemv1.Mapping, observed *timestamppb.Timestamp) Effects {
	if m != nil && sideID(m, eff.MirrorSide) == cmd.GetTargetId() {
		eff.Unlink = cmd.GetSyncKey()
	}
	eff.Mirror = &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: cmd.GetTargetId()}, Deleted: true, ObservedAt: observed}
	return eff
}

// gone reports error codes meaning the target record does not exist.
func gone(code syncerr.Code) bool {
	switch code {
	case syncerr.ExchangeItemNotFound, syncerr.SalesforceEntityDeleted, syncerr.SalesforceNotFound:
		return true
	}
	return false
}

// writtenRecord is the target record after the write: base (the target as last observed, for
// updates) with the written fields replaced by what the target now holds — the result's record
// when the worker returned content (it reflects truncation), else the command's.
func writtenRecord(cmd *tandemv1.WriteCommand, res *tandemv1.WriteResult, base *tandemv1.Record) *tandemv1.Record {
	src := cmd.GetRecord()
	if res.GetRecord().GetBody() != nil {
		src = res.GetRecord()
	}
	var out *tandemv1.Record
	if base == nil {
		out = proto.Clone(src).(*tandemv1.Record)
	} else {
		fields := cmd.GetFields()
		if len(fields) == 0 {
			fields = record.SyncFields(record.KindOf(src))
		}
		out = record.CopyFields(base, src, fields)
	}
	if id := res.GetRecord().GetId(); id != "" {
		out.Id = id
	}
	if out.GetId() == "" {
		out.Id = cmd.GetTargetId()
	}
	out.Version = res.GetRecord().GetVersion()
	if out.GetVersion() == "" && base != nil {
		out.Version = base.GetVersion()
	}
	if k := cmd.GetSyncKey(); k != "" {
		out.SyncKey = k
	}
	if o := res.GetRecord().GetOwnerId(); o != "" {
		out.OwnerId = o
	}
	return keepUnwritten(out, base, res)
}

// keepUnwritten puts back, in the written record, the fields a warning says the write left as
// the target held them (a company with no Salesforce Account of that name): base's value for an
// update, none for a create. The target's base then holds what it really has while the source's
// base holds what was sent, so neither side shows the field as changed next cycle and the same
// write is not planned again until one of the two values changes.
func keepUnwritten(out *tandemv1.Record, base *tandemv1.Record, res *tandemv1.WriteResult) *tandemv1.Record {
	var fields []string
	for _, w := range res.GetWarnings() {
		if w.GetField() != "" && syncerr.LeavesFieldUnwritten(syncerr.Code(w.GetCode())) {
			fields = append(fields, w.GetField())
		}
	}
	if len(fields) == 0 || out.GetBody() == nil {
		return out
	}
	if base == nil {
		base = &tandemv1.Record{}
	}
	return record.CopyFields(out, base, fields)
}

// rebase sets, for the written fields, the target's base to what it now holds and the source's
// base to what the write copied; other fields keep their bases (a partial failure of a merge then
// still shows the unsynced fields as changed).
func rebase(m *tandemv1.Mapping, kind tandemv1.RecordKind, target tandemv1.System, fields []string, targetFH, sourceFH map[string]string) {
	if m.ExchangeFieldHashes == nil {
		m.ExchangeFieldHashes = map[string]string{}
	}
	if m.SalesforceFieldHashes == nil {
		m.SalesforceFieldHashes = map[string]string{}
	}
	tb, sb := m.ExchangeFieldHashes, m.SalesforceFieldHashes
	if target == salesforce {
		tb, sb = sb, tb
	}
	for _, f := range record.ContentFields(fields) {
		tb[f] = targetFH[f]
		if h, ok := sourceFH[f]; ok {
			sb[f] = h
		}
	}
	m.ExchangeHash = record.Hash(kind, m.ExchangeFieldHashes)
	m.SalesforceHash = record.Hash(kind, m.SalesforceFieldHashes)
}

func setSide(m *tandemv1.Mapping, side tandemv1.System, id, version string) {
	if side == exchange {
		if id != "" {
			m.ExchangeId = id
		}
		m.ExchangeVersion = version
		return
	}
	if id != "" {
		m.SalesforceId = id
	}
	m.SalesforceVersion = version
}

func sideID(m *tandemv1.Mapping, side tandemv1.System) string {
	if side == exchange {
		return m.GetExchangeId()
	}
	return m.GetSalesforceId()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
