package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Errors of Commit and Apply.
var (
	// ErrStaleLease means the lease given to Commit is no longer the current one: it expired,
	// or another holder acquired the lease since. Nothing was written.
	ErrStaleLease = errors.New("stale lease: commit refused")
	// ErrCrossSlot means the keys of one Commit or Apply do not share one hash tag, so they
	// cannot be written atomically on Redis Cluster. Nothing was written.
	ErrCrossSlot = errors.New("keys do not share one hash tag")
	// ErrInvalidOp means an operation is malformed or would fail in Redis (wrong key type,
	// value not an integer, increment out of range). Nothing was written.
	ErrInvalidOp = errors.New("invalid operation")
)

// OpError says which operation of a Commit or Apply was refused and why. It matches
// ErrInvalidOp with errors.Is.
type OpError struct {
	// Index is the operation's position in the call, from 0.
	Index int
	// Op is the operation, e.g. "HSET tandem:{00D:005}:mapping:x".
	Op string
	// Reason says what is wrong.
	Reason string
}

func (e *OpError) Error() string {
	return fmt.Sprintf("operation %d (%s): %s", e.Index, e.Op, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidOp) true.
func (e *OpError) Is(target error) bool { return target == ErrInvalidOp }

// Value is what a string or hash value may be given as; callers usually pass marshalled
// protobuf as []byte.
type Value interface{ ~string | ~[]byte }

type opCode string

// Operation codes, shared with commitScript.
const (
	opHSet    opCode = "HSET"
	opHDel    opCode = "HDEL"
	opHIncrBy opCode = "HINCRBY"
	opSet     opCode = "SET"
	opDel     opCode = "DEL"
	opSAdd    opCode = "SADD"
	opSRem    opCode = "SREM"
	opZAdd    opCode = "ZADD"
	opZRem    opCode = "ZREM"
	opIncrBy  opCode = "INCRBY"
)

// Op is one write of a Commit or Apply. Build it with HSet, HDel, Set, Del, SAdd, SRem,
// ZAdd, ZRem, IncrBy or HIncrBy.
type Op struct {
	code opCode
	keys []string
	args []string
	err  string // set by a constructor given bad arguments; reported by Commit
}

// String returns the operation and its first key, never its values.
func (o Op) String() string {
	switch len(o.keys) {
	case 0:
		return string(o.code)
	case 1:
		return string(o.code) + " " + o.keys[0]
	default:
		return fmt.Sprintf("%s %s (+%d keys)", o.code, o.keys[0], len(o.keys)-1)
	}
}

// HSet sets field of the hash at key.
func HSet[V Value](key, field string, value V) Op {
	return Op{code: opHSet, keys: []string{key}, args: []string{field, string(value)}}
}

// HDel removes fields of the hash at key.
func HDel(key string, fields ...string) Op {
	o := Op{code: opHDel, keys: []string{key}, args: fields}
	if len(fields) == 0 {
		o.err = "no fields"
	}
	return o
}

// HIncrBy adds n to the integer in field of the hash at key (a missing field counts as 0).
func HIncrBy(key, field string, n int64) Op {
	o := Op{code: opHIncrBy, keys: []string{key}, args: []string{field, strconv.FormatInt(n, 10)}}
	if !safeInt(n) {
		o.err = "increment out of range"
	}
	return o
}

// Set sets the string at key, replacing any value of any type. ttl > 0 makes the key expire
// (rounded up to a millisecond); 0 keeps it forever.
func Set[V Value](key string, value V, ttl time.Duration) Op {
	o := Op{code: opSet, keys: []string{key}, args: []string{string(value), "0"}}
	switch {
	case ttl < 0:
		o.err = "negative TTL"
	case ttl > 0:
		ms := (ttl + time.Millisecond - 1) / time.Millisecond
		o.args[1] = strconv.FormatInt(int64(ms), 10)
	}
	return o
}

// Del deletes keys.
func Del(keys ...string) Op {
	o := Op{code: opDel, keys: keys}
	if len(keys) == 0 {
		o.err = "no keys"
	}
	return o
}

// SAdd adds members to the set at key.
func SAdd(key string, members ...string) Op {
	o := Op{code: opSAdd, keys: []string{key}, args: members}
	if len(members) == 0 {
		o.err = "no members"
	}
	return o
}

// SRem removes members from the set at key.
func SRem(key string, members ...string) Op {
	o := Op{code: opSRem, keys: []string{key}, args: members}
	if len(members) == 0 {
		o.err = "no members"
	}
	return o
}

// ZAdd adds member with score to the sorted set at key, or updates its score.
func ZAdd(key string, score float64, member string) Op {
	o := Op{code: opZAdd, keys: []string{key}, args: []string{strconv.FormatFloat(score, 'g', -1, 64), member}}
	if math.IsNaN(score) {
		o.err = "score is NaN"
	}
	return o
}

// ZRem removes members from the sorted set at key.
func ZRem(key string, members ...string) Op {
	o := Op{code: opZRem, keys: []string{key}, args: members}
	if len(members) == 0 {
		o.err = "no members"
	}
	return o
}

// IncrBy adds n to the integer string at key (a missing key counts as 0).
func IncrBy(key string, n int64) Op {
	o := Op{code: opIncrBy, keys: []string{key}, args: []string{strconv.FormatInt(n, 10)}}
	if !safeInt(n) {
		o.err = "increment out of range"
	}
	return o
}

// maxSafeInt is the largest integer a Lua number (a float64) holds exactly; the commit
// script refuses counters and increments beyond it rather than risk a wrong result.
const maxSafeInt = 1<<53 - 1

func safeInt(n int64) bool { return n >= -maxSafeInt && n <= maxSafeInt }

// Commit applies ops atomically if, and only if, lease is still the current holder of its
// lease: in one Lua script it checks that the lease key still holds the lease's token and
// the fencing counter has not moved past it, then checks every operation against the
// current key types and values, then applies them all. If any check fails nothing is
// written: ErrStaleLease for a lost lease, an *OpError (ErrInvalidOp) for an operation that
// would fail. Every key must carry the lease's hash tag {org:user} (ErrCrossSlot otherwise).
//
// A network error leaves it unknown whether the commit happened; callers retry idempotently.
// Commit with no operations only checks the lease.
func (s *Store) Commit(ctx context.Context, lease *Lease, ops ...Op) error {
	if lease == nil {
		return fmt.Errorf("commit: %w: no lease", ErrStaleLease)
	}
	if err := checkOps(ops, lease.uk.tag()); err != nil {
		return fmt.Errorf("commit for %s: %w", lease.uk, err)
	}
	keys, args, origin := encodeOps([]string{lease.key, lease.fenceKey}, []any{"fenced", strconv.FormatInt(lease.token, 10)}, ops)
	if err := s.runCommit(ctx, keys, args, ops, origin); err != nil {
		return fmt.Errorf("commit for %s (token %d): %w", lease.uk, lease.token, err)
	}
	return nil
}

// Apply applies ops atomically without a lease, for org-level bookkeeping that needs
// atomicity but not fencing. All keys must share one hash tag. The same checks as Commit's
// run before anything is written.
func (s *Store) Apply(ctx context.Context, ops ...Op) error {
	if len(ops) == 0 {
		return nil
	}
	tag, ok := hashTag(ops[0].keys0())
	if !ok {
		return fmt.Errorf("apply: %w: key %q has no hash tag", ErrCrossSlot, ops[0].keys0())
	}
	if err := checkOps(ops, tag); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	keys, args, origin := encodeOps(nil, []any{"plain"}, ops)
	if err := s.runCommit(ctx, keys, args, ops, origin); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	return nil
}

func (o Op) keys0() string {
	if len(o.keys) == 0 {
		return ""
	}
	return o.keys[0]
}

// maxOpArgs bounds the keys, members or fields of one operation: the script passes them to
// Lua's unpack, whose stack limit must never be hit after some writes were made. Callers
// split larger writes over several operations of the same Commit.
const maxOpArgs = 1000

// checkOps refuses malformed operations, keys outside the tag, and writes to lease and fence
// keys (which only the lease methods may change) before Redis is involved.
func checkOps(ops []Op, tag string) error {
	leasePrefix := join(tag, userLeaseName) + ":"
	fencePrefix := join(tag, userFenceName) + ":"
	for i, o := range ops {
		if o.code == "" {
			return &OpError{Index: i, Op: "(zero Op)", Reason: "not built with an Op constructor"}
		}
		if o.err != "" {
			return &OpError{Index: i, Op: o.String(), Reason: o.err}
		}
		if len(o.keys) > maxOpArgs || len(o.args) > maxOpArgs {
			return &OpError{Index: i, Op: o.String(), Reason: fmt.Sprintf("more than %d keys or arguments; split it", maxOpArgs)}
		}
		for _, k := range o.keys {
			if k == "" {
				return &OpError{Index: i, Op: o.String(), Reason: "empty key"}
			}
			if t, ok := hashTag(k); !ok || t != tag {
				return fmt.Errorf("%w: operation %d (%s): key %q is outside {%s}", ErrCrossSlot, i, o, k, tag)
			}
			if strings.HasPrefix(k, leasePrefix) || strings.HasPrefix(k, fencePrefix) {
				return &OpError{Index: i, Op: o.String(), Reason: "lease and fence keys are written only by leases"}
			}
		}
		if (o.code == opHSet || o.code == opHDel || o.code == opHIncrBy) && o.args[0] == "" {
			return &OpError{Index: i, Op: o.String(), Reason: "empty hash field"}
		}
	}
	return nil
}

// encodeOps lays ops out for commitScript: KEYS are the fixed keys then each distinct op key;
// ARGV is the fixed args, the op count, then per op: code, key count, key indexes, arg
// count, args. The HSETs of a key that no other operation touches in between go as one
// multi-field HSET (at most maxOpArgs arguments), where the first of them was: each key's
// operations keep their order, and a ledger page's hundreds of entries cost Redis a few
// commands rather than one each. origin maps each encoded operation to the first of ops it
// carries.
func encodeOps(fixedKeys []string, fixedArgs []any, ops []Op) (keys []string, args []any, origin []int) {
	merged := make([]Op, 0, len(ops))
	open := map[string]int{} // key -> index in merged of its HSET still open to more fields
	for i, o := range ops {
		if o.code == opHSet {
			if j, ok := open[o.keys[0]]; ok && len(merged[j].args)+len(o.args) <= maxOpArgs {
				merged[j].args = append(merged[j].args, o.args...)
				continue
			}
			// A copy of the arguments: merging must not write into the caller's slice.
			o.args = append(make([]string, 0, len(o.args)), o.args...)
			open[o.keys[0]] = len(merged)
		} else {
			for _, k := range o.keys {
				delete(open, k)
			}
		}
		merged = append(merged, o)
		origin = append(origin, i)
	}
	keys = append([]string(nil), fixedKeys...)
	index := make(map[string]int, len(merged)+len(keys))
	for i, k := range keys {
		index[k] = i + 1
	}
	args = append(fixedArgs, len(merged))
	for _, o := range merged {
		args = append(args, string(o.code), len(o.keys))
		for _, k := range o.keys {
			n, ok := index[k]
			if !ok {
				keys = append(keys, k)
				n = len(keys)
				index[k] = n
			}
			args = append(args, n)
		}
		args = append(args, len(o.args))
		for _, a := range o.args {
			args = append(args, a)
		}
	}
	return keys, args, origin
}

func (s *Store) runCommit(ctx context.Context, keys []string, args []any, ops []Op, origin []int) error {
	res, err := commitScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return err
	}
	if len(res) == 0 {
		return fmt.Errorf("commit script: empty reply")
	}
	switch status, _ := res[0].(string); status {
	case "OK":
		return nil
	case "STALE":
		return ErrStaleLease
	case "INVALID":
		if len(res) != 3 {
			return fmt.Errorf("commit script: malformed reply %v", res)
		}
		i, _ := res[1].(int64)
		reason, _ := res[2].(string)
		idx, opName := -1, "?"
		if i >= 1 && int(i) <= len(origin) {
			idx = origin[i-1]
			opName = ops[idx].String()
		}
		return &OpError{Index: idx, Op: opName, Reason: reason}
	default:
		return fmt.Errorf("commit script: unexpected reply %v", res)
	}
}

// commitScript checks the lease (in "fenced" mode), then simulates every operation against
// the current key types and values, following the types each earlier operation of the same
// call leaves, and only when all of them would succeed applies them. Redis does not roll back
// a script that fails midway, so nothing that can fail is attempted before the checks pass.
//
// The simulation is conservative where Redis state is not known without running the writes:
// HDEL, SREM and ZREM may empty a key, but the key keeps its type for the checks of later
// operations. Integers beyond ±(2^53-1) are refused, since Lua numbers are float64.
var commitScript = redis.NewScript(`
local pos = 2
if ARGV[1] == 'fenced' then
  local token = ARGV[2]
  if redis.call('GET', KEYS[1]) ~= token then return {'STALE'} end
  if redis.call('GET', KEYS[2]) ~= token then return {'STALE'} end
  pos = 3
end

local MAXSAFE = 9007199254740991
local function parseint(v)
  if v == '0' then return 0 end
  if #v > 17 or not string.match(v, '^%-?[1-9]%d*$') then return false end
  local n = tonumber(v)
  if n > MAXSAFE or n < -MAXSAFE then return false end
  return n
end

local ops = {}
local nops = tonumber(ARGV[pos]); pos = pos + 1
for i = 1, nops do
  local op = {code = ARGV[pos], keys = {}, args = {}}
  local nk = tonumber(ARGV[pos + 1]); pos = pos + 2
  for j = 1, nk do op.keys[j] = KEYS[tonumber(ARGV[pos])]; pos = pos + 1 end
  local na = tonumber(ARGV[pos]); pos = pos + 1
  for j = 1, na do op.args[j] = ARGV[pos]; pos = pos + 1 end
  ops[i] = op
end

-- state[key] = {t = type, num = string's integer (nil: not read yet, false: not an integer),
--               fields = hash field -> integer | false (not an integer) | 'absent', known = contents known}
local state = {}
local function st(key)
  local s = state[key]
  if not s then
    local t = redis.call('TYPE', key)
    if type(t) == 'table' then t = t.ok end
    s = {t = t, fields = {}, known = (t == 'none')}
    state[key] = s
  end
  return s
end
local function clear(s, t)
  s.t = t; s.num = nil; s.fields = {}; s.known = true
end
local function need(s, want)
  if s.t ~= 'none' and s.t ~= want then
    return 'WRONGTYPE: key holds a ' .. s.t .. ', not a ' .. want
  end
end
local function strnum(key, s)
  if s.num == nil then
    if s.known or s.t == 'none' then s.num = 0 else s.num = parseint(redis.call('GET', key)) end
  end
  return s.num
end
local function fieldnum(key, s, f)
  local v = s.fields[f]
  if v == nil then
    if s.known or s.t == 'none' then v = 'absent'
    else
      local raw = redis.call('HGET', key, f)
      if raw then v = parseint(raw) else v = 'absent' end
    end
    s.fields[f] = v
  end
  if v == 'absent' then return 0 end
  return v
end

for i, op in ipairs(ops) do
  local c, key, a = op.code, op.keys[1], op.args
  local s = st(key)
  local bad
  if c == 'HSET' then
    bad = need(s, 'hash')
    if not bad then
      s.t = 'hash'
      for j = 1, #a, 2 do s.fields[a[j]] = parseint(a[j + 1]) end
    end
  elseif c == 'HDEL' then
    bad = need(s, 'hash')
    if not bad then for _, f in ipairs(a) do s.fields[f] = 'absent' end end
  elseif c == 'HINCRBY' then
    bad = need(s, 'hash')
    if not bad then
      local cur = fieldnum(key, s, a[1])
      if cur == false then bad = 'hash field ' .. a[1] .. ' is not an integer'
      else
        local n = cur + tonumber(a[2])
        if n > MAXSAFE or n < -MAXSAFE then bad = 'increment out of range'
        else s.t = 'hash'; s.fields[a[1]] = n end
      end
    end
  elseif c == 'SET' then
    clear(s, 'string'); s.num = parseint(a[1])
  elseif c == 'DEL' then
    for _, k in ipairs(op.keys) do clear(st(k), 'none') end
  elseif c == 'SADD' then
    bad = need(s, 'set')
    if not bad then s.t = 'set' end
  elseif c == 'SREM' then
    bad = need(s, 'set')
  elseif c == 'ZADD' then
    bad = need(s, 'zset')
    if not bad then s.t = 'zset' end
  elseif c == 'ZREM' then
    bad = need(s, 'zset')
  elseif c == 'INCRBY' then
    bad = need(s, 'string')
    if not bad then
      local cur = strnum(key, s)
      if cur == false then bad = 'value is not an integer'
      else
        local n = cur + tonumber(a[1])
        if n > MAXSAFE or n < -MAXSAFE then bad = 'increment out of range'
        else s.t = 'string'; s.num = n end
      end
    end
  else
    bad = 'unknown operation ' .. tostring(c)
  end
  if bad then return {'INVALID', i, bad} end
end

for _, op in ipairs(ops) do
  local c, key, a = op.code, op.keys[1], op.args
  if c == 'SET' then
    if a[2] ~= '0' then redis.call('SET', key, a[1], 'PX', a[2]) else redis.call('SET', key, a[1]) end
  elseif c == 'DEL' then
    redis.call('DEL', unpack(op.keys))
  elseif c == 'ZADD' then
    redis.call('ZADD', key, a[1], a[2])
  else
    redis.call(c, key, unpack(a))
  end
end
return {'OK'}
`)
