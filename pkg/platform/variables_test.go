package platform

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-sync/tandem/pkg/settings"
)

// TestVariablesListThePlatformsOwn: the generated list is sorted, without repeats, and holds
// the variables every service registers through Config (cmd/tandem's TestSettingsGenerated
// checks it against every service's flags).
func TestVariablesListThePlatformsOwn(t *testing.T) {
	vars := Variables()
	if !slices.IsSorted(vars) || len(slices.Compact(slices.Clone(vars))) != len(vars) {
		t.Errorf("Variables() is not sorted and distinct: %v", vars)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	new(Config).RegisterFlags(fs)
	for _, v := range settings.Known(fs, EnvPrefix) {
		if !slices.Contains(vars, v) {
			t.Errorf("Variables() lacks %s", v)
		}
	}
}

// TestMainAcceptsOtherServicesVariables: a service started with the variables of the other
// services (a shared ConfigMap) gets past its flags; a typo still stops it with exit code 2.
func TestMainAcceptsOtherServicesVariables(t *testing.T) {
	build := func(*Platform) (Service, error) { return nil, errors.New("not reached") }
	for _, tc := range []struct {
		name    string
		environ []string
		code    int
		output  string
	}{
		// Exit code 1: the settings were parsed, then found invalid before any connection.
		{name: "the status-api's and the exchange-worker's", environ: []string{"TANDEM_GRACEFUL_STOP=3s", "TANDEM_ALLOW_HTTP=true", "TANDEM_STREAM_REPLICAS=9"}, code: 1, output: "--stream-replicas 9"},
		{name: "a typo", environ: []string{"TANDEM_ALLOW_HTTP=true", "TANDEM_REDIS_ULR=redis://x"}, code: 2, output: "svc: unknown environment variables TANDEM_REDIS_ULR (did you mean TANDEM_REDIS_URL?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg serviceFlags
			var stderr bytes.Buffer
			proc := process{
				environ: tc.environ,
				stderr:  &stderr,
				signals: func() (context.Context, context.CancelFunc) { return context.WithCancel(t.Context()) },
			}
			if code := mainWith(proc, "svc", nil, &cfg.Platform, cfg.register, build); code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.output) {
				t.Errorf("stderr does not contain %q:\n%s", tc.output, stderr.String())
			}
		})
	}
}
