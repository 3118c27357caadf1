package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
)

// TestSimSalesforceDumpsOnExit runs `tandem sim salesforce` behind a pretend proxy until it is
// stopped, as by SIGINT, and checks the URL it advertises and the dump it writes on the way out.
func TestSimSalesforceDumpsOnExit(t *testing.T) {
	dir := t.TempDir()
	ctx, stop := context.WithCancel(t.Context())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- simSalesforce(ctx, []string{"--listen", "127.0.0.1:0", "--pubsub-listen", "127.0.0.1:0", "--users", "2", "--contacts-per-user", "6", "--seed", "3",
			"--public-url", "https://proxy.acme.example", "--dump", dir, "--key-out", filepath.Join(dir, "key.pem")}, &out, io.Discard)
	}()
	poll.Until(t, "the simulator to start", func() bool { return strings.Contains(out.String(), "Ctrl-C") })
	if !strings.Contains(out.String(), "at https://proxy.acme.example (My Domain)") {
		t.Errorf("the advertised URL is not the public one:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "Pub/Sub API:") {
		t.Errorf("no Pub/Sub API announced:\n%s", out.String())
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "salesforce.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dump struct {
		Contacts []map[string]any `json:"contacts"`
	}
	if err := json.Unmarshal(raw, &dump); err != nil {
		t.Fatal(err)
	}
	if len(dump.Contacts) != 2*6-2*3+2 { // per rep: 3 in Salesforce only, 1 on both sides
		t.Errorf("%d contacts in the dump", len(dump.Contacts))
	}
}
