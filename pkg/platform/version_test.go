package platform

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestBuildFrom(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{
			{Key: "-trimpath", Value: "true"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-11-02T10:00:00Z"},
			{Key: "vcs.modified", Value: modified},
		}
	}
	devel := debug.Module{Path: "github.com/tandem-sync/tandem/services/scheduler", Version: "(devel)"}
	tests := []struct {
		name                  string
		version, commit, date string // as stamped with -ldflags -X
		info                  *debug.BuildInfo
		want                  Build
	}{
		{
			name: "stamped wins", version: "v1.2.3", commit: "abc", date: "2026-11-03T00:00:00Z",
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: devel, Settings: vcs("true")},
			want: Build{Version: "v1.2.3", Commit: "abc", Date: "2026-11-03T00:00:00Z", GoVersion: "go1.26.8"},
		},
		{
			name: "stamped version only: commit and date from the toolchain", version: "v1.2.3",
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: devel, Settings: vcs("false")},
			want: Build{Version: "v1.2.3", Commit: rev, Date: "2026-11-02T10:00:00Z", GoVersion: "go1.26.8"},
		},
		{
			name: "unstamped, from a repository", version: "dev",
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: devel, Settings: vcs("false")},
			want: Build{Version: "dev-0123456789ab", Commit: rev, Date: "2026-11-02T10:00:00Z", GoVersion: "go1.26.8"},
		},
		{
			name: "unstamped, uncommitted changes", version: "dev",
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: devel, Settings: vcs("true")},
			want: Build{Version: "dev-0123456789ab+dirty", Commit: rev, Modified: true, Date: "2026-11-02T10:00:00Z", GoVersion: "go1.26.8"},
		},
		{
			name: "installed from a module version", version: "dev",
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: devel.Path, Version: "v1.4.0"}},
			want: Build{Version: "v1.4.0", GoVersion: "go1.26.8"},
		},
		{
			name: "pseudo-version the toolchain derived", version: "dev",
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: devel.Path, Version: "v0.0.0-20261102100000-0123456789ab+dirty"}, Settings: vcs("true")},
			want: Build{Version: "v0.0.0-20261102100000-0123456789ab+dirty", Commit: rev, Modified: true, Date: "2026-11-02T10:00:00Z", GoVersion: "go1.26.8"},
		},
		{
			name: "no VCS information (-buildvcs=false)", version: "dev",
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: devel},
			want: Build{Version: "dev", GoVersion: "go1.26.8"},
		},
		{
			name: "stamped empty version counts as unstamped", version: "",
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: devel, Settings: vcs("false")},
			want: Build{Version: "dev-0123456789ab", Commit: rev, Date: "2026-11-02T10:00:00Z", GoVersion: "go1.26.8"},
		},
		{
			name: "short revision", version: "dev",
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: devel, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}},
			want: Build{Version: "dev-abc", Commit: "abc", GoVersion: "go1.26.8"},
		},
		{
			name: "no build information at all", version: "", commit: "abc",
			want: Build{Version: "dev", Commit: "abc", GoVersion: runtime.Version()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildFrom(tt.version, tt.commit, tt.date, tt.info); got != tt.want {
				t.Errorf("buildFrom = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestBuildInfoOfThisBinary(t *testing.T) {
	b := BuildInfo()
	if b.Version == "" || b.GoVersion != runtime.Version() {
		t.Errorf("BuildInfo() = %+v; want a version and %s", b, runtime.Version())
	}
}

// TestRunServesMetrics runs a service on an opened platform and scrapes its health port's
// /metrics: the bus's own metrics, the runtime's, and the build's version in target_info.
func TestRunServesMetrics(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	srv := startServers(t)
	cfg := srv.config(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.HealthAddr = lis.Addr().String()
	lis.Close()
	cfg.DrainDelay = 0
	p, err := Open(t.Context(), cfg, "metrics-test", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	// A publish, which the bus counts in tandem.bus.messages.published.
	subject, err := bus.ChangesSubject("00Dorg", "005user")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Bus.Publish(t.Context(), subject, &tandemv1.ChangeBatch{}, bus.MsgID("metrics-test")); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	svc := &slowService{cfg: cfg, p: p, comp: lifecycle.Component{Name: "idle", Run: func(ctx context.Context) error { <-ctx.Done(); return nil }}}
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}()

	var body string
	poll.Until(t, "/metrics 200", func() bool {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+cfg.HealthAddr+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err == nil && resp.StatusCode == http.StatusOK
	})
	for _, want := range []string{
		`tandem_bus_messages_published_total{`, `outcome="stored"`,
		"go_goroutines ",
		`service_name="tandem-metrics-test"`,
		`service_version="` + BuildInfo().Version + `"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}
