package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"pgregory.net/rapid"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
)

func TestCommitIsAllOrNothing(t *testing.T) {
	str := userKey(t, testUser, "status", "str")
	num := userKey(t, testUser, "status", "num")
	hash := userKey(t, testUser, "mapping", "h")
	set := userKey(t, testUser, "mappings", "s")
	zset := userKey(t, testUser, "pending", "z")
	fresh := userKey(t, testUser, "held", "new")
	big := userKey(t, testUser, "status", "big")

	seed := func(ctx context.Context, rdb redis.UniversalClient) error {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, str, "not a number", 0)
			p.Set(ctx, num, "5", 0)
			p.Set(ctx, big, fmt.Sprint(maxSafeInt-1), 0)
			p.HSet(ctx, hash, "text", "abc", "n", "7")
			p.SAdd(ctx, set, "a")
			p.ZAdd(ctx, zset, redis.Z{Score: 1, Member: "a"})
			return nil
		})
		return err
	}

	tests := []struct {
		name      string
		ops       []Op
		wantIndex int // -1: success
		check     func(t *testing.T, ctx context.Context, rdb redis.UniversalClient)
	}{
		{name: "HSET onto a string", ops: []Op{HSet(hash, "x", "1"), HSet(str, "f", "v")}, wantIndex: 1},
		{name: "SADD onto a hash", ops: []Op{SAdd(fresh, "m"), SAdd(hash, "m")}, wantIndex: 1},
		{name: "ZADD onto a set", ops: []Op{ZAdd(set, 1, "m")}, wantIndex: 0},
		{name: "SREM from a zset", ops: []Op{Set(fresh, "v", 0), SRem(zset, "a")}, wantIndex: 1},
		{name: "ZREM from a string", ops: []Op{ZRem(str, "a")}, wantIndex: 0},
		{name: "HDEL from a set", ops: []Op{HDel(set, "a")}, wantIndex: 0},
		{name: "INCRBY a non-integer", ops: []Op{IncrBy(num, 1), IncrBy(str, 1)}, wantIndex: 1},
		{name: "INCRBY a hash", ops: []Op{IncrBy(hash, 1)}, wantIndex: 0},
		{name: "HINCRBY a non-integer field", ops: []Op{HIncrBy(hash, "n", 1), HIncrBy(hash, "text", 1)}, wantIndex: 1},
		{name: "HINCRBY a string", ops: []Op{HIncrBy(str, "n", 1)}, wantIndex: 0},
		{name: "INCRBY past 2^53", ops: []Op{IncrBy(big, 1), IncrBy(big, 1)}, wantIndex: 1},
		{name: "SET then HSET the same key", ops: []Op{Set(fresh, "v", 0), HSet(fresh, "f", "v")}, wantIndex: 1},
		{name: "HSET a non-integer then HINCRBY it", ops: []Op{HSet(fresh, "f", "x"), HIncrBy(fresh, "f", 1)}, wantIndex: 1},
		{name: "SET a non-integer then INCRBY it", ops: []Op{Set(num, "x", 0), IncrBy(num, 1)}, wantIndex: 1},
		{name: "DEL among keys then a wrong type", ops: []Op{Del(set, str), SAdd(str, "m"), HSet(set, "f", "v"), SAdd(zset, "m")}, wantIndex: 3},
		{name: "HSETs sent as one, then a wrong type", ops: []Op{HSet(fresh, "a", "1"), HSet(hash, "x", "1"), HSet(fresh, "b", "2"), SAdd(hash, "m")}, wantIndex: 3},
		{name: "HSETs onto a string sent as one", ops: []Op{HSet(fresh, "a", "1"), HSet(str, "f", "v"), HSet(str, "g", "w")}, wantIndex: 1},
		{
			name:      "DEL then write another type",
			ops:       []Op{Del(str), HSet(str, "f", "v"), HIncrBy(str, "c", 2)},
			wantIndex: -1,
			check: func(t *testing.T, ctx context.Context, rdb redis.UniversalClient) {
				if got := rdb.HGetAll(ctx, str).Val(); got["f"] != "v" || got["c"] != "2" {
					t.Fatalf("hash = %v", got)
				}
			},
		},
		{
			name:      "SET an integer then INCRBY it",
			ops:       []Op{Set(str, "40", 0), IncrBy(str, 2), IncrBy(fresh, -3)},
			wantIndex: -1,
			check: func(t *testing.T, ctx context.Context, rdb redis.UniversalClient) {
				if got := rdb.Get(ctx, str).Val(); got != "42" {
					t.Fatalf("str = %q, want 42", got)
				}
				if got := rdb.Get(ctx, fresh).Val(); got != "-3" {
					t.Fatalf("fresh = %q, want -3", got)
				}
			},
		},
		{
			name: "every operation",
			ops: []Op{
				HSet(hash, "bytes", []byte{0, 1, 2, 0xff}), HDel(hash, "text"), HIncrBy(hash, "n", 3),
				SAdd(set, "b", "c"), SRem(set, "a"), ZAdd(zset, 2.5, "b"), ZRem(zset, "a"),
				IncrBy(num, 10), Set(fresh, "expiring", time.Hour), Del(big),
			},
			wantIndex: -1,
			check: func(t *testing.T, ctx context.Context, rdb redis.UniversalClient) {
				h := rdb.HGetAll(ctx, hash).Val()
				if h["bytes"] != "\x00\x01\x02\xff" || h["n"] != "10" || h["text"] != "" {
					t.Errorf("hash = %q", h)
				}
				if m := rdb.SMembers(ctx, set).Val(); len(m) != 2 {
					t.Errorf("set = %v", m)
				}
				if z := rdb.ZRangeWithScores(ctx, zset, 0, -1).Val(); len(z) != 1 || z[0].Score != 2.5 {
					t.Errorf("zset = %v", z)
				}
				if v := rdb.Get(ctx, num).Val(); v != "15" {
					t.Errorf("num = %q", v)
				}
				if ttl := rdb.PTTL(ctx, fresh).Val(); ttl <= 0 || ttl > time.Hour {
					t.Errorf("TTL = %s", ttl)
				}
				if rdb.Exists(ctx, big).Val() != 0 {
					t.Error("big not deleted")
				}
			},
		},
	}
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		s := newTestStore(t, rdb)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ctx := t.Context()
				if err := rdb.FlushDB(ctx).Err(); err != nil {
					t.Fatal(err)
				}
				if err := seed(ctx, rdb); err != nil {
					t.Fatal(err)
				}
				lease, err := s.AcquireLease(ctx, testUser, "reconcile", time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				before := snapshot(ctx, t, rdb, "*")
				err = s.Commit(ctx, lease, tc.ops...)
				if tc.wantIndex < 0 {
					if err != nil {
						t.Fatalf("Commit: %v", err)
					}
					tc.check(t, ctx, rdb)
					return
				}
				var opErr *OpError
				if !errors.As(err, &opErr) || !errors.Is(err, ErrInvalidOp) {
					t.Fatalf("Commit error = %v, want *OpError", err)
				}
				if opErr.Index != tc.wantIndex {
					t.Fatalf("refused operation %d (%v), want %d", opErr.Index, opErr, tc.wantIndex)
				}
				if after := snapshot(ctx, t, rdb, "*"); !maps.Equal(before, after) {
					t.Fatalf("a refused commit wrote:\nbefore %v\nafter  %v", before, after)
				}
			})
		}
	})
}

func TestCommitRefusesBeforeRedis(t *testing.T) {
	s := newTestStore(t, miniRedis.start(t))
	ctx := t.Context()
	lease, err := s.AcquireLease(ctx, testUser, "reconcile", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	other := UserKey{OrgID: testUser.OrgID, UserID: "005000000000002"}
	mine := userKey(t, testUser, "mapping", "k")
	many := make([]string, maxOpArgs+1)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	tests := []struct {
		name    string
		ops     []Op
		wantErr error
	}{
		{"another user's key", []Op{HSet(mine, "f", "v"), HSet(userKey(t, other, "mapping", "k"), "f", "v")}, ErrCrossSlot},
		{"an org key", []Op{Set(orgKey(testUser.OrgID, orgConfigsName), "v", 0)}, ErrCrossSlot},
		{"a key without tag", []Op{Set("plain", "v", 0)}, ErrCrossSlot},
		{"the lease key", []Op{Del(lease.key)}, ErrInvalidOp},
		{"another role's fence", []Op{Set(testUser.fenceKey("exchange"), "999", 0)}, ErrInvalidOp},
		{"a zero Op", []Op{{}}, ErrInvalidOp},
		{"no members", []Op{SAdd(mine)}, ErrInvalidOp},
		{"no fields", []Op{HDel(mine)}, ErrInvalidOp},
		{"no keys", []Op{Del()}, ErrInvalidOp},
		{"empty field", []Op{HSet(mine, "", "v")}, ErrInvalidOp},
		{"empty key", []Op{Set("", "v", 0)}, ErrInvalidOp},
		{"negative ttl", []Op{Set(mine, "v", -time.Second)}, ErrInvalidOp},
		{"NaN score", []Op{ZAdd(mine, nan(), "m")}, ErrInvalidOp},
		{"huge increment", []Op{IncrBy(mine, 1<<60)}, ErrInvalidOp},
		{"too many members", []Op{SAdd(mine, many...)}, ErrInvalidOp},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Commit(ctx, lease, tc.ops...); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Commit error = %v, want %v", err, tc.wantErr)
			}
		})
	}
	if err := s.Commit(ctx, nil, HSet(mine, "f", "v")); !errors.Is(err, ErrStaleLease) {
		t.Fatalf("Commit without lease = %v, want ErrStaleLease", err)
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

func TestApply(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		counts := orgKey("00D1", "status", "counts")
		index := orgKey("00D1", "status", "index")
		if err := s.Apply(ctx, HIncrBy(counts, "synced", 2), SAdd(index, "a")); err != nil {
			t.Fatal(err)
		}
		if got := rdb.HGet(ctx, counts, "synced").Val(); got != "2" {
			t.Fatalf("synced = %q", got)
		}
		if err := s.Apply(ctx, HIncrBy(counts, "synced", 1), SAdd(counts, "x")); !errors.Is(err, ErrInvalidOp) {
			t.Fatalf("Apply with a wrong type = %v, want ErrInvalidOp", err)
		}
		if got := rdb.HGet(ctx, counts, "synced").Val(); got != "2" {
			t.Fatalf("a refused Apply wrote: synced = %q", got)
		}
		if err := s.Apply(ctx, SAdd(index, "b"), SAdd(orgKey("00D2", "status"), "b")); !errors.Is(err, ErrCrossSlot) {
			t.Fatalf("Apply across orgs = %v, want ErrCrossSlot", err)
		}
		if err := s.Apply(ctx, SAdd("untagged", "b")); !errors.Is(err, ErrCrossSlot) {
			t.Fatalf("Apply on an untagged key = %v, want ErrCrossSlot", err)
		}
		if err := s.Apply(ctx); err != nil {
			t.Fatalf("empty Apply: %v", err)
		}
	})
}

// TestCommitMatchesRedis checks the commit script's validation against Redis itself: random
// operations on random starting states are committed under one user and replayed one by one,
// with plain commands, under another. When the replay meets no error the commit must succeed
// and leave the same state; when the replay fails the commit must be refused and change
// nothing. The only refusals allowed beyond Redis's are the documented conservative ones.
func TestCommitMatchesRedis(t *testing.T) {
	rdb := redisServer.start(t)
	s := newTestStore(t, rdb)
	ctx := t.Context()
	committer := UserKey{OrgID: "00D1", UserID: "commit"}
	replayer := UserKey{OrgID: "00D1", UserID: "replay"}
	names := []string{"a", "b", "c"}

	rapid.Check(t, func(rt *rapid.T) {
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			rt.Fatal(err)
		}
		keyOf := func(uk UserKey, name string) string { return join(uk.tag(), "status", name) }
		// Same starting state under both users.
		for _, n := range names {
			kind := rapid.SampledFrom([]string{"none", "int", "text", "hash", "set", "zset"}).Draw(rt, "init_"+n)
			for _, uk := range []UserKey{committer, replayer} {
				k := keyOf(uk, n)
				switch kind {
				case "int":
					rdb.Set(ctx, k, "3", 0)
				case "text":
					rdb.Set(ctx, k, "x", 0)
				case "hash":
					rdb.HSet(ctx, k, "i", "1", "t", "x")
				case "set":
					rdb.SAdd(ctx, k, "m")
				case "zset":
					rdb.ZAdd(ctx, k, redis.Z{Score: 1, Member: "m"})
				}
			}
		}
		type step struct {
			code  opCode
			name  string
			field string
			value string
		}
		steps := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) step {
			return step{
				code:  rapid.SampledFrom([]opCode{opHSet, opHDel, opHIncrBy, opSet, opDel, opSAdd, opSRem, opZAdd, opZRem, opIncrBy}).Draw(rt, "code"),
				name:  rapid.SampledFrom(names).Draw(rt, "key"),
				field: rapid.SampledFrom([]string{"i", "t", "m"}).Draw(rt, "field"),
				value: rapid.SampledFrom([]string{"1", "-2", "x", "10"}).Draw(rt, "value"),
			}
		}), 1, 10).Draw(rt, "steps")

		ops := make([]Op, 0, len(steps))
		removes := false
		replayErr := error(nil)
		for _, st := range steps {
			k := keyOf(committer, st.name)
			rk := keyOf(replayer, st.name)
			var cmdErr error
			switch st.code {
			case opHSet:
				ops = append(ops, HSet(k, st.field, st.value))
				cmdErr = rdb.HSet(ctx, rk, st.field, st.value).Err()
			case opHDel:
				ops, removes = append(ops, HDel(k, st.field)), true
				cmdErr = rdb.HDel(ctx, rk, st.field).Err()
			case opHIncrBy:
				ops = append(ops, HIncrBy(k, st.field, 2))
				cmdErr = rdb.HIncrBy(ctx, rk, st.field, 2).Err()
			case opSet:
				ops = append(ops, Set(k, st.value, 0))
				cmdErr = rdb.Set(ctx, rk, st.value, 0).Err()
			case opDel:
				ops = append(ops, Del(k))
				cmdErr = rdb.Del(ctx, rk).Err()
			case opSAdd:
				ops = append(ops, SAdd(k, st.field))
				cmdErr = rdb.SAdd(ctx, rk, st.field).Err()
			case opSRem:
				ops, removes = append(ops, SRem(k, st.field)), true
				cmdErr = rdb.SRem(ctx, rk, st.field).Err()
			case opZAdd:
				ops = append(ops, ZAdd(k, 2, st.field))
				cmdErr = rdb.ZAdd(ctx, rk, redis.Z{Score: 2, Member: st.field}).Err()
			case opZRem:
				ops, removes = append(ops, ZRem(k, st.field)), true
				cmdErr = rdb.ZRem(ctx, rk, st.field).Err()
			case opIncrBy:
				ops = append(ops, IncrBy(k, 2))
				cmdErr = rdb.IncrBy(ctx, rk, 2).Err()
			}
			if cmdErr != nil && replayErr == nil {
				replayErr = cmdErr
			}
		}

		pattern := func(uk UserKey) string { return "tandem:{" + uk.tag() + "}:status:*" }
		before := snapshot(ctx, rt, rdb, pattern(committer))
		lease, err := s.AcquireLease(ctx, committer, "reconcile", time.Minute)
		if err != nil {
			rt.Fatal(err)
		}
		commitErr := s.Commit(ctx, lease, ops...)
		if err := lease.Release(ctx); err != nil {
			rt.Fatal(err)
		}
		after := snapshot(ctx, rt, rdb, pattern(committer))

		switch {
		case commitErr == nil && replayErr != nil:
			rt.Fatalf("commit succeeded but Redis refused the replay: %v", replayErr)
		case commitErr == nil:
			replayed := snapshot(ctx, rt, rdb, pattern(replayer))
			if !maps.Equal(rename(after, "commit", "replay"), replayed) {
				rt.Fatalf("commit and replay differ:\ncommit %v\nreplay %v", after, replayed)
			}
		case !errors.Is(commitErr, ErrInvalidOp):
			rt.Fatalf("commit error = %v, want nil or ErrInvalidOp", commitErr)
		default:
			if !maps.Equal(before, after) {
				rt.Fatalf("a refused commit wrote:\nbefore %v\nafter  %v", before, after)
			}
			if replayErr == nil && !removes {
				rt.Fatalf("commit refused (%v) operations Redis accepts", commitErr)
			}
		}
	})
}

func rename(m map[string]string, from, to string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.Replace(k, ":"+from+"}", ":"+to+"}", 1)] = v
	}
	return out
}

// BenchmarkCommit measures a typical reconcile commit (a mapping, an index entry, a counter
// and a cursor) against redis-server.
func BenchmarkCommit(b *testing.B) {
	srv := servertest.Redis(b)
	s := newTestStore(b, srv)
	ctx := b.Context()
	lease, err := s.AcquireLease(ctx, testUser, "reconcile", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	mapping, _ := testUser.Key("mapping", "k")
	index, _ := testUser.Key("mappings", "by-exchange")
	counter, _ := testUser.Key("status", "synced")
	cursor, _ := testUser.Key("cursor", "contacts")
	value := make([]byte, 512)
	for i := 0; b.Loop(); i++ {
		if err := s.Commit(ctx, lease,
			HSet(mapping, "pair", value),
			ZAdd(index, float64(i), "k"),
			IncrBy(counter, 1),
			Set(cursor, "state", 0),
		); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEncodeOpsSendsAKeysHSETsAsOne checks that the HSETs of a key go as one command until
// another operation touches the key, that each key's operations keep their order, that no
// command exceeds maxOpArgs arguments, and that the callers' operations are left as they were.
func TestEncodeOpsSendsAKeysHSETsAsOne(t *testing.T) {
	a, b := "{00D1:u}:mapping:a", "{00D1:u}:mapping:b"
	first := HSet(a, "f1", "1")
	ops := []Op{first, HSet(b, "g1", "1"), HSet(a, "f2", "2"), HDel(a, "f1"), HSet(a, "f3", "3"), HSet(b, "g2", "2")}
	for i := range maxOpArgs / 2 {
		ops = append(ops, HSet(b, fmt.Sprintf("h%d", i), "v"))
	}
	_, args, origin := encodeOps(nil, []any{"plain"}, ops)
	// a: HSET f1 f2, HDEL f1, HSET f3; b: HSET g1 g2 and the first 498 h, HSET of the 2 others.
	if want := []int{0, 1, 3, 4, 504}; fmt.Sprint(origin) != fmt.Sprint(want) {
		t.Errorf("encoded operations start at %v, want %v", origin, want)
	}
	var got []string
	for pos, n := 2, args[1].(int); n > 0; n-- {
		code, nk := args[pos].(string), args[pos+1].(int)
		na := args[pos+2+nk].(int)
		if na > maxOpArgs {
			t.Errorf("%s with %d arguments, more than %d", code, na, maxOpArgs)
		}
		fields := []string{}
		for _, v := range args[pos+3+nk : pos+3+nk+na] {
			fields = append(fields, v.(string))
		}
		if len(fields) > 4 {
			fields = append(fields[:4], "…")
		}
		got = append(got, fmt.Sprintf("%s %d %v", code, args[pos+2].(int), fields))
		pos += 3 + nk + na
	}
	want := []string{"HSET 1 [f1 1 f2 2]", "HSET 2 [g1 1 g2 2 …]", "HDEL 1 [f1]", "HSET 1 [f3 3]", "HSET 2 [h498 v h499 v]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("encoded\n%v\nwant\n%v", got, want)
	}
	if len(first.args) != 2 || len(ops[0].args) != 2 {
		t.Errorf("the caller's first HSET now has arguments %v", ops[0].args)
	}
}
