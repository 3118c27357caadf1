package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// module is the import path prefix of Tandem's own packages.
const module = "github.com/tandem-sync/tandem/"

// forbiddenInServices reports why a package of Tandem's must not be linked into a service
// binary, or "" if it may be: the simulators and the local servers and fixtures exist for
// `tandem dev`, tests and benchmarks only.
func forbiddenInServices(pkg string) string {
	rel, ok := strings.CutPrefix(pkg, module)
	if !ok {
		return ""
	}
	switch {
	case strings.HasPrefix(rel, "pkg/sim/"):
		return "a simulator"
	case strings.HasPrefix(rel, "pkg/devkit/"):
		return "a local server or test fixture"
	case strings.HasSuffix(rel, "test"):
		return "a test package"
	}
	return ""
}

func TestForbiddenInServices(t *testing.T) {
	for pkg, want := range map[string]bool{
		module + "pkg/sim/ewssim":                      true,
		module + "pkg/sim/soql":                        true,
		module + "pkg/devkit/localredis":               true,
		module + "pkg/exchange/exchangetest":           true,
		module + "pkg/ews":                             false,
		module + "pkg/reconcile/engine":                false,
		"go.opentelemetry.io/otel/sdk/trace/tracetest": false,
	} {
		if got := forbiddenInServices(pkg) != ""; got != want {
			t.Errorf("forbiddenInServices(%s) = %v, want %v", pkg, got, want)
		}
	}
}

// TestServiceBinariesLinkNoSimulator lists the import graph of every service binary, as each
// service module builds on its own, and fails if it reaches a simulator, a local server, a
// test fixture or a test package.
func TestServiceBinariesLinkNoSimulator(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the services' imports: %v", err)
	}
	mains, err := filepath.Glob(filepath.Join("..", "..", "services", "*", "cmd", "*"))
	if err != nil || len(mains) == 0 {
		t.Fatalf("no service binaries found under services/*/cmd (%v)", err)
	}
	for _, dir := range mains {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), goBin, "list", "-deps", ".")
			cmd.Dir = dir
			cmd.Env = append(cmd.Environ(), "GOWORK=off")
			out, err := cmd.Output()
			if err != nil {
				var stderr string
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					stderr = string(ee.Stderr)
				}
				t.Fatalf("go list -deps in %s: %v\n%s", dir, err, stderr)
			}
			deps := strings.Fields(string(out))
			if !containsPrefix(deps, module+"pkg/") {
				t.Fatalf("%s links none of Tandem's packages: the listing is wrong", name)
			}
			for _, dep := range deps {
				if why := forbiddenInServices(dep); why != "" {
					t.Errorf("%s links %s, %s", name, dep, why)
				}
			}
		})
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
