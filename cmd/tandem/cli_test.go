package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
)

// TestAdminCommandsAgainstTandemDev drives the admin commands against a running tandem dev, as
// an admin would from a second terminal.
func TestAdminCommandsAgainstTandemDev(t *testing.T) {
	addr, token := startDev(t)
	t.Setenv("TANDEM_ADDR", addr)
	t.Setenv("TANDEM_TOKEN", token)
	t.Setenv("TANDEM_PLAINTEXT", "true")
	t.Setenv("TANDEM_ORG", "")
	waitForDirectory(t, addr, token)

	// The configuration tandem dev made, as YAML; applied back as it is, nothing changes.
	code, cfg, stderr := cli("config", "get")
	if code != 0 || !strings.Contains(cfg, "name:") || !strings.Contains(cfg, "SYNC_DIRECTION_BOTH") {
		t.Fatalf("config get: exit %d\n%s%s", code, cfg, stderr)
	}
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := cli("config", "apply", "-f", file); code != 0 || !strings.Contains(out, "unchanged") {
		t.Fatalf("config apply of what config get printed: exit %d\n%s%s", code, out, stderr)
	}

	// A second configuration, new: created once, unchanged the second time.
	second := `name: "  managers "
org_id: ""
active: false
user_ids: [005x00000000001AAA, 005x00000000001AAA]
contacts:
  direction: SYNC_DIRECTION_EXCHANGE_TO_SALESFORCE
`
	if err := os.WriteFile(file, []byte(second), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := cli("config", "apply", "-f", file, "--yes")
	if code != 0 || !strings.Contains(out, "will be created") || !strings.Contains(out, "created") {
		t.Fatalf("config apply of a new configuration: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = cli("config", "apply", "-f", file, "--yes")
	if code != 0 || !strings.Contains(out, `"managers"`) || !strings.Contains(out, "unchanged") || strings.Contains(out, "will change") {
		t.Fatalf("config apply twice: the second time changes something: exit %d\n%s%s", code, out, stderr)
	}
	// Changed, it shows the change and, without --yes and without an answer, writes nothing.
	if err := os.WriteFile(file, []byte(strings.Replace(second, "active: false", "active: true", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cli("config", "apply", "-f", file)
	if code != 2 || !strings.Contains(out, "will change") || !strings.Contains(out, "active") {
		t.Fatalf("config apply of a change without an answer: exit %d\n%s", code, out)
	}
	if _, out, _ := cli("config", "apply", "-f", file, "--yes"); !strings.Contains(out, "changed") {
		t.Fatalf("config apply --yes of the change:\n%s", out)
	}
	// An invalid document is refused before anything is written, naming the field.
	if err := os.WriteFile(file, []byte("name: x\ncontacts: {direction: SIDEWAYS}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli("config", "apply", "-f", file, "--yes"); code != 2 || !strings.Contains(stderr, "direction") {
		t.Fatalf("config apply of an unknown direction: exit %d, %q", code, stderr)
	}

	// Field mappings are checked against the fields both sides have.
	if err := os.WriteFile(file, []byte("name: x\ncontacts:\n  direction: SYNC_DIRECTION_BOTH\n  field_mappings: [{field: home_address, direction: FIELD_DIRECTION_NONE}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli("config", "apply", "-f", file, "--yes"); code != 1 || !strings.Contains(stderr, "field_mappings[0].field") {
		t.Fatalf("config apply of a mapping of an Exchange-only field: exit %d, %q", code, stderr)
	}

	// Users, in every format.
	for _, format := range listFormats {
		code, out, stderr := cli("users", "-o", format)
		if code != 0 || !strings.Contains(out, "rep1@") {
			t.Fatalf("users -o %s: exit %d\n%s%s", format, code, out, stderr)
		}
	}
	if code, _, stderr := cli("users", "--status", "asleep"); code != 2 || !strings.Contains(stderr, "in-sync") {
		t.Fatalf("users --status asleep: exit %d, %q", code, stderr)
	}
	if code, out, stderr := cli("status", "user", "rep1@acme.example", "-o", "json"); code != 0 || !strings.Contains(out, `"email": "rep1@acme.example"`) {
		t.Fatalf("status user -o json: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr := cli("errors", "-o", "csv"); code != 0 || !strings.HasPrefix(out, "last_seen,user_id,object") {
		t.Fatalf("errors -o csv: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr := cli("connection", "test", "rep1@acme.example"); code != 0 || !strings.Contains(out, "All checks passed") {
		t.Fatalf("connection test: exit %d\n%s%s", code, out, stderr)
	}

	// The org: its settings without secrets; a YAML with a secret is refused; a secret comes
	// from the environment.
	code, org, stderr := cli("org", "get")
	if code != 0 || !strings.Contains(org, "org_id:") || strings.Contains(org, "private_key_pem") {
		t.Fatalf("org get: exit %d\n%s%s", code, org, stderr)
	}
	orgFile := filepath.Join(t.TempDir(), "org.yaml")
	if err := os.WriteFile(orgFile, []byte(org), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := cli("org", "apply", "-f", orgFile); code != 0 || !strings.Contains(out, "unchanged") {
		t.Fatalf("org apply of what org get printed: exit %d\n%s%s", code, out, stderr)
	}
	if err := os.WriteFile(orgFile, []byte(strings.Replace(org, "exchange:", "exchange:\n  password: hunter2", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli("org", "apply", "-f", orgFile, "--yes"); code != 2 || !strings.Contains(stderr, "exchange.password") {
		t.Fatalf("org apply of a YAML holding a password: exit %d, %q", code, stderr)
	}
	if code, _, stderr := cli("org", "apply", "-f", "-", "--exchange-password", "hunter2"); code != 2 || !strings.Contains(stderr, "file:PATH or env:NAME") {
		t.Fatalf("a secret on the command line: exit %d, %q", code, stderr)
	}
	// Sending the stored password to another Exchange endpoint needs the password again.
	moved := regexp.MustCompile(`(ews_url|autodiscover_url): \S+`).ReplaceAllString(org, "$1: http://127.0.0.1:1/elsewhere")
	if moved == org {
		t.Fatalf("the dev org has no Exchange URL:\n%s", org)
	}
	if err := os.WriteFile(orgFile, []byte(moved), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := cli("org", "apply", "-f", orgFile, "--yes"); code != 1 || !strings.Contains(stderr, "must be sent again") || !strings.Contains(out, "_url") {
		t.Fatalf("org apply moving the EWS URL without the password: exit %d\n%s%s", code, out, stderr)
	}
}

// TestAssignmentRulesHoldThroughConfigApply checks the admin guide's assignment rules with
// configurations applied as YAML: a user listed individually beats a profile assignment, and a
// user listed in a second configuration leaves the first.
func TestAssignmentRulesHoldThroughConfigApply(t *testing.T) {
	addr, token := startDev(t)
	t.Setenv("TANDEM_ADDR", addr)
	t.Setenv("TANDEM_TOKEN", token)
	t.Setenv("TANDEM_PLAINTEXT", "true")
	t.Setenv("TANDEM_ORG", "")

	var rep struct {
		UserID          string `json:"user_id"`
		ConfigurationID string `json:"configuration_id"`
	}
	// The org learns its users from its first Salesforce read.
	poll.Until(t, "rep1 assigned by its profile", func() bool {
		code, out, _ := cli("status", "user", "rep1@acme.example", "-o", "json")
		return code == 0 && json.Unmarshal([]byte(out), &rep) == nil && rep.UserID != "" && rep.ConfigurationID != ""
	})
	byProfile := rep.ConfigurationID

	apply := func(yamlText string) {
		t.Helper()
		file := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(file, []byte(yamlText), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, out, stderr := cli("config", "apply", "-f", file, "--yes"); code != 0 {
			t.Fatalf("config apply: exit %d\n%s%s", code, out, stderr)
		}
	}
	configOf := func(name string) (id string, users []string) {
		t.Helper()
		code, out, stderr := cli("config", "get", "-o", "json")
		var cfgs []struct {
			ID      string   `json:"id"`
			Name    string   `json:"name"`
			UserIDs []string `json:"user_ids"`
		}
		if err := json.Unmarshal([]byte(out), &cfgs); code != 0 || err != nil {
			t.Fatalf("config get -o json: exit %d, %v\n%s%s", code, err, out, stderr)
		}
		for _, c := range cfgs {
			if c.Name == name {
				return c.ID, c.UserIDs
			}
		}
		t.Fatalf("no configuration %q in %s", name, out)
		return "", nil
	}
	individual := "name: individual\nactive: true\nuser_ids: [" + rep.UserID + "]\ncontacts: {direction: SYNC_DIRECTION_BOTH}\n"
	apply(individual)
	first, _ := configOf("individual")
	if first == byProfile {
		t.Fatal("the new configuration has the profile configuration's id")
	}
	// The user listed individually resolves to that configuration, not to its profile's.
	status := func() string {
		t.Helper()
		_, out, _ := cli("status", "user", "rep1@acme.example", "-o", "json")
		var us struct {
			ConfigurationID string `json:"configuration_id"`
		}
		_ = json.Unmarshal([]byte(out), &us)
		return us.ConfigurationID
	}
	poll.Until(t, "rep1 assigned to the individual configuration", func() bool { return status() == first })

	// Listed in a second configuration, the user leaves the first.
	apply("name: second\nactive: true\nuser_ids: [" + rep.UserID + "]\ncontacts: {direction: SYNC_DIRECTION_EXCHANGE_TO_SALESFORCE}\n")
	second, users := configOf("second")
	if len(users) != 1 {
		t.Fatalf("second configuration users %v", users)
	}
	if _, left := configOf("individual"); len(left) != 0 {
		t.Fatalf("the user stayed in the first configuration too: %v", left)
	}
	poll.Until(t, "rep1 assigned to the second configuration", func() bool { return status() == second })
}

func TestWatchFollowsAUserUntilInterrupted(t *testing.T) {
	addr, token := startDev(t)
	waitForDirectory(t, addr, token)
	ctx, cancel := context.WithCancel(t.Context())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"watch", "rep1@acme.example", "-o", "json", "--addr", addr, "--token", token, "--plaintext"}, &out, &errOut)
	}()
	// The current status comes at once, a JSON object per line.
	poll.Until(t, "the watch's first status", func() bool { return strings.Contains(out.String(), `"email":"rep1@acme.example"`) })
	cancel() // what Ctrl-C does
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("watch ended with exit %d after an interrupt: %s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not end after an interrupt")
	}
	for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		var us map[string]any
		if err := json.Unmarshal([]byte(line), &us); err != nil || us["email"] != "rep1@acme.example" {
			t.Errorf("watch printed %q: not one status of rep1 per line (%v)", line, err)
		}
	}
}

// waitForDirectory waits until the dev org knows its reps: it learns them from its first
// Salesforce read.
func waitForDirectory(t *testing.T, addr, token string) {
	t.Helper()
	poll.Until(t, "rep1 in the org's directory", func() bool {
		code, _, _ := cli("status", "user", "rep1@acme.example", "--addr", addr, "--token", token, "--plaintext")
		return code == 0
	})
}
