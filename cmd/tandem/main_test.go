package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	"github.com/tandem-sync/tandem/pkg/store"
)

func TestDevHelpDocumentsFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"dev", "--help"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	help := errOut.String()
	for _, want := range []string{"--users", "--contacts-per-user", "--until-synced", "--timeout", "--json", "--dump", "--redis-url", "$TANDEM_DEV_USERS", "--exchange-ews-url", "--salesforce-url"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{nil, 2},
		{[]string{"bogus"}, 2},
		{[]string{"dev", "--users", "0"}, 2},
		{[]string{"dev", "--exchange-ews-url", "https://mail.example.com/EWS/Exchange.asmx"}, 2},
		{[]string{"plan"}, 2},
		{[]string{"sim", "mainframe"}, 2},
		{[]string{"version"}, 0},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if code := run(tt.args, &out, &errOut); code != tt.want {
			t.Errorf("tandem %v: exit %d, want %d (%s)", tt.args, code, tt.want, errOut.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the progress writer and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func devFlagsForTest(t *testing.T) devFlags {
	f := devFlags{
		users: 2, contacts: 10, seed: 3, interval: 500 * time.Millisecond, timeout: 90 * time.Second,
		redisURL: servertest.RedisServer(t).URL(), logFile: filepath.Join(t.TempDir(), "dev.log"), logLevel: "info",
		grpc: "127.0.0.1:0",
	}
	return f
}

func TestDevUntilSyncedPrintsJSONSummary(t *testing.T) {
	f := devFlagsForTest(t)
	f.untilSynced, f.jsonOut, f.dump = true, true, t.TempDir()
	opts, err := f.options()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	if code := runDev(t.Context(), f, opts, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var sum map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("last line of stdout is not JSON: %q", lines[len(lines)-1])
	}
	for _, k := range []string{"users", "contacts_in_sync", "events_in_sync", "seconds", "ews_calls", "salesforce_calls", "errors"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("summary lacks %q: %v", k, sum)
		}
	}
	if sum["users"] != float64(2) || sum["contacts_in_sync"] != float64(20) {
		t.Errorf("summary = %v", sum)
	}
	for _, name := range []string{"exchange.json", "salesforce.json"} {
		if !strings.Contains(errOut.String(), filepath.Join(f.dump, name)) {
			t.Errorf("no mention of %s in the progress output", name)
		}
	}
}

func TestDevStopsCleanlyWhenInterrupted(t *testing.T) {
	f := devFlagsForTest(t)
	opts, err := f.options()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- runDev(ctx, f, opts, &out, &errOut) }()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "users 2") {
		if time.Now().After(deadline) {
			t.Fatalf("no progress shown: %s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel() // what Ctrl-C does
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after an interrupt: %s", code, errOut.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("did not stop after an interrupt")
	}
}

// TestDevDumpsRealEndpoints runs `tandem dev --dump` against `tandem sim exchange` and `tandem sim
// salesforce` as its real endpoints, stops it as Ctrl-C does once it has loaded the org's users,
// and checks the dump, read through Tandem's connectors, against the dumps each simulator writes
// of itself on exit.
func TestDevDumpsRealEndpoints(t *testing.T) {
	simDir, keyFile := t.TempDir(), filepath.Join(t.TempDir(), "key.pem")
	seeding := []string{"--listen", "127.0.0.1:0", "--users", "2", "--contacts-per-user", "6", "--seed", "3", "--dump", simDir}
	simCtx, stopSims := context.WithCancel(context.Background())
	var exOut, sfOut syncBuffer
	exDone, sfDone := make(chan error, 1), make(chan error, 1)
	go func() {
		exDone <- simExchange(simCtx, slices.Concat(seeding, []string{"--password", "s3cret"}), &exOut, io.Discard)
	}()
	go func() {
		sfDone <- simSalesforce(simCtx, slices.Concat(seeding, []string{"--key-out", keyFile}), &sfOut, io.Discard)
	}()
	simsStopped := false
	stopSimulators := func() {
		if simsStopped {
			return
		}
		simsStopped = true
		stopSims()
		for _, done := range []chan error{exDone, sfDone} {
			if err := <-done; err != nil {
				t.Errorf("tandem sim: %v", err)
			}
		}
	}
	t.Cleanup(stopSimulators)
	poll.Until(t, "the simulators to start", func() bool {
		return strings.Contains(exOut.String(), "Ctrl-C") && strings.Contains(sfOut.String(), "Ctrl-C")
	})
	field := func(out, pattern string) string {
		t.Helper()
		m := regexp.MustCompile(pattern).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no %q in:\n%s", pattern, out)
		}
		return m[1]
	}

	f := devFlagsForTest(t)
	f.ewsURL, f.exUser, f.exPassword = field(exOut.String(), `EWS: +(\S+)`), devenv.ServiceAccount, "s3cret"
	f.sfOrg = field(sfOut.String(), `Simulated Salesforce org (\S+) at`)
	f.sfURL = field(sfOut.String(), `at (\S+) \(My Domain\)`)
	f.sfClient = field(sfOut.String(), `consumer key (\S+), private key`)
	f.sfUser = field(sfOut.String(), `integration user (\S+)`)
	f.sfProfiles = field(sfOut.String(), `Sales Rep profile: +(\S+);`)
	f.sfKeyFile, f.sfAudience, f.insecureHTTP, f.dump = keyFile, "https://test.salesforce.com", true, t.TempDir()
	opts, err := f.options()
	if err != nil {
		t.Fatal(err)
	}
	ctx, interrupt := context.WithCancel(t.Context())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- runDev(ctx, f, opts, &out, &errOut) }()
	rdb, err := store.NewClient(f.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	st := store.New(rdb, nil)
	poll.Within(t, 60*time.Second, "the org's users to load", func() bool {
		users, err := st.ListUsers(t.Context(), f.sfOrg)
		return err == nil && len(users) > 0
	})
	interrupt()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "Wrote "+filepath.Join(f.dump, devenv.ExchangeDumpFile)) {
		t.Errorf("no mention of the dump in the output:\n%s\n%s", out.String(), errOut.String())
	}
	stopSimulators()

	var ex, sf devenv.RealDump
	var simEx ewssim.Dump
	var simSF sfsim.Dump
	for path, v := range map[string]any{
		filepath.Join(f.dump, devenv.ExchangeDumpFile): &ex, filepath.Join(f.dump, devenv.SalesforceDumpFile): &sf,
		filepath.Join(simDir, devenv.ExchangeDumpFile): &simEx, filepath.Join(simDir, devenv.SalesforceDumpFile): &simSF,
	} {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if len(ex.Users) != 2 || len(sf.Users) != 2 {
		t.Fatalf("%d users in exchange.json, %d in salesforce.json, want 2", len(ex.Users), len(sf.Users))
	}
	for _, u := range ex.Users {
		var got, want []string
		for _, r := range u.Contacts {
			got = append(got, r.GetContact().GetEmailAddress1())
		}
		for _, c := range simEx.Mailboxes[u.Mailbox].Contacts {
			want = append(want, c.EmailAddress1)
		}
		slices.Sort(got)
		slices.Sort(want)
		if len(got) == 0 || !slices.Equal(got, want) {
			t.Errorf("Exchange contacts of %s: %q in the dump, %q in the simulator", u.Mailbox, got, want)
		}
	}
	for _, u := range sf.Users {
		var got, want []string
		for _, r := range u.Contacts {
			got = append(got, r.GetId()+" "+r.GetContact().GetEmailAddress1())
		}
		for _, c := range simSF.Contacts {
			if c["OwnerId"] == u.UserID {
				email, _ := c["Email"].(string) // nil when the contact has none
				want = append(want, fmt.Sprintf("%v %s", c["Id"], email))
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if len(got) == 0 || !slices.Equal(got, want) {
			t.Errorf("Salesforce contacts of %s: %q in the dump, %q in the simulator", u.Mailbox, got, want)
		}
	}
}

func TestDevProgressWithoutATerminalIsALinePerChange(t *testing.T) {
	f := devFlagsForTest(t)
	f.untilSynced = true
	f.logFile = ""
	opts, err := f.options()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	if code := runDev(t.Context(), f, opts, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	// The services' log is a file of this run, named on the first line.
	first := strings.SplitN(out.String(), "\n", 2)[0]
	if m := regexp.MustCompile(`logs in (\S+tandem-dev-\S+\.log)`).FindStringSubmatch(first); m == nil {
		t.Errorf("the first line names no per-run log file: %q", first)
	} else {
		t.Cleanup(func() { _ = os.Remove(m[1]) })
	}
	var progress []string
	for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		if strings.HasPrefix(line, "[") {
			progress = append(progress, line[strings.Index(line, "]")+2:])
		}
	}
	if len(progress) == 0 || progress[len(progress)-1] != "everything is in sync" {
		t.Fatalf("progress does not end with the in-sync line:\n%s", out.String())
	}
	// Counters that move every cycle (cycle, calls) do not make a line of their own.
	state := regexp.MustCompile(`^cycle \d+ +(.*) +EWS calls.*$`)
	for i := 1; i < len(progress); i++ {
		a, b := state.FindStringSubmatch(progress[i-1]), state.FindStringSubmatch(progress[i])
		if a != nil && b != nil && a[1] == b[1] {
			t.Errorf("two progress lines in a row with the same state:\n%s\n%s", progress[i-1], progress[i])
		}
	}
}
