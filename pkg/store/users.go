package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// normalizeEmail is the form emails are compared in: Salesforce and Exchange both treat
// addresses case-insensitively.
func normalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// PutUsers replaces an org's whole user directory with users, atomically: readers see the
// old directory or the new one, never a mix. Salesforce does not keep emails unique, so when
// several users share an email, FindUserByEmail finds the active one, then the lowest id.
func (s *Store) PutUsers(ctx context.Context, orgID string, users []*tandemv1.SyncUser) error {
	if err := checkID("org id", orgID); err != nil {
		return fmt.Errorf("put users: %w", err)
	}
	var v violations
	records := make([]any, 0, 2*len(users))
	byEmail := make(map[string]*tandemv1.SyncUser, len(users))
	seen := make(map[string]bool, len(users))
	for i, u := range users {
		if u == nil || !ValidID(u.GetUserId()) {
			v.add(fmt.Sprintf("users[%d].user_id", i), idRule)
			continue
		}
		if seen[u.UserId] {
			v.add(fmt.Sprintf("users[%d].user_id", i), fmt.Sprintf("%s is listed twice", u.UserId))
			continue
		}
		seen[u.UserId] = true
		raw, err := proto.Marshal(u)
		if err != nil {
			return fmt.Errorf("put users of org %s: marshal %s: %w", orgID, u.UserId, err)
		}
		records = append(records, u.UserId, raw)
		if e := normalizeEmail(u.Email); e != "" {
			if cur, ok := byEmail[e]; !ok || preferForEmail(u, cur) {
				byEmail[e] = u
			}
		}
	}
	if err := v.err(); err != nil {
		return err
	}
	index := make([]any, 0, 2*len(byEmail))
	for e, u := range byEmail {
		index = append(index, e, u.UserId)
	}
	usersKey, emailKey := orgKey(orgID, orgUsersName), orgKey(orgID, orgEmailIndexName)
	// Both keys share the org's slot, so MULTI/EXEC makes the swap atomic on Cluster too.
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, usersKey, emailKey)
		if len(records) > 0 {
			p.HSet(ctx, usersKey, records...)
		}
		if len(index) > 0 {
			p.HSet(ctx, emailKey, index...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put users of org %s: %w", orgID, err)
	}
	_ = s.PublishChange(ctx, orgID, "")
	return nil
}

// preferForEmail reports whether a should own a shared email rather than b.
func preferForEmail(a, b *tandemv1.SyncUser) bool {
	if a.Active != b.Active {
		return a.Active
	}
	return a.UserId < b.UserId
}

// ListUsers returns an org's user directory ordered by user id.
func (s *Store) ListUsers(ctx context.Context, orgID string) ([]*tandemv1.SyncUser, error) {
	if err := checkID("org id", orgID); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	all, err := s.rdb.HGetAll(ctx, orgKey(orgID, orgUsersName)).Result()
	if err != nil {
		return nil, fmt.Errorf("list users of org %s: %w", orgID, err)
	}
	users := make([]*tandemv1.SyncUser, 0, len(all))
	for id, raw := range all {
		u, err := decodeUser(orgID, id, raw)
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	slices.SortFunc(users, func(a, b *tandemv1.SyncUser) int { return strings.Compare(a.UserId, b.UserId) })
	return users, nil
}

// GetUser returns one user of the directory, or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, orgID, userID string) (*tandemv1.SyncUser, error) {
	if err := checkID("org id", orgID); err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	raw, err := s.rdb.HGet(ctx, orgKey(orgID, orgUsersName), userID).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("user %s of org %s: %w", userID, orgID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get user %s of org %s: %w", userID, orgID, err)
	}
	return decodeUser(orgID, userID, raw)
}

// findByEmailScript reads the email index and the user in one step, so a concurrent PutUsers
// cannot pair an old index entry with a new directory. KEYS = index, users; ARGV = email.
var findByEmailScript = redis.NewScript(`
local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then return false end
return redis.call('HGET', KEYS[2], id)
`)

// FindUserByEmail returns the user with email (compared case-insensitively), or ErrNotFound.
func (s *Store) FindUserByEmail(ctx context.Context, orgID, email string) (*tandemv1.SyncUser, error) {
	if err := checkID("org id", orgID); err != nil {
		return nil, fmt.Errorf("find user by email: %w", err)
	}
	e := normalizeEmail(email)
	if e == "" {
		return nil, fmt.Errorf("find user by email in org %s: empty email: %w", orgID, ErrNotFound)
	}
	raw, err := findByEmailScript.Run(ctx, s.rdb, []string{orgKey(orgID, orgEmailIndexName), orgKey(orgID, orgUsersName)}, e).Text()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("user with email %s in org %s: %w", email, orgID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find user with email %s in org %s: %w", email, orgID, err)
	}
	return decodeUser(orgID, "", raw)
}

func decodeUser(orgID, id, raw string) (*tandemv1.SyncUser, error) {
	u := &tandemv1.SyncUser{}
	if err := proto.Unmarshal([]byte(raw), u); err != nil {
		return nil, fmt.Errorf("user %s of org %s: unmarshal: %w", id, orgID, err)
	}
	return u, nil
}
