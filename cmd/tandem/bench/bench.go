// Package bench is `tandem bench`: it measures, in one process and one run, the whole system
// on the in-process simulators — how fast the initial sync converges and at how many API calls,
// what an idle cycle costs, how long an edit takes to reach the other side, how much memory the
// process needs — next to the theoretical minimum of calls for the workload (MinimumCalls) and
// to a floor: a bare copy between fresh simulators with Tandem's own clients, without the bus,
// Redis or the reconciler.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	"github.com/tandem-sync/tandem/cmd/tandem/internal/firstsync"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// DefaultInterval is the org's sync interval unless Options say: production's default.
const DefaultInterval = 5 * time.Minute

// Options configure a run.
type Options struct {
	// Users and ContactsPerUser size the seeded simulators (see devenv.Seeding).
	Users, ContactsPerUser int
	// EventsPerUser must be 0: the seeders and the convergence check cover contacts only.
	EventsPerUser int
	// Seed makes the seeded data reproducible.
	Seed int64
	// Interval is the org's sync interval.
	Interval time.Duration
	// Notify has the exchange-worker watch the mailboxes with EWS streaming notifications, as
	// in production: a cycle reads only the mailboxes that reported a change.
	Notify bool
	// Edits is how many edits measure the incremental latency, made in waves of Wave edits (each
	// on another rep), alternately in Exchange and in Salesforce.
	Edits, Wave int
	// Timeout bounds the initial sync; the idle cycle and each wave of edits get as long again.
	Timeout time.Duration
	// RedisURL is an existing Redis to use; empty starts a redis-server of the run's own.
	RedisURL string
	// Log receives the services' JSON logs; nil discards them. LogLevel is their level.
	Log      io.Writer
	LogLevel string
	// SkipFloor leaves the floor out (tests).
	SkipFloor bool
	// Progress receives progress lines; nil discards them.
	Progress io.Writer
	// CPUProfile, when set, receives a CPU profile of the initial sync (pprof format).
	CPUProfile io.Writer
	// AllocProfile, when set, receives the process's allocation profile (pprof format) once the
	// initial sync converged: every allocation since the process started, the seeding's too.
	AllocProfile io.Writer

	// beforeIdle, when set, runs between convergence and the idle cycle's measurement (tests
	// set it to shape that moment).
	beforeIdle func(context.Context, *devenv.Env) error
	// beforeHandOver, when set, runs each time the idle cycle's measurement has seen the org's
	// Salesforce job off the bus and is about to hand the next cycle over (tests only); last is
	// the cycle before it.
	beforeHandOver func(ctx context.Context, env *devenv.Env, last uint64) error
}

// Result is what a run measured. Calls count HTTP requests to the simulators; Salesforce's
// include OAuth token requests (which do not count against the org's daily API allocation).
type Result struct {
	Users           int     `json:"users"`
	ContactsPerUser int     `json:"contacts_per_user"`
	EventsPerUser   int     `json:"events_per_user"`
	Seed            int64   `json:"seed"`
	IntervalSeconds float64 `json:"interval_seconds"`
	// Converged is true when the initial sync converged within the timeout; Reason says why not.
	Converged bool   `json:"converged"`
	Reason    string `json:"reason,omitempty"`
	// Records is how many contacts each side holds once in sync (both sides hold the same).
	Records int64 `json:"records"`
	// Seconds is how long the initial sync took, from the services' start to the first check
	// that found every user settled and both simulators in agreement: to the moment it found
	// them settled, with nothing in flight, before it compared the simulators (which takes
	// half a second of CPU at 100 × 1,000).
	Seconds          float64 `json:"seconds"`
	RecordsPerSecond float64 `json:"records_per_second"`
	// FloorSeconds is how long the bare copy took on fresh simulators seeded alike.
	FloorSeconds          float64 `json:"floor_seconds"`
	FloorRecordsPerSecond float64 `json:"floor_records_per_second"`
	FloorEWSCalls         int64   `json:"floor_ews_calls"`
	FloorSalesforceCalls  int64   `json:"floor_salesforce_calls"`
	// The initial sync's calls, and the minimum for the workload. They count every call until
	// the idle cycle: the cycles after convergence that still read the echo of Tandem's writes
	// or write (SettleCycles of them) included. The calls up to the convergence are apart.
	EWSCalls                     int64 `json:"ews_calls"`
	EWSCallsAtConvergence        int64 `json:"ews_calls_at_convergence"`
	SalesforceCallsAtConvergence int64 `json:"salesforce_calls_at_convergence"`
	SettleCycles                 int   `json:"settle_cycles"`
	// EWSEmptyReads are the initial sync's SyncFolderItems calls that listed no change: polls of
	// a mailbox with nothing new to read, counted among the EWS calls.
	EWSEmptyReads      int64 `json:"ews_empty_reads"`
	MinEWSCalls        int64 `json:"min_ews_calls"`
	SalesforceCalls    int64 `json:"salesforce_calls"`
	MinSalesforceCalls int64 `json:"min_salesforce_calls"`
	// One whole cycle after convergence with nothing to sync, and the minimum.
	IdleCycleEWSCalls           int64 `json:"idle_cycle_ews_calls"`
	MinIdleCycleEWSCalls        int64 `json:"min_idle_cycle_ews_calls"`
	IdleCycleSalesforceCalls    int64 `json:"idle_cycle_salesforce_calls"`
	MinIdleCycleSalesforceCalls int64 `json:"min_idle_cycle_salesforce_calls"`
	// Incremental latency: from an edit in one simulator until the other holds the new value.
	LatencyP50Ms    float64 `json:"latency_p50_ms"`
	LatencyP99Ms    float64 `json:"latency_p99_ms"`
	LatencyMaxMs    float64 `json:"latency_max_ms"`
	LatencySamples  int     `json:"latency_samples"`
	LatencyTimeouts int     `json:"latency_timeouts"`
	// The same by direction: edits made in Exchange, awaited in Salesforce, and the reverse.
	LatencyToSalesforceP50Ms float64 `json:"latency_to_salesforce_p50_ms"`
	LatencyToSalesforceMaxMs float64 `json:"latency_to_salesforce_max_ms"`
	LatencyToExchangeP50Ms   float64 `json:"latency_to_exchange_p50_ms"`
	LatencyToExchangeMaxMs   float64 `json:"latency_to_exchange_max_ms"`
	// PeakRSSMiB is the process's peak resident set (VmHWM) before the floor ran: Tandem's
	// services, NATS, the simulators and their data together (Redis is a process of its own).
	// PeakHeapMiB is the Go heap's peak, sampled every 100 ms. PeakServicesHeapMiB is the
	// largest Go heap in use by Tandem's own services (not the simulators, NATS or the bench),
	// from the runtime's heap profile each time the heap grew by a tenth: what the services
	// would hold in processes of their own, before the Go runtime's overhead.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// CPUSeconds is the CPU time the process used during the initial sync (0 where the platform
	// does not say), RedisCPUSeconds Redis's (0 when it does not answer INFO cpu), both out of
	// Seconds times the machine's cores: how near the sync ran to the machine's limit.
	// GCCPUShare is the Go runtime's estimate of the share of the process's work that was its
	// garbage collector's.
	CPUSeconds          float64 `json:"cpu_seconds"`
	RedisCPUSeconds     float64 `json:"redis_cpu_seconds"`
	GCCPUShare          float64 `json:"gc_cpu_share"`
	PeakHeapMiB         float64 `json:"peak_heap_mib"`
	PeakServicesHeapMiB float64 `json:"peak_services_heap_mib"`
	// PeakServicesHeapSites are the largest shares of the services' heap at its peak, by the
	// Tandem function nearest each allocation: where to look to make the services smaller.
	PeakServicesHeapSites []HeapSite `json:"peak_services_heap_sites"`
	// Calls per operation: the initial sync's, the idle cycle's and their minimums. Exchange by
	// EWS operation, Salesforce by the simulator's endpoint names.
	InitialCalls    Calls `json:"initial_calls"`
	MinInitialCalls Calls `json:"min_initial_calls"`
	IdleCalls       Calls `json:"idle_cycle_calls"`
	MinIdleCalls    Calls `json:"min_idle_cycle_calls"`
}

func (o *Options) defaults() error {
	if o.Users < 1 || o.ContactsPerUser < 0 {
		return errors.New("--users must be at least 1 and --contacts-per-user not negative")
	}
	if o.EventsPerUser != 0 {
		return errors.New("--events-per-user: events are not benchmarked yet (the seeders and the convergence check cover contacts only)")
	}
	if o.Edits < 0 || o.Wave < 0 {
		return errors.New("--edits and --wave must not be negative")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Wave == 0 {
		o.Wave = 10
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return nil
}

// run is one benchmark run's state.
type run struct {
	opts  Options
	env   *devenv.Env
	sims  *devenv.Simulators
	start time.Time
	res   *Result
	// base are the simulators' counters when the services started.
	base callCounts
	// expected is how many records each side holds once in sync.
	expected int
}

func (r *run) progress(format string, args ...any) {
	fmt.Fprintf(r.opts.Progress, "[%7.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// Run runs the benchmark. It returns an error when the run could not be made; a run whose
// initial sync did not converge returns its result with Converged false.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	r := &run{opts: opts, start: time.Now(), res: &Result{
		Users: opts.Users, ContactsPerUser: opts.ContactsPerUser, EventsPerUser: opts.EventsPerUser,
		Seed: opts.Seed, IntervalSeconds: opts.Interval.Seconds(),
	}}
	seeding := devenv.Seeding{Users: opts.Users, ContactsPerUser: opts.ContactsPerUser, Seed: opts.Seed}
	r.progress("seeding %d users × %d contacts", opts.Users, opts.ContactsPerUser)
	sims, err := devenv.NewSimulators(seeding)
	if err != nil {
		return nil, err
	}
	r.sims = sims
	w, err := workloadOf(seeding, sims)
	if err != nil {
		return nil, err
	}
	w.Notified = opts.Notify
	r.expected = w.Records()
	if linked, seeded := w.Records(), seededWorkload(seeding).Records(); linked != seeded {
		r.progress("the seeded people on both sides who can be recognised as such make %d records in sync, not %d: some seeded on both sides have no email in Exchange and a company Salesforce lacks, and are copied both ways; some seeded on one side each have a namesake at the same company on the other, without an email to tell them apart, and are linked",
			linked, seeded)
	}
	r.res.MinInitialCalls, r.res.MinIdleCalls = MinimumCalls(w)
	r.res.MinEWSCalls, r.res.MinSalesforceCalls = r.res.MinInitialCalls.EWSTotal(), r.res.MinInitialCalls.SalesforceTotal()
	r.res.MinIdleCycleEWSCalls, r.res.MinIdleCycleSalesforceCalls = r.res.MinIdleCalls.EWSTotal(), r.res.MinIdleCalls.SalesforceTotal()

	mem := startMemorySampler()
	err = r.system(ctx)
	r.res.PeakRSSMiB, r.res.PeakHeapMiB, r.res.PeakServicesHeapMiB = mem.stop()
	r.res.PeakServicesHeapSites = mem.servicesSites(10)
	if err != nil || !r.res.Converged {
		return r.res, err
	}
	if opts.SkipFloor {
		return r.res, nil
	}
	r.progress("floor: a bare copy between fresh simulators, no bus, no Redis")
	if err := r.floor(ctx, seeding); err != nil {
		return r.res, fmt.Errorf("floor: %w", err)
	}
	r.progress("floor: %d records in %.1fs (%.0f records/s), %d EWS and %d Salesforce calls", r.res.Records, r.res.FloorSeconds,
		r.res.FloorRecordsPerSecond, r.res.FloorEWSCalls, r.res.FloorSalesforceCalls)
	return r.res, nil
}

// workloadOf is the workload the seeders made, read from the simulators: who holds what, and
// which people on both sides the first sync can recognise as such.
func workloadOf(s devenv.Seeding, sims *devenv.Simulators) (Workload, error) {
	want := seededWorkload(s)
	w := Workload{OrgUsers: len(sims.Salesforce.List("User"))}
	accounts := map[string]string{}
	for _, a := range sims.Salesforce.List("Account") {
		accounts[fmt.Sprint(a["Id"])] = fmt.Sprint(a["Name"])
	}
	owned := map[string][]*tandemv1.Record{}
	for _, c := range sims.Salesforce.List("Contact") {
		owner := fmt.Sprint(c["OwnerId"])
		owned[owner] = append(owned[owner], firstsync.SalesforceRecord(c, accounts))
	}
	companies := map[string]bool{}
	for i := range s.Users {
		email := devenv.RepEmail(i)
		var id string
		for uid, e := range sims.Users {
			if e == email {
				id = uid
			}
		}
		var ex []*tandemv1.Record
		for _, it := range sims.EWS.Items(email, exchange.SyncFolderName) {
			ex = append(ex, firstsync.ExchangeRecord(it))
			if it.Contact != nil && it.Contact.CompanyName != "" {
				companies[it.Contact.CompanyName] = true
			}
		}
		rep := Rep{ExchangeContacts: len(ex), SalesforceContacts: len(owned[id]), Linked: firstsync.Linked(ex, owned[id])}
		if seeded := want.Reps[i]; rep.ExchangeContacts != seeded.ExchangeContacts || rep.SalesforceContacts != seeded.SalesforceContacts {
			return w, fmt.Errorf("%s was seeded with %+v, expected %+v", email, rep, seeded)
		}
		w.Reps = append(w.Reps, rep)
	}
	w.Companies = len(companies)
	return w, nil
}

// system runs the services on the simulators: the initial sync, an idle cycle, the latency.
func (r *run) system(ctx context.Context) error {
	env, err := devenv.Start(ctx, devenv.Options{
		Simulators: r.sims, Interval: r.opts.Interval, Notify: r.opts.Notify, RedisURL: r.opts.RedisURL,
		Log: r.opts.Log, LogLevel: r.opts.LogLevel, GRPCAddr: "127.0.0.1:0", Warn: r.opts.Progress,
	})
	if err != nil {
		return err
	}
	r.env = env
	defer func() {
		if err := env.Close(context.WithoutCancel(ctx)); err != nil {
			r.progress("stopping: %v", err)
		}
	}()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	r.progress("services started: org %s, Redis %s", env.OrgID, env.RedisURL)
	started := time.Now()
	go func() { done <- env.Run(runCtx) }()
	err = r.measure(runCtx, started)
	stop()
	if runErr := <-done; runErr != nil && err == nil {
		err = fmt.Errorf("services: %w", runErr)
	}
	return err
}

// measure measures the running system.
func (r *run) measure(ctx context.Context, started time.Time) error {
	r.base = r.calls()
	cpuStart := readCPU(ctx, r.env.Platform.Store.Client())
	if r.opts.CPUProfile != nil {
		if err := pprof.StartCPUProfile(r.opts.CPUProfile); err != nil {
			return fmt.Errorf("start the CPU profile: %w", err)
		}
	}
	err := r.converge(ctx, started, cpuStart)
	if r.opts.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if err != nil || !r.res.Converged {
		return err
	}
	if r.opts.AllocProfile != nil {
		if err := pprof.Lookup("allocs").WriteTo(r.opts.AllocProfile, 0); err != nil {
			return fmt.Errorf("write the allocation profile: %w", err)
		}
	}
	r.progress("in sync: %d records in %.1fs (%.0f records/s); so far EWS %d calls, Salesforce %d; CPU %.1fs in this process (%.0f%% of it the garbage collector's), %.1fs in Redis",
		r.res.Records, r.res.Seconds, r.res.RecordsPerSecond, r.res.EWSCallsAtConvergence, r.res.SalesforceCallsAtConvergence,
		r.res.CPUSeconds, 100*r.res.GCCPUShare, r.res.RedisCPUSeconds)
	if r.opts.beforeIdle != nil {
		if err := r.opts.beforeIdle(ctx, r.env); err != nil {
			return err
		}
	}
	if err := r.idleCycle(ctx); err != nil {
		return fmt.Errorf("idle cycle: %w", err)
	}
	r.progress("initial sync: EWS %d calls (minimum %d; %d mailbox reads found nothing), Salesforce %d (minimum %d), %d cycles after convergence included",
		r.res.EWSCalls, r.res.MinEWSCalls, r.res.EWSEmptyReads, r.res.SalesforceCalls, r.res.MinSalesforceCalls, r.res.SettleCycles)
	r.progress("idle cycle: EWS %d calls (minimum %d), Salesforce %d (minimum %d)",
		r.res.IdleCycleEWSCalls, r.res.MinIdleCycleEWSCalls, r.res.IdleCycleSalesforceCalls, r.res.MinIdleCycleSalesforceCalls)
	if r.opts.Edits == 0 {
		return nil
	}
	if err := r.latency(ctx); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	r.progress("latency: %d edits, p50 %.0f ms, p99 %.0f ms, max %.0f ms, %d timed out; to Salesforce p50 %.0f ms, max %.0f ms; to Exchange p50 %.0f ms, max %.0f ms",
		r.res.LatencySamples, r.res.LatencyP50Ms, r.res.LatencyP99Ms, r.res.LatencyMaxMs, r.res.LatencyTimeouts,
		r.res.LatencyToSalesforceP50Ms, r.res.LatencyToSalesforceMaxMs, r.res.LatencyToExchangeP50Ms, r.res.LatencyToExchangeMaxMs)
	return nil
}

// converge waits until the initial sync has converged: every user settled and both simulators
// holding the same contacts, at two checks in a row (as `tandem dev --until-synced` decides). The
// time, calls and CPU used (since cpuStart) are those of the first of the two checks.
func (r *run) converge(ctx context.Context, started time.Time, cpuStart cpuUse) error {
	deadline := time.Now().Add(r.opts.Timeout)
	streak := 0
	var at time.Time
	var calls callCounts
	last := ""
	for {
		sum, err := r.env.Summary(ctx)
		if err != nil {
			return err
		}
		if sum.Synced {
			if streak == 0 {
				at, calls = sum.SettledAt, r.calls()
				cpuBetween(r.res, cpuStart, readCPU(ctx, r.env.Platform.Store.Client()))
			}
			streak++
		} else {
			streak = 0
		}
		if line := fmt.Sprintf("%d contacts in sync, %d writes pending, %d errors", sum.ContactsInSync, sum.PendingWrites, sum.Errors); line != last {
			r.progress("initial sync: %s", line)
			last = line
		}
		if streak >= 2 {
			break
		}
		if time.Now().After(deadline) {
			r.res.Reason = fmt.Sprintf("not in sync after %s: %s", r.opts.Timeout, sum.Reason)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	r.res.Converged = true
	r.res.Seconds = at.Sub(started).Seconds()
	used := calls.minus(r.base)
	r.res.EWSCallsAtConvergence, r.res.SalesforceCallsAtConvergence = used.ewsTotal, used.salesforceTotal
	records, err := r.records()
	if err != nil {
		return err
	}
	r.res.Records = records
	if r.res.Seconds > 0 {
		r.res.RecordsPerSecond = float64(records) / r.res.Seconds
	}
	return nil
}

// records counts the contacts each side holds, independently of Tandem's bookkeeping: those in
// the reps' Salesforce_Sync folders, which must be as many as the reps own in Salesforce.
func (r *run) records() (int64, error) {
	var ex int64
	for _, email := range r.env.Mailboxes {
		ex += int64(len(r.env.EWS.Items(email, exchange.SyncFolderName)))
	}
	var sf int64
	for _, c := range r.env.Salesforce.List("Contact") {
		if _, ok := r.env.Mailboxes[fmt.Sprint(c["OwnerId"])]; ok {
			sf++
		}
	}
	if ex != sf {
		return 0, fmt.Errorf("in sync, yet Exchange holds %d contacts and Salesforce %d", ex, sf)
	}
	if ex != int64(r.expected) {
		r.progress("warning: %d records in sync, %d expected from the seeded data", ex, r.expected)
	}
	return ex, nil
}

// settled records the initial sync's calls: those until the counters read at, the start of
// the idle cycle.
func (r *run) settled(at callCounts) {
	used := at.minus(r.base)
	r.res.InitialCalls = used.byOperation()
	r.res.EWSCalls, r.res.SalesforceCalls = used.ewsTotal, used.salesforceTotal
	r.res.EWSEmptyReads = used.ews[ewssim.EmptySyncCount]
}

// writes counts the calls that write: EWS item and folder writes, Salesforce record writes.
func (c callCounts) writes() int64 {
	var n int64
	for op, v := range c.ews {
		switch op {
		case "CreateItem", "UpdateItem", "DeleteItem", "MoveItem", "CreateFolder":
			n += v
		}
	}
	for ep, v := range c.salesforce {
		if (strings.HasPrefix(ep, "collections.") && ep != "collections.retrieve") || strings.HasPrefix(ep, "record.") && ep != "record.get" {
			n += v
		}
	}
	return n
}

// callCounts are the simulators' request counters at one moment.
type callCounts struct {
	ews, salesforce           map[string]int64
	ewsTotal, salesforceTotal int64
}

func (r *run) calls() callCounts {
	return countsOf(r.env.EWS.Counts(), r.env.Salesforce.Counts())
}

func countsOf(ews, sf map[string]int64) callCounts {
	c := callCounts{ews: ews, salesforce: sf, ewsTotal: ews["Total"], salesforceTotal: sum(sf)}
	return c
}

func (c callCounts) minus(base callCounts) callCounts {
	diff := func(a, b map[string]int64) map[string]int64 {
		out := map[string]int64{}
		for k, v := range a {
			if d := v - b[k]; d != 0 {
				out[k] = d
			}
		}
		return out
	}
	return callCounts{
		ews: diff(c.ews, base.ews), salesforce: diff(c.salesforce, base.salesforce),
		ewsTotal: c.ewsTotal - base.ewsTotal, salesforceTotal: c.salesforceTotal - base.salesforceTotal,
	}
}

// byOperation are the counts per operation, the EWS simulator's Total left out.
func (c callCounts) byOperation() Calls {
	ews := maps.Clone(c.ews)
	delete(ews, "Total")
	delete(ews, ewssim.EmptySyncCount)              // a kind of SyncFolderItems, not a call of its own
	delete(ews, ewssim.StreamingNotificationsCount) // messages on a connection, not calls
	return Calls{EWS: ews, Salesforce: maps.Clone(c.salesforce)}
}

func (c callCounts) String() string {
	return fmt.Sprintf("EWS %d, Salesforce %d", c.ewsTotal, c.salesforceTotal)
}

// firstLines keeps at most n of lines, saying how many more there were.
func firstLines(lines []string, n int) string {
	if len(lines) <= n {
		return strings.Join(lines, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(lines[:n], "; "), len(lines)-n)
}
