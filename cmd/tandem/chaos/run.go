package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	"github.com/tandem-sync/tandem/cmd/tandem/internal/firstsync"
	"github.com/tandem-sync/tandem/cmd/tandem/internal/sourcetree"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/reconcile/engine"
	"github.com/tandem-sync/tandem/pkg/seal"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Services are the service binaries chaos runs, by the name of their folder and binary.
var Services = []string{"scheduler", "exchange-worker", "salesforce-worker", "reconciler", "status-api"}

// Options configure a chaos run.
type Options struct {
	// Duration is how long users edit and faults are injected; then the system settles.
	Duration time.Duration
	// Seed decides the users' edits, the seeded data and the schedule of faults.
	Seed uint64
	// Users and ContactsPerUser size the seeded simulators.
	Users, ContactsPerUser int
	// Replicas is how many processes of each worker and of the reconciler run (one scheduler
	// and one status-api).
	Replicas int
	// Interval is the org's sync interval.
	Interval time.Duration
	// Settle bounds how long the system may take to converge once the faults stop.
	Settle time.Duration
	// EditEvery is the pause between two user edits.
	EditEvery time.Duration
	// Dir keeps the run's binaries, logs and server state; empty means a temporary directory,
	// removed after a passing run and kept after a failing one.
	Dir string
	// LogLevel is the services' log level (TANDEM_LOG_LEVEL); "debug" traces every decision
	// of the reconciler by record id and sync key.
	LogLevel string
	// Progress receives a line now and then.
	Progress io.Writer
}

// Result is what a run found; it is printed as JSON.
type Result struct {
	Converged bool `json:"converged"`
	// Report is the verdict on the simulators' final state.
	Report
	// ScopeMismatches counts the cycles a reconciler planned from what changed differently
	// from the whole ledger (the reconcilers run with --verify-scoped-plans).
	ScopeMismatches int              `json:"scope_mismatches"`
	Edits           int              `json:"edits"`
	Faults          map[string]int64 `json:"faults"`
	Seed            uint64           `json:"seed"`
	Seconds         float64          `json:"seconds"`
	SettleSecs      float64          `json:"settle_seconds"`
	Dir             string           `json:"dir,omitempty"`
}

func (o *Options) defaults() {
	if o.Duration <= 0 {
		o.Duration = time.Minute
	}
	if o.Users <= 0 {
		o.Users = 4
	}
	if o.ContactsPerUser <= 0 {
		o.ContactsPerUser = 30
	}
	if o.Replicas <= 0 {
		o.Replicas = 2
	}
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.Settle <= 0 {
		o.Settle = 3 * time.Minute
	}
	if o.EditEvery <= 0 {
		o.EditEvery = 150 * time.Millisecond
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
}

// run is one chaos run's world: the servers and processes, the simulators and the model.
type run struct {
	opts    Options
	dir     string
	bins    map[string]string
	rng     *mrand.Rand
	redis   *proc
	nats    *proc
	natsDir string
	redisAd string
	natsURL string
	seal    string
	sims    *devenv.Simulators
	ewsURL  string
	sfURL   string
	pubsub  string // the simulated org's Pub/Sub API (host:port)
	users   []User
	model   *Model
	workers []*proc

	mu     sync.Mutex
	faults map[string]int64
}

// Run runs chaos: the real services as separate processes against a real nats-server and
// redis-server and both simulators, users editing, processes killed, servers restarted, state
// lost and API faults injected for Duration; then it stops the faults and checks the
// simulators' final state against the model of what the users did.
func Run(ctx context.Context, opts Options) (res Result, err error) {
	opts.defaults()
	start := time.Now()
	res.Seed = opts.Seed
	r := &run{opts: opts, rng: mrand.New(mrand.NewPCG(opts.Seed, opts.Seed^0xc4a05)), faults: map[string]int64{}}
	if r.dir = opts.Dir; r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "tandem-chaos-"); err != nil {
			return res, err
		}
	}
	defer r.stopAll()
	if err := r.startServers(ctx); err != nil {
		return res, err
	}
	if err := r.startSimulators(ctx); err != nil {
		return res, err
	}
	if err := r.startServices(); err != nil {
		return res, err
	}
	r.progressf("chaos: seed %d, %d users × %d contacts, %d replicas, %s of faults; logs in %s",
		opts.Seed, opts.Users, opts.ContactsPerUser, opts.Replicas, opts.Duration, r.dir)

	if err := r.initialSync(ctx); err != nil {
		return res, err
	}
	if err := r.storm(ctx); err != nil {
		return res, err
	}
	settleStart := time.Now()
	report, err := r.settle(ctx)
	if err != nil {
		return res, err
	}
	if res.ScopeMismatches, err = r.scopeMismatches(); err != nil {
		return res, err
	}
	res.Report = report
	res.Converged = report.OK() && res.ScopeMismatches == 0
	if res.ScopeMismatches > 0 {
		res.Violations = append(res.Violations, fmt.Sprintf(
			"%d cycles planned from what changed differed from the whole ledger's plan (the reconcilers' logs say which)", res.ScopeMismatches))
	}
	res.Edits = r.model.Edits()
	res.Faults = r.faultCounts()
	res.Seconds = math.Round(time.Since(start).Seconds()*10) / 10
	res.SettleSecs = math.Round(time.Since(settleStart).Seconds()*10) / 10
	if res.Converged && opts.Dir == "" {
		r.stopAll()
		_ = os.RemoveAll(r.dir)
		return res, nil
	}
	res.Dir = r.dir
	if err := r.writeFinalState(); err != nil {
		return res, err
	}
	return res, nil
}

// scopeMismatches counts the log lines in which a reconciler reported a cycle planned from what
// changed that differs from its whole ledger's plan.
func (r *run) scopeMismatches() (int, error) {
	n := 0
	for _, p := range r.workers {
		if !strings.HasPrefix(p.name, "reconciler-") {
			continue
		}
		b, err := os.ReadFile(p.log)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("read the log of %s: %w", p.name, err)
		}
		n += bytes.Count(b, []byte(engine.ErrScopeMismatch.Error()))
	}
	return n, nil
}

// writeFinalState keeps, beside the logs, both simulators' final state and what the users did
// to every person: with the reconciler's DEBUG trace, what a failing run is diagnosed from.
func (r *run) writeFinalState() error {
	for name, v := range map[string]any{
		"exchange-final.json": r.sims.EWS.Dump(), "salesforce-final.json": r.sims.Salesforce.Dump(), "people.json": r.model.Histories(),
	} {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("encode %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(r.dir, name), b, 0o600); err != nil {
			return fmt.Errorf("keep the final state: %w", err)
		}
	}
	return nil
}

func (r *run) progressf(format string, args ...any) {
	fmt.Fprintf(r.opts.Progress, format+"\n", args...)
}

// count counts one of chaos's own faults and says when it happened.
func (r *run) count(kind string) {
	r.mu.Lock()
	r.faults[kind]++
	r.mu.Unlock()
	r.progressf("chaos: %s %s", time.Now().Format("15:04:05.000"), kind)
}

// faultCounts merges chaos's own faults with those the simulators injected.
func (r *run) faultCounts() map[string]int64 {
	r.mu.Lock()
	out := make(map[string]int64, len(r.faults))
	for k, v := range r.faults {
		out[k] = v
	}
	r.mu.Unlock()
	for k, v := range r.sims.EWS.FaultCounts() {
		out["ews_"+k] += v
	}
	for k, v := range r.sims.Salesforce.FaultCounts() {
		out["salesforce_"+k] += v
	}
	return out
}

// startServers builds the binaries and starts redis-server (AOF on) and nats-server.
func (r *run) startServers(ctx context.Context) error {
	root, err := sourcetree.Root(".")
	if err != nil {
		return fmt.Errorf("chaos builds the services from Tandem's source tree: %w", err)
	}
	r.progressf("chaos: building the services and nats-server")
	if r.bins, err = build(ctx, root, filepath.Join(r.dir, "bin")); err != nil {
		return err
	}
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("chaos needs redis-server on PATH (apt-get install redis-server)")
	}
	redisPort, err := freePort()
	if err != nil {
		return err
	}
	redisDir := filepath.Join(r.dir, "redis")
	if err := os.MkdirAll(redisDir, 0o700); err != nil {
		return err
	}
	r.redisAd = net.JoinHostPort("127.0.0.1", strconv.Itoa(redisPort))
	r.redis = &proc{name: "redis-server", bin: redisBin, log: filepath.Join(r.dir, "redis.log"), env: os.Environ(), args: []string{
		"--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--dir", redisDir, "--appendonly", "yes",
		"--appendfsync", "everysec", "--save", "", "--daemonize", "no",
	}}
	natsPort, err := freePort()
	if err != nil {
		return err
	}
	r.natsDir = filepath.Join(r.dir, "nats")
	r.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	r.nats = &proc{name: "nats-server", bin: r.bins["nats-server"], log: filepath.Join(r.dir, "nats.log"), env: os.Environ(), args: []string{
		"-a", "127.0.0.1", "-p", strconv.Itoa(natsPort), "-js", "-sd", r.natsDir,
	}}
	for _, p := range []*proc{r.redis, r.nats} {
		if err := r.startServer(ctx, p); err != nil {
			return err
		}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	r.seal = base64.StdEncoding.EncodeToString(key)
	return nil
}

// startServer starts nats-server or redis-server and waits until it listens.
func (r *run) startServer(ctx context.Context, p *proc) error {
	if err := p.start(); err != nil {
		return err
	}
	addr := r.redisAd
	if p == r.nats {
		addr = strings.TrimPrefix(r.natsURL, "nats://")
	}
	return waitListening(ctx, addr, 30*time.Second)
}

// startSimulators seeds and serves both simulators and stores the org that connects to them.
func (r *run) startSimulators(ctx context.Context) error {
	sims, err := devenv.NewSimulators(devenv.Seeding{Users: r.opts.Users, ContactsPerUser: r.opts.ContactsPerUser, Seed: int64(r.opts.Seed % math.MaxInt32)})
	if err != nil {
		return err
	}
	r.sims = sims
	sims.EWS.SeedFaults(int64(r.opts.Seed))
	sims.Salesforce.SeedFaults(int64(r.opts.Seed))
	if r.ewsURL, err = serve(ctx, sims.EWS); err != nil {
		return err
	}
	sims.EWS.SetBaseURL(r.ewsURL)
	if r.sfURL, err = serve(ctx, sims.Salesforce); err != nil {
		return err
	}
	sims.Salesforce.SetBaseURL(r.sfURL)
	if r.pubsub, err = servePubSub(ctx, sims.Salesforce); err != nil {
		return err
	}
	for id, email := range sims.Users {
		r.users = append(r.users, User{Mailbox: email, SalesforceID: id})
	}
	sort.Slice(r.users, func(i, j int) bool { return r.users[i].Mailbox < r.users[j].Mailbox })
	r.model = NewModel()
	if err := r.modelSeed(); err != nil {
		return err
	}
	return r.configure(ctx)
}

// modelSeed gives every seeded contact a person's marker, so that the model knows them. The
// contacts seeded on both sides that Tandem's first sync links are one person, so both copies
// carry the same marker. Which ones those are is the planner's rule, email first and then name
// (firstsync.Links), not only a shared email: a twin seeded without an email is linked by name.
func (r *run) modelSeed() error {
	now := time.Now()
	accounts := map[string]string{}
	for _, a := range r.sims.Salesforce.List("Account") {
		accounts[fmt.Sprint(a["Id"])] = fmt.Sprint(a["Name"])
	}
	for _, u := range r.users {
		var items []ewssim.Item
		var exRecs, sfRecs []*tandemv1.Record
		for _, it := range r.sims.EWS.Items(u.Mailbox, exchange.SyncFolderName) {
			if it.Contact != nil {
				items = append(items, it)
				exRecs = append(exRecs, firstsync.ExchangeRecord(it))
			}
		}
		var contacts []map[string]any
		for _, c := range r.sims.Salesforce.List("Contact") {
			if fmt.Sprint(c["OwnerId"]) == u.SalesforceID {
				contacts = append(contacts, c)
				sfRecs = append(sfRecs, firstsync.SalesforceRecord(c, accounts))
			}
		}
		links, ambiguous := firstsync.Links(exRecs, sfRecs)
		if len(ambiguous) > 0 {
			// Tandem holds such records on their side, linked to nothing and copied nowhere,
			// which the model, expecting every seeded person in sync, cannot follow.
			return fmt.Errorf("the seeded contacts of %s have ambiguous name matches, which Tandem leaves unsynced: %s",
				u.Mailbox, strings.Join(ambiguous, ", "))
		}
		twins := map[string]string{} // Salesforce id → person
		for _, it := range items {
			id := r.model.NewPerson(u.Mailbox, Exchange, now)
			if s, ok := links[it.ItemID]; ok {
				twins[s] = id
			}
			_ = r.sims.EWS.UpdateItem(u.Mailbox, it.ItemID, func(it *ewssim.Item) { it.Contact.Body += " " + Marker(id) })
		}
		for _, c := range contacts {
			id, twin := twins[fmt.Sprint(c["Id"])]
			if !twin {
				id = r.model.NewPerson(u.Mailbox, Salesforce, now)
			}
			desc := ""
			if v, ok := c["Description"]; ok && v != nil {
				desc = fmt.Sprint(v) + " "
			}
			_ = r.sims.Salesforce.Update("Contact", fmt.Sprint(c["Id"]), map[string]any{"Description": desc + Marker(id)}, u.SalesforceID)
		}
	}
	return nil
}

// configure stores the org and its configuration, as an admin does at set-up and again after
// Redis lost everything.
func (r *run) configure(ctx context.Context) error {
	key, err := base64.StdEncoding.DecodeString(r.seal)
	if err != nil {
		return err
	}
	keyring, err := seal.NewKeyring(key)
	if err != nil {
		return err
	}
	st, err := store.Connect(ctx, "redis://"+r.redisAd+"/0", keyring)
	if err != nil {
		return err
	}
	defer st.Close()
	org, cfg, err := r.sims.Org(r.ewsURL, r.sfURL, r.opts.Interval)
	if err != nil {
		return err
	}
	// The reps remove contacts a hundred times faster than people do: the mass-delete guard,
	// which holds such removals for an admin, would stop them. It keeps guarding a side that
	// suddenly looks empty. (The guard itself is tested on its own.)
	cfg.GetContacts().MassDeleteThresholdPercent = 100
	return devenv.Configure(ctx, st, org, cfg)
}

// serve serves h on a free loopback port until ctx ends.
func serve(ctx context.Context, h http.Handler) (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return "http://" + lis.Addr().String(), nil
}

// startServices starts every service replica.
func (r *run) startServices() error {
	for _, name := range Services {
		n := 1
		if name == "exchange-worker" || name == "salesforce-worker" || name == "reconciler" {
			n = r.opts.Replicas
		}
		for i := range n {
			p, err := r.service(name, i)
			if err != nil {
				return err
			}
			if err := p.start(); err != nil {
				return err
			}
			r.workers = append(r.workers, p)
		}
	}
	return nil
}

// service describes one replica of a service: its settings come from TANDEM_* variables, as
// in a Deployment, tuned so that a short run sees many cycles.
func (r *run) service(name string, replica int) (*proc, error) {
	// Only chaos's own TANDEM_* settings: one from the caller's shell would be refused by every
	// service that does not know it.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "TANDEM_") })
	env = append(env,
		"TANDEM_NATS_URL="+r.natsURL,
		"TANDEM_REDIS_URL=redis://"+r.redisAd+"/0",
		"TANDEM_SEAL_KEY="+r.seal,
		"TANDEM_LOG_LEVEL="+r.opts.LogLevel,
		"TANDEM_HEALTH_ADDR=",
		"TANDEM_DRAIN_DELAY=0s",
		"TANDEM_STOP_TIMEOUT=5s",
	)
	switch name {
	case "scheduler":
		env = append(env, "TANDEM_TICK=200ms", "TANDEM_SYNC_INTERVAL="+r.opts.Interval.String(), "TANDEM_STALL_CYCLES=3", "TANDEM_STALL_AFTER=10s")
	case "exchange-worker":
		env = append(env, "TANDEM_ALLOW_HTTP=true", "TANDEM_BACKOFF_BASE=1s", "TANDEM_BACKOFF_MAX=5s")
	case "salesforce-worker":
		// Full reads in groups of two reps, so that a first sync and a reset are read as several
		// queries, each group's reps planned while the next is read.
		env = append(env, "TANDEM_ALLOW_HTTP=true", "TANDEM_PUBSUB_ENDPOINT="+r.pubsub, "TANDEM_PUBSUB_PLAINTEXT=true", "TANDEM_CDC_REFRESH=2s",
			"TANDEM_FULL_READ_GROUP=2")
	case "reconciler":
		env = append(env, "TANDEM_LEASE_TTL=10s", "TANDEM_PENDING_TIMEOUT=20s", "TANDEM_VERIFY_SCOPED_PLANS=true")
	case "status-api":
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		env = append(env, "TANDEM_ALLOW_HTTP=true", "TANDEM_PLAINTEXT=true", fmt.Sprintf("TANDEM_GRPC_ADDR=127.0.0.1:%d", port))
	}
	label := fmt.Sprintf("%s-%d", name, replica)
	return &proc{name: label, bin: r.bins[name], env: env, log: filepath.Join(r.dir, label+".log")}, nil
}

// initialSync waits, before any edit or fault, for Tandem's first sync of the seeded contacts:
// every person in sync on both sides, and every contact carrying its pair's sync key. The model
// counts the seeded contacts as people already in sync; a rep removing one before Tandem ever
// linked it would make the model's expectation wrong, not Tandem.
func (r *run) initialSync(ctx context.Context) error {
	r.progressf("chaos: waiting for the first sync of the seeded contacts")
	deadline := time.Now().Add(r.opts.Settle)
	for {
		report := r.model.Check(r.users, r.sims.EWS.Dump(), r.sims.Salesforce.Dump())
		untagged := r.untagged()
		if report.OK() && untagged == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the first sync did not complete within %s (%d contacts without a sync key; %v)", r.opts.Settle, untagged, report.Violations)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.opts.Interval):
		}
	}
}

// untagged counts the users' contacts, on both sides, that carry no sync key yet.
func (r *run) untagged() int {
	n := 0
	for _, u := range r.users {
		for _, it := range r.sims.EWS.Items(u.Mailbox, exchange.SyncFolderName) {
			if it.Contact != nil && len(it.Contact.ExtendedProperties) == 0 {
				n++
			}
		}
	}
	owners := map[string]bool{}
	for _, u := range r.users {
		owners[u.SalesforceID] = true
	}
	for _, c := range r.sims.Salesforce.List("Contact") {
		if !owners[fmt.Sprint(c["OwnerId"])] {
			continue
		}
		if v, ok := c["Tandem_Sync_Key__c"]; !ok || v == nil || v == "" {
			n++
		}
	}
	return n
}

// storm edits and injects faults for the run's duration.
func (r *run) storm(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Duration)
	defer cancel()
	editor := NewEditor(r.sims.EWS, r.sims.Salesforce, r.users, r.model, r.opts.Seed, time.Now)
	faultEvery := max(r.opts.Duration/16, 2*time.Second)
	nextFault := time.Now().Add(faultEvery / 2)
	flushed, begin := false, time.Now()
	lastProgress := time.Now()
	edit := time.NewTicker(r.opts.EditEvery)
	defer edit.Stop()
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return r.faultsOff(context.WithoutCancel(ctx))
			}
			return ctx.Err()
		case <-edit.C:
		}
		if _, err := editor.Step(); err != nil {
			return err
		}
		if time.Now().After(nextFault) {
			nextFault = time.Now().Add(faultEvery)
			// Redis loses everything once, at the first fault past the middle of the run.
			if !flushed && time.Since(begin) > r.opts.Duration/2 {
				flushed = true
				if err := r.flushRedis(ctx); err != nil {
					return err
				}
			} else if err := r.fault(ctx); err != nil {
				return err
			}
		}
		if time.Since(lastProgress) > 5*time.Second {
			lastProgress = time.Now()
			r.progressf("chaos: %d edits, faults %v", r.model.Edits(), r.faultCounts())
		}
	}
}

// fault injects one fault, drawn from the run's seeded schedule.
func (r *run) fault(ctx context.Context) error {
	switch k := r.rng.IntN(10); {
	case k < 4: // a service process dies
		p := r.workers[r.rng.IntN(len(r.workers))]
		r.count("kill_" + strings.TrimRight(p.name, "-0123456789"))
		r.progressf("chaos: killed %s", p.name)
		p.kill()
		time.Sleep(time.Duration(200+r.rng.IntN(1500)) * time.Millisecond)
		return p.start()
	case k < 5: // NATS restarts, sometimes without its store
		wipe := r.rng.IntN(3) == 0
		r.nats.stop(5 * time.Second)
		if wipe {
			r.count("nats_restart_store_wiped")
			if err := os.RemoveAll(r.natsDir); err != nil {
				return err
			}
		} else {
			r.count("nats_restart")
		}
		return r.startServer(ctx, r.nats)
	case k < 6: // Redis restarts (its AOF kept)
		r.count("redis_restart")
		r.redis.stop(10 * time.Second)
		return r.startServer(ctx, r.redis)
	case k < 8: // Exchange misbehaves for a while
		kinds := []ewssim.Fault{
			{Kind: ewssim.FaultServerBusy, BackOff: 500 * time.Millisecond},
			{Kind: ewssim.FaultHTTPStatus, Status: http.StatusServiceUnavailable},
			{Kind: ewssim.FaultSlow, Delay: 2 * time.Second},
			{Kind: ewssim.FaultMalformedXML, AfterWork: r.rng.IntN(2) == 0},
			{Kind: ewssim.FaultDropConnection, AfterWork: r.rng.IntN(2) == 0},
			{Kind: ewssim.FaultInvalidSyncState, Operation: "SyncFolderItems"},
		}
		f := kinds[r.rng.IntN(len(kinds))]
		f.Probability, f.Times = 0.2, 20
		r.sims.EWS.InjectFault(f)
	default: // Salesforce misbehaves for a while
		kinds := []sfsim.Fault{
			{Kind: sfsim.FaultRequestLimit},
			{Kind: sfsim.FaultLockRows},
			{Kind: sfsim.FaultServerError},
			{Kind: sfsim.FaultUnavailable},
			{Kind: sfsim.FaultExpireTokens},
			{Kind: sfsim.FaultMalformedJSON},
			{Kind: sfsim.FaultSlow, Delay: 2 * time.Second},
		}
		f := kinds[r.rng.IntN(len(kinds))]
		f.Probability, f.Times = 0.2, 20
		r.sims.Salesforce.InjectFault(f)
	}
	return nil
}

// flushRedis loses all of Tandem's state at once, then the admin's configuration is applied
// again (as after restoring an empty Redis): the users' next syncs must relink, not duplicate.
func (r *run) flushRedis(ctx context.Context) error {
	r.count("redis_flushall")
	rdb := redis.NewClient(&redis.Options{Addr: r.redisAd})
	defer rdb.Close()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("flush Redis: %w", err)
	}
	return r.configure(ctx)
}

// faultsOff ends every fault: the simulators answer normally and every process runs.
func (r *run) faultsOff(ctx context.Context) error {
	r.sims.EWS.ClearFaults()
	r.sims.Salesforce.ClearFaults()
	for _, p := range append([]*proc{r.redis, r.nats}, r.workers...) {
		if p.running() {
			continue
		}
		var err error
		if p == r.redis || p == r.nats {
			err = r.startServer(ctx, p)
		} else {
			err = p.start()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// settle waits until the simulators' state matches the model, or Settle passes, and returns
// the last verdict. Processes that exit on their own meanwhile are started again.
func (r *run) settle(ctx context.Context) (Report, error) {
	r.progressf("chaos: faults stopped after %d edits; settling (at most %s)", r.model.Edits(), r.opts.Settle)
	deadline := time.Now().Add(r.opts.Settle)
	var report Report
	okStreak := 0
	for {
		report = r.model.Check(r.users, r.sims.EWS.Dump(), r.sims.Salesforce.Dump())
		if report.OK() {
			okStreak++
		} else {
			okStreak = 0
		}
		// Two agreeing looks a few intervals apart: in sync, and staying so.
		if okStreak >= 2 || time.Now().After(deadline) {
			return report, nil
		}
		if err := r.faultsOff(ctx); err != nil {
			return report, err
		}
		select {
		case <-ctx.Done():
			return report, ctx.Err()
		case <-time.After(2 * r.opts.Interval):
		}
	}
}

// stopAll stops every process; it is safe to call more than once.
func (r *run) stopAll() {
	var wg sync.WaitGroup
	for _, p := range r.workers {
		wg.Add(1)
		go func() { defer wg.Done(); p.signal(syscall.SIGTERM, 5*time.Second) }()
	}
	wg.Wait()
	for _, p := range []*proc{r.nats, r.redis} {
		if p != nil {
			p.stop(5 * time.Second)
		}
	}
}
