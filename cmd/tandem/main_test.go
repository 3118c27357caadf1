package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
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
