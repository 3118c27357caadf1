package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// OrgCache keeps one value per org built from the org's settings — a connector with its tokens
// and caches — and builds it again when the settings change. The settings are read on every
// Get (one Redis round trip), so a changed credential takes effect at the next use.
type OrgCache[T any] struct {
	st    *Store
	build func(*tandemv1.Org) (T, error)

	mu      sync.Mutex
	entries map[string]orgCacheEntry[T]
}

type orgCacheEntry[T any] struct {
	version [sha256.Size]byte
	value   T
}

// NewOrgCache returns a cache that builds values with build.
func NewOrgCache[T any](st *Store, build func(*tandemv1.Org) (T, error)) *OrgCache[T] {
	return &OrgCache[T]{st: st, build: build, entries: map[string]orgCacheEntry[T]{}}
}

// Get returns the org's value and settings (secrets opened), building the value when the org is
// new to the cache or its settings changed.
func (c *OrgCache[T]) Get(ctx context.Context, orgID string) (T, *tandemv1.Org, error) {
	var zero T
	org, err := c.st.GetOrg(ctx, orgID)
	if err != nil {
		return zero, nil, err
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(org)
	if err != nil {
		return zero, nil, fmt.Errorf("org %s: %w", orgID, err)
	}
	version := sha256.Sum256(raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[orgID]; ok && e.version == version {
		return e.value, org, nil
	}
	v, err := c.build(org)
	if err != nil {
		return zero, nil, err
	}
	c.entries[orgID] = orgCacheEntry[T]{version: version, value: v}
	return v, org, nil
}
