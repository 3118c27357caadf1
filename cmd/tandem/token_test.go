package main

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

// startDev runs `tandem dev` until the test ends and returns the API's address and the token
// from the line it prints for a second terminal.
func startDev(t *testing.T) (addr, token string) {
	t.Helper()
	f := devFlagsForTest(t)
	opts, err := f.options()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- runDev(ctx, f, opts, &out, &errOut) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		for line := range strings.SplitSeq(out.String(), "\n") {
			if !strings.HasPrefix(line, "TANDEM_ADDR=") {
				continue
			}
			vars := map[string]string{}
			for _, kv := range strings.Fields(line) {
				k, v, _ := strings.Cut(kv, "=")
				vars[k] = v
			}
			if vars["TANDEM_PLAINTEXT"] != "true" || vars["TANDEM_TOKEN"] == "" {
				t.Fatalf("tandem dev prints %q", line)
			}
			return vars["TANDEM_ADDR"], vars["TANDEM_TOKEN"]
		}
		if time.Now().After(deadline) {
			t.Fatalf("tandem dev printed no TANDEM_ADDR line:\n%s\n%s", out.String(), errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cli runs the tandem command and returns its exit code, stdout and stderr.
func cli(args ...string) (int, string, string) {
	var out, errOut strings.Builder
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestTokensIssuedWithTheCLIWork(t *testing.T) {
	addr, operator := startDev(t)
	api := []string{"--addr", addr, "--plaintext"}

	// The operator token tandem dev printed issues a viewer token of the dev org.
	code, secret, stderr := cli(append([]string{"token", "create", "--token", operator, "--name", "wallboard", "--role", "viewer", "--org-ids", "00Dorg000000001EAA"}, api...)...)
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(secret), "tandem_") {
		t.Fatalf("token create: exit %d, stdout %q, stderr %q", code, secret, stderr)
	}
	viewer := strings.TrimSpace(secret)
	code, list, stderr := cli(append([]string{"token", "list", "--token", operator}, api...)...)
	if code != 0 || !strings.Contains(list, "wallboard") || !strings.Contains(list, "viewer") || strings.Contains(list, viewer) {
		t.Fatalf("token list: exit %d\n%s%s", code, list, stderr)
	}

	// A viewer may not issue tokens; the error is a sentence, not a gRPC dump.
	code, _, stderr = cli(append([]string{"token", "create", "--token", viewer, "--name", "x", "--role", "viewer", "--org-ids", "00Dorg000000001EAA"}, api...)...)
	if code != 1 || !strings.Contains(stderr, "not allowed") || strings.Contains(stderr, "rpc error") {
		t.Fatalf("a viewer creating a token: exit %d, %q", code, stderr)
	}
	code, _, stderr = cli(append([]string{"status", "--token", "tandem_wrong"}, api...)...)
	if code != 1 || !strings.Contains(stderr, "refused the token") {
		t.Fatalf("status with a wrong token: exit %d, %q", code, stderr)
	}

	// Revoked, the viewer token stops working.
	code, list, _ = cli(append([]string{"token", "list", "--token", operator, "--output", "json"}, api...)...)
	var tokens []struct {
		TokenID string `json:"token_id"`
		Name    string `json:"name"`
	}
	if err := json.Unmarshal([]byte(list), &tokens); code != 0 || err != nil {
		t.Fatalf("token list --output json: exit %d, %v\n%s", code, err, list)
	}
	id := ""
	for _, tok := range tokens {
		if tok.Name == "wallboard" {
			id = tok.TokenID
		}
	}
	if id == "" {
		t.Fatalf("token list --output json has no wallboard token:\n%s", list)
	}
	if code, _, stderr := cli(append([]string{"token", "revoke", "--token", operator, id}, api...)...); code != 0 {
		t.Fatalf("token revoke %s: exit %d, %s", id, code, stderr)
	}
	code, _, stderr = cli(append([]string{"status", "--token", viewer}, api...)...)
	if code != 1 || !strings.Contains(stderr, "refused the token") {
		t.Fatalf("status with a revoked token: exit %d, %q", code, stderr)
	}
}

func TestCLISaysWhenNoAPIAnswers(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	code, _, stderr := cli("status", "--addr", addr, "--plaintext", "--token", "tandem_x")
	if code != 1 || !strings.Contains(stderr, "no Tandem API at "+addr) {
		t.Fatalf("status against nothing: exit %d, %q", code, stderr)
	}
	code, _, stderr = cli("status", "--addr", addr, "--token", "")
	if code != 1 || !strings.Contains(stderr, "TANDEM_TOKEN") {
		t.Fatalf("status without a token: exit %d, %q", code, stderr)
	}
}
