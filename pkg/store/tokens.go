package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// API tokens (package access issues and checks them). The store keeps a token's description and
// the SHA-256 of its secret, never the secret itself: a copy of Redis lets no one call the API.
// Tokens are found by that hash, so checking a caller's token is one HGET.

// putTokenScript stores a token (ARGV: id, secret hash, StoredToken, client certificate common
// name or "") under its secret's hash, dropping the entry of the secret the id had before, if
// any: replacing a token's secret (the deployment's bootstrap token, rotated) leaves the old
// secret nothing to find. A common name already bound to another token is refused (0).
var putTokenScript = redis.NewScript(`
if ARGV[4] ~= '' then
  local holder = redis.call('HGET', KEYS[3], ARGV[4])
  if holder and holder ~= ARGV[1] and redis.call('HEXISTS', KEYS[2], holder) == 1 then return 0 end
end
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old and old ~= ARGV[2] then redis.call('HDEL', KEYS[1], old) end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[4], ARGV[1]) end
return 1
`)

// deleteTokenScript removes a token by id (ARGV[1]), with its certificate binding; it returns 0
// when there is none.
var deleteTokenScript = redis.NewScript(`
local h = redis.call('HGET', KEYS[2], ARGV[1])
if not h then return 0 end
redis.call('HDEL', KEYS[1], h)
redis.call('HDEL', KEYS[2], ARGV[1])
local certs = redis.call('HGETALL', KEYS[3])
for i = 1, #certs, 2 do
  if certs[i + 1] == ARGV[1] then redis.call('HDEL', KEYS[3], certs[i]) end
end
return 1
`)

// ErrCertBound means a client certificate name is already bound to another token.
var ErrCertBound = errors.New("client certificate name already bound to another token")

func tokenKeys() []string { return []string{tokensKey(), tokenIDsKey(), tokenCertsKey()} }

// validSecretHash reports whether h is a lowercase hex SHA-256.
func validSecretHash(h string) bool {
	if len(h) != 2*sha256.Size {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// PutToken stores a token, replacing the one with the same id.
func (s *Store) PutToken(ctx context.Context, t *tandemv1.StoredToken) error {
	id := t.GetToken().GetTokenId()
	if err := checkID("token id", id); err != nil {
		return err
	}
	if !validSecretHash(t.GetSecretSha256()) {
		return fmt.Errorf("token %s: secret hash is not a lowercase hex SHA-256: %w", id, ErrInvalid)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode token %s: %w", id, err)
	}
	cn := t.GetToken().GetClientCertCn()
	n, err := putTokenScript.Run(ctx, s.rdb, tokenKeys(), id, t.GetSecretSha256(), b, cn).Int()
	if err != nil {
		return fmt.Errorf("store token %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("token %s: %q: %w", id, cn, ErrCertBound)
	}
	return nil
}

// TokenByClientCert returns the token bound to client certificates with common name cn, or
// ErrNotFound.
func (s *Store) TokenByClientCert(ctx context.Context, cn string) (*tandemv1.StoredToken, error) {
	id, err := s.rdb.HGet(ctx, tokenCertsKey(), cn).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("token of certificate %q: %w", cn, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find the token of a certificate: %w", err)
	}
	h, err := s.rdb.HGet(ctx, tokenIDsKey(), id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("token of certificate %q: %w", cn, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find the token of a certificate: %w", err)
	}
	t, err := s.TokenBySecretHash(ctx, h)
	if err != nil {
		return nil, err
	}
	if t.GetToken().GetClientCertCn() != cn {
		return nil, fmt.Errorf("token of certificate %q: %w", cn, ErrNotFound)
	}
	return t, nil
}

// TokenBySecretHash returns the token whose secret has the SHA-256 hash h (lowercase hex), or
// ErrNotFound.
func (s *Store) TokenBySecretHash(ctx context.Context, h string) (*tandemv1.StoredToken, error) {
	raw, err := s.rdb.HGet(ctx, tokensKey(), h).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("token: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find token: %w", err)
	}
	t := &tandemv1.StoredToken{}
	if err := proto.Unmarshal([]byte(raw), t); err != nil {
		return nil, fmt.Errorf("decode token: %w", err)
	}
	return t, nil
}

// ListTokens returns every token, oldest first (then by id).
func (s *Store) ListTokens(ctx context.Context) ([]*tandemv1.ApiToken, error) {
	raw, err := s.rdb.HGetAll(ctx, tokensKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := make([]*tandemv1.ApiToken, 0, len(raw))
	for _, v := range raw {
		t := &tandemv1.StoredToken{}
		if err := proto.Unmarshal([]byte(v), t); err != nil {
			return nil, fmt.Errorf("decode token: %w", err)
		}
		out = append(out, t.GetToken())
	}
	slices.SortFunc(out, func(a, b *tandemv1.ApiToken) int {
		if c := a.GetCreatedAt().AsTime().Compare(b.GetCreatedAt().AsTime()); c != 0 {
			return c
		}
		return cmp.Compare(a.GetTokenId(), b.GetTokenId())
	})
	return out, nil
}

// DeleteToken removes a token by id; ErrNotFound when there is none.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	if err := checkID("token id", id); err != nil {
		return err
	}
	n, err := deleteTokenScript.Run(ctx, s.rdb, tokenKeys(), id).Int()
	if err != nil {
		return fmt.Errorf("delete token %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	return nil
}
