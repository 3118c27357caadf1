package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// The sync error report of an org aggregates repeated errors into one entry per (user,
// record kind, code, record id), with first and last seen times and a count. Entries live in
// one hash of "<entry>:<attr>" fields (so one script can update an entry, its indexes and the
// bound together, with every key declared), indexed by two sorted sets scored by last seen:
// the org's and the user's. The org's index is bounded; the oldest entries are dropped.

// Page sizes of ListErrors, as the API defines them.
const (
	DefaultErrorPageSize = 100
	MaxErrorPageSize     = 1000
)

// Entry attributes in the data hash.
const (
	attrError = "err"
	attrUser  = "user"
	attrKind  = "kind"
	attrFirst = "first"
	attrLast  = "last"
	attrCount = "count"
)

var entryAttrs = []string{attrError, attrUser, attrKind, attrFirst, attrLast, attrCount}

// ErrInvalidPageToken means a page token was not one ListErrors returned.
var ErrInvalidPageToken = errors.New("invalid page token")

var entryIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// errorEntryID is the aggregation key, hashed to a fixed-size id that is safe in keys.
func errorEntryID(user string, kind tandemv1.RecordKind, code, recordID string) string {
	h := sha256.New()
	for _, part := range []string{user, strconv.Itoa(int(kind)), code, recordID} {
		// Length-prefixed, so that no two tuples hash the same input.
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// recordErrorScript: KEYS = data, org index, user index (the org index again when there is
// no user); ARGV = id, user, kind, error bytes, now (unix ms), limit. Replies {count, first}.
var recordErrorScript = redis.NewScript(`
local data, recent, byuser = KEYS[1], KEYS[2], KEYS[3]
local id, user, now, limit = ARGV[1], ARGV[2], ARGV[5], tonumber(ARGV[6])
redis.call('HSETNX', data, id .. ':first', now)
redis.call('HSET', data, id .. ':err', ARGV[4], id .. ':user', user, id .. ':kind', ARGV[3], id .. ':last', now)
local count = redis.call('HINCRBY', data, id .. ':count', 1)
redis.call('ZADD', recent, now, id)
if user ~= '' then
  redis.call('ZADD', byuser, now, id)
  -- The user's index may still list entries the org's bound dropped; readers skip those.
  -- Trimming it to the bound keeps it from growing without end.
  redis.call('ZREMRANGEBYRANK', byuser, 0, -(limit + 1))
end
local n = redis.call('ZCARD', recent)
if n > limit then
  local victims = redis.call('ZRANGE', recent, 0, n - limit - 1)
  for _, v in ipairs(victims) do
    redis.call('HDEL', data, v .. ':err', v .. ':user', v .. ':kind', v .. ':first', v .. ':last', v .. ':count')
    redis.call('ZREM', recent, v)
  end
end
return {count, redis.call('HGET', data, id .. ':first')}
`)

// RecordError adds an occurrence of err to the org's sync error report: a new entry, or one
// more occurrence of the entry with the same user, kind, code and record id (whose error is
// replaced by the latest). user may be empty for an org-level error. It returns the entry.
func (s *Store) RecordError(ctx context.Context, orgID, user string, kind tandemv1.RecordKind, syncErr *tandemv1.SyncError) (*tandemv1.SyncErrorEntry, error) {
	if err := checkID("org id", orgID); err != nil {
		return nil, fmt.Errorf("record error: %w", err)
	}
	if user != "" {
		if err := checkID("user id", user); err != nil {
			return nil, fmt.Errorf("record error: %w", err)
		}
	}
	if syncErr == nil || syncErr.Code == "" {
		return nil, &ValidationError{Violations: []FieldViolation{{Field: "error.code", Description: "is required"}}}
	}
	raw, err := proto.Marshal(syncErr)
	if err != nil {
		return nil, fmt.Errorf("record error in org %s: marshal: %w", orgID, err)
	}
	id := errorEntryID(user, kind, syncErr.Code, syncErr.RecordId)
	now := s.now()
	nowMs := now.UnixMilli()
	recent := orgKey(orgID, orgErrorsRecent)
	byUser := recent
	if user != "" {
		byUser = orgKey(orgID, orgErrorsUser, user)
	}
	res, err := recordErrorScript.Run(ctx, s.rdb,
		[]string{orgKey(orgID, orgErrorsData), recent, byUser},
		id, user, strconv.Itoa(int(kind)), raw, nowMs, s.reportLimit).Slice()
	if err != nil {
		return nil, fmt.Errorf("record error %s in org %s: %w", syncErr.Code, orgID, err)
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("record error %s in org %s: malformed reply %v", syncErr.Code, orgID, res)
	}
	count, _ := res[0].(int64)
	firstRaw, _ := res[1].(string)
	first, err := strconv.ParseInt(firstRaw, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("record error %s in org %s: first seen %q: %w", syncErr.Code, orgID, firstRaw, err)
	}
	return &tandemv1.SyncErrorEntry{
		Id:          id,
		OrgId:       orgID,
		UserId:      user,
		Kind:        kind,
		Error:       proto.Clone(syncErr).(*tandemv1.SyncError),
		FirstSeenAt: timestamppb.New(time.UnixMilli(first)),
		LastSeenAt:  timestamppb.New(time.UnixMilli(nowMs)),
		Occurrences: count,
	}, nil
}

// ListErrors returns a page of the org's sync error report, newest (last seen) first, and
// the token of the next page ("" at the end). user limits the report to one user's entries;
// empty means every entry. pageSize 0 means DefaultErrorPageSize; it is capped at
// MaxErrorPageSize. Entries that recur while a client pages move to the front and are not
// repeated on later pages.
func (s *Store) ListErrors(ctx context.Context, orgID, user string, pageSize int, pageToken string) ([]*tandemv1.SyncErrorEntry, string, error) {
	if err := checkID("org id", orgID); err != nil {
		return nil, "", fmt.Errorf("list errors: %w", err)
	}
	index := orgKey(orgID, orgErrorsRecent)
	if user != "" {
		if err := checkID("user id", user); err != nil {
			return nil, "", fmt.Errorf("list errors: %w", err)
		}
		index = orgKey(orgID, orgErrorsUser, user)
	}
	switch {
	case pageSize <= 0:
		pageSize = DefaultErrorPageSize
	case pageSize > MaxErrorPageSize:
		pageSize = MaxErrorPageSize
	}
	cur := pageCursor{score: math.Inf(1)}
	if pageToken != "" {
		var err error
		if cur, err = parsePageToken(pageToken); err != nil {
			return nil, "", fmt.Errorf("list errors of org %s: %w", orgID, err)
		}
	}

	dataKey := orgKey(orgID, orgErrorsData)
	var (
		entries []*tandemv1.SyncErrorEntry
		stale   []any
		offset  int64
		more    bool
	)
	// Fetch candidates at or below the cursor's score, skip those at the cursor's score that
	// were already returned (a sorted set orders equal scores by member, reversed here), and
	// skip ids whose entry was dropped or resolved.
	for len(entries) <= pageSize {
		batch := int64(pageSize + 1 - len(entries))
		zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, index, &redis.ZRangeBy{
			Max: formatScore(cur.score), Min: "-inf", Offset: offset, Count: batch,
		}).Result()
		if err != nil {
			return nil, "", fmt.Errorf("list errors of org %s: %w", orgID, err)
		}
		offset += int64(len(zs))
		var ids []string
		for _, z := range zs {
			id, _ := z.Member.(string)
			if z.Score == cur.score && cur.id != "" && id >= cur.id {
				continue
			}
			ids = append(ids, id)
		}
		got, missing, err := s.loadEntries(ctx, dataKey, orgID, ids)
		if err != nil {
			return nil, "", err
		}
		entries = append(entries, got...)
		stale = append(stale, missing...)
		if int64(len(zs)) < batch {
			break
		}
	}
	if len(entries) > pageSize {
		entries, more = entries[:pageSize], true
	}
	if len(stale) > 0 && user != "" {
		// Best effort: the user's index listed entries the org's bound dropped.
		_ = s.rdb.ZRem(ctx, index, stale...).Err()
	}
	next := ""
	if more {
		last := entries[len(entries)-1]
		next = pageCursor{score: float64(last.LastSeenAt.AsTime().UnixMilli()), id: last.Id}.token()
	}
	return entries, next, nil
}

// loadEntries reads entries by id, in order; missing lists the ids without an entry.
func (s *Store) loadEntries(ctx context.Context, dataKey, orgID string, ids []string) (entries []*tandemv1.SyncErrorEntry, missing []any, err error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	fields := make([]string, 0, len(ids)*len(entryAttrs))
	for _, id := range ids {
		for _, a := range entryAttrs {
			fields = append(fields, id+":"+a)
		}
	}
	vals, err := s.rdb.HMGet(ctx, dataKey, fields...).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("list errors of org %s: %w", orgID, err)
	}
	for i, id := range ids {
		v := vals[i*len(entryAttrs) : (i+1)*len(entryAttrs)]
		if v[0] == nil {
			missing = append(missing, id)
			continue
		}
		e, err := decodeEntry(orgID, id, v)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	return entries, missing, nil
}

func decodeEntry(orgID, id string, v []any) (*tandemv1.SyncErrorEntry, error) {
	str := func(i int) string { s, _ := v[i].(string); return s }
	num := func(i int) int64 { n, _ := strconv.ParseInt(str(i), 10, 64); return n }
	syncErr := &tandemv1.SyncError{}
	if err := proto.Unmarshal([]byte(str(0)), syncErr); err != nil {
		return nil, fmt.Errorf("error report entry %s of org %s: unmarshal: %w", id, orgID, err)
	}
	return &tandemv1.SyncErrorEntry{
		Id:          id,
		OrgId:       orgID,
		UserId:      str(1),
		Kind:        tandemv1.RecordKind(num(2)),
		Error:       syncErr,
		FirstSeenAt: timestamppb.New(time.UnixMilli(num(3))),
		LastSeenAt:  timestamppb.New(time.UnixMilli(num(4))),
		Occurrences: num(5),
	}, nil
}

// resolveErrorScript: KEYS = data, org index, user index (or the org index again);
// ARGV = id. Replies 1 if the entry existed.
var resolveErrorScript = redis.NewScript(`
local id = ARGV[1]
local n = redis.call('HDEL', KEYS[1], id .. ':err', id .. ':user', id .. ':kind', id .. ':first', id .. ':last', id .. ':count')
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
if n > 0 then return 1 end
return 0
`)

// ResolveError removes an entry from the report (the admin fixed its cause); ErrNotFound if
// there is no such entry. The entry comes back if the error happens again.
func (s *Store) ResolveError(ctx context.Context, orgID, id string) error {
	if err := checkID("org id", orgID); err != nil {
		return fmt.Errorf("resolve error: %w", err)
	}
	if !entryIDPattern.MatchString(id) {
		return fmt.Errorf("error report entry %q of org %s: %w", id, orgID, ErrNotFound)
	}
	dataKey, recent := orgKey(orgID, orgErrorsData), orgKey(orgID, orgErrorsRecent)
	// An entry's user is part of its id's hash and never changes, so reading it before the
	// script cannot race with a change of user.
	user, err := s.rdb.HGet(ctx, dataKey, id+":"+attrUser).Result()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("error report entry %s of org %s: %w", id, orgID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("resolve error %s of org %s: %w", id, orgID, err)
	}
	byUser := recent
	if user != "" && ValidID(user) {
		byUser = orgKey(orgID, orgErrorsUser, user)
	}
	n, err := resolveErrorScript.Run(ctx, s.rdb, []string{dataKey, recent, byUser}, id).Int64()
	if err != nil {
		return fmt.Errorf("resolve error %s of org %s: %w", id, orgID, err)
	}
	if n == 0 {
		return fmt.Errorf("error report entry %s of org %s: %w", id, orgID, ErrNotFound)
	}
	return nil
}

// pageCursor is where a page of the report ended: the last entry's score and id.
type pageCursor struct {
	score float64
	id    string
}

func (c pageCursor) token() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatFloat(c.score, 'f', -1, 64) + ":" + c.id))
}

func parsePageToken(tok string) (pageCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return pageCursor{}, ErrInvalidPageToken
	}
	scoreStr, id, ok := strings.Cut(string(raw), ":")
	if !ok || !entryIDPattern.MatchString(id) {
		return pageCursor{}, ErrInvalidPageToken
	}
	score, err := strconv.ParseFloat(scoreStr, 64)
	if err != nil || math.IsNaN(score) || math.IsInf(score, 0) {
		return pageCursor{}, ErrInvalidPageToken
	}
	return pageCursor{score: score, id: id}, nil
}

func formatScore(f float64) string {
	if math.IsInf(f, 1) {
		return "+inf"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}
