// Package store is Tandem's state in Redis: orgs and their sealed credentials, sync
// configurations, the user directory, cursors, the sync error report and reset marks, and
// the two primitives every service builds on — per-user leases with fencing tokens, and
// fenced atomic commits that a process which lost its lease cannot make.
//
// It talks to Redis through redis.UniversalClient and keeps every multi-key operation inside
// one hash slot (see keys.go), so the same code runs on a single Redis and on Redis Cluster.
// Values are protobuf-marshalled.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tandem-sync/tandem/pkg/seal"
)

// Errors shared by the repositories.
var (
	// ErrNotFound means the org, configuration, user, cursor or report entry does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNoKeyring means a secret had to be sealed or opened by a Store built without a keyring.
	ErrNoKeyring = errors.New("store has no seal keyring")
)

// DefaultErrorReportLimit is how many error-report entries an org keeps by default; the
// oldest are dropped beyond it.
const DefaultErrorReportLimit = 10000

// Store is Tandem's Redis state. It is safe for concurrent use.
type Store struct {
	rdb         redis.UniversalClient
	keyring     *seal.Keyring
	now         func() time.Time
	reportLimit int
	mode        *modeCache
}

// Option configures a Store.
type Option func(*Store)

// WithClock makes the Store read time from now instead of time.Now (for tests).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithErrorReportLimit bounds each org's error report to n entries (n > 0).
func WithErrorReportLimit(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.reportLimit = n
		}
	}
}

// New returns a Store on rdb. keyring seals and opens org secrets; it may be nil for
// services that never touch them, which then get ErrNoKeyring if they try.
func New(rdb redis.UniversalClient, keyring *seal.Keyring, opts ...Option) *Store {
	s := &Store{rdb: rdb, keyring: keyring, now: time.Now, reportLimit: DefaultErrorReportLimit, mode: &modeCache{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Connect opens a client for rawURL with OpenClient — one address is probed, and a Redis
// Cluster node gets a cluster client — checks it with Ping and returns a Store on it. It fails
// when Redis cannot be reached or answers in a mode Tandem cannot keep its state in (see
// Ping), so that a service does not start on a Redis that would lose or refuse its writes.
// The Store owns the client: Close closes it.
func Connect(ctx context.Context, rawURL string, keyring *seal.Keyring, opts ...Option) (*Store, error) {
	rdb, err := OpenClient(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	s := New(rdb, keyring, opts...)
	if err := s.Ping(ctx); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return s, nil
}

// NewClient returns a client for rawURL without contacting Redis: a redis:// or rediss://
// URL (redis://[user:password@]host:port/db) for a single server, or a comma-separated list
// of them (or of bare host:port addresses) for a Redis Cluster, whose nodes share the first
// URL's credentials, TLS setting and options. Errors never show a password.
//
// It does not discover the topology: one address always gets a client for a single server,
// which against a Redis Cluster's configuration endpoint fails every keyed command with
// MOVED. Services connect with Connect (or OpenClient); NewClient is for a Redis whose
// topology the caller knows, such as the one `tandem dev` starts.
func NewClient(rawURL string) (redis.UniversalClient, error) {
	parts := strings.Split(strings.TrimSpace(rawURL), ",")
	if len(parts) == 1 {
		opts, err := parseURL(parts[0])
		if err != nil {
			return nil, err
		}
		return redis.NewClient(opts), nil
	}
	var (
		first *redis.Options
		addrs []string
	)
	for i, p := range parts {
		opts, err := parseURL(p)
		if err != nil {
			return nil, fmt.Errorf("cluster address %d: %w", i+1, err)
		}
		if opts.DB != 0 {
			return nil, fmt.Errorf("cluster address %d (%s): Redis Cluster has only database 0", i+1, redactURL(p))
		}
		if i == 0 {
			first = opts
		} else if (opts.TLSConfig == nil) != (first.TLSConfig == nil) {
			return nil, fmt.Errorf("cluster address %d (%s): mixes redis:// and rediss://", i+1, redactURL(p))
		}
		addrs = append(addrs, opts.Addr)
	}
	return redis.NewClusterClient(clusterOptions(first, addrs)), nil
}

func parseURL(raw string) (*redis.Options, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, errors.New("parse redis URL: empty")
	}
	if !strings.Contains(raw, "://") {
		raw = "redis://" + raw
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		// go-redis errors can quote the URL; say what is wrong without the password.
		return nil, fmt.Errorf("parse redis URL %s: %w", redactURL(raw), errors.New(redactErr(err, raw)))
	}
	return opts, nil
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func redactErr(err error, raw string) string {
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}

// Ping checks that Redis answers and is a Redis Tandem can keep its state in, for readiness
// probes. It fails, saying what to change, when a client for a single server talks to a Redis
// Cluster node (every keyed command would fail with MOVED), when a cluster reports
// cluster_state other than ok or has no master, when the server is a read-only replica, and
// when its maxmemory-policy is anything but noeviction (Tandem's ledger must never be
// evicted). The policy comes from CONFIG GET, or from INFO memory where CONFIG is refused;
// checks whose commands the server refuses are skipped. The PING runs on every call; a passed
// mode check stands for 30 s, a failed one is repeated on the next call.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis: %w", explain(redisAddr(s.rdb), err))
	}
	if s.mode.fresh(s.now()) {
		return nil
	}
	if err := checkMode(ctx, s.rdb); err != nil {
		return err
	}
	s.mode.passed(s.now().Add(modeCheckInterval))
	return nil
}

// Client returns the underlying client, for packages that read their own keys (built with
// UserKey.Key). Writes that must be fenced go through Commit.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Close closes the client.
func (s *Store) Close() error { return s.rdb.Close() }
