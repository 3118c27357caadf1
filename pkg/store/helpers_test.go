package store

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tandem-sync/tandem/pkg/devkit/localredis"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/seal"
)

// backend is a Redis the store tests run against.
type backend struct {
	name  string
	start func(t *testing.T) redis.UniversalClient
}

var (
	redisServer = backend{name: "redis-server", start: func(t *testing.T) redis.UniversalClient {
		return servertest.Redis(t)
	}}
	// miniRedis is the fallback `tandem dev` uses without redis-server; the store's scripts
	// must run on it.
	miniRedis = backend{name: "miniredis", start: func(t *testing.T) redis.UniversalClient {
		srv, err := localredis.StartEmbedded(localredis.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		opts, err := redis.ParseURL(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opts)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}}
)

// onBoth runs fn as a subtest against redis-server and against the miniredis fallback.
func onBoth(t *testing.T, fn func(t *testing.T, rdb redis.UniversalClient)) {
	t.Helper()
	for _, b := range []backend{redisServer, miniRedis} {
		t.Run(b.name, func(t *testing.T) { fn(t, b.start(t)) })
	}
}

func testKeyring(t testing.TB) *seal.Keyring {
	t.Helper()
	kr, err := seal.NewKeyring(bytes.Repeat([]byte{0x42}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func newTestStore(t testing.TB, rdb redis.UniversalClient, opts ...Option) *Store {
	t.Helper()
	return New(rdb, testKeyring(t), opts...)
}

// fakeClock is a settable clock for the store's timestamps.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fataler is what snapshot needs of a *testing.T or a *rapid.T.
type fataler = servertest.Fataler

// snapshot renders every key matching pattern, with its type and content, so that tests can
// check that a refused commit changed nothing.
func snapshot(ctx context.Context, t fataler, rdb redis.UniversalClient, pattern string) map[string]string {
	t.Helper()
	return servertest.Snapshot(ctx, t, rdb, pattern)
}
