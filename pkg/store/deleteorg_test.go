package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Orgs of the DeleteOrg tests. The id of the other org begins with the deleted one's, so a
// pattern that is too loose would take its keys too.
const (
	doomedOrg   = "00Ddoomed"
	neighborOrg = "00Ddoomed2"
)

// orgState is what fillOrg leaves in flight: a user's reconcile lease and the org's watch
// lease, as a reconciler and a watcher would hold them.
type orgState struct {
	userLease  *Lease
	watchLease *Lease
	users      []UserKey
}

// fillOrg stores, for orgID, a key of every kind the layout in keys.go lists: settings with a
// sealed secret, a configuration, users and their email index, a reset mark, org and user
// cursors (with bulk, more than one SCAN page of them), error-report entries, activity, the schedule, a
// watch lease, and per user a lease, a ledger for each kind, a status, a recovery request and
// a worker's sync state.
func fillOrg(t *testing.T, s *Store, orgID string, bulk bool) orgState {
	t.Helper()
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.PutOrg(ctx, &tandemv1.Org{OrgId: orgID, Name: "Acme", Enabled: true,
		Exchange: &tandemv1.ExchangeConnection{ServiceAccount: "svc@acme.example", Password: "pw"}})
	must(err)
	var st orgState
	var users []*tandemv1.SyncUser
	for i := range 3 {
		id := fmt.Sprintf("005u%d", i)
		users = append(users, &tandemv1.SyncUser{UserId: id, Email: id + "@acme.example", Active: true})
		st.users = append(st.users, UserKey{OrgID: orgID, UserID: id})
	}
	must(s.PutUsers(ctx, orgID, users))
	_, err = s.PutConfiguration(ctx, orgID, &tandemv1.SyncConfiguration{Name: "reps", Active: true, UserIds: []string{"005u0", "005u1"},
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH}})
	must(err)
	must(s.MarkReset(ctx, st.users[0]))
	must(s.PutCursor(ctx, CursorKey{Org: orgID, Name: "salesforce-contact"}, "watermark"))
	_, err = s.RecordError(ctx, orgID, "", tandemv1.RecordKind_RECORD_KIND_UNSPECIFIED, &tandemv1.SyncError{Code: "SALESFORCE_API_LIMIT", Message: "limit"})
	must(err)
	must(s.AddActivity(ctx, orgID, "contact", 5, time.Now()))
	_, _, err = s.ClaimCycle(ctx, orgID, time.Now(), time.Now().Add(time.Hour))
	must(err)
	st.watchLease, err = s.AcquireWatchLease(ctx, orgID, "watch-exchange", time.Minute)
	must(err)
	if bulk {
		// More org keys than one SCAN page holds, and than one UNLINK takes.
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range 2*scanCount + 100 {
				p.Set(ctx, orgKey(orgID, orgCursorName, "c"+strconv.Itoa(i)), "x", 0)
			}
			return nil
		})
		must(err)
	}

	for i, uk := range st.users {
		must(s.PutCursor(ctx, CursorKey{Org: orgID, User: uk.UserID, Name: "exchange-contact"}, "syncstate"))
		must(s.RequestFullRead(ctx, uk, FullReadKey{Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT, Side: tandemv1.System_SYSTEM_EXCHANGE}, 3))
		_, err = s.RecordError(ctx, orgID, uk.UserID, tandemv1.RecordKind_RECORD_KIND_CONTACT, &tandemv1.SyncError{Code: "SALESFORCE_STRING_TOO_LONG", Message: "too long", RecordId: "003x"})
		must(err)
		lease, err := s.AcquireLease(ctx, uk, "reconcile", time.Minute)
		must(err)
		var ops []Op
		for _, kind := range []string{"contact", "event"} {
			ops = append(ops,
				HSet(userKey(t, uk, "mirror", "exchange", kind), "AAMk1", "m"),
				HSet(userKey(t, uk, "mirror", "salesforce", kind), "003x", "m"),
				HSet(userKey(t, uk, "mappings", kind), "sk1", "m"),
				HSet(userKey(t, uk, "pending", kind), "exchange:sk1", "p"),
				HSet(userKey(t, uk, "rejected", kind), "salesforce:sk2", "r"),
				SAdd(userKey(t, uk, "tombstones", kind), "exchange:AAMk9"),
				HSet(userKey(t, uk, "held", kind), "hold1", "h"),
				HSet(userKey(t, uk, "cycle", kind), "epoch", "1"),
				SAdd(userKey(t, uk, "unseen", kind), "AAMk1"),
			)
		}
		ops = append(ops,
			HSet(userKey(t, uk, "status"), "scheduler", "s"),
			Set(userKey(t, uk, "syncstate", "exchange-create", "h1"), "1", time.Hour),
		)
		must(s.Commit(ctx, lease, ops...))
		if i == 0 {
			st.userLease = lease
		}
	}
	return st
}

// allKeys returns every key of rdb, of every master of a cluster.
func allKeys(t *testing.T, rdb redis.UniversalClient) []string {
	t.Helper()
	ctx := t.Context()
	var (
		mu   sync.Mutex
		keys []string
	)
	collect := func(ctx context.Context, node redis.Cmdable) error {
		ks, err := node.Keys(ctx, "*").Result()
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return collect(ctx, node) })
	} else {
		err = collect(ctx, rdb)
	}
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// dump renders keys with their types and contents, on a single Redis or a cluster.
func dump(t *testing.T, rdb redis.UniversalClient, keys []string) map[string]string {
	t.Helper()
	ctx := t.Context()
	types := make([]*redis.StatusCmd, len(keys))
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			types[i] = p.Type(ctx, k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	contents := make([]redis.Cmder, len(keys))
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			switch typ := types[i].Val(); typ {
			case "string":
				contents[i] = p.Get(ctx, k)
			case "hash":
				contents[i] = p.HGetAll(ctx, k)
			case "set":
				contents[i] = p.SMembers(ctx, k)
			case "zset":
				contents[i] = p.ZRangeWithScores(ctx, k, 0, -1)
			default:
				t.Fatalf("key %s has unexpected type %s", k, typ)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(keys))
	for i, k := range keys {
		var content any
		switch c := contents[i].(type) {
		case *redis.StringCmd:
			content = c.Val()
		case *redis.MapStringStringCmd:
			content = c.Val()
		case *redis.StringSliceCmd:
			ms := c.Val()
			slices.Sort(ms)
			content = ms
		case *redis.ZSliceCmd:
			content = c.Val()
		}
		out[k] = types[i].Val() + ":" + fmt.Sprint(content)
	}
	return out
}

// ofOrg reports whether key belongs to org or one of its users, by its hash tag alone.
func ofOrg(org, key string) bool {
	return strings.Contains(key, "{"+org+"}") || strings.Contains(key, "{"+org+":")
}

// testDeleteOrg fills two orgs, deletes one, and checks that nothing of it is left, that the
// other is untouched, and that the deleted org's leases are dead.
func testDeleteOrg(t *testing.T, rdb redis.UniversalClient) {
	ctx := t.Context()
	s := newTestStore(t, rdb)
	doomed := fillOrg(t, s, doomedOrg, true)
	fillOrg(t, s, neighborOrg, false)
	if err := s.PutToken(ctx, &tandemv1.StoredToken{Token: &tandemv1.ApiToken{TokenId: "tok1", Role: tandemv1.Role_ROLE_ADMIN, OrgIds: []string{doomedOrg}},
		SecretSha256: strings.Repeat("ab", 32)}); err != nil {
		t.Fatal(err)
	}
	// What is not the doomed org's is compared in full before and after; what is, counted.
	var doomedKeys int
	others := slices.DeleteFunc(allKeys(t, rdb), func(k string) bool {
		if ofOrg(doomedOrg, k) {
			doomedKeys++
			return true
		}
		return false
	})
	want := dump(t, rdb, others)

	n, err := s.DeleteOrg(ctx, doomedOrg)
	if err != nil {
		t.Fatalf("DeleteOrg: %v", err)
	}
	if n != int64(doomedKeys) {
		t.Errorf("DeleteOrg deleted %d keys, want %d", n, doomedKeys)
	}
	after := dump(t, rdb, allKeys(t, rdb))
	// The index loses the org and nothing else.
	want[orgIndexKey()] = "set:" + fmt.Sprint([]string{neighborOrg})
	for k, v := range after {
		if ofOrg(doomedOrg, k) {
			t.Errorf("key %s of the deleted org remains", k)
			continue
		}
		if want[k] != v {
			t.Errorf("key %s changed:\n  was %s\n  now %s", k, want[k], v)
		}
	}
	for k := range want {
		if _, ok := after[k]; !ok {
			t.Errorf("key %s, not the deleted org's, is gone", k)
		}
	}

	if _, err := s.GetOrgRedacted(ctx, doomedOrg); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetOrg after DeleteOrg: %v, want ErrNotFound", err)
	}
	orgs, err := s.ListOrgs(ctx)
	if err != nil || len(orgs) != 1 || orgs[0].GetOrgId() != neighborOrg {
		t.Errorf("ListOrgs after DeleteOrg = %v, %v; want only %s", orgs, err, neighborOrg)
	}
	// A reconciler that held a lease of the org commits nothing more; its renewals fail.
	status := userKey(t, doomed.users[0], "status")
	if err := s.Commit(ctx, doomed.userLease, HSet(status, "reconciler", "late")); !errors.Is(err, ErrStaleLease) {
		t.Errorf("commit under a lease of the deleted org: %v, want ErrStaleLease", err)
	}
	if err := doomed.userLease.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("renew a lease of the deleted org: %v, want ErrLeaseLost", err)
	}
	if err := doomed.watchLease.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("renew the deleted org's watch lease: %v, want ErrLeaseLost", err)
	}
	if n, err := s.DeleteOrg(ctx, doomedOrg); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteOrg: %d, %v; want ErrNotFound", n, err)
	}

	// A status written late, best effort, by work in flight: the next DeleteOrg removes it.
	if err := rdb.HSet(ctx, status, "exchange", "late").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteOrg(ctx, doomedOrg); err != nil || n != 1 {
		t.Errorf("DeleteOrg of a stray key: %d, %v; want 1 key deleted", n, err)
	}
	if n, err := s.DeleteOrg(ctx, doomedOrg); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteOrg after the strays: %d, %v; want ErrNotFound", n, err)
	}
}

func TestDeleteOrg(t *testing.T) {
	onBoth(t, testDeleteOrg)
}

func TestDeleteOrgOnCluster(t *testing.T) {
	rdb := startCluster(t, 3)
	// The test means something only if the orgs' keys are spread over the masters.
	s := newTestStore(t, rdb)
	fillOrg(t, s, "00Dspread", false)
	var (
		mu    sync.Mutex
		holds int
	)
	if err := rdb.ForEachMaster(t.Context(), func(ctx context.Context, node *redis.Client) error {
		n, err := node.DBSize(ctx).Result()
		if n > 0 {
			mu.Lock()
			holds++
			mu.Unlock()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if holds < 2 {
		t.Fatalf("the keys are on %d master(s); the test needs several", holds)
	}
	if _, err := s.DeleteOrg(t.Context(), "00Dspread"); err != nil {
		t.Fatal(err)
	}
	testDeleteOrg(t, rdb)
}

func TestDeleteOrgErrors(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t, redisServer.start(t))
	if _, err := s.DeleteOrg(ctx, "00Dnever"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteOrg of an unknown org: %v, want ErrNotFound", err)
	}
	for _, id := range []string{"", "a:b", "a*", "a}b", "a[b]"} {
		if _, err := s.DeleteOrg(ctx, id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("DeleteOrg(%q): %v, want ErrInvalidID", id, err)
		}
	}
}

// No org may be named "global", the tag of the keys that span orgs; and deleting "global" never
// deletes the org index, the tokens or the mailbox claims.
func TestDeleteOrgNamedGlobal(t *testing.T) {
	ctx := t.Context()
	rdb := redisServer.start(t)
	s := newTestStore(t, rdb)
	if _, err := s.PutOrg(ctx, &tandemv1.Org{OrgId: globalTag}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("PutOrg(global): %v, want it refused", err)
	}
	fillOrg(t, s, neighborOrg, false)
	if err := s.PutToken(ctx, &tandemv1.StoredToken{Token: &tandemv1.ApiToken{TokenId: "tok1", Role: tandemv1.Role_ROLE_OPERATOR},
		SecretSha256: strings.Repeat("ab", 32)}); err != nil {
		t.Fatal(err)
	}
	before := allKeys(t, rdb)
	if _, err := s.DeleteOrg(ctx, globalTag); err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if after := allKeys(t, rdb); !slices.Equal(after, before) {
		t.Errorf("deleting the org named global deleted keys: before %v, after %v", before, after)
	}
	if toks, err := s.ListTokens(ctx); err != nil || len(toks) != 1 {
		t.Errorf("tokens after deleting the org named global: %v, %v", toks, err)
	}
}

func TestGlobEscape(t *testing.T) {
	ctx := t.Context()
	rdb := redisServer.start(t)
	literal := `a*b?c[d]e\f{g}`
	for _, k := range []string{literal, "aXbYc[d]e\\f{g}", "a*b?cde\\f{g}", "a*b?cd e"} {
		if err := rdb.Set(ctx, k, "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := rdb.Keys(ctx, globEscape(literal)).Result()
	if err != nil || !slices.Equal(got, []string{literal}) {
		t.Fatalf("KEYS %s = %v, %v; want only %q", globEscape(literal), got, err, literal)
	}
	if e := globEscape("00D_x-1"); e != "00D_x-1" {
		t.Errorf("globEscape of an id = %q, want it unchanged", e)
	}
}

func TestOwnsKey(t *testing.T) {
	for _, tc := range []struct {
		org, key string
		want     bool
	}{
		{"O", "tandem:{O}:configs", true},
		{"O", "tandem:{O:U}:status", true},
		{"O", "tandem:{O2}:configs", false},
		{"O", "tandem:{O2:U}:status", false},
		{"O", "tandem:{global}:orgs", false},
		{"O", "other:{O}:configs", false},
		{"global", "tandem:{global}:orgs", false},
		{"global", "tandem:{global}:tokens", false},
		{"global", "tandem:{global}:tokens:id", false},
		{"global", "tandem:{global}:org", true},
		{"global", "tandem:{global}:users:email", true},
		{"global", "tandem:{global}:cursor:salesforce-contact", true},
		{"global", "tandem:{global}:errors:user:U", true},
		{"global", "tandem:{global}:lease:watch-exchange", true},
		{"global", "tandem:{global:U}:status", true},
	} {
		if got := ownsKey(tc.org, tc.key); got != tc.want {
			t.Errorf("ownsKey(%q, %q) = %v, want %v", tc.org, tc.key, got, tc.want)
		}
	}
}

// startCluster starts a Redis Cluster of n masters sharing the hash slots and returns a
// cluster client for it.
func startCluster(t *testing.T, n int) *redis.ClusterClient {
	t.Helper()
	ctx := t.Context()
	var (
		addrs []string
		buses []int
		nodes []*redis.Client
	)
	for i := range n {
		// The cluster bus port is chosen too: the default, the port plus 10000, may be taken
		// or beyond 65535.
		bus := freeTCPPort(t)
		srv := startRedis(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(t.TempDir(), "nodes.conf"),
			"--cluster-announce-ip", "127.0.0.1",
			"--cluster-port", strconv.Itoa(bus),
		)
		c := plainClient(t, srv.Addr())
		first, last := i*16384/n, (i+1)*16384/n-1
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE %d %d: %v", first, last, err)
		}
		addrs, buses, nodes = append(addrs, srv.Addr()), append(buses, bus), append(nodes, c)
	}
	host, port, err := net.SplitHostPort(addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range nodes[1:] {
		if err := c.Do(ctx, "CLUSTER", "MEET", host, port, buses[0]).Err(); err != nil {
			t.Fatalf("CLUSTER MEET: %v", err)
		}
	}
	poll.Within(t, time.Minute, "every node to see the whole cluster, state ok", func() bool {
		for _, c := range nodes {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return false
			}
			f := infoFields(info)
			if f["cluster_state"] != "ok" || f["cluster_known_nodes"] != strconv.Itoa(n) {
				return false
			}
		}
		return true
	})
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestDeleteOrgReleasesItsMailboxes(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t, redisServer.start(t))
	fillOrg(t, s, neighborOrg, false)
	if _, err := s.ClaimMailboxes(ctx, neighborOrg, []string{"Rep@Acme.example"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteOrg(ctx, neighborOrg); err != nil {
		t.Fatal(err)
	}
	if holder, ok, err := s.MailboxHolder(ctx, "rep@acme.example"); err != nil || ok {
		t.Fatalf("after DeleteOrg the mailbox is still held by %q (%v, %v)", holder, ok, err)
	}
}
