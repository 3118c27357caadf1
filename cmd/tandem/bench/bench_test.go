package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// runCommand runs `tandem bench` with args and environ and returns its exit code, the JSON
// object on the last line of stdout, and stderr.
func runCommand(t *testing.T, args, environ []string) (int, map[string]any, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"--json", "--log-file", filepath.Join(t.TempDir(), "bench.log"), "--log-level", "warn"}, args...)
	code := Command(t.Context(), args, environ, &stdout, &stderr)
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line of stdout is not a JSON object: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	return code, res, stderr.String()
}

// TestBench runs the real command on a small workload and checks that every field is there and
// makes sense: the sync converged with every seeded person on both sides, no side made fewer
// calls than the minimum, the edits arrived, the floor copied.
//
// It runs as in production, with notifications and a long interval, and with polling alone.
func TestBench(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"notifications", []string{"--interval", "5m"}},
		{"polling", []string{"--notify=false", "--interval", "1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) { testBench(t, tc.args, tc.name == "notifications") })
	}
}

func testBench(t *testing.T, args []string, notified bool) {
	start := time.Now()
	profiles := []string{filepath.Join(t.TempDir(), "cpu.pprof"), filepath.Join(t.TempDir(), "alloc.pprof")}
	if notified {
		args = append(args, "--cpu-profile", profiles[0], "--alloc-profile", profiles[1])
	}
	code, res, stderr := runCommand(t, append([]string{"--contacts-per-user", "20", "--edits", "6", "--wave", "3", "--timeout", "45s"}, args...),
		[]string{"TANDEM_BENCH_USERS=3"})
	if code != 0 {
		t.Fatalf("exit code %d\n%s", code, stderr)
	}
	if notified {
		for _, p := range profiles {
			// A pprof profile is a gzipped protocol buffer.
			if b, err := os.ReadFile(p); err != nil || len(b) < 100 || b[0] != 0x1f || b[1] != 0x8b {
				t.Errorf("%s is not a profile: %d bytes, %v", filepath.Base(p), len(b), err)
			}
		}
	}
	t.Logf("%.1fs:\n%s", time.Since(start).Seconds(), stderr)
	for _, k := range []string{"users", "contacts_per_user", "events_per_user", "records", "seconds", "records_per_second",
		"floor_seconds", "floor_records_per_second", "ews_calls", "min_ews_calls", "salesforce_calls", "min_salesforce_calls",
		"idle_cycle_ews_calls", "min_idle_cycle_ews_calls", "idle_cycle_salesforce_calls", "min_idle_cycle_salesforce_calls",
		"latency_p50_ms", "latency_p99_ms", "peak_rss_mib", "converged", "ews_empty_reads", "cpu_seconds", "redis_cpu_seconds", "gc_cpu_share"} {
		if _, ok := res[k]; !ok {
			t.Errorf("the result has no %q", k)
		}
	}
	num := func(k string) float64 {
		v, _ := res[k].(float64)
		return v
	}
	if res["converged"] != true {
		t.Fatalf("not converged: %v", res["reason"])
	}
	if num("users") != 3 || num("contacts_per_user") != 20 || num("events_per_user") != 0 {
		t.Errorf("workload %v × %v (events %v), want 3 × 20", res["users"], res["contacts_per_user"], res["events_per_user"])
	}
	// The seeders put 10 contacts in each mailbox and 11 in Salesforce, one person on both.
	if num("records") != 3*20 {
		t.Errorf("records = %v, want %d", res["records"], 3*20)
	}
	// The process worked, the collector for part of it. (Its redis-server's few milliseconds may
	// fall between the kernel's accounting ticks: only its presence is checked.)
	if runtime.GOOS != "windows" && num("cpu_seconds") <= 0 {
		t.Errorf("cpu_seconds %v, want > 0", res["cpu_seconds"])
	}
	if num("redis_cpu_seconds") < 0 {
		t.Errorf("redis_cpu_seconds %v, want ≥ 0", res["redis_cpu_seconds"])
	}
	if s := num("gc_cpu_share"); s <= 0 || s >= 1 {
		t.Errorf("gc_cpu_share %v, want within (0, 1)", res["gc_cpu_share"])
	}
	for _, k := range []string{"seconds", "records_per_second", "floor_seconds", "floor_records_per_second", "peak_rss_mib", "latency_p50_ms"} {
		if num(k) <= 0 {
			t.Errorf("%s = %v, want > 0", k, res[k])
		}
	}
	if got := num("records") / num("seconds"); got < num("records_per_second")*0.99 || got > num("records_per_second")*1.01 {
		t.Errorf("records_per_second = %v, but records/seconds = %v", res["records_per_second"], got)
	}
	if num("latency_p99_ms") < num("latency_p50_ms") {
		t.Errorf("latency p99 %v < p50 %v", res["latency_p99_ms"], res["latency_p50_ms"])
	}
	// An edit travels with the next cycle, which a notification or the interval starts.
	if num("latency_p99_ms") > 15_000 {
		t.Errorf("latency p99 = %v ms", res["latency_p99_ms"])
	}
	for _, dir := range []string{"to_salesforce", "to_exchange"} {
		if p50, slowest := num("latency_"+dir+"_p50_ms"), num("latency_"+dir+"_max_ms"); p50 <= 0 || slowest < p50 || slowest > num("latency_max_ms") {
			t.Errorf("latency %s: p50 %v, max %v, overall max %v", dir, p50, slowest, res["latency_max_ms"])
		}
	}
	if num("latency_samples") != 6 || num("latency_timeouts") != 0 {
		t.Errorf("latency samples %v, timeouts %v; want 6 and 0", res["latency_samples"], res["latency_timeouts"])
	}
	for _, side := range []string{"ews_calls", "salesforce_calls", "idle_cycle_ews_calls", "idle_cycle_salesforce_calls"} {
		least := num("min_" + side)
		if notified && side == "idle_cycle_ews_calls" {
			// Watched mailboxes that report no change need no read.
			if least != 0 {
				t.Errorf("min_%s = %v with notifications, want 0", side, least)
			}
			continue
		}
		if least <= 0 || num(side) < least {
			t.Errorf("%s = %v, below its minimum %v (or the minimum is not positive)", side, res[side], res["min_"+side])
		}
	}
	// An idle cycle polls the org and reads each mailbox once at most: all of them when
	// polling. Whatever it costs beyond that, it writes nothing.
	if idle := num("idle_cycle_ews_calls"); idle > 3 || (!notified && idle < 3) {
		t.Errorf("idle cycle EWS calls = %v for 3 mailboxes (notifications %v)", idle, notified)
	}
	if num("ews_calls") < num("ews_calls_at_convergence") || num("salesforce_calls") < num("salesforce_calls_at_convergence") {
		t.Errorf("fewer calls until the idle cycle than until convergence: %v", res)
	}
	// Reads that found nothing are SyncFolderItems calls, not calls of their own.
	initialEWS, _ := res["initial_calls"].(map[string]any)["ews"].(map[string]any)
	if _, ok := initialEWS["Empty:SyncFolderItems"]; ok {
		t.Errorf("initial_calls lists empty reads as an operation: %v", initialEWS)
	}
	if syncs, _ := initialEWS["SyncFolderItems"].(float64); num("ews_empty_reads") < 0 || num("ews_empty_reads") > syncs {
		t.Errorf("ews_empty_reads = %v of %v SyncFolderItems", res["ews_empty_reads"], syncs)
	}
	if num("floor_ews_calls") <= 0 || num("floor_salesforce_calls") <= 0 {
		t.Errorf("the floor made %v EWS and %v Salesforce calls", res["floor_ews_calls"], res["floor_salesforce_calls"])
	}
}

// TestBenchTimeout checks that a run whose initial sync does not converge in time says so and
// exits non-zero.
func TestBenchTimeout(t *testing.T) {
	code, res, stderr := runCommand(t, []string{"--users", "2", "--contacts-per-user", "10", "--timeout", "1ms"}, nil)
	if code == 0 {
		t.Errorf("exit code 0 for a run that did not converge\n%s", stderr)
	}
	if res["converged"] != false || res["reason"] == "" {
		t.Errorf("converged %v, reason %q", res["converged"], res["reason"])
	}
}

// TestBenchFlags checks that bad flags and environment variables are refused before anything
// starts.
func TestBenchFlags(t *testing.T) {
	tests := []struct {
		args, environ []string
	}{
		{args: []string{"--users", "0"}},
		{args: []string{"--events-per-user", "5"}},
		{environ: []string{"TANDEM_BENCH_USRES=3"}},
		{args: []string{"extra"}},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		args := append([]string{"--log-file", filepath.Join(t.TempDir(), "bench.log")}, tt.args...)
		if code := Command(t.Context(), args, tt.environ, &stdout, &stderr); code != 2 {
			t.Errorf("%v %v: exit code %d, want 2\n%s", tt.args, tt.environ, code, stderr.String())
		}
	}
}

func TestPercentile(t *testing.T) {
	durations := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{nil, 0.5, 0},
		{durations(7), 0.99, 7 * time.Millisecond},
		{durations(4, 1, 3, 2), 0.5, 2 * time.Millisecond},
		{durations(4, 1, 3, 2), 0.99, 4 * time.Millisecond},
		{durations(10, 20, 30, 40, 50, 60, 70, 80, 90, 100), 0.5, 50 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.samples, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.samples, tt.p, got, tt.want)
		}
	}
}
