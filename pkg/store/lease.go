package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease errors.
var (
	// ErrLeaseHeld means another holder has the lease; the error is a *LeaseHeldError.
	ErrLeaseHeld = errors.New("lease held by another holder")
	// ErrLeaseLost means the lease expired or was taken over, so it can no longer be renewed,
	// released or committed with.
	ErrLeaseLost = errors.New("lease lost")
)

// LeaseHeldError says who holds a lease for how much longer. It matches ErrLeaseHeld.
type LeaseHeldError struct {
	// User is the lease's user; for an org's lease (AcquireWatchLease) only OrgID is set.
	User UserKey
	Role string
	// Remaining is the holder's remaining TTL; retry after it.
	Remaining time.Duration
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("lease %s for %s: held for another %s", e.Role, leaseSubject(e.User), e.Remaining)
}

// Is makes errors.Is(err, ErrLeaseHeld) true.
func (e *LeaseHeldError) Is(target error) bool { return target == ErrLeaseHeld }

// Lease is the exclusive right to work on one user in one role (e.g. "reconcile",
// "exchange"), proven by a fencing token: tokens of a user's role strictly increase, and
// Commit refuses any token but the current holder's, so a holder that paused past its TTL
// cannot overwrite the work of the one that took over. The same mechanism, keyed on an org
// instead of a user, makes an org's watch lease (AcquireWatchLease).
type Lease struct {
	store *Store
	// uk is the lease's user; only OrgID is set for an org's lease.
	uk       UserKey
	role     string
	key      string
	fenceKey string
	token    int64
	// holder is appended to the token in the lease key (empty for a user's lease, whose key
	// Commit compares with the bare token); value is what the key holds while this is the lease.
	holder     string
	value      string
	ttl        time.Duration
	acquiredAt time.Time
}

// AcquireLease takes the user's lease for role for ttl (at least a millisecond). It fails with
// a *LeaseHeldError if another holder has it.
func (s *Store) AcquireLease(ctx context.Context, uk UserKey, role string, ttl time.Duration) (*Lease, error) {
	if err := uk.Validate(); err != nil {
		return nil, fmt.Errorf("acquire lease: %w", err)
	}
	return s.acquire(ctx, &Lease{store: s, uk: uk, role: role, key: uk.leaseKey(role), fenceKey: uk.fenceKey(role), ttl: ttl})
}

// acquire takes the lease l describes (its store, subject, role, keys and ttl): it fills in the
// token, or fails with a *LeaseHeldError.
func (s *Store) acquire(ctx context.Context, l *Lease) (*Lease, error) {
	if err := checkID("lease role", l.role); err != nil {
		return nil, fmt.Errorf("acquire lease: %w", err)
	}
	if l.ttl < time.Millisecond {
		return nil, fmt.Errorf("acquire lease %s for %s: ttl %s is shorter than a millisecond", l.role, l.subject(), l.ttl)
	}
	// The lease is known valid until acquiredAt+ttl: Redis started the TTL after this instant.
	l.acquiredAt = time.Now()
	res, err := acquireScript.Run(ctx, s.rdb, []string{l.key, l.fenceKey}, l.ttl.Milliseconds(), l.holder, time.Now().UnixMilli()).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("acquire lease %s for %s: %w", l.role, l.subject(), err)
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("acquire lease %s for %s: malformed reply %v", l.role, l.subject(), res)
	}
	if res[0] == 0 {
		return nil, &LeaseHeldError{User: l.uk, Role: l.role, Remaining: time.Duration(res[1]) * time.Millisecond}
	}
	l.token = res[1]
	l.value = strconv.FormatInt(l.token, 10) + l.holder
	return l, nil
}

// leaseSubject names what a lease is for in messages: "org/user", or "org O" for an org's.
func leaseSubject(uk UserKey) string {
	if uk.UserID == "" {
		return "org " + uk.OrgID
	}
	return uk.String()
}

func (l *Lease) subject() string { return leaseSubject(l.uk) }

// acquireScript: KEYS = lease, fence; ARGV = ttl in ms, holder suffix, now in unix ms. Replies
// {1, token} or {0, holder's remaining ms}. The counter is incremented only when the lease is
// free, so every token issued belongs to exactly one holder. A counter that is new — the first
// lease, or a counter lost with the rest of Tandem's state (FLUSHALL) — starts at the current
// time rather than at 1: above every token issued before the loss, so that a holder from before
// it never shares a token with one after it, and both fail to renew and to commit. The lease
// key holds the token and the suffix.
var acquireScript = redis.NewScript(`
local pttl = redis.call('PTTL', KEYS[1])
if pttl ~= -2 then
  if pttl < 0 then pttl = 0 end
  return {0, pttl}
end
local token = redis.call('INCR', KEYS[2])
if token == 1 then
  redis.call('SET', KEYS[2], ARGV[3])
  token = ARGV[3]
end
redis.call('SET', KEYS[1], token .. ARGV[2], 'PX', ARGV[1])
return {1, tonumber(token)}
`)

// renewScript: KEYS = lease; ARGV = lease value, ttl in ms. Replies 1 if renewed, 0 if not ours.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// releaseScript: KEYS = lease; ARGV = lease value. Replies 1 if released, 0 if not ours.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

// Token returns the lease's fencing token.
func (l *Lease) Token() int64 { return l.token }

// User returns the user the lease is for; only OrgID is set for an org's lease.
func (l *Lease) User() UserKey { return l.uk }

// Role returns the lease's role.
func (l *Lease) Role() string { return l.role }

// TTL returns the lease's time to live, which Renew restores.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Renew restores the lease's full TTL if it is still this lease's; ErrLeaseLost otherwise.
func (l *Lease) Renew(ctx context.Context) error {
	ok, err := renewScript.Run(ctx, l.store.rdb, []string{l.key}, l.value, l.ttl.Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("renew lease %s for %s: %w", l.role, l.subject(), err)
	}
	if ok == 0 {
		return fmt.Errorf("renew lease %s for %s (token %d): %w", l.role, l.subject(), l.token, ErrLeaseLost)
	}
	return nil
}

// Release gives the lease up if it is still this lease's, so the next holder need not wait
// for the TTL; ErrLeaseLost if it was not (nothing is changed then).
func (l *Lease) Release(ctx context.Context) error {
	ok, err := releaseScript.Run(ctx, l.store.rdb, []string{l.key}, l.value).Int64()
	if err != nil {
		return fmt.Errorf("release lease %s for %s: %w", l.role, l.subject(), err)
	}
	if ok == 0 {
		return fmt.Errorf("release lease %s for %s (token %d): %w", l.role, l.subject(), l.token, ErrLeaseLost)
	}
	return nil
}

// Run calls fn while keeping the lease renewed in the background, every third of its TTL.
// If the lease is lost, or cannot be renewed before it would expire (Redis unreachable), fn's
// context is cancelled with ErrLeaseLost as its cause and Run returns an error matching
// ErrLeaseLost. Otherwise Run returns fn's error. Run does not release the lease.
//
// Cancelling fn's context is a courtesy that stops wasted work; correctness comes from
// Commit, which refuses the stale token of a lease that was lost.
func (l *Lease) Run(ctx context.Context, fn func(ctx context.Context) error) error {
	held, stop := l.Hold(ctx)
	err := fn(held)
	stop()
	if cause := context.Cause(held); errors.Is(cause, ErrLeaseLost) {
		if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrLeaseLost) {
			return cause
		}
		return errors.Join(cause, err)
	}
	return err
}

// Hold keeps the lease renewed in the background, every third of its TTL, for work that has
// no single function to wrap in Run (a component that watches an org while it holds the org's
// lease). The returned context ends when ctx does, when stop is called, or when the lease is
// lost or cannot be renewed before it would expire — then with ErrLeaseLost as its cause.
// stop ends the renewals and waits for them; it may be called more than once. Hold does not
// release the lease.
func (l *Lease) Hold(ctx context.Context) (held context.Context, stop func()) {
	held, cancel := context.WithCancelCause(ctx)
	renewerDone := make(chan struct{})
	go func() {
		defer close(renewerDone)
		l.keepAlive(held, cancel)
	}()
	return held, func() {
		cancel(nil)
		<-renewerDone
	}
}

// keepAlive renews the lease until ctx ends; it cancels ctx with ErrLeaseLost as the cause
// when the lease is lost.
func (l *Lease) keepAlive(ctx context.Context, cancel context.CancelCauseFunc) {
	interval := l.ttl / 3
	retry := max(interval/5, time.Millisecond)
	validUntil := l.acquiredAt.Add(l.ttl)
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		err := l.Renew(ctx)
		switch {
		case err == nil:
			validUntil = start.Add(l.ttl)
			timer.Reset(interval)
		case errors.Is(err, ErrLeaseLost):
			cancel(err)
			return
		case ctx.Err() != nil:
			return
		case time.Now().Add(retry).After(validUntil):
			cancel(fmt.Errorf("lease %s for %s: could not renew before it expires: %w (%w)", l.role, l.subject(), ErrLeaseLost, err))
			return
		default:
			timer.Reset(retry)
		}
	}
}

// WithLease acquires the user's lease for role, runs fn under it as Lease.Run does, and
// releases it. fn receives the lease for its commits.
func (s *Store) WithLease(ctx context.Context, uk UserKey, role string, ttl time.Duration, fn func(ctx context.Context, lease *Lease) error) error {
	lease, err := s.AcquireLease(ctx, uk, role, ttl)
	if err != nil {
		return err
	}
	runErr := lease.Run(ctx, func(ctx context.Context) error { return fn(ctx, lease) })
	// Release even if ctx is done: the next holder should not wait out the TTL.
	relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := lease.Release(relCtx); err != nil && !errors.Is(err, ErrLeaseLost) && runErr == nil {
		return err
	}
	return runErr
}
