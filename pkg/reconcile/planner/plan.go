// Package planner is the reconciler's pure layer: it decides what one sync cycle does for one
// user and one record kind. Beside it, package ledger is the reconciler's state in Redis and
// package engine the reconciler itself, which feeds the planner from the ledger.
//
// It is a pure function of the user's ledger — the newest observation of every record on each
// side (the mirrors), the links between records (mappings, with per-field hashes of what was
// last synced), writes in flight, refused writes, tombstones and mass-delete holds — and of the
// user's sync configuration. Every record pair is compared three ways: Exchange now, Salesforce
// now, and the pair as last synced. The result is a Plan: the write commands to send, links to
// store or drop, tombstones, holds and conflicts. Nothing here does I/O, so the same code plans a
// real cycle, answers `tandem plan` and runs inside property tests.
//
// Rules, in the words of the product:
//   - a change that leaves the synced content unchanged (including the echo of Tandem's own write)
//     causes no write;
//   - conflicts follow the configuration's policy and are recorded;
//   - a modification beats a concurrent deletion, and a deleted record never comes back;
//   - before creating, records are matched on the other side (sync key, email, then first + last
//     name + company) and linked instead of duplicated; name matching never links two records
//     whose email addresses differ, and links nothing where several records could match;
//   - every linked pair carries its sync key on both sides, so lost state relinks by key;
//   - deletes beyond a share of the user's synced records are held for an admin; a side that
//     suddenly looks empty is a fault, not an instruction.
package planner

import (
	"fmt"
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	exchange   = tandemv1.System_SYSTEM_EXCHANGE
	salesforce = tandemv1.System_SYSTEM_SALESFORCE
)

// Defaults for settings a configuration leaves at zero.
const (
	DefaultMassDeletePercent = 50
	DefaultMassDeleteMinimum = 3
	DefaultMaxRecords        = 50000
	DefaultPendingTimeout    = 15 * time.Minute
)

// Settings are the parts of a sync configuration the planner applies to one record kind.
type Settings struct {
	Direction      tandemv1.SyncDirection
	Conflict       tandemv1.ConflictPolicy
	ExchangeDelete tandemv1.ExchangeDeletePolicy
	// MassDeletePercent holds a cycle's deletes when they exceed this share of synced pairs.
	MassDeletePercent int
	// MassDeleteMinimum: fewer deletes than this are never held (deleting 1 of 2 contacts is not
	// a mass delete). A side that looks empty is checked with the same minimum of synced pairs.
	MassDeleteMinimum int
	// MaxRecords caps the pairs a user syncs; creates past it are skipped with an error.
	MaxRecords int
	// PendingTimeout is how long a write may stay unanswered before it is planned again.
	PendingTimeout time.Duration
	// Fields are the fields that sync otherwise than in Direction (the configuration's field
	// mappings: one way only, or not at all), by field name; nil when every field follows
	// Direction.
	Fields map[string]tandemv1.FieldDirection
}

// SettingsFor returns the settings of cfg for kind, with defaults filled in. A nil cfg or a kind
// the configuration does not sync gives Direction SYNC_DIRECTION_UNSPECIFIED.
func SettingsFor(cfg *tandemv1.SyncConfiguration, kind tandemv1.RecordKind) Settings {
	s := Settings{MassDeleteMinimum: DefaultMassDeleteMinimum, PendingTimeout: DefaultPendingTimeout}
	var pct, maxRecords int32
	var mappings []*tandemv1.FieldMapping
	switch kind {
	case tandemv1.RecordKind_RECORD_KIND_CONTACT:
		c := cfg.GetContacts()
		s.Direction, s.Conflict, s.ExchangeDelete = c.GetDirection(), c.GetConflictPolicy(), c.GetExchangeDelete()
		pct, maxRecords, mappings = c.GetMassDeleteThresholdPercent(), c.GetMaxRecords(), c.GetFieldMappings()
	case tandemv1.RecordKind_RECORD_KIND_EVENT:
		e := cfg.GetEvents()
		s.Direction, s.Conflict = e.GetDirection(), e.GetConflictPolicy()
		if e.GetDeleteRemoved() {
			s.ExchangeDelete = tandemv1.ExchangeDeletePolicy_EXCHANGE_DELETE_POLICY_DELETE
		}
		pct, maxRecords, mappings = e.GetMassDeleteThresholdPercent(), e.GetMaxRecords(), e.GetFieldMappings()
	}
	s.Fields = restrictedFields(s.Direction, mappings)
	if cfg == nil || !cfg.GetActive() {
		s.Direction = tandemv1.SyncDirection_SYNC_DIRECTION_UNSPECIFIED
	}
	s.MassDeletePercent, s.MaxRecords = int(pct), int(maxRecords)
	if s.MassDeletePercent <= 0 {
		s.MassDeletePercent = DefaultMassDeletePercent
	}
	if s.MaxRecords <= 0 {
		s.MaxRecords = DefaultMaxRecords
	}
	return s
}

// restrictedFields are the mappings that restrict a field beyond the kind's direction: NONE, or
// one way in a kind synced both ways. A mapping that says what the direction says already is
// left out, so that a configuration whose mappings change nothing plans exactly as one without.
func restrictedFields(direction tandemv1.SyncDirection, mappings []*tandemv1.FieldMapping) map[string]tandemv1.FieldDirection {
	var out map[string]tandemv1.FieldDirection
	for _, m := range mappings {
		d := m.GetDirection()
		switch {
		case d == tandemv1.FieldDirection_FIELD_DIRECTION_UNSPECIFIED, d == tandemv1.FieldDirection_FIELD_DIRECTION_BOTH:
			continue
		case d != tandemv1.FieldDirection_FIELD_DIRECTION_NONE && direction != tandemv1.SyncDirection_SYNC_DIRECTION_BOTH:
			continue // one way in a kind that syncs that one way only (validation refuses the other)
		}
		if out == nil {
			out = map[string]tandemv1.FieldDirection{}
		}
		out[m.GetField()] = d
	}
	return out
}

// Flows reports whether changes of field go to target, as far as the field's mapping says (the
// kind's direction is checked on its own: ToSalesforce, ToExchange).
func (s Settings) Flows(target tandemv1.System, field string) bool {
	switch s.Fields[field] {
	case tandemv1.FieldDirection_FIELD_DIRECTION_NONE:
		return false
	case tandemv1.FieldDirection_FIELD_DIRECTION_EXCHANGE_TO_SALESFORCE:
		return target == salesforce
	case tandemv1.FieldDirection_FIELD_DIRECTION_SALESFORCE_TO_EXCHANGE:
		return target == exchange
	}
	return true
}

// flowing returns the fields of fields whose changes go to target (fields itself when no field
// is restricted).
func (s Settings) flowing(target tandemv1.System, fields []string) []string {
	if len(s.Fields) == 0 {
		return fields
	}
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		if s.Flows(target, f) {
			out = append(out, f)
		}
	}
	return out
}

// ToSalesforce reports whether records flow from Exchange to Salesforce.
func (s Settings) ToSalesforce() bool {
	return s.Direction == tandemv1.SyncDirection_SYNC_DIRECTION_BOTH ||
		s.Direction == tandemv1.SyncDirection_SYNC_DIRECTION_EXCHANGE_TO_SALESFORCE
}

// ToExchange reports whether records flow from Salesforce to Exchange.
func (s Settings) ToExchange() bool {
	return s.Direction == tandemv1.SyncDirection_SYNC_DIRECTION_BOTH ||
		s.Direction == tandemv1.SyncDirection_SYNC_DIRECTION_SALESFORCE_TO_EXCHANGE
}

// HoldDecision is an admin's decision on a hold.
type HoldDecision int

// Hold decisions.
const (
	HoldUndecided HoldDecision = iota
	HoldApproved
	HoldRejected
)

// ActiveHold is a mass-delete hold awaiting or carrying an admin's decision.
type ActiveHold struct {
	Hold     *tandemv1.Hold
	Decision HoldDecision
}

// State is one user's ledger for one record kind, as loaded from the store.
type State struct {
	OrgID, UserID string
	Kind          tandemv1.RecordKind
	Cycle         uint64
	Now           time.Time
	Settings      Settings

	// Exchange and Salesforce are the mirrors, by record id; entries may be deletion markers.
	Exchange   map[string]*tandemv1.MirrorRecord
	Salesforce map[string]*tandemv1.MirrorRecord
	// Mappings are the links, by sync key.
	Mappings map[string]*tandemv1.Mapping
	// Pending are writes in flight, by PendingKey(target, sync key).
	Pending map[string]*tandemv1.PendingWrite
	// Rejected are writes the target refused, by PendingKey(target, sync key).
	Rejected map[string]*tandemv1.RejectedWrite
	// Tombstones are records that must not be recreated on the other side, as TombstoneKey values.
	Tombstones map[string]bool
	// Hold is the user's mass-delete hold for this kind, if any.
	Hold *ActiveHold
	// LedgerBegan is when the ledger began to remember the user's records (zero: unknown).
	// A create from a record unchanged since before then may repeat one a Tandem that lost
	// its state made already (see WriteCommand.retry).
	LedgerBegan time.Time
}

// PendingKey is the key of a write in flight (or refused) for a pair and a target.
func PendingKey(target tandemv1.System, syncKey string) string {
	return sideName(target) + ":" + syncKey
}

// TombstoneKey is the tombstone of a record on side.
func TombstoneKey(side tandemv1.System, id string) string {
	return sideName(side) + ":" + id
}

func sideName(s tandemv1.System) string {
	if s == exchange {
		return "exchange"
	}
	return "salesforce"
}

func other(s tandemv1.System) tandemv1.System {
	if s == exchange {
		return salesforce
	}
	return exchange
}

// Write is a planned write with the reason for it.
type Write struct {
	*tandemv1.PendingWrite
	Reason  string
	Display string
}

// Conflict records a pair changed on both sides since the last sync.
type Conflict struct {
	SyncKey                          string
	ExchangeID, SalesforceID         string
	ExchangeFields, SalesforceFields []string
	Resolution                       string
}

// Plan is what a cycle does.
type Plan struct {
	Writes []Write
	// Links are mappings to store: new links and refreshed bases or versions.
	Links []*tandemv1.Mapping
	// Unlinks are sync keys whose mappings are dropped.
	Unlinks []string
	// Tombstones are TombstoneKey values to add.
	Tombstones []string
	// NewHold is set when this cycle held deletes.
	NewHold *tandemv1.Hold
	// ResolvedHold is the id of a decided hold this cycle carried out; it can be removed.
	ResolvedHold string
	// Adopted are writes in flight whose effect the plan found already made (a create whose
	// record appeared on the target before its result arrived): their PendingKeys, cleared, and
	// the target observations to store.
	Adopted   []Effects
	Conflicts []Conflict
	// Errors are user-level problems (record limit, a side that looks empty, held deletes).
	Errors []*syncerr.Error
	// Unchanged counts pairs in sync that need nothing; InFlight counts pairs with writes in flight.
	Unchanged, InFlight int
	// Relinked counts pairs linked again by the sync key their records carry, which the ledger
	// did not link (lost or rolled-back state, a reset) or linked under another record id (an
	// item moved out of the folder and back, a mailbox moved to another server).
	Relinked int
	// Orphaned counts records whose pair's other record is gone (see the planner's orphans):
	// decided as deletions, never created again.
	Orphaned int
	// Waiting counts records the plan left undecided until time passes: keyed records whose
	// partner's absence counts only once the other side has been read long enough after them.
	Waiting int
}

// planner carries one planning pass.
type planner struct {
	s    *State
	plan *Plan
	// linkedEx / linkedSF are record ids that have a mapping (or get one this cycle).
	linkedEx, linkedSF map[string]string
	// busy are sync keys that already have a write planned or in flight this cycle.
	busy map[string]bool
	// removals are planned deletes and unlinks, checked by the mass-delete guard first.
	removals []removal
	// restore are sync keys whose held removals an admin rejected: restore instead of remove.
	restore map[string]bool
	// approved are sync keys whose held removals an admin approved: they pass the guard.
	approved map[string]bool
	// planned are the PendingKeys of writes planned this cycle.
	planned map[string]bool
	// moved are, per side, free records carrying a mapped sync key (see indexMoved).
	moved map[tandemv1.System]map[string]*tandemv1.MirrorRecord
	// ambiguous are records (as TombstoneKey values) an ambiguous name match holds back.
	ambiguous map[string]bool
	// orphaned are records (as TombstoneKey values) whose partner is gone (see orphans).
	orphaned map[string]bool
	// synced caches everSynced.
	synced *bool
}

// removal is a delete (write set) or an unlink with a tombstone, pending the mass-delete guard.
type removal struct {
	key       string
	write     *Write
	mapping   *tandemv1.Mapping
	tombstone string
	// survivor is the record kept on the side that loses its link (for the hold's summary).
	survivorSide tandemv1.System
	survivor     *tandemv1.Record
}

// Compute plans one cycle.
func Compute(s *State) *Plan {
	p := &planner{
		s:         s,
		plan:      &Plan{},
		linkedEx:  map[string]string{},
		linkedSF:  map[string]string{},
		busy:      map[string]bool{},
		restore:   map[string]bool{},
		approved:  map[string]bool{},
		planned:   map[string]bool{},
		ambiguous: map[string]bool{},
		orphaned:  map[string]bool{},
	}
	if s.Settings.Direction == tandemv1.SyncDirection_SYNC_DIRECTION_UNSPECIFIED {
		return p.plan
	}
	if s.Now.IsZero() {
		s.Now = time.Now()
	}
	for key, m := range s.Mappings {
		if m.GetExchangeId() != "" {
			p.linkedEx[m.GetExchangeId()] = key
		}
		if m.GetSalesforceId() != "" {
			p.linkedSF[m.GetSalesforceId()] = key
		}
	}
	if h := s.Hold; h != nil && h.Decision != HoldUndecided {
		for _, d := range h.Hold.GetDeletes() {
			if h.Decision == HoldRejected {
				p.restore[d.GetCommand().GetSyncKey()] = true
			} else {
				p.approved[d.GetCommand().GetSyncKey()] = true
			}
		}
		p.plan.ResolvedHold = h.Hold.GetSummary().GetHoldId()
	}

	p.indexMoved()
	for _, key := range sortedKeys(s.Mappings) {
		p.pair(key, s.Mappings[key])
	}
	p.unmapped()
	p.guardDeletes()
	return p.plan
}

// inFlight reports whether a write for the pair is in flight and not yet overdue.
func (p *planner) inFlight(target tandemv1.System, key string) bool {
	pw, ok := p.s.Pending[PendingKey(target, key)]
	if !ok {
		return false
	}
	return p.s.Now.Sub(pw.GetIssuedAt().AsTime()) < p.s.Settings.PendingTimeout
}

// refused reports whether the target refused this very write before (same source content).
func (p *planner) refused(target tandemv1.System, key, sourceHash string) bool {
	r, ok := p.s.Rejected[PendingKey(target, key)]
	return ok && r.GetSourceHash() == sourceHash
}

// refusedRecord is refused for a write from src, hashing src only when the target refused a
// write of the pair before.
func (p *planner) refusedRecord(target tandemv1.System, key string, src *tandemv1.Record) bool {
	r, ok := p.s.Rejected[PendingKey(target, key)]
	return ok && r.GetSourceHash() == record.ContentHash(src)
}

// live returns the live mirror entry of a record, or nil when it is unknown or deleted.
func live(mirror map[string]*tandemv1.MirrorRecord, id string) *tandemv1.MirrorRecord {
	if id == "" {
		return nil
	}
	e := mirror[id]
	if e == nil || e.GetDeleted() || e.GetRecord().GetBody() == nil {
		return nil
	}
	return e
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// createdHash is the content hash (record.ContentHash) of a new record that holds the fields
// of a source whose field hashes are srcHashes, and no others, without hashing the copy's
// values again: a copied value hashes as its original, a field left out as empty.
func createdHash(kind tandemv1.RecordKind, srcHashes map[string]string, fields []string) string {
	hashes := make(map[string]string, len(srcHashes))
	for _, name := range record.SyncFields(kind) {
		hashes[name] = record.EmptyHash
	}
	for _, name := range fields {
		if _, sync := hashes[name]; sync {
			hashes[name] = srcHashes[name]
		}
	}
	return record.Hash(kind, hashes)
}

// addWrite plans a write from source record src (may be nil for deletes) to target.
func (p *planner) addWrite(target tandemv1.System, op tandemv1.WriteOp, key string, src *tandemv1.Record, targetRec *tandemv1.Record, fields []string, reason string) {
	cmd := &tandemv1.WriteCommand{Op: op, SyncKey: key, IssuedAt: timestamppb.New(p.s.Now)}
	pw := &tandemv1.PendingWrite{Command: cmd, Target: target, IssuedAt: timestamppb.New(p.s.Now), Cycle: p.s.Cycle}
	display := ""
	if src != nil {
		pw.SourceId = src.GetId()
		pw.SourceVersion = src.GetVersion()
		pw.SourceFieldHashes = record.FieldHashes(src)
		pw.SourceHash = record.Hash(p.s.Kind, pw.SourceFieldHashes)
		display = record.DisplayName(src)
	}
	switch op {
	case tandemv1.WriteOp_WRITE_OP_CREATE:
		// The new record holds the fields that may go to target; a field mapped not to (one way
		// the other, or not at all) starts empty there.
		fields := p.s.Settings.flowing(target, record.SyncFields(p.s.Kind))
		rec := record.CopyFields(&tandemv1.Record{}, src, fields)
		rec.SyncKey = key
		cmd.Record = rec
		cmd.Fields = fields
		if earlier := p.s.Pending[PendingKey(target, key)]; earlier.GetCommand().GetOp() == tandemv1.WriteOp_WRITE_OP_CREATE {
			// An overdue create planned again: its first attempt may have taken effect, and a
			// record it made that the user has deleted since must not come back. The target
			// looks for it, from the first attempt's issue time on.
			cmd.Retry = true
			if first := earlier.GetCommand().GetIssuedAt(); first != nil && first.AsTime().Before(p.s.Now) {
				cmd.IssuedAt = first
			}
		}
	case tandemv1.WriteOp_WRITE_OP_UPDATE:
		rec := record.CopyFields(targetRec, src, fields)
		rec.SyncKey = key
		cmd.Record = rec
		cmd.Fields = fields
		cmd.TargetId = targetRec.GetId()
		cmd.ExpectedVersion = targetRec.GetVersion()
		pw.OtherId = targetRec.GetId()
	case tandemv1.WriteOp_WRITE_OP_DELETE:
		cmd.TargetId = targetRec.GetId()
		pw.OtherId = targetRec.GetId()
		if display == "" {
			display = record.DisplayName(targetRec)
		}
	}
	switch {
	case op == tandemv1.WriteOp_WRITE_OP_CREATE:
		cmd.ContentHash = createdHash(p.s.Kind, pw.GetSourceFieldHashes(), cmd.GetFields())
	case cmd.Record != nil:
		cmd.ContentHash = record.ContentHash(cmd.Record)
	}
	cmd.CommandId = CommandID(target, p.s.Cycle, cmd)
	w := Write{PendingWrite: pw, Reason: reason, Display: display}
	p.busy[key] = true
	p.planned[PendingKey(target, key)] = true
	if op == tandemv1.WriteOp_WRITE_OP_DELETE {
		p.removals = append(p.removals, removal{key: key, write: &w, survivorSide: target, survivor: targetRec})
		return
	}
	p.plan.Writes = append(p.plan.Writes, w)
}

// removeLink plans dropping a link whose record is gone on one side, tombstoning the survivor so
// it never comes back; it is a removal, subject to the mass-delete guard.
func (p *planner) removeLink(key string, m *tandemv1.Mapping, tombstone string, survivorSide tandemv1.System, survivor *tandemv1.Record) {
	p.busy[key] = true
	p.removals = append(p.removals, removal{key: key, mapping: m, tombstone: tombstone, survivorSide: survivorSide, survivor: survivor})
}

// CommandID is the deterministic id of a command: the same decision in the same cycle always
// yields the same id, so a cycle planned again after a crash re-sends the same commands (and the
// bus de-duplicates them). A later cycle that issues the same decision again — after a write went
// unanswered, or after a reset — gets a new id, so it is never mistaken for the earlier command,
// which workers skip once it is completed.
func CommandID(target tandemv1.System, cycle uint64, cmd *tandemv1.WriteCommand) string {
	return fmt.Sprintf("%s-%s-%s-c%d-%s", sideName(target)[:2], cmd.GetOp().String()[9:], cmd.GetSyncKey(), cycle,
		shortHash(cmd.GetTargetId()+"|"+cmd.GetExpectedVersion()+"|"+cmd.GetContentHash()))
}
