package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// Mailbox claims. A mailbox is synced by one org at a time: two orgs syncing one mailbox would
// copy each org's contacts and events into the other through it, which the Lightning Sync admin
// guide warns against ("don't add the same user to Lightning Sync configurations in more than
// one organization"). The first org to sync a mailbox claims it in the global hash
// tandem:{global}:mailboxes (lower-cased address → org id); another org's user with that
// address is left out of its org's sync until the claim is released or found stale.
//
// Each org also keeps the addresses it claimed in its own set, tandem:{<org>}:mailboxes, so
// that it can find the claims of users it no longer syncs without reading the whole global
// hash. The two keys live in different Redis Cluster slots, so no script can write both: they
// are written one after the other, in an order that keeps one invariant, which is all the
// release needs:
//
//	an org that holds a claim has the address in its set.
//
// Claiming adds the address to the org's set first and claims it second; releasing deletes the
// claim first (only if the org still holds it) and takes the address out of the set second. A
// process that dies between the two steps leaves an address in the set that the org does not
// hold: the set is a superset of the org's claims, never a subset. Such an address is
// harmless: the org's next release of it is a no-op on the claim and then drops it from the set.
// The claim itself is only ever changed by a script on the global hash, which compares the
// holder first, so two orgs never both hold one address, whatever the interleaving.

// mailboxChunk bounds the addresses one script call or command carries.
const mailboxChunk = 500

// MailboxAddress is the form a mailbox is claimed under: its address trimmed and lower-cased
// (Exchange and Salesforce compare addresses case-insensitively). Empty for no address.
func MailboxAddress(email string) string { return normalizeEmail(email) }

// claimMailboxesScript: KEYS = claims; ARGV = org, addresses... Claims each address not held by
// anyone for org. Replies with the holder of each address afterwards, in order.
var claimMailboxesScript = redis.NewScript(`
local out = {}
for i = 2, #ARGV do
  local holder = redis.call('HGET', KEYS[1], ARGV[i])
  if not holder then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[1])
    holder = ARGV[1]
  end
  out[#out + 1] = holder
end
return out
`)

// takeOverMailboxScript: KEYS = claims; ARGV = org, address, previous holder. Moves the claim
// to org only if the previous holder still holds it (or nobody does). Replies with the holder
// afterwards.
var takeOverMailboxScript = redis.NewScript(`
local holder = redis.call('HGET', KEYS[1], ARGV[2])
if not holder or holder == ARGV[3] then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
  return ARGV[1]
end
return holder
`)

// releaseMailboxesScript: KEYS = claims; ARGV = org, addresses... Deletes the claims of the
// addresses org holds; leaves the others' alone. Replies with how many it deleted.
var releaseMailboxesScript = redis.NewScript(`
local n = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
`)

// addresses returns the distinct non-empty claim forms of emails, in order.
func addresses(emails []string) []string {
	out := make([]string, 0, len(emails))
	seen := make(map[string]bool, len(emails))
	for _, e := range emails {
		a := MailboxAddress(e)
		if a == "" || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	return out
}

func toArgs(first string, rest []string) []any {
	args := make([]any, 0, len(rest)+1)
	args = append(args, first)
	for _, r := range rest {
		args = append(args, r)
	}
	return args
}

// ClaimMailboxes claims for orgID each mailbox of emails that no org holds, and returns the
// holder of each (by MailboxAddress) afterwards: orgID for the mailboxes the org holds, another
// org's id for those that org holds. Empty addresses are skipped. Each claim is atomic: of
// several orgs claiming one free mailbox, exactly one gets it.
func (s *Store) ClaimMailboxes(ctx context.Context, orgID string, emails []string) (map[string]string, error) {
	if err := checkID("org id", orgID); err != nil {
		return nil, fmt.Errorf("claim mailboxes: %w", err)
	}
	addrs := addresses(emails)
	holders := make(map[string]string, len(addrs))
	for chunk := range slices.Chunk(addrs, mailboxChunk) {
		// The org's set first: see the invariant above.
		if err := s.rdb.SAdd(ctx, orgMailboxesKey(orgID), toArgs(chunk[0], chunk[1:])...).Err(); err != nil {
			return nil, fmt.Errorf("claim mailboxes for org %s: %w", orgID, err)
		}
		res, err := claimMailboxesScript.Run(ctx, s.rdb, []string{mailboxClaimsKey()}, toArgs(orgID, chunk)...).StringSlice()
		if err != nil {
			return nil, fmt.Errorf("claim mailboxes for org %s: %w", orgID, err)
		}
		if len(res) != len(chunk) {
			return nil, fmt.Errorf("claim mailboxes for org %s: %d holders for %d mailboxes", orgID, len(res), len(chunk))
		}
		for i, a := range chunk {
			holders[a] = res[i]
		}
	}
	return holders, nil
}

// TakeOverMailbox moves the claim on email from the org previous to orgID, but only if previous
// still holds it (or nobody does): a compare-and-set, so that of several orgs that found the
// same stale claim, one takes it over and the others see that one. It returns the holder
// afterwards, orgID when the take-over succeeded. Whether previous's claim is stale is for the
// caller to decide (see MailboxesSyncedBy).
func (s *Store) TakeOverMailbox(ctx context.Context, orgID, email, previous string) (string, error) {
	if err := checkID("org id", orgID); err != nil {
		return "", fmt.Errorf("take over mailbox: %w", err)
	}
	addr := MailboxAddress(email)
	if addr == "" {
		return "", fmt.Errorf("take over mailbox for org %s: empty address", orgID)
	}
	if err := s.rdb.SAdd(ctx, orgMailboxesKey(orgID), addr).Err(); err != nil {
		return "", fmt.Errorf("take over mailbox %s for org %s: %w", addr, orgID, err)
	}
	holder, err := takeOverMailboxScript.Run(ctx, s.rdb, []string{mailboxClaimsKey()}, orgID, addr, previous).Text()
	if err != nil {
		return "", fmt.Errorf("take over mailbox %s for org %s from %s: %w", addr, orgID, previous, err)
	}
	return holder, nil
}

// ReleaseMailboxes ends orgID's claims on emails and forgets them from the org's set. An
// address another org holds, or nobody, is only forgotten: an org never releases another's
// claim.
func (s *Store) ReleaseMailboxes(ctx context.Context, orgID string, emails []string) error {
	if err := checkID("org id", orgID); err != nil {
		return fmt.Errorf("release mailboxes: %w", err)
	}
	for chunk := range slices.Chunk(addresses(emails), mailboxChunk) {
		// The claims first: see the invariant above.
		if err := releaseMailboxesScript.Run(ctx, s.rdb, []string{mailboxClaimsKey()}, toArgs(orgID, chunk)...).Err(); err != nil {
			return fmt.Errorf("release mailboxes of org %s: %w", orgID, err)
		}
		if err := s.rdb.SRem(ctx, orgMailboxesKey(orgID), toArgs(chunk[0], chunk[1:])...).Err(); err != nil {
			return fmt.Errorf("release mailboxes of org %s: %w", orgID, err)
		}
	}
	return nil
}

// ClaimedMailboxes returns, sorted, the addresses in orgID's set: every mailbox the org holds,
// and possibly some it tried to claim or is releasing (see the invariant above).
func (s *Store) ClaimedMailboxes(ctx context.Context, orgID string) ([]string, error) {
	if err := checkID("org id", orgID); err != nil {
		return nil, fmt.Errorf("list claimed mailboxes: %w", err)
	}
	addrs, err := s.rdb.SMembers(ctx, orgMailboxesKey(orgID)).Result()
	if err != nil {
		return nil, fmt.Errorf("list claimed mailboxes of org %s: %w", orgID, err)
	}
	slices.Sort(addrs)
	return addrs, nil
}

// MailboxHolder returns the org that holds the claim on email; ok is false when none does.
func (s *Store) MailboxHolder(ctx context.Context, email string) (orgID string, ok bool, err error) {
	addr := MailboxAddress(email)
	if addr == "" {
		return "", false, nil
	}
	orgID, err = s.rdb.HGet(ctx, mailboxClaimsKey(), addr).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read the claim on mailbox %s: %w", addr, err)
	}
	return orgID, true, nil
}

// HeldElsewhere returns, of emails, the addresses (MailboxAddress) whose mailbox another org
// than orgID holds: users of orgID with those mailboxes do not sync while it lasts, so their
// notifications and change events would wake the org for nothing.
func (s *Store) HeldElsewhere(ctx context.Context, orgID string, emails []string) (map[string]bool, error) {
	addrs := addresses(emails)
	out := map[string]bool{}
	for len(addrs) > 0 {
		n := min(len(addrs), mailboxChunk)
		holders, err := s.rdb.HMGet(ctx, mailboxClaimsKey(), addrs[:n]...).Result()
		if err != nil {
			return nil, fmt.Errorf("read the claims on %d mailboxes: %w", n, err)
		}
		for i, h := range holders {
			if holder, ok := h.(string); ok && holder != orgID {
				out[addrs[i]] = true
			}
		}
		addrs = addrs[n:]
	}
	return out, nil
}

// MailboxesSyncedBy returns the addresses (MailboxAddress) of the mailboxes orgID syncs: those
// of its users assigned to an active configuration that syncs something (the scheduler's rule).
// An org that does not exist or is disabled syncs none. A claim on a mailbox its holder does not
// sync is stale, and another org may take it over (TakeOverMailbox).
func (s *Store) MailboxesSyncedBy(ctx context.Context, orgID string) (map[string]bool, error) {
	org, err := s.GetOrgRedacted(ctx, orgID)
	if errors.Is(err, ErrNotFound) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	if !org.GetEnabled() {
		return map[string]bool{}, nil
	}
	assigned, err := s.ListAssignments(ctx, orgID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(assigned))
	for _, a := range assigned {
		if len(SyncedKinds(a.Config)) == 0 {
			continue
		}
		if addr := MailboxAddress(a.User.GetEmail()); addr != "" {
			out[addr] = true
		}
	}
	return out, nil
}
