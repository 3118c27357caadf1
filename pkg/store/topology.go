package store

// Redis topology: which client one Redis URL needs, and whether the Redis behind a client is
// one Tandem can keep its state in.
//
// A managed Redis Cluster (ElastiCache in cluster mode, Azure, Memorystore for Redis Cluster)
// is reached through one configuration endpoint. A client that takes one address for a single
// server would PING it happily and then fail every keyed command with MOVED; so one address
// is probed, never assumed, and the readiness check looks at the server's mode, not only at
// whether it answers.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// modeCheckInterval is how long a passed mode check stands. Readiness probes come every few
// seconds; the server's mode changes only by an operator's hand, and the PING on every probe
// still catches a server that went away.
const modeCheckInterval = 30 * time.Second

// OpenClient returns a client for rawURL (the syntax NewClient takes), discovering the
// topology of a single address instead of assuming it: it asks the server (INFO cluster,
// else CLUSTER INFO) and returns a *redis.ClusterClient seeded with that address when the
// server is a Redis Cluster node, as behind a managed cluster's configuration endpoint, and
// a *redis.Client otherwise. A cluster gets the URL's credentials, TLS setting and options;
// a database other than 0 in the URL is then an error, since Redis Cluster has only
// database 0. A comma-separated list is a Redis Cluster, as with NewClient, and is not
// probed. It fails if the server cannot be reached or refuses the credentials.
func OpenClient(ctx context.Context, rawURL string) (redis.UniversalClient, error) {
	if strings.Contains(rawURL, ",") {
		return NewClient(rawURL)
	}
	opts, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	// A cluster node refuses SELECT, which a client with a database number sends on every
	// new connection: probe database 0.
	probeOpts := *opts
	probeOpts.DB = 0
	probe := redis.NewClient(&probeOpts)
	isCluster, err := probeCluster(ctx, probe)
	if err != nil {
		_ = probe.Close()
		return nil, fmt.Errorf("probe redis at %s: %w", opts.Addr, err)
	}
	if !isCluster && opts.DB == 0 {
		return probe, nil
	}
	_ = probe.Close()
	if !isCluster {
		return redis.NewClient(opts), nil
	}
	switch {
	case opts.DB != 0:
		return nil, fmt.Errorf("redis at %s is a Redis Cluster node but the Redis URL %s names database %d: Redis Cluster has only database 0; drop /%d from the URL (TANDEM_REDIS_URL)",
			opts.Addr, redactURL(withScheme(rawURL)), opts.DB, opts.DB)
	case opts.Network == "unix":
		return nil, fmt.Errorf("redis at %s is a Redis Cluster node, which is reached over TCP: give its host:port in the Redis URL (TANDEM_REDIS_URL), not a unix socket", opts.Addr)
	}
	return redis.NewClusterClient(clusterOptions(opts, []string{opts.Addr})), nil
}

// probeCluster reports whether the server c talks to is a Redis Cluster node. INFO cluster
// answers on every Redis since cluster support exists; CLUSTER INFO is the fallback where
// INFO is refused or says nothing, and a server that refuses it too is not a cluster node.
func probeCluster(ctx context.Context, c *redis.Client) (bool, error) {
	info, err := c.Info(ctx, "cluster").Result()
	switch {
	case err == nil:
		if v, ok := infoFields(info)["cluster_enabled"]; ok {
			return v == "1", nil
		}
	case !isRefusal(err):
		return false, err
	}
	if _, err := c.ClusterInfo(ctx).Result(); err != nil {
		if !isRefusal(err) {
			return false, err
		}
		return false, nil // "cluster support disabled", or no CLUSTER command at all
	}
	return true, nil
}

// isRefusal reports whether err is a reply in which the server declined a command it does
// not know, has disabled, or does not let this user run — an answer, not a failure to get
// one. Credentials that are wrong and a dataset still loading are failures.
func isRefusal(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	return !redis.IsAuthError(err) && !redis.IsLoadingError(err)
}

// clusterOptions returns options for a Redis Cluster seeded with addrs, taking credentials,
// TLS and the URL's connection options from first.
func clusterOptions(first *redis.Options, addrs []string) *redis.ClusterOptions {
	c := &redis.ClusterOptions{
		Addrs:                   addrs,
		ClientName:              first.ClientName,
		Protocol:                first.Protocol,
		Username:                first.Username,
		Password:                first.Password,
		MaxRetries:              first.MaxRetries,
		MinRetryBackoff:         first.MinRetryBackoff,
		MaxRetryBackoff:         first.MaxRetryBackoff,
		DialTimeout:             first.DialTimeout,
		ReadTimeout:             first.ReadTimeout,
		WriteTimeout:            first.WriteTimeout,
		PoolFIFO:                first.PoolFIFO,
		PoolSize:                first.PoolSize,
		PoolTimeout:             first.PoolTimeout,
		MinIdleConns:            first.MinIdleConns,
		MaxIdleConns:            first.MaxIdleConns,
		MaxActiveConns:          first.MaxActiveConns,
		MaxConcurrentDials:      first.MaxConcurrentDials,
		PipelinePoolSize:        first.PipelinePoolSize,
		PipelineReadBufferSize:  first.PipelineReadBufferSize,
		PipelineWriteBufferSize: first.PipelineWriteBufferSize,
		ConnMaxIdleTime:         first.ConnMaxIdleTime,
		ConnMaxLifetime:         first.ConnMaxLifetime,
		ConnMaxLifetimeJitter:   first.ConnMaxLifetimeJitter,
	}
	if first.TLSConfig != nil {
		// ParseURL pins ServerName to the URL's host; each node must be verified against
		// its own name, which crypto/tls takes from the dialled address when it is empty.
		c.TLSConfig = first.TLSConfig.Clone()
		c.TLSConfig.ServerName = ""
		c.TLSConfig.MinVersion = max(c.TLSConfig.MinVersion, tls.VersionTLS12)
	}
	return c
}

// modeCache remembers until when the last passed mode check stands. A failed check is not
// remembered: the next probe looks again, so a fixed server is seen at once.
type modeCache struct {
	mu      sync.Mutex
	okUntil time.Time
}

func (m *modeCache) fresh(now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return now.Before(m.okUntil)
}

func (m *modeCache) passed(until time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.okUntil = until
}

// checkMode reports an error when the Redis behind rdb answers in a mode Tandem cannot keep
// its state in: a Redis Cluster node behind a client for a single server, a cluster that is
// down, a read-only replica, or a maxmemory-policy that evicts keys.
func checkMode(ctx context.Context, rdb redis.UniversalClient) error {
	if c, ok := rdb.(*redis.ClusterClient); ok {
		return checkCluster(ctx, c)
	}
	return checkNode(ctx, rdb, redisAddr(rdb), false)
}

// redisAddr names the server or servers rdb talks to, for error messages.
func redisAddr(rdb redis.UniversalClient) string {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().Addr
	case *redis.ClusterClient:
		return strings.Join(c.Options().Addrs, ",")
	}
	return "the configured address"
}

// checkCluster checks every master the client routes to, and that there is one.
func checkCluster(ctx context.Context, c *redis.ClusterClient) error {
	var (
		mu      sync.Mutex
		masters []string
		errs    []error
	)
	err := c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		addr := node.Options().Addr
		err := checkNode(ctx, node, addr, true)
		mu.Lock()
		defer mu.Unlock()
		masters = append(masters, addr)
		if err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	if err != nil {
		return explain(redisAddr(c), err)
	}
	if len(masters) == 0 {
		return errNoMaster(redisAddr(c))
	}
	// ForEachMaster runs them concurrently; report in a stable order.
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// checkNode checks one server: its cluster mode against the client's, a cluster's state, its
// role and its eviction policy. Commands the server refuses skip their check — managed
// services disable some — but a failure to reach it is an error.
func checkNode(ctx context.Context, c redis.Cmdable, addr string, clusterClient bool) error {
	info, err := c.Info(ctx).Result()
	var fields map[string]string
	switch {
	case err == nil:
		fields = infoFields(info)
	case !isRefusal(err):
		return explain(addr, fmt.Errorf("redis at %s: INFO: %w", addr, err))
	}

	switch enabled := fields["cluster_enabled"]; {
	case enabled == "1" && !clusterClient:
		return fmt.Errorf("redis at %s is a Redis Cluster node, but Tandem's client talks to it as a single server, so every key in another node's hash slots fails with MOVED: connect with store.Connect or store.OpenClient, which find a cluster from one address, or list the cluster's nodes comma-separated in TANDEM_REDIS_URL", addr)
	case enabled == "0" && clusterClient:
		return fmt.Errorf("redis at %s is a single server, not a Redis Cluster node, but the client treats it as a cluster: give TANDEM_REDIS_URL its one address", addr)
	}
	if clusterClient {
		ci, err := c.ClusterInfo(ctx).Result()
		switch {
		case err == nil:
			if cf := infoFields(ci); cf["cluster_state"] != "" && cf["cluster_state"] != "ok" {
				return fmt.Errorf("redis cluster node %s reports cluster_state:%s (%s of 16384 hash slots assigned, %s served): Tandem cannot read or write the slots that are down; fix the cluster so that every slot has a reachable master",
					addr, cf["cluster_state"], orUnknown(cf["cluster_slots_assigned"]), orUnknown(cf["cluster_slots_ok"]))
			}
		case !isRefusal(err):
			return explain(addr, fmt.Errorf("redis at %s: CLUSTER INFO: %w", addr, err))
		}
	}

	if role := fields["role"]; role == "slave" || role == "replica" {
		primary := "its primary"
		if h, p := fields["master_host"], fields["master_port"]; h != "" {
			primary = "the primary (" + h + ":" + p + ")"
		}
		return fmt.Errorf("redis at %s is a read-only replica: Tandem writes its state there and every write would fail with READONLY; point TANDEM_REDIS_URL at %s", addr, primary)
	}

	policy, err := evictionPolicy(ctx, c, fields)
	if err != nil {
		return explain(addr, fmt.Errorf("redis at %s: CONFIG GET maxmemory-policy: %w", addr, err))
	}
	if policy != "" && policy != "noeviction" {
		return fmt.Errorf("redis at %s: maxmemory-policy is %s: Tandem's state would be evicted when memory runs short; set maxmemory-policy noeviction (on a managed Redis, in its parameter group or configuration)", addr, policy)
	}
	return nil
}

// evictionPolicy returns the server's maxmemory-policy from CONFIG GET, or from INFO memory
// where CONFIG is refused (managed services often do), or "" if neither says.
func evictionPolicy(ctx context.Context, c redis.Cmdable, info map[string]string) (string, error) {
	conf, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	switch {
	case err == nil:
		if p := conf["maxmemory-policy"]; p != "" {
			return p, nil
		}
	case !isRefusal(err):
		return "", err
	}
	return info["maxmemory_policy"], nil
}

// explain adds what to change to a reply that shows the server is in a mode the client
// cannot use.
func explain(addr string, err error) error {
	switch {
	case err == nil:
		return nil
	case err.Error() == "redis: cluster has no nodes":
		// go-redis's (unexported) error when CLUSTER SLOTS named no node.
		return fmt.Errorf("%w: %w", err, errNoMaster(addr))
	case redis.HasErrorPrefix(err, "SELECT is not allowed in cluster mode"):
		return fmt.Errorf("%w: redis at %s is a Redis Cluster node, and Redis Cluster has only database 0; drop the database number from TANDEM_REDIS_URL", err, addr)
	case isMoved(err) || redis.HasErrorPrefix(err, "CLUSTERDOWN"):
		return fmt.Errorf("%w: redis at %s answers as a Redis Cluster node to a client for a single server; connect with store.Connect, which finds a cluster from one address, or list the cluster's nodes comma-separated in TANDEM_REDIS_URL", err, addr)
	case redis.IsReadOnlyError(err):
		return fmt.Errorf("%w: redis at %s is a read-only replica; point TANDEM_REDIS_URL at the primary", err, addr)
	case redis.HasErrorPrefix(err, "This instance has cluster support disabled"):
		return fmt.Errorf("%w: redis at %s is a single server, not a Redis Cluster, but TANDEM_REDIS_URL lists several addresses (a cluster); give the server's one address", err, addr)
	}
	return err
}

// errNoMaster says that no node serves a hash slot, as in a cluster whose slots were never
// assigned.
func errNoMaster(addr string) error {
	return fmt.Errorf("redis cluster at %s has no master serving hash slots (CLUSTER SLOTS is empty): assign the slots (CLUSTER ADDSLOTS, or the managed service's shard settings)", addr)
}

func isMoved(err error) bool {
	_, moved := redis.IsMovedError(err)
	_, ask := redis.IsAskError(err)
	return moved || ask
}

// infoFields parses the "name:value" lines of an INFO or CLUSTER INFO reply.
func infoFields(info string) map[string]string {
	fields := make(map[string]string)
	for line := range strings.SplitSeq(info, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if name, value, ok := strings.Cut(line, ":"); ok {
			fields[name] = value
		}
	}
	return fields
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// withScheme gives a bare host:port the redis:// scheme, as parseURL reads it.
func withScheme(raw string) string {
	raw = strings.TrimSpace(raw)
	if !strings.Contains(raw, "://") {
		return "redis://" + raw
	}
	return raw
}
