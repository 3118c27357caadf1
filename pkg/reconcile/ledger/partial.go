package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/reconcile/planner"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// A message's work follows the message, not the user: a page of changes or a batch of write
// results loads the ledger entries its records touch (LoadPage, LoadResults), and the counts a
// status needs come from Redis (Counts) rather than from every entry. Only planning a cycle in
// which something changed, and a full read's pruning, load the whole ledger (Load).

// partial returns an empty partial snapshot of keys with cycle bookkeeping c.
func partial(keys Keys, c Cycle) *Snapshot {
	return &Snapshot{
		Keys: keys, Partial: true, Cycle: c,
		Exchange: map[string]*tandemv1.MirrorRecord{}, Salesforce: map[string]*tandemv1.MirrorRecord{},
		Mappings: map[string]*tandemv1.Mapping{}, Pending: map[string]*tandemv1.PendingWrite{},
		Rejected: map[string]*tandemv1.RejectedWrite{}, Tombstones: map[string]bool{},
		Holds: map[string]*tandemv1.Hold{}, Decisions: map[string]string{},
	}
}

// decodeFields decodes the values of an HMGET of fields into out, skipping missing ones.
func decodeFields[M proto.Message](vals []any, fields []string, out map[string]M, newM func() M) error {
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue
		}
		m := newM()
		if err := unmarshalEntry([]byte(raw), m); err != nil {
			return fmt.Errorf("field %q: %w", fields[i], err)
		}
		out[fields[i]] = m
	}
	return nil
}

func hmget(ctx context.Context, pipe redis.Pipeliner, key string, fields []string) *redis.SliceCmd {
	if len(fields) == 0 {
		return nil
	}
	return pipe.HMGet(ctx, key, fields...)
}

func vals(c *redis.SliceCmd) []any {
	if c == nil {
		return nil
	}
	return c.Val()
}

// LoadPage reads what applying one page of side's changes needs: the cycle bookkeeping and the
// mirror entries of the page's records. With unseen (a page that completes an incremental read
// of Exchange), it also reads the entries of the items Tandem wrote that no read has listed yet
// (Keys.Unseen), which the completed read may show to be gone.
func (l *Ledger) LoadPage(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind, side tandemv1.System, ids []string, unseen bool) (*Snapshot, error) {
	pipe := l.st.Client().Pipeline()
	r, err := l.QueuePage(ctx, pipe, uk, kind, side, ids, unseen)
	if err != nil {
		return nil, err
	}
	if err := r.Exec(ctx, pipe); err != nil {
		return nil, err
	}
	return r.Snapshot(ctx, unseen)
}

// PageRead is LoadPage's round trip queued on a caller's pipeline, so that the caller can send
// its own reads with it: the reconciler reads the org's schedule in the same round trip (see
// engine.Syncer.HandleChanges). Its Cycle tells the caller whether the page needs the whole
// ledger instead, and Snapshot builds the page's snapshot once the pipeline has run.
type PageRead struct {
	l       *Ledger
	uk      store.UserKey
	kind    tandemv1.RecordKind
	side    tandemv1.System
	ids     []string
	keys    Keys
	cycle   *redis.MapStringStringCmd
	entries *redis.SliceCmd
	// members are the unseen items, when they were queued; nil otherwise.
	members *redis.StringSliceCmd
}

// QueuePage queues on pipe the reads of LoadPage. With unseen, it also queues the read of the
// items no read has listed yet (for Exchange only), which a caller that does not know yet
// whether the page completes a read may queue in advance: Snapshot reads them itself when they
// turn out to be needed but were not queued.
func (l *Ledger) QueuePage(ctx context.Context, pipe redis.Pipeliner, uk store.UserKey, kind tandemv1.RecordKind, side tandemv1.System, ids []string, unseen bool) (*PageRead, error) {
	keys, err := KeysFor(uk, kind)
	if err != nil {
		return nil, err
	}
	r := &PageRead{l: l, uk: uk, kind: kind, side: side, ids: ids, keys: keys}
	r.cycle = pipe.HGetAll(ctx, keys.Cycle)
	r.entries = hmget(ctx, pipe, keys.Mirror(side), ids)
	if unseen && side == tandemv1.System_SYSTEM_EXCHANGE {
		r.members = pipe.SMembers(ctx, keys.Unseen)
	}
	return r, nil
}

// Exec sends pipe, on which r is queued, and reports the failure of any of its reads.
func (r *PageRead) Exec(ctx context.Context, pipe redis.Pipeliner) error {
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("load a page's ledger of %s %s: %w", r.uk, store.KindName(r.kind), err)
	}
	return nil
}

// Cycle is the cycle bookkeeping read, once the pipeline has run.
func (r *PageRead) Cycle() Cycle { return parseCycle(r.cycle.Val()) }

// Snapshot returns the partial snapshot of the page once the pipeline has run. With unseen (a
// page that completes an incremental read of Exchange), it adds the entries of the items
// Tandem wrote that no read has listed yet, reading the set now if it was not queued.
func (r *PageRead) Snapshot(ctx context.Context, unseen bool) (*Snapshot, error) {
	s := partial(r.keys, r.Cycle())
	mirror := s.Mirror(r.side)
	if err := decodeFields(vals(r.entries), r.ids, mirror, newMirror); err != nil {
		return nil, fmt.Errorf("%s mirror of %s: %w", store.SideName(r.side), r.uk, err)
	}
	if !unseen || r.side != tandemv1.System_SYSTEM_EXCHANGE {
		return s, nil
	}
	var members []string
	if r.members != nil {
		members = r.members.Val()
	} else {
		var err error
		if members, err = r.l.st.Client().SMembers(ctx, r.keys.Unseen).Result(); err != nil {
			return nil, fmt.Errorf("unseen items of %s: %w", r.uk, err)
		}
	}
	var more []string
	for _, id := range members {
		if _, ok := mirror[id]; !ok {
			more = append(more, id)
		}
	}
	if len(more) == 0 {
		return s, nil
	}
	if err := r.l.LoadMirror(ctx, s, r.side, more); err != nil {
		return nil, fmt.Errorf("unseen items of %s: %w", r.uk, err)
	}
	return s, nil
}

// LoadResults reads what committing a batch of write results to target needs, but for the
// records: the cycle bookkeeping, the holds, and for the batch's sync keys their mappings and
// their writes in flight and refusals towards target. LoadMirror then adds the entries of the
// records the writes touched, which only the writes in flight name.
func (l *Ledger) LoadResults(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind, target tandemv1.System, syncKeys []string) (*Snapshot, error) {
	keys, err := KeysFor(uk, kind)
	if err != nil {
		return nil, err
	}
	pks := make([]string, len(syncKeys))
	for i, k := range syncKeys {
		pks[i] = planner.PendingKey(target, k)
	}
	pipe := l.st.Client().Pipeline()
	cyc := pipe.HGetAll(ctx, keys.Cycle)
	holds := pipe.HGetAll(ctx, keys.Holds)
	maps := hmget(ctx, pipe, keys.Mappings, syncKeys)
	pend := hmget(ctx, pipe, keys.Pending, pks)
	rej := hmget(ctx, pipe, keys.Rejected, pks)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("load a result batch's ledger of %s %s: %w", uk, store.KindName(kind), err)
	}
	s := partial(keys, parseCycle(cyc.Val()))
	if err := decodeHolds(holds.Val(), s); err != nil {
		return nil, fmt.Errorf("holds of %s: %w", uk, err)
	}
	if err := decodeFields(vals(maps), syncKeys, s.Mappings, func() *tandemv1.Mapping { return &tandemv1.Mapping{} }); err != nil {
		return nil, fmt.Errorf("mappings of %s: %w", uk, err)
	}
	if err := decodeFields(vals(pend), pks, s.Pending, func() *tandemv1.PendingWrite { return &tandemv1.PendingWrite{} }); err != nil {
		return nil, fmt.Errorf("pending writes of %s: %w", uk, err)
	}
	if err := decodeFields(vals(rej), pks, s.Rejected, func() *tandemv1.RejectedWrite { return &tandemv1.RejectedWrite{} }); err != nil {
		return nil, fmt.Errorf("rejected writes of %s: %w", uk, err)
	}
	return s, nil
}

// LoadMirror adds to s the side's mirror entries of ids.
func (l *Ledger) LoadMirror(ctx context.Context, s *Snapshot, side tandemv1.System, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	got, err := l.st.Client().HMGet(ctx, s.Keys.Mirror(side), ids...).Result()
	if err != nil {
		return fmt.Errorf("load %s mirror entries: %w", store.SideName(side), err)
	}
	if err := decodeFields(got, ids, s.Mirror(side), newMirror); err != nil {
		return fmt.Errorf("%s mirror: %w", store.SideName(side), err)
	}
	return nil
}

// LoadPending reads every write in flight, into s.
func (l *Ledger) LoadPending(ctx context.Context, s *Snapshot) error {
	raw, err := l.st.Client().HGetAll(ctx, s.Keys.Pending).Result()
	if err != nil {
		return fmt.Errorf("load writes in flight: %w", err)
	}
	pending, err := decodeAll(raw, func() *tandemv1.PendingWrite { return &tandemv1.PendingWrite{} })
	if err != nil {
		return fmt.Errorf("writes in flight: %w", err)
	}
	s.Pending = pending
	return nil
}

// Counts are the sizes a user's status for one kind is made of.
type Counts struct {
	// Mappings is the number of linked pairs.
	Mappings int64
	// PendingTo is the number of writes in flight per target side.
	PendingTo map[tandemv1.System]int64
	// BusyMapped is the number of linked pairs with a write in flight (towards either side).
	BusyMapped int64
}

// Pending is the number of writes in flight.
func (c Counts) Pending() int64 {
	var n int64
	for _, v := range c.PendingTo {
		n += v
	}
	return n
}

// InSync is the number of linked pairs with no write in flight.
func (c Counts) InSync() int64 { return c.Mappings - c.BusyMapped }

// Counts returns the counts of s, a whole-ledger snapshot.
func (s *Snapshot) Counts() Counts {
	c := Counts{Mappings: int64(len(s.Mappings)), PendingTo: map[tandemv1.System]int64{}}
	busy := map[string]bool{}
	for _, pw := range s.Pending {
		c.PendingTo[pw.GetTarget()]++
		busy[pw.GetCommand().GetSyncKey()] = true
	}
	for key := range busy {
		if _, ok := s.Mappings[key]; ok {
			c.BusyMapped++
		}
	}
	return c
}

// countsScript counts, inside Redis, a ledger's links and writes in flight (by target, from
// their "<side>:<sync key>" fields) and the links with a write in flight, so that a status
// costs one round trip and no decoding however many records the user has.
var countsScript = redis.NewScript(`
local pending = redis.call('HKEYS', KEYS[2])
local ex, sf, busy = 0, 0, 0
local seen = {}
for _, f in ipairs(pending) do
  local side, key = string.match(f, '^([^:]*):(.*)$')
  if side == 'exchange' then ex = ex + 1 elseif side == 'salesforce' then sf = sf + 1 end
  if key and not seen[key] then
    seen[key] = true
    if redis.call('HEXISTS', KEYS[1], key) == 1 then busy = busy + 1 end
  end
end
return {redis.call('HLEN', KEYS[1]), ex, sf, busy}
`)

// Counts reads the counts of a user's ledger for kind.
func (l *Ledger) Counts(ctx context.Context, keys Keys) (Counts, error) {
	res, err := countsScript.Run(ctx, l.st.Client(), []string{keys.Mappings, keys.Pending}).Int64Slice()
	if err != nil {
		return Counts{}, fmt.Errorf("count ledger entries: %w", err)
	}
	if len(res) != 4 {
		return Counts{}, fmt.Errorf("count ledger entries: %d values, want 4", len(res))
	}
	return Counts{
		Mappings:   res[0],
		PendingTo:  map[tandemv1.System]int64{tandemv1.System_SYSTEM_EXCHANGE: res[1], tandemv1.System_SYSTEM_SALESFORCE: res[2]},
		BusyMapped: res[3],
	}, nil
}
