package servertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tandem-sync/tandem/pkg/devkit/localredis"
)

// RedisServer starts a redis-server process on a free loopback port with its data in
// t.TempDir() and stops it when the test ends. It fails the test if redis-server is not
// installed: CI installs it, and the embedded fallback would hide behaviour of the real server.
func RedisServer(t testing.TB) *localredis.Server {
	t.Helper()
	srv, err := localredis.Start(t.Context(), localredis.Options{Dir: t.TempDir(), AppendOnly: true})
	if err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("stop redis-server: %v", err)
		}
	})
	return srv
}

// Redis starts a redis-server as RedisServer does and returns a client for it; the client is
// closed, then the server stopped, when the test ends.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	srv := RedisServer(t)
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatalf("parse redis URL %s: %v", srv.URL(), err)
	}
	client := redis.NewClient(opts)
	// Registered after the server's cleanup, so it runs first: close the client, then stop
	// the server.
	t.Cleanup(func() { _ = client.Close() })
	if err := client.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("ping redis-server %s: %v", srv.Addr(), err)
	}
	return client
}

// Fataler is the part of testing.TB (or a property-test runner's T) that Snapshot uses.
type Fataler interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// Snapshot renders every key matching pattern, with its type and content, so that tests can
// check that a refused commit changed nothing.
func Snapshot(ctx context.Context, t Fataler, rdb redis.UniversalClient, pattern string) map[string]string {
	t.Helper()
	keys, err := rdb.Keys(ctx, pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var content string
		switch typ {
		case "string":
			content, err = rdb.Get(ctx, k).Result()
		case "hash":
			var m map[string]string
			m, err = rdb.HGetAll(ctx, k).Result()
			content = sortedMap(m)
		case "set":
			var ms []string
			ms, err = rdb.SMembers(ctx, k).Result()
			slices.Sort(ms)
			content = strings.Join(ms, ",")
		case "zset":
			var zs []redis.Z
			zs, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
			parts := make([]string, 0, len(zs))
			for _, z := range zs {
				parts = append(parts, fmt.Sprintf("%v=%g", z.Member, z.Score))
			}
			content = strings.Join(parts, ",")
		default:
			t.Fatalf("key %s has unexpected type %s", k, typ)
		}
		if err != nil {
			t.Fatal(err)
		}
		out[k] = typ + ":" + content
	}
	return out
}

func sortedMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}
