package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Deleting an org. Everything Tandem keeps for an org lives under the org's hash tag {<org>}
// or under one of its users' tags {<org>:<user>} (see keys.go), so DeleteOrg finds it all with
// SCAN and needs no list of names that could fall behind the layout. The only key outside
// those tags that names the org is the org index.
//
// The order is chosen for the work that may be in flight when an org is deleted:
//
//  1. The settings and sealed secrets go first. The workers read them for every job and
//     every write (OrgCache), so from then on they make no call to Exchange or Salesforce
//     for the org, and no credential of a deleted org stays in Redis a moment longer than
//     needed.
//  2. The org leaves the index: the scheduler claims no more cycles for it, the watchers stop
//     watching it at their next listing, ListOrgs no longer shows it.
//  3. Every other key is swept. A per-user lease and fence deleted under a reconciler that
//     holds them makes its next Commit fail with ErrStaleLease (the script compares both
//     with its token) and its next renewal fail with ErrLeaseLost: the holder's work stops
//     and writes nothing more.
//
// DeleteOrg cannot stop messages already in JetStream: a redelivered change or result takes a
// new lease, statuses are written best effort, a job that now fails is dead-lettered into the
// error report. Such work can write a few keys for the org after it was deleted — invisible,
// since the org has no settings and no place in the index. So an org exists, for DeleteOrg,
// while Tandem keeps anything at all for it: calling DeleteOrg again, once the org's messages
// have drained, removes those strays, and finishes a deletion that was interrupted (a crash,
// a lost connection). It is ErrNotFound only when there was nothing to delete.

// scanCount is the COUNT hint of the sweep's SCANs: about how many keys a node examines per
// call, which bounds how long one call blocks it.
const scanCount = 1000

// unlinkBatch bounds the keys of one UNLINK.
const unlinkBatch = 500

// DeleteOrg deletes the org orgID with everything Tandem keeps for it: settings and sealed
// secrets, configurations, the user directory and its email index, reset marks, cursors, the
// error report, activity, the schedule, the org's watch leases and fences, and every key of
// every one of its users (ledgers, statuses, cursors and sync states, recovery requests,
// leases and fences, the workers' keys), drops the org from the org index and releases the
// mailboxes it claimed (see ClaimMailboxes). Records in
// Exchange and Salesforce are not touched, nor are API tokens (tandem:{global}:tokens): a
// token scoped to the org keeps its scope, and covers an org created again with the same id.
//
// It works on a single Redis and on Redis Cluster, where every master is swept. It returns the
// number of keys deleted, and ErrNotFound when Tandem kept nothing for the org (see above for
// in-flight work and why a second call may still find something).
func (s *Store) DeleteOrg(ctx context.Context, orgID string) (int64, error) {
	if err := checkID("org id", orgID); err != nil {
		return 0, fmt.Errorf("delete org: %w", err)
	}
	settings, err := s.rdb.Unlink(ctx, orgKey(orgID, orgSettingsName)).Result()
	if err != nil {
		return 0, fmt.Errorf("delete org %s: settings: %w", orgID, err)
	}
	indexed, err := s.rdb.SRem(ctx, orgIndexKey(), orgID).Result()
	if err != nil {
		return settings, fmt.Errorf("delete org %s: index: %w", orgID, err)
	}
	// The mailboxes the org synced are free for another org at once (before the sweep deletes
	// the org's list of them; a claim left by a failure here is stale anyway, and taken over).
	claimed, err := s.ClaimedMailboxes(ctx, orgID)
	if err != nil {
		return settings, fmt.Errorf("delete org %s: %w", orgID, err)
	}
	if err := s.ReleaseMailboxes(ctx, orgID, claimed); err != nil {
		return settings, fmt.Errorf("delete org %s: %w", orgID, err)
	}
	swept, err := s.sweepOrg(ctx, orgID)
	deleted := settings + swept
	if err != nil {
		return deleted, fmt.Errorf("delete org %s: %w", orgID, err)
	}
	if deleted == 0 && indexed == 0 {
		return 0, fmt.Errorf("org %s: %w", orgID, ErrNotFound)
	}
	return deleted, nil
}

// sweepOrg deletes every key of the org and its users, on every master of a cluster, and
// returns how many it deleted.
func (s *Store) sweepOrg(ctx context.Context, orgID string) (int64, error) {
	// One pattern finds both the org's keys, tandem:{O}:..., and its users', tandem:{O:U}:...;
	// its matches are checked with ownsKey, since it also matches the keys of an org whose id
	// begins with this one. One SCAN of the keyspace, not one per pattern.
	match := keyPrefix + "{" + globEscape(orgID) + "*"
	var deleted atomic.Int64
	sweep := func(ctx context.Context, node redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, match, scanCount).Result()
			if err != nil {
				return fmt.Errorf("scan: %w", err)
			}
			keys = slices.DeleteFunc(keys, func(k string) bool { return !ownsKey(orgID, k) })
			n, err := s.unlinkByTag(ctx, keys)
			deleted.Add(n)
			if err != nil {
				return err
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		// Each master scans its own keys; the deletes go through the cluster client, which
		// routes them to wherever their slot is now, should one move meanwhile.
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			if err := sweep(ctx, node); err != nil {
				return fmt.Errorf("node %s: %w", node.Options().Addr, err)
			}
			return nil
		})
	} else {
		err = sweep(ctx, s.rdb)
	}
	return deleted.Load(), err
}

// unlinkByTag deletes keys with UNLINK, one command per hash tag (hence per slot, as Cluster
// requires of a multi-key command) and at most unlinkBatch keys, all in one pipeline. It
// returns how many keys existed and were deleted.
func (s *Store) unlinkByTag(ctx context.Context, keys []string) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	byTag := make(map[string][]string)
	for _, k := range keys {
		tag, _ := hashTag(k)
		byTag[tag] = append(byTag[tag], k)
	}
	var cmds []*redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, group := range byTag {
			for batch := range slices.Chunk(group, unlinkBatch) {
				cmds = append(cmds, p.Unlink(ctx, batch...))
			}
		}
		return nil
	})
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	if err != nil {
		return n, fmt.Errorf("unlink: %w", err)
	}
	return n, nil
}

// ownsKey reports whether key is one of the org's keys, tandem:{O}:..., or one of its users',
// tandem:{O:U}:.... Ids contain no ':', '{' or '}', so no other org's key passes.
//
// The global keys share the tag {global}, a valid org id too: for an org named "global", only
// the names of the org-level layout count, so that deleting it never takes the org index or
// the API tokens with it.
func ownsKey(orgID, key string) bool {
	if !strings.HasPrefix(key, keyPrefix+"{") {
		return false
	}
	tag, ok := hashTag(key)
	if !ok {
		return false
	}
	if strings.HasPrefix(tag, orgID+":") {
		return true
	}
	if tag != orgID {
		return false
	}
	if orgID != globalTag {
		return true
	}
	return isOrgKeyName(strings.TrimPrefix(key, keyPrefix+"{"+tag+"}:"))
}

// isOrgKeyName reports whether name (what follows "tandem:{<org>}:") is a name of the per-org
// layout in keys.go.
func isOrgKeyName(name string) bool {
	switch name {
	case orgSettingsName, orgConfigsName, orgUsersName, orgEmailIndexName, orgResetsName,
		orgErrorsData, orgErrorsRecent, orgScheduleName:
		return true
	}
	for _, prefix := range []string{orgCursorName, orgErrorsUser, orgActivityName, userLeaseName, userFenceName} {
		if strings.HasPrefix(name, prefix+":") {
			return true
		}
	}
	return false
}

// globEscape escapes the characters special to Redis glob patterns (*, ?, [, ] and \) so that
// s matches only itself. '{' and '}' are not special in a pattern, only in key hashing.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
