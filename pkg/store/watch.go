package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Watch leases. Some components keep a standing subscription per org: the exchange-worker's
// EWS streaming notifications, the salesforce-worker's Change Data Capture. They run in every
// replica, yet each org must be watched by one replica only: N replicas watching would make N
// subscriptions per mailbox and N deliveries of every change. So a replica watches an org only
// while it holds the org's watch lease for its role, and gives the watch up the moment the lease
// is lost. The others try again now and then, and one of them takes over once the lease is
// released (a graceful stop) or has expired (a holder killed). Orgs spread over the replicas by
// whoever acquires first; nothing assigns them.
//
// A watch lease is an org-keyed Lease, with the same scripts, tokens and renewals as a user's,
// and one difference: its key holds a random holder id after the token. Redis may lose its
// state (a flush, a restore from an old snapshot) and then issue a token again; two replicas
// with the same token would both renew, and both watch, for ever. With the holder id, the one
// that held the lease before the loss finds it is not its own any more and stops.

// DefaultWatchLeaseTTL is how long a watch lease lasts unless renewed: how long an org may go
// unwatched after its watcher dies without releasing it.
const DefaultWatchLeaseTTL = 30 * time.Second

// AcquireWatchLease takes the org's watch lease for role (e.g. "watch-exchange") for ttl. While
// another replica holds it, it fails with a *LeaseHeldError (ErrLeaseHeld) whose Remaining says
// when that lease expires unless renewed. Hold keeps the lease renewed while the org is watched;
// Release hands it on. Its token fences no writes: Commit is for a user's lease.
func (s *Store) AcquireWatchLease(ctx context.Context, orgID, role string, ttl time.Duration) (*Lease, error) {
	if err := checkID("org id", orgID); err != nil {
		return nil, fmt.Errorf("acquire watch lease: %w", err)
	}
	return s.acquire(ctx, &Lease{store: s, uk: UserKey{OrgID: orgID}, role: role,
		key: orgLeaseKey(orgID, role), fenceKey: orgFenceKey(orgID, role), holder: ":" + rand.Text(), ttl: ttl})
}

// Watch marks. A replica watching an org's mailboxes for role notes, under its watch lease,
// which of them it watches (their changes reach it) and every change it is told of
// (NoteWatches). A reader of a mailbox then tells whether anything may have changed since it
// last read: it takes the mailbox's WatchMark before each read, and nothing did if the mark is
// still the same and watched (WatchMark.Quiet) — the same watcher, under the same lease, has
// watched the mailbox all along and was told of no change. Any note changes the mark: a
// change, a mailbox watched or unwatched. And a watcher that dies stops renewing its lease, so
// its marks stop counting as watched once the lease expires.

// WatchEvent is what a watcher notes of a mailbox.
type WatchEvent int

// Watch events.
const (
	// WatchChanged: the mailbox changed (or may have).
	WatchChanged WatchEvent = iota + 1
	// WatchStarted: the mailbox is watched from now on.
	WatchStarted
	// WatchStopped: the mailbox is no longer watched.
	WatchStopped
	// WatchItems: the mailbox changed in the note's items only, which are now at the versions
	// given. A reader that already knows those versions (its own writes) learns nothing new
	// from it (see NotedItems).
	WatchItems
)

// WatchNote is one event of one user's mailbox.
type WatchNote struct {
	UserID string
	Event  WatchEvent
	// Items are the items of a WatchItems note.
	Items []WatchedItem
}

// WatchedItem is an item at a version: an EWS item id and change key.
type WatchedItem struct {
	ID, Version string
}

// MaxNotedItems is how many items of WatchItems notes are kept per mailbox, the newest; a
// reader that needs older ones finds them missing and reads the mailbox.
const MaxNotedItems = 2000

// notedItemsTTL is how long a mailbox's noted items outlive the last note: the list of a
// mailbox no longer watched goes away by itself.
const notedItemsTTL = 24 * time.Hour

// WatchMark is a mailbox's watch state at one moment (see MailboxWatchMark).
type WatchMark struct {
	// Watcher is the watch lease of the watcher that watches the mailbox while it still holds
	// it ("<token>:<holder id>"); empty when nobody does.
	Watcher string `json:"watcher,omitempty"`
	// Notes counts the notes of the mailbox since it was first watched.
	Notes int64 `json:"notes,omitempty"`
}

// Watched reports whether the mailbox was watched.
func (m WatchMark) Watched() bool { return m.Watcher != "" }

// Quiet reports whether nothing can have changed in the mailbox between the moment the mark
// before was taken and the moment m was: it was watched then, and its mark is still the same.
func (m WatchMark) Quiet(before WatchMark) bool { return before.Watched() && m == before }

// noteScript: KEYS = watching hash, notes hash, then each note's items list; ARGV = the lease
// value, the noted items' cap and TTL in ms, then per note: user id, event, item count and
// that many "<id> <version>". Each note increments the user's count; an item note pushes its
// items, each as "<count> <items in the note> <id> <version>", onto the user's list, trimmed
// to the cap.
var noteScript = redis.NewScript(`
local a = 4
for i = 3, #KEYS do
  local user, ev, n = ARGV[a], tonumber(ARGV[a+1]), tonumber(ARGV[a+2])
  a = a + 3
  if ev == ` + strconv.Itoa(int(WatchStarted)) + ` then
    redis.call('HSET', KEYS[1], user, ARGV[1])
  elseif ev == ` + strconv.Itoa(int(WatchStopped)) + ` then
    redis.call('HDEL', KEYS[1], user)
  end
  local seq = redis.call('HINCRBY', KEYS[2], user, 1)
  if n > 0 then
    for j = 0, n - 1 do
      redis.call('RPUSH', KEYS[i], seq .. ' ' .. n .. ' ' .. ARGV[a+j])
    end
    redis.call('LTRIM', KEYS[i], -tonumber(ARGV[2]), -1)
    redis.call('PEXPIRE', KEYS[i], ARGV[3])
    a = a + n
  end
end
return 0
`)

// NoteWatches records notes of the org's mailboxes by the holder of the org's watch lease,
// at once. A lease lost meanwhile is not checked: its notes only make marks differ, and a mark
// names a watcher only while its lease is held.
func (s *Store) NoteWatches(ctx context.Context, lease *Lease, notes []WatchNote) error {
	if len(notes) == 0 {
		return nil
	}
	org, role := lease.User().OrgID, lease.Role()
	keys := []string{orgKey(org, orgWatchingName, role), orgKey(org, orgNotesName, role)}
	args := []any{lease.value, MaxNotedItems, notedItemsTTL.Milliseconds()}
	for _, n := range notes {
		if err := checkID("user id", n.UserID); err != nil {
			return fmt.Errorf("note watches of org %s: %w", org, err)
		}
		if n.Event < WatchChanged || n.Event > WatchItems || (len(n.Items) > 0) != (n.Event == WatchItems) {
			return fmt.Errorf("note watches of org %s: event %d with %d items", org, n.Event, len(n.Items))
		}
		keys = append(keys, orgKey(org, orgNotedItemsName, role, n.UserID))
		args = append(args, n.UserID, int(n.Event), len(n.Items))
		for _, it := range n.Items {
			if it.ID == "" || it.Version == "" || strings.ContainsAny(it.ID+it.Version, " ") {
				return fmt.Errorf("note watches of org %s: malformed item %q at %q", org, it.ID, it.Version)
			}
			args = append(args, it.ID+" "+it.Version)
		}
	}
	if err := noteScript.Run(ctx, s.rdb, keys, args...).Err(); err != nil {
		return fmt.Errorf("note watches of org %s: %w", org, err)
	}
	return nil
}

// NotedItems returns the items noted for the user's mailbox, for role, by each WatchItems note
// numbered after from up to to (see WatchMark.Notes), if every note of that range is an item
// note whose items are all still kept; ok is false otherwise (another kind of note, or notes
// too old), when the caller must take the mailbox as changed in any way.
func (s *Store) NotedItems(ctx context.Context, uk UserKey, role string, from, to int64) (items []WatchedItem, ok bool, err error) {
	if err := uk.Validate(); err != nil {
		return nil, false, fmt.Errorf("noted items: %w", err)
	}
	if to <= from {
		return nil, true, nil
	}
	raw, err := s.rdb.LRange(ctx, orgKey(uk.OrgID, orgNotedItemsName, role, uk.UserID), 0, -1).Result()
	if err != nil {
		return nil, false, fmt.Errorf("noted items of %s: %w", uk, err)
	}
	// Each entry says how many items its note has, so that a note trimmed in part is told
	// from a whole one.
	kept, want := map[int64]int{}, map[int64]int{}
	for _, r := range raw {
		f := strings.Fields(r)
		if len(f) != 4 {
			return nil, false, fmt.Errorf("noted items of %s: malformed entry %q", uk, r)
		}
		seq, err1 := strconv.ParseInt(f[0], 10, 64)
		n, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, false, fmt.Errorf("noted items of %s: malformed entry %q", uk, r)
		}
		if seq > from && seq <= to {
			kept[seq]++
			want[seq] = n
			items = append(items, WatchedItem{ID: f[2], Version: f[3]})
		}
	}
	for seq := from + 1; seq <= to; seq++ {
		if kept[seq] == 0 || kept[seq] != want[seq] {
			return nil, false, nil
		}
	}
	return items, true, nil
}

// MailboxWatchMark returns the watch mark of the user's mailbox for role: who watches it, if
// that watcher still holds the org's watch lease, and how many notes it has had.
func (s *Store) MailboxWatchMark(ctx context.Context, uk UserKey, role string) (WatchMark, error) {
	if err := uk.Validate(); err != nil {
		return WatchMark{}, fmt.Errorf("watch mark: %w", err)
	}
	pipe := s.rdb.Pipeline()
	holder := pipe.Get(ctx, orgLeaseKey(uk.OrgID, role))
	watcher := pipe.HGet(ctx, orgKey(uk.OrgID, orgWatchingName, role), uk.UserID)
	notes := pipe.HGet(ctx, orgKey(uk.OrgID, orgNotesName, role), uk.UserID)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return WatchMark{}, fmt.Errorf("watch mark of %s: %w", uk, err)
	}
	var m WatchMark
	if w := watcher.Val(); w != "" && w == holder.Val() {
		m.Watcher = w
	}
	if v := notes.Val(); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return WatchMark{}, fmt.Errorf("watch mark of %s: notes %q: %w", uk, v, err)
		}
		m.Notes = n
	}
	return m, nil
}
