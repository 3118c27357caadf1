package servertest

import (
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
