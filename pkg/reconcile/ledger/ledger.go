// Package ledger is the reconciler's state: its per-user memory in Redis. For each record kind, the
// newest observation of every record on each side (the mirrors), the links between records
// (mappings), writes in flight, refused writes, tombstones, mass-delete holds, and the
// bookkeeping of sync cycles (which pages of which cycle each side has reported).
//
// All of a user's ledger keys share the user's hash tag, so one fenced commit (store.Commit)
// changes them atomically, and only while the caller holds the user's reconcile lease.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/reconcile/planner"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Ledger reads and builds writes of per-user ledgers.
type Ledger struct {
	st *store.Store
}

// New returns a Ledger over st.
func New(st *store.Store) *Ledger { return &Ledger{st: st} }

// Keys are the Redis keys of one user's ledger for one record kind.
type Keys struct {
	ExchangeMirror   string // hash: record id → MirrorRecord
	SalesforceMirror string // hash: record id → MirrorRecord
	Mappings         string // hash: sync key → Mapping
	Pending          string // hash: planner.PendingKey → PendingWrite
	Rejected         string // hash: planner.PendingKey → RejectedWrite
	Tombstones       string // set of planner.TombstoneKey
	Holds            string // hash: hold id → Hold; "decision:<hold id>" → "approve" | "reject"
	Cycle            string // hash: cycle bookkeeping (see Cycle)
	// Unseen is a set: the Exchange items Tandem wrote whose mirror entry no read has listed
	// yet (MirrorRecord.write_cycle set, seen_cycle zero). It is the index that lets a completed
	// read find the creates it should have listed without reading the whole mirror (see the
	// engine's vanishedCreates); Writes keeps it in step with the Exchange mirror.
	Unseen string
	// Dirty is a set: what changed since the last plan (see LoadScope) — mirror entries as
	// "<side>:<record id>", and pairs whose mapping, writes in flight or refusals changed as
	// "key:<sync key>". Writes adds to it; a commit that plans a cycle empties it (ClearDirty).
	Dirty string
}

// KeysFor returns the ledger keys of a user and kind.
func KeysFor(uk store.UserKey, kind tandemv1.RecordKind) (Keys, error) {
	k := store.KindName(kind)
	var ks Keys
	for _, kv := range []struct {
		dst   *string
		name  string
		parts []string
	}{
		{&ks.ExchangeMirror, "mirror", []string{"exchange", k}},
		{&ks.SalesforceMirror, "mirror", []string{"salesforce", k}},
		{&ks.Mappings, "mappings", []string{k}},
		{&ks.Pending, "pending", []string{k}},
		{&ks.Rejected, "rejected", []string{k}},
		{&ks.Tombstones, "tombstones", []string{k}},
		{&ks.Holds, "held", []string{k}},
		{&ks.Cycle, "cycle", []string{k}},
		{&ks.Unseen, "unseen", []string{k}},
		{&ks.Dirty, "dirty", []string{k}},
	} {
		key, err := uk.Key(kv.name, kv.parts...)
		if err != nil {
			return Keys{}, err
		}
		*kv.dst = key
	}
	return ks, nil
}

// Mirror returns the mirror key of side.
func (k Keys) Mirror(side tandemv1.System) string {
	if side == tandemv1.System_SYSTEM_EXCHANGE {
		return k.ExchangeMirror
	}
	return k.SalesforceMirror
}

// Snapshot is a user's whole ledger for one kind.
type Snapshot struct {
	Keys       Keys
	Exchange   map[string]*tandemv1.MirrorRecord
	Salesforce map[string]*tandemv1.MirrorRecord
	Mappings   map[string]*tandemv1.Mapping
	Pending    map[string]*tandemv1.PendingWrite
	Rejected   map[string]*tandemv1.RejectedWrite
	Tombstones map[string]bool
	Holds      map[string]*tandemv1.Hold
	// Decisions are admins' decisions on holds, by hold id: "approve" or "reject".
	Decisions map[string]string
	Cycle     Cycle
	// Partial is true for a snapshot of only what one message touches (LoadPage, LoadResults):
	// the cycle bookkeeping and the entries of the message's records. Planning needs the whole
	// ledger (Load).
	Partial bool
}

// Mirror returns the snapshot's mirror of side.
func (s *Snapshot) Mirror(side tandemv1.System) map[string]*tandemv1.MirrorRecord {
	if side == tandemv1.System_SYSTEM_EXCHANGE {
		return s.Exchange
	}
	return s.Salesforce
}

// Load reads a user's ledger for kind in one round trip.
func (l *Ledger) Load(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind) (*Snapshot, error) {
	keys, err := KeysFor(uk, kind)
	if err != nil {
		return nil, err
	}
	rdb := l.st.Client()
	pipe := rdb.Pipeline()
	exM := pipe.HGetAll(ctx, keys.ExchangeMirror)
	sfM := pipe.HGetAll(ctx, keys.SalesforceMirror)
	maps := pipe.HGetAll(ctx, keys.Mappings)
	pend := pipe.HGetAll(ctx, keys.Pending)
	rej := pipe.HGetAll(ctx, keys.Rejected)
	tomb := pipe.SMembers(ctx, keys.Tombstones)
	holds := pipe.HGetAll(ctx, keys.Holds)
	cyc := pipe.HGetAll(ctx, keys.Cycle)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("load ledger of %s %s: %w", uk, store.KindName(kind), err)
	}
	s := &Snapshot{Keys: keys, Tombstones: map[string]bool{}, Holds: map[string]*tandemv1.Hold{}, Decisions: map[string]string{}}
	if s.Exchange, err = decodeAll(exM.Val(), newMirror); err != nil {
		return nil, fmt.Errorf("exchange mirror of %s: %w", uk, err)
	}
	if s.Salesforce, err = decodeAll(sfM.Val(), newMirror); err != nil {
		return nil, fmt.Errorf("salesforce mirror of %s: %w", uk, err)
	}
	if s.Mappings, err = decodeAll(maps.Val(), func() *tandemv1.Mapping { return &tandemv1.Mapping{} }); err != nil {
		return nil, fmt.Errorf("mappings of %s: %w", uk, err)
	}
	if s.Pending, err = decodeAll(pend.Val(), func() *tandemv1.PendingWrite { return &tandemv1.PendingWrite{} }); err != nil {
		return nil, fmt.Errorf("pending writes of %s: %w", uk, err)
	}
	if s.Rejected, err = decodeAll(rej.Val(), func() *tandemv1.RejectedWrite { return &tandemv1.RejectedWrite{} }); err != nil {
		return nil, fmt.Errorf("rejected writes of %s: %w", uk, err)
	}
	for _, m := range tomb.Val() {
		s.Tombstones[m] = true
	}
	if err := decodeHolds(holds.Val(), s); err != nil {
		return nil, fmt.Errorf("holds of %s: %w", uk, err)
	}
	s.Cycle = parseCycle(cyc.Val())
	return s, nil
}

// LoadCycle reads only a user's cycle bookkeeping for kind.
func (l *Ledger) LoadCycle(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind) (Cycle, error) {
	keys, err := KeysFor(uk, kind)
	if err != nil {
		return Cycle{}, err
	}
	raw, err := l.st.Client().HGetAll(ctx, keys.Cycle).Result()
	if err != nil {
		return Cycle{}, fmt.Errorf("load cycles of %s %s: %w", uk, store.KindName(kind), err)
	}
	return parseCycle(raw), nil
}

// decodeHolds decodes a holds hash into s.Holds and s.Decisions.
func decodeHolds(raw map[string]string, s *Snapshot) error {
	for field, v := range raw {
		if id, ok := strings.CutPrefix(field, "decision:"); ok {
			s.Decisions[id] = v
			continue
		}
		h := &tandemv1.Hold{}
		if err := proto.Unmarshal([]byte(v), h); err != nil {
			return fmt.Errorf("hold %s: %w", field, err)
		}
		s.Holds[field] = h
	}
	return nil
}

func newMirror() *tandemv1.MirrorRecord { return &tandemv1.MirrorRecord{} }

func decodeAll[M proto.Message](raw map[string]string, newM func() M) (map[string]M, error) {
	out := make(map[string]M, len(raw))
	for field, v := range raw {
		m := newM()
		if err := unmarshalEntry([]byte(v), m); err != nil {
			return nil, fmt.Errorf("field %q: %w", field, err)
		}
		out[field] = m
	}
	return out, nil
}

// Cycle is the cycle bookkeeping of one user and kind.
type Cycle struct {
	// Reconciled is the last cycle the reconciler planned.
	Reconciled uint64
	// Ready is, per side, the highest cycle whose pages have all arrived.
	Ready map[string]uint64
	// ResetFrom ignores batches of cycles before it (they predate a reset).
	ResetFrom uint64
	// Pages are the pages received per "side:cycle"; Counts the page counts announced by last pages.
	Pages  map[string]map[uint32]bool
	Counts map[string]uint32
	// FullStart is, per "side:cycle" of a full read, the earliest read time (unix ms) of its pages.
	FullStart map[string]int64
	// InitialDone records, per direction target side, that its initial sync completed.
	InitialDone map[string]bool
	// Waiting are reads that completed before the read they continue from, per "side:cycle",
	// with that previous cycle; they count once the chain reaches them.
	Waiting map[string]uint64
	// LastSyncedMs is when the kind last completed a cycle (unix ms).
	LastSyncedMs int64
	// Unsent is the oldest cycle whose planned writes were committed as in flight but not yet all
	// sent; the next handler sends the writes of that cycle and later ones. Zero when all were sent.
	Unsent uint64
	// Relinked counts the pairs linked again by their records' sync key since the ledger began.
	Relinked int64
	// BeganMs is when this ledger began (unix ms): Tandem remembers nothing of the user's
	// records from before it. A reset or a lost Redis begins it again.
	BeganMs int64
	// Quiet is the settings fingerprint of the last plan that found nothing to do, while the
	// ledger's data has not changed since (see Writes.SetQuiet); empty otherwise.
	Quiet string
	// Epoch is the epoch of the org's schedule whose cycles this bookkeeping counts (see
	// Writes.BeginEpoch); empty before the first.
	Epoch string
	// Settled is the settings fingerprint under which the user's next cycle may be planned
	// from what changed alone (see Writes.SetSettled and LoadScope); empty otherwise.
	Settled string
}

// Cycle hash fields.
const (
	fieldReconciled = "reconciled"
	fieldResetFrom  = "reset_from"
	fieldLastSynced = "last_synced_ms"
	fieldUnsent     = "unsent"
	fieldRelinked   = "relinked"
	fieldBegan      = "began_ms"
	fieldQuiet      = "quiet"
	fieldEpoch      = "epoch"
	fieldSettled    = "settled"
	prefixReady     = "ready:"
	prefixPages     = "pages:"
	prefixCount     = "count:"
	prefixFullStart = "full_start:"
	prefixInitDone  = "initial_done:"
	prefixWaiting   = "waiting:"
)

func parseCycle(raw map[string]string) Cycle {
	c := Cycle{
		Ready: map[string]uint64{}, Pages: map[string]map[uint32]bool{}, Counts: map[string]uint32{},
		FullStart: map[string]int64{}, InitialDone: map[string]bool{}, Waiting: map[string]uint64{},
	}
	u := func(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n }
	for f, v := range raw {
		switch {
		case f == fieldReconciled:
			c.Reconciled = u(v)
		case f == fieldResetFrom:
			c.ResetFrom = u(v)
		case f == fieldUnsent:
			c.Unsent = u(v)
		case f == fieldRelinked:
			n, _ := strconv.ParseInt(v, 10, 64)
			c.Relinked = n
		case f == fieldLastSynced:
			n, _ := strconv.ParseInt(v, 10, 64)
			c.LastSyncedMs = n
		case f == fieldBegan:
			n, _ := strconv.ParseInt(v, 10, 64)
			c.BeganMs = n
		case f == fieldQuiet:
			c.Quiet = v
		case f == fieldEpoch:
			c.Epoch = v
		case f == fieldSettled:
			c.Settled = v
		case strings.HasPrefix(f, prefixReady):
			c.Ready[f[len(prefixReady):]] = u(v)
		case strings.HasPrefix(f, prefixPages):
			set := map[uint32]bool{}
			for _, p := range strings.Split(v, ",") {
				if n, err := strconv.ParseUint(p, 10, 32); err == nil {
					set[uint32(n)] = true
				}
			}
			c.Pages[f[len(prefixPages):]] = set
		case strings.HasPrefix(f, prefixCount):
			c.Counts[f[len(prefixCount):]] = uint32(u(v))
		case strings.HasPrefix(f, prefixFullStart):
			n, _ := strconv.ParseInt(v, 10, 64)
			c.FullStart[f[len(prefixFullStart):]] = n
		case strings.HasPrefix(f, prefixInitDone):
			c.InitialDone[f[len(prefixInitDone):]] = v == "1"
		case strings.HasPrefix(f, prefixWaiting):
			c.Waiting[f[len(prefixWaiting):]] = u(v)
		}
	}
	return c
}

// CycleSide is the "side:cycle" key of Cycle's per-page maps.
func CycleSide(side tandemv1.System, cycle uint64) string {
	return store.SideName(side) + ":" + strconv.FormatUint(cycle, 10)
}

// ParseCycleSide splits a "side:cycle" key.
func ParseCycleSide(cs string) (tandemv1.System, uint64, bool) {
	name, num, ok := strings.Cut(cs, ":")
	if !ok {
		return 0, 0, false
	}
	cycle, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	side, ok := sideNamed(name)
	if !ok {
		return 0, 0, false
	}
	return side, cycle, true
}

// sideNamed returns the side store.SideName calls name.
func sideNamed(name string) (tandemv1.System, bool) {
	for _, side := range sides {
		if store.SideName(side) == name {
			return side, true
		}
	}
	return 0, false
}

// CompletedBy reports whether a page (number page of side's cycle, the last one when last, of
// count pages) would complete the cycle, given the pages already received.
func (c Cycle) CompletedBy(side tandemv1.System, cycle uint64, page uint32, last bool, count uint32) bool {
	cs := CycleSide(side, cycle)
	if !last {
		var ok bool
		if count, ok = c.Counts[cs]; !ok {
			return false
		}
	}
	for p := range count {
		if p != page && !c.Pages[cs][p] {
			return false
		}
	}
	return true
}

// Complete reports whether every page of side's cycle has arrived.
func (c Cycle) Complete(side tandemv1.System, cycle uint64) bool {
	cs := CycleSide(side, cycle)
	count, ok := c.Counts[cs]
	if !ok {
		return false
	}
	pages := c.Pages[cs]
	for p := range count {
		if !pages[p] {
			return false
		}
	}
	return true
}

// Writes collects the operations of one commit to a user's ledger.
type Writes struct {
	keys Keys
	ops  []store.Op
	err  error
	// unseen is, per Exchange item written to the mirror, whether it belongs in Keys.Unseen.
	unseen map[string]bool
	// disturbed is true once the commit changes the ledger's data (see SetQuiet).
	disturbed bool
	// dirty are the Keys.Dirty members this commit adds; clearDirty empties the set instead.
	dirty      map[string]bool
	clearDirty bool
}

// NewWrites starts a commit for the ledger keys of s.
func (s *Snapshot) NewWrites() *Writes { return &Writes{keys: s.Keys} }

// Ops returns the operations, or the first encoding error.
func (w *Writes) Ops() ([]store.Op, error) {
	if w.err != nil {
		return nil, w.err
	}
	if len(w.unseen) == 0 && len(w.dirty) == 0 && !w.clearDirty {
		return w.ops, nil
	}
	var add, rem []string
	for _, id := range slices.Sorted(maps.Keys(w.unseen)) {
		if w.unseen[id] {
			add = append(add, id)
		} else {
			rem = append(rem, id)
		}
	}
	ops := slices.Clip(w.ops)
	ops = appendChunked(ops, rem, func(m ...string) store.Op { return store.SRem(w.keys.Unseen, m...) })
	ops = appendChunked(ops, add, func(m ...string) store.Op { return store.SAdd(w.keys.Unseen, m...) })
	if w.clearDirty {
		// The plan this commit records saw everything its own writes mark.
		return append(ops, store.Del(w.keys.Dirty)), nil
	}
	dirty := slices.Sorted(maps.Keys(w.dirty))
	return appendChunked(ops, dirty, func(m ...string) store.Op { return store.SAdd(w.keys.Dirty, m...) }), nil
}

// appendChunked appends op(chunk) to ops for each chunk of members.
func appendChunked(ops []store.Op, members []string, op func(...string) store.Op) []store.Op {
	for len(members) > 0 {
		n := min(len(members), maxMembers)
		ops = append(ops, op(members[:n]...))
		members = members[n:]
	}
	return ops
}

// Len is the number of operations collected.
func (w *Writes) Len() int { return len(w.ops) }

// Disturbed reports whether the commit changes the ledger's data, not only its bookkeeping.
func (w *Writes) Disturbed() bool { return w.disturbed }

// disturb notes a change of the ledger's data: the user is no longer quiet.
func (w *Writes) disturb() {
	if w.disturbed {
		return
	}
	w.disturbed = true
	w.ops = append(w.ops, store.HDel(w.keys.Cycle, fieldQuiet))
}

// put stores m under field of the hash key (marshalEntry). Stored entries are only ever
// decoded, never compared as bytes, so their maps are written in no particular order.
func (w *Writes) put(key, field string, m proto.Message) {
	b, err := marshalEntry(m)
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("encode %T: %w", m, err)
		return
	}
	w.disturb()
	w.ops = append(w.ops, store.HSet(key, field, b))
}

// maxMembers bounds the fields or members of one operation (the store refuses more, so that a
// commit can be validated before anything is written).
const maxMembers = 500

// chunked appends op(chunk) for each chunk of members.
func (w *Writes) chunked(members []string, op func(...string) store.Op) {
	if len(members) > 0 {
		w.disturb()
	}
	w.ops = appendChunked(w.ops, members, op)
}

// markDirty adds member to Keys.Dirty with the commit.
func (w *Writes) markDirty(member string) {
	if w.dirty == nil {
		w.dirty = map[string]bool{}
	}
	w.dirty[member] = true
}

// markKeyDirty marks dirty the pair of a sync key, or of a planner.PendingKey.
func (w *Writes) markKeyDirty(key string) {
	w.markDirty(dirtyKeyPrefix + key)
}

// markPendingDirty marks dirty the pair of a planner.PendingKey ("<side>:<sync key>").
func (w *Writes) markPendingDirty(pendingKey string) {
	if _, key, ok := strings.Cut(pendingKey, ":"); ok {
		w.markKeyDirty(key)
	}
}

// ClearDirty empties Keys.Dirty with the commit, which must record a plan of every change the
// set names (the marks this commit would add included).
func (w *Writes) ClearDirty() { w.clearDirty = true }

// Dirty returns the Keys.Dirty members this commit adds, sorted.
func (w *Writes) Dirty() []string { return slices.Sorted(maps.Keys(w.dirty)) }

// PutMirror stores an observation of a record on side.
func (w *Writes) PutMirror(side tandemv1.System, m *tandemv1.MirrorRecord) {
	id := m.GetRecord().GetId()
	w.put(w.keys.Mirror(side), id, m)
	w.markDirty(store.SideName(side) + ":" + id)
	if side == tandemv1.System_SYSTEM_EXCHANGE {
		w.markUnseen(id, Unseen(m))
	}
}

// Unseen reports whether an Exchange mirror entry is an item Tandem wrote that no read has
// listed yet (see Keys.Unseen).
func Unseen(m *tandemv1.MirrorRecord) bool {
	return !m.GetDeleted() && m.GetWriteCycle() > 0 && m.GetSeenCycle() == 0
}

func (w *Writes) markUnseen(id string, unseen bool) {
	if w.unseen == nil {
		w.unseen = map[string]bool{}
	}
	w.unseen[id] = unseen
}

// DeleteMirror forgets observations.
func (w *Writes) DeleteMirror(side tandemv1.System, ids ...string) {
	key := w.keys.Mirror(side)
	w.chunked(ids, func(f ...string) store.Op { return store.HDel(key, f...) })
	if side == tandemv1.System_SYSTEM_EXCHANGE {
		for _, id := range ids {
			w.markUnseen(id, false)
		}
	}
}

// PutMapping stores a link.
func (w *Writes) PutMapping(m *tandemv1.Mapping) {
	w.put(w.keys.Mappings, m.GetSyncKey(), m)
	w.markKeyDirty(m.GetSyncKey())
}

// DeleteMappings drops links.
func (w *Writes) DeleteMappings(keys ...string) {
	w.chunked(keys, func(f ...string) store.Op { return store.HDel(w.keys.Mappings, f...) })
	for _, k := range keys {
		w.markKeyDirty(k)
	}
}

// PutPending records a write in flight under its pending key.
func (w *Writes) PutPending(pendingKey string, pw *tandemv1.PendingWrite) {
	w.put(w.keys.Pending, pendingKey, pw)
}

// DeletePending clears writes in flight.
func (w *Writes) DeletePending(pendingKeys ...string) {
	w.chunked(pendingKeys, func(f ...string) store.Op { return store.HDel(w.keys.Pending, f...) })
	for _, pk := range pendingKeys {
		w.markPendingDirty(pk)
	}
}

// PutRejected remembers a refused write.
func (w *Writes) PutRejected(pendingKey string, r *tandemv1.RejectedWrite) {
	w.put(w.keys.Rejected, pendingKey, r)
	w.markPendingDirty(pendingKey)
}

// DeleteRejected forgets refusals.
func (w *Writes) DeleteRejected(pendingKeys ...string) {
	w.chunked(pendingKeys, func(f ...string) store.Op { return store.HDel(w.keys.Rejected, f...) })
	for _, pk := range pendingKeys {
		w.markPendingDirty(pk)
	}
}

// AddTombstones adds tombstones.
func (w *Writes) AddTombstones(members ...string) {
	w.chunked(members, func(m ...string) store.Op { return store.SAdd(w.keys.Tombstones, m...) })
}

// PutHold stores a hold.
func (w *Writes) PutHold(h *tandemv1.Hold) { w.put(w.keys.Holds, h.GetSummary().GetHoldId(), h) }

// DeleteHold removes a hold and its decision.
func (w *Writes) DeleteHold(id string) {
	w.disturb()
	w.ops = append(w.ops, store.HDel(w.keys.Holds, id, "decision:"+id))
}

// SetQuiet records that a plan of the whole ledger, under settings with this fingerprint, had
// nothing to do, with no write in flight and no hold: until the ledger's data changes (any
// write other than cycle bookkeeping removes the mark) or the settings do, planning again
// would find nothing either, and a cycle can be reconciled without loading the ledger. Call it
// last: a data write after it in the same commit would leave the mark in place.
func (w *Writes) SetQuiet(fingerprint string) {
	w.setCycle(fieldQuiet, fingerprint)
}

// SetSettled records that the plan this commit records left the user settled, under settings
// with this fingerprint: it decided nothing that changes which records are linked (no create,
// delete, link, unlink, tombstone, hold or refusal of a whole user), left no record waiting for
// time to pass, and no write in flight lacks its pair's link. Until a commit clears the mark,
// only the records and pairs that Keys.Dirty names can plan differently from last time, and the
// next cycle may be planned from them alone (see LoadScope).
func (w *Writes) SetSettled(fingerprint string) { w.setCycle(fieldSettled, fingerprint) }

// ClearSettled removes the settled mark: the next cycle is planned from the whole ledger.
func (w *Writes) ClearSettled() {
	w.ops = append(w.ops, store.HDel(w.keys.Cycle, fieldSettled))
}

// SetCycleField sets a cycle bookkeeping field.
func (w *Writes) setCycle(field, value string) {
	w.ops = append(w.ops, store.HSet(w.keys.Cycle, field, value))
}

// BeginEpoch makes c, the bookkeeping of cycles of another epoch of the org's schedule, count
// the cycles of epoch instead. Cycles of a lost schedule (numbered again from 1 in a new epoch
// after FLUSHALL) tell nothing about the new ones: left in place, a cycle 205 marked read in the
// old numbering would make every new cycle up to 205 look older and never be planned. So what
// counts cycles goes — reconciled and ready cycles, pages, waiting reads, writes still to send,
// a reset's start, the quiet mark — and what describes the records stays: the ledger's data,
// when it began, which initial syncs completed, the relinks counted.
func (w *Writes) BeginEpoch(c *Cycle, epoch string) {
	fields := []string{fieldReconciled, fieldResetFrom, fieldUnsent, fieldQuiet, fieldSettled}
	for side := range c.Ready {
		fields = append(fields, prefixReady+side)
	}
	for cs := range c.Pages {
		fields = append(fields, prefixPages+cs)
	}
	for cs := range c.Counts {
		fields = append(fields, prefixCount+cs)
	}
	for cs := range c.FullStart {
		fields = append(fields, prefixFullStart+cs)
	}
	for cs := range c.Waiting {
		fields = append(fields, prefixWaiting+cs)
	}
	w.ops = append(w.ops, store.HDel(w.keys.Cycle, fields...))
	w.setCycle(fieldEpoch, epoch)
	*c = Cycle{
		Ready: map[string]uint64{}, Pages: map[string]map[uint32]bool{}, Counts: map[string]uint32{},
		FullStart: map[string]int64{}, Waiting: map[string]uint64{},
		InitialDone: c.InitialDone, LastSyncedMs: c.LastSyncedMs, Relinked: c.Relinked, BeganMs: c.BeganMs,
		Epoch: epoch,
	}
}

// SetReconciled records the last planned cycle.
func (w *Writes) SetReconciled(cycle uint64) {
	w.setCycle(fieldReconciled, strconv.FormatUint(cycle, 10))
}

// SetUnsent marks cycle's planned writes as not yet sent.
func (w *Writes) SetUnsent(cycle uint64) {
	w.setCycle(fieldUnsent, strconv.FormatUint(cycle, 10))
}

// ClearUnsent records that every planned write was sent.
func (w *Writes) ClearUnsent() {
	w.ops = append(w.ops, store.HDel(w.keys.Cycle, fieldUnsent))
}

// SetReady records that side's cycle is complete.
func (w *Writes) SetReady(side tandemv1.System, cycle uint64) {
	w.setCycle(prefixReady+store.SideName(side), strconv.FormatUint(cycle, 10))
}

// SetPages records the pages received for a side's cycle.
func (w *Writes) SetPages(side tandemv1.System, cycle uint64, pages map[uint32]bool) {
	parts := make([]string, 0, len(pages))
	for p := range pages {
		parts = append(parts, strconv.FormatUint(uint64(p), 10))
	}
	w.setCycle(prefixPages+CycleSide(side, cycle), strings.Join(parts, ","))
}

// SetCount records the page count of a side's cycle.
func (w *Writes) SetCount(side tandemv1.System, cycle uint64, count uint32) {
	w.setCycle(prefixCount+CycleSide(side, cycle), strconv.FormatUint(uint64(count), 10))
}

// SetFullStart records the earliest read time of a full read.
func (w *Writes) SetFullStart(side tandemv1.System, cycle uint64, ms int64) {
	w.setCycle(prefixFullStart+CycleSide(side, cycle), strconv.FormatInt(ms, 10))
}

// ForgetCycle drops the page bookkeeping of a side's cycle once it is no longer needed.
func (w *Writes) ForgetCycle(side tandemv1.System, cycle uint64) {
	cs := CycleSide(side, cycle)
	w.ops = append(w.ops, store.HDel(w.keys.Cycle, prefixPages+cs, prefixCount+cs, prefixFullStart+cs))
}

// SetWaiting records a completed read waiting for the read it continues from.
func (w *Writes) SetWaiting(side tandemv1.System, cycle, previous uint64) {
	w.setCycle(prefixWaiting+CycleSide(side, cycle), strconv.FormatUint(previous, 10))
}

// ClearWaiting drops a waiting read once the chain has reached it.
func (w *Writes) ClearWaiting(side tandemv1.System, cycle uint64) {
	w.ops = append(w.ops, store.HDel(w.keys.Cycle, prefixWaiting+CycleSide(side, cycle)))
}

// SetInitialDone records that the initial sync towards target completed.
func (w *Writes) SetInitialDone(target tandemv1.System) {
	w.setCycle(prefixInitDone+store.SideName(target), "1")
}

// SetRelinked records the count of pairs relinked by sync key.
func (w *Writes) SetRelinked(n int64) {
	w.setCycle(fieldRelinked, strconv.FormatInt(n, 10))
}

// SetBegan records when the ledger began (see Cycle.BeganMs).
func (w *Writes) SetBegan(ms int64) {
	w.setCycle(fieldBegan, strconv.FormatInt(ms, 10))
}

// SetLastSynced records when the kind last completed a cycle.
func (w *Writes) SetLastSynced(ms int64) {
	w.setCycle(fieldLastSynced, strconv.FormatInt(ms, 10))
}

// Reset clears the whole ledger of a user and kind — links, mirrors, writes in flight,
// refusals, tombstones, holds — and ignores batches of cycles before from, a cycle of the
// schedule's epoch (see BeginEpoch). Records themselves
// are not touched; the next full reads relink them by sync key and matching. Commands sent
// before the reset are no longer in flight, so workers skip them if a redelivery brings them back.
func (w *Writes) Reset(from uint64, epoch string) {
	k := w.keys
	w.disturbed = true
	w.unseen, w.dirty, w.clearDirty = nil, nil, false
	w.ops = append(w.ops, store.Del(k.ExchangeMirror, k.SalesforceMirror, k.Mappings, k.Pending, k.Rejected, k.Tombstones, k.Holds, k.Cycle, k.Unseen, k.Dirty))
	w.setCycle(fieldResetFrom, strconv.FormatUint(from, 10))
	w.setCycle(fieldEpoch, epoch)
}

// Commit applies w under lease; it is refused if the lease is stale.
func (l *Ledger) Commit(ctx context.Context, lease *store.Lease, w *Writes) error {
	ops, err := w.Ops()
	if err != nil {
		return err
	}
	if len(ops) == 0 {
		return nil
	}
	if err := l.st.Commit(ctx, lease, ops...); err != nil {
		return fmt.Errorf("commit ledger of %s: %w", lease.User(), err)
	}
	return nil
}

// Outbox is the part of the ledger the workers see: it reads, and never writes, which of a
// write batch's commands are still in flight. It is all of the ledger a worker may use.
type Outbox struct {
	st *store.Store
}

// NewOutbox returns the workers' view of the ledgers in st.
func NewOutbox(st *store.Store) *Outbox { return &Outbox{st: st} }

// InFlight reports which of a write batch's commands are still in flight — pending in the
// user's ledger under exactly that command id. Workers carry out only those: a command the
// ledger no longer has (answered, adopted, superseded by a newer decision, or dropped by a
// reset) is stale, and running it after a redelivery could undo newer changes.
func (o *Outbox) InFlight(ctx context.Context, uk store.UserKey, b *tandemv1.WriteBatch) (map[string]bool, error) {
	out := map[string]bool{}
	cmds := b.GetCommands()
	if len(cmds) == 0 {
		return out, nil
	}
	keys, err := KeysFor(uk, b.GetKind())
	if err != nil {
		return nil, err
	}
	fields := make([]string, len(cmds))
	for i, c := range cmds {
		fields[i] = planner.PendingKey(b.GetTarget(), c.GetSyncKey())
	}
	vals, err := o.st.Client().HMGet(ctx, keys.Pending, fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("read writes in flight of %s: %w", uk, err)
	}
	for i, c := range cmds {
		raw, ok := vals[i].(string)
		if !ok {
			continue // not in flight
		}
		id, err := commandID([]byte(raw))
		if err != nil {
			return nil, fmt.Errorf("writes in flight of %s: field %q: %w", uk, fields[i], err)
		}
		if id == c.GetCommandId() {
			out[c.GetCommandId()] = true
		}
	}
	return out, nil
}

// ResetProgress reports, for a user and kind, the cycle a reset started from (0 if none) and the
// last cycle reconciled: the reset is done once the reconciler has planned a cycle at or after it.
func (l *Ledger) ResetProgress(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind) (resetFrom, reconciled uint64, err error) {
	keys, err := KeysFor(uk, kind)
	if err != nil {
		return 0, 0, err
	}
	vals, err := l.st.Client().HMGet(ctx, keys.Cycle, fieldResetFrom, fieldReconciled).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("read reset progress of %s: %w", uk, err)
	}
	num := func(v any) uint64 {
		s, _ := v.(string)
		n, _ := strconv.ParseUint(s, 10, 64)
		return n
	}
	return num(vals[0]), num(vals[1]), nil
}

// Holds returns the user's mass-delete holds for kind that await an admin's decision.
func (l *Ledger) Holds(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind) ([]*tandemv1.Hold, error) {
	keys, err := KeysFor(uk, kind)
	if err != nil {
		return nil, err
	}
	raw, err := l.st.Client().HGetAll(ctx, keys.Holds).Result()
	if err != nil {
		return nil, fmt.Errorf("read holds of %s: %w", uk, err)
	}
	var out []*tandemv1.Hold
	for field, v := range raw {
		if strings.HasPrefix(field, "decision:") {
			continue
		}
		if _, decided := raw["decision:"+field]; decided {
			continue
		}
		h := &tandemv1.Hold{}
		if err := proto.Unmarshal([]byte(v), h); err != nil {
			return nil, fmt.Errorf("hold %s of %s: %w", field, uk, err)
		}
		out = append(out, h)
	}
	return out, nil
}

// Decide records an admin's decision on a hold; the next cycle carries it out.
func (l *Ledger) Decide(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind, holdID string, approve bool) error {
	keys, err := KeysFor(uk, kind)
	if err != nil {
		return err
	}
	exists, err := l.st.Client().HExists(ctx, keys.Holds, holdID).Result()
	if err != nil {
		return fmt.Errorf("find hold %s of %s: %w", holdID, uk, err)
	}
	if !exists {
		return fmt.Errorf("hold %s of %s: %w", holdID, uk, store.ErrNotFound)
	}
	decision := "reject"
	if approve {
		decision = "approve"
	}
	// A decision changes what the next plan does: the user is no longer quiet.
	return l.st.Apply(ctx, store.HSet(keys.Holds, "decision:"+holdID, decision), store.HDel(keys.Cycle, fieldQuiet, fieldSettled))
}
