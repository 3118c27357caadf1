package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
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
)

// WatchNote is one event of one user's mailbox.
type WatchNote struct {
	UserID string
	Event  WatchEvent
}

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

// NoteWatches records notes of the org's mailboxes by the holder of the org's watch lease. A
// lease lost meanwhile is not checked: its notes only make marks differ, and a mark names a
// watcher only while its lease is held.
func (s *Store) NoteWatches(ctx context.Context, lease *Lease, notes []WatchNote) error {
	if len(notes) == 0 {
		return nil
	}
	org, role := lease.User().OrgID, lease.Role()
	watching, counts := orgKey(org, orgWatchingName, role), orgKey(org, orgNotesName, role)
	pipe := s.rdb.Pipeline()
	for _, n := range notes {
		if err := checkID("user id", n.UserID); err != nil {
			return fmt.Errorf("note watches of org %s: %w", org, err)
		}
		switch n.Event {
		case WatchStarted:
			pipe.HSet(ctx, watching, n.UserID, lease.value)
		case WatchStopped:
			pipe.HDel(ctx, watching, n.UserID)
		case WatchChanged:
		default:
			return fmt.Errorf("note watches of org %s: unknown event %d", org, n.Event)
		}
		pipe.HIncrBy(ctx, counts, n.UserID, 1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("note watches of org %s: %w", org, err)
	}
	return nil
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
