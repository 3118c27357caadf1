package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tandem-sync/tandem/pkg/settings"
)

// EnvPrefix prefixes the environment variables of `tandem bench`'s flags.
const EnvPrefix = "TANDEM_BENCH_"

// Command is `tandem bench`: it parses args (and TANDEM_BENCH_* variables in environ), runs the
// benchmark, prints progress on stderr and, with --json, the result as the last line of stdout.
// It returns the exit code: 1 when the initial sync did not converge or the run failed.
func Command(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	var opts Options
	var jsonOut bool
	var logFile, cpuProfile, allocProfile string
	fs := flag.NewFlagSet("tandem bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&opts.Users, "users", 10, "simulated sales reps")
	fs.IntVar(&opts.ContactsPerUser, "contacts-per-user", 100, "contacts seeded per rep: about half in Exchange, half in Salesforce, one in twenty on both")
	fs.IntVar(&opts.EventsPerUser, "events-per-user", 0, "events seeded per rep (not supported yet: must be 0)")
	fs.Int64Var(&opts.Seed, "seed", 1, "seed of the generated data")
	fs.DurationVar(&opts.Interval, "interval", DefaultInterval, "the org's sync interval (the polling fallback)")
	fs.BoolVar(&opts.Notify, "notify", true, "watch the mailboxes with EWS streaming notifications, as in production (false: polling only)")
	fs.IntVar(&opts.Edits, "edits", 100, "edits that measure the incremental latency, alternately in Exchange and in Salesforce (0: none)")
	fs.IntVar(&opts.Wave, "wave", 10, "edits made at once, each on another rep")
	fs.DurationVar(&opts.Timeout, "timeout", 10*time.Minute, "give up (exit 1) when the initial sync has not converged after this long; also bounds the idle cycle and each wave of edits")
	fs.StringVar(&opts.RedisURL, "redis-url", "", "Redis to use (default: a redis-server of the run's own on a free port)")
	fs.StringVar(&logFile, "log-file", filepath.Join(os.TempDir(), "tandem-bench.log"), "where the services' JSON logs go")
	fs.StringVar(&opts.LogLevel, "log-level", "info", "the services' log level")
	fs.BoolVar(&opts.SkipFloor, "skip-floor", false, "leave out the floor (the bare copy)")
	fs.StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the initial sync (every service and both simulators, all in this process) to this file, for go tool pprof")
	fs.StringVar(&allocProfile, "alloc-profile", "", "write the allocation profile (every allocation since the process started, seeding included) to this file once the initial sync converged, for go tool pprof -sample_index=alloc_space")
	fs.BoolVar(&jsonOut, "json", false, "print the result as one JSON object, the last line of stdout")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: tandem bench --users U --contacts-per-user C [flags]

Measures Tandem in one process on the simulators: the initial sync (seconds, records/s, EWS and
Salesforce calls next to the minimum for the workload), one idle cycle's calls, the latency
of edits from one side to the other (p50, p99), the peak RSS; then the floor, a bare copy
between fresh simulators with Tandem's clients and no bus or Redis. Progress goes to stderr.

Every flag can also be set with its environment variable.

%s`, settings.Usage(fs, EnvPrefix))
	}
	if err := settings.Parse(fs, args, environ, EnvPrefix); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "tandem bench:", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tandem bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	log, err := os.OpenFile(filepath.Clean(logFile), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		fmt.Fprintln(stderr, "tandem bench:", err)
		return 1
	}
	defer log.Close()
	opts.Log, opts.Progress = log, stderr
	for _, p := range []struct {
		path string
		to   *io.Writer
	}{{cpuProfile, &opts.CPUProfile}, {allocProfile, &opts.AllocProfile}} {
		if p.path == "" {
			continue
		}
		f, err := os.Create(filepath.Clean(p.path))
		if err != nil {
			fmt.Fprintln(stderr, "tandem bench:", err)
			return 1
		}
		defer f.Close()
		*p.to = f
	}
	res, err := Run(ctx, opts)
	if res == nil {
		fmt.Fprintln(stderr, "tandem bench:", err)
		return 2
	}
	code := 0
	switch {
	case err != nil:
		fmt.Fprintln(stderr, "tandem bench:", err)
		code = 1
	case !res.Converged:
		fmt.Fprintln(stderr, "tandem bench:", res.Reason)
		code = 1
	}
	if res.LatencyTimeouts > 0 {
		fmt.Fprintf(stderr, "tandem bench: %d edits did not reach the other side within %s\n", res.LatencyTimeouts, opts.Timeout)
		code = 1
	}
	if jsonOut {
		b, err := json.Marshal(res)
		if err != nil {
			fmt.Fprintln(stderr, "tandem bench:", err)
			return 1
		}
		fmt.Fprintln(stdout, string(b))
	} else {
		printTable(stdout, res)
	}
	return code
}

// printTable prints the result for a person.
func printTable(w io.Writer, r *Result) {
	fmt.Fprintf(w, "users %d × contacts %d: converged %v\n", r.Users, r.ContactsPerUser, r.Converged)
	fmt.Fprintf(w, "  initial sync   %d records in %.1fs: %.0f records/s (floor %.0f records/s in %.1fs)\n",
		r.Records, r.Seconds, r.RecordsPerSecond, r.FloorRecordsPerSecond, r.FloorSeconds)
	fmt.Fprintf(w, "  calls          EWS %d (minimum %d), Salesforce %d (minimum %d)\n", r.EWSCalls, r.MinEWSCalls, r.SalesforceCalls, r.MinSalesforceCalls)
	fmt.Fprintf(w, "  idle cycle     EWS %d (minimum %d), Salesforce %d (minimum %d)\n",
		r.IdleCycleEWSCalls, r.MinIdleCycleEWSCalls, r.IdleCycleSalesforceCalls, r.MinIdleCycleSalesforceCalls)
	fmt.Fprintf(w, "  latency        p50 %.0f ms, p99 %.0f ms (%d edits, interval %.0fs)\n", r.LatencyP50Ms, r.LatencyP99Ms, r.LatencySamples, r.IntervalSeconds)
	fmt.Fprintf(w, "  memory         peak RSS %.0f MiB, peak Go heap %.0f MiB, of which Tandem's services at most %.0f MiB\n",
		r.PeakRSSMiB, r.PeakHeapMiB, r.PeakServicesHeapMiB)
	for _, s := range r.PeakServicesHeapSites[:min(5, len(r.PeakServicesHeapSites))] {
		fmt.Fprintf(w, "                   %6.1f MiB  %s\n", s.MiB, s.Site)
	}
}
