package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tandem-sync/tandem/pkg/devkit/localredis"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
)

// startRedis starts a redis-server with further options (see localredis.Options.Args) and
// stops it when the test ends. It fails the test if redis-server is not installed.
func startRedis(t *testing.T, args ...string) *localredis.Server {
	t.Helper()
	srv, err := localredis.Start(t.Context(), localredis.Options{Dir: t.TempDir(), AppendOnly: true, Args: args})
	if err != nil {
		t.Fatalf("start redis-server %v: %v", args, err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("stop redis-server: %v", err)
		}
	})
	return srv
}

// plainClient is a client for a single server at addr, built directly: what NewClient gave
// for one address before topology was discovered.
func plainClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// startClusterNode starts a redis-server in cluster mode, alone in its cluster, assigns it
// the hash slots first..last (none if last < first) and, when it then serves all 16384,
// waits until it reports cluster_state:ok.
func startClusterNode(t *testing.T, first, last int) *localredis.Server {
	t.Helper()
	srv := startRedis(t,
		"--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(t.TempDir(), "nodes.conf"),
		// A node alone in its cluster never learnt its address from a peer and would
		// announce an empty host; a real cluster's nodes announce theirs.
		"--cluster-announce-ip", "127.0.0.1",
	)
	c := plainClient(t, srv.Addr())
	ctx := t.Context()
	if last >= first {
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE %d %d: %v", first, last, err)
		}
	}
	if first == 0 && last == 16383 {
		poll.Within(t, time.Minute, "the one-node cluster to report cluster_state:ok", func() bool {
			info, err := c.ClusterInfo(ctx).Result()
			return err == nil && infoFields(info)["cluster_state"] == "ok"
		})
	}
	return srv
}

func TestConnectDiscoversTopology(t *testing.T) {
	cluster := startClusterNode(t, 0, 16383)
	single := startRedis(t)
	ctx := t.Context()

	tests := []struct {
		name        string
		url         string
		wantCluster bool
	}{
		{"one cluster address", cluster.URL(), true},
		{"one bare cluster address", cluster.Addr(), true},
		{"standalone", single.URL(), false},
		{"standalone database 3", "redis://" + single.Addr() + "/3", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Connect(ctx, tc.url, testKeyring(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, isCluster := s.Client().(*redis.ClusterClient); isCluster != tc.wantCluster {
				t.Fatalf("client is %T, want cluster %v", s.Client(), tc.wantCluster)
			}
			// Keys of different hash slots: a client for a single server talking to a
			// cluster node would get MOVED for most of them.
			rdb := s.Client()
			slots := make(map[int64]bool)
			for i := range 8 {
				key := fmt.Sprintf("topology-test:{org-%d}", i)
				if err := rdb.Set(ctx, key, i, 0).Err(); err != nil {
					t.Fatalf("SET %s: %v", key, err)
				}
				got, err := rdb.Get(ctx, key).Int()
				if err != nil || got != i {
					t.Fatalf("GET %s = %d, %v; want %d", key, got, err, i)
				}
				if tc.wantCluster {
					slot, err := rdb.ClusterKeySlot(ctx, key).Result()
					if err != nil {
						t.Fatal(err)
					}
					slots[slot] = true
				}
			}
			if tc.wantCluster && len(slots) < 2 {
				t.Fatalf("the keys fell in %d hash slot(s); the test needs several", len(slots))
			}
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		})
	}

	t.Run("database with one cluster address", func(t *testing.T) {
		s, err := Connect(ctx, "redis://"+cluster.Addr()+"/2", testKeyring(t))
		if err == nil {
			_ = s.Close()
			t.Fatal("Connect succeeded")
		}
		if !strings.Contains(err.Error(), "Redis Cluster has only database 0") {
			t.Fatalf("error does not say Redis Cluster has only database 0: %v", err)
		}
	})
}

func TestPingRefusesUnusableRedis(t *testing.T) {
	ctx := t.Context()
	primary := startRedis(t)
	clusterNode := startClusterNode(t, 0, 16383)
	halfCluster := startClusterNode(t, 0, 8191)
	emptyCluster := startClusterNode(t, 0, -1)
	replica := startRedis(t, "--replicaof", "127.0.0.1", strings.TrimPrefix(primary.Addr(), "127.0.0.1:"))
	evicting := startRedis(t, "--maxmemory-policy", "allkeys-lru")
	// Managed services refuse CONFIG: the policy must then come from INFO memory.
	noConfig := startRedis(t, "--maxmemory-policy", "volatile-lru", "--rename-command", "CONFIG", "")

	clusterClient := func(addrs ...string) redis.UniversalClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	tests := []struct {
		name string
		rdb  redis.UniversalClient
		// url, if set, is also given to Connect, which must fail with the same message.
		url  string
		want []string
	}{
		{
			name: "single-server client on a cluster node",
			rdb:  plainClient(t, clusterNode.Addr()),
			want: []string{clusterNode.Addr(), "is a Redis Cluster node", "MOVED", "TANDEM_REDIS_URL"},
		},
		{
			name: "cluster with slots not served",
			rdb:  clusterClient(halfCluster.Addr()),
			url:  halfCluster.URL(),
			want: []string{"cluster_state:fail", "8192 of 16384"},
		},
		{
			name: "cluster without a master",
			rdb:  clusterClient(emptyCluster.Addr()),
			url:  emptyCluster.URL(),
			want: []string{"no master serving hash slots", "assign the slots"},
		},
		{
			name: "cluster client on a single server",
			rdb:  clusterClient(primary.Addr(), primary.Addr()),
			url:  primary.Addr() + "," + primary.Addr(),
			want: []string{"not a Redis Cluster", "one address"},
		},
		{
			name: "replica",
			rdb:  plainClient(t, replica.Addr()),
			url:  replica.URL(),
			want: []string{replica.Addr(), "read-only replica", primary.Addr()},
		},
		{
			name: "evicting policy",
			rdb:  plainClient(t, evicting.Addr()),
			url:  evicting.URL(),
			want: []string{"maxmemory-policy is allkeys-lru", "would be evicted", "set maxmemory-policy noeviction"},
		},
		{
			name: "evicting policy, CONFIG refused",
			rdb:  plainClient(t, noConfig.Addr()),
			url:  noConfig.URL(),
			want: []string{"maxmemory-policy is volatile-lru", "set maxmemory-policy noeviction"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s succeeded", what)
				}
				t.Logf("%s: %v", what, err)
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s error does not mention %q: %v", what, w, err)
					}
				}
			}
			s := newTestStore(t, tc.rdb)
			check("Ping", s.Ping(ctx))
			// A failed check is not cached: the next probe says the same.
			check("second Ping", s.Ping(ctx))
			if tc.url != "" {
				s, err := Connect(ctx, tc.url, testKeyring(t))
				if err == nil {
					_ = s.Close()
				}
				check("Connect", err)
			}
		})
	}
}

func TestPingCachesModeCheck(t *testing.T) {
	ctx := t.Context()
	srv := startRedis(t)
	rdb := plainClient(t, srv.Addr())
	clock := newFakeClock()
	s := newTestStore(t, rdb, WithClock(clock.Now))
	setPolicy := func(p string) {
		t.Helper()
		if err := rdb.ConfigSet(ctx, "maxmemory-policy", p).Err(); err != nil {
			t.Fatal(err)
		}
	}

	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	setPolicy("allkeys-lru")
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping within the check interval looked again: %v", err)
	}
	clock.Advance(modeCheckInterval)
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "allkeys-lru") {
		t.Fatalf("Ping after the check interval = %v, want the eviction error", err)
	}
	setPolicy("noeviction")
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after the fix: %v", err)
	}

	// The PING itself runs every time, cache or not.
	if err := rdb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping on a closed client succeeded")
	}
}

// The embedded fallback answers neither INFO's sections nor CONFIG nor CLUSTER INFO: the
// checks it refuses are skipped, not failed.
func TestConnectOnMiniredis(t *testing.T) {
	srv, err := localredis.StartEmbedded(localredis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ctx := t.Context()
	s, err := Connect(ctx, srv.URL(), testKeyring(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.Client().(*redis.Client); !ok {
		t.Fatalf("client is %T, want *redis.Client", s.Client())
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOpenClientErrors(t *testing.T) {
	const password = "s3cret-pa55"
	short, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	for _, url := range []string{
		"http://user:" + password + "@n1:7000",
		"redis://:" + password + "@127.0.0.1:1/0", // nothing listens on port 1
	} {
		c, err := OpenClient(short, url)
		if err == nil {
			_ = c.Close()
			t.Fatalf("OpenClient(%s) succeeded", url)
		}
		if strings.Contains(err.Error(), password) {
			t.Fatalf("error shows the password: %v", err)
		}
	}
}
