package settings

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func newFlags() (*flag.FlagSet, *string, *time.Duration) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	url := fs.String("redis-url", "redis://default", "Redis URL")
	interval := fs.Duration("sync-interval", time.Minute, "how often")
	return fs, url, interval
}

func TestParse(t *testing.T) {
	tests := []struct {
		name         string
		args, env    []string
		wantURL      string
		wantInterval time.Duration
		wantErr      string
	}{
		{name: "defaults", wantURL: "redis://default", wantInterval: time.Minute},
		{name: "environment", env: []string{"TANDEM_REDIS_URL=redis://env", "TANDEM_SYNC_INTERVAL=5s", "PATH=/bin"}, wantURL: "redis://env", wantInterval: 5 * time.Second},
		{name: "flag wins", args: []string{"--redis-url=redis://flag"}, env: []string{"TANDEM_REDIS_URL=redis://env"}, wantURL: "redis://flag", wantInterval: time.Minute},
		{name: "unknown variable", env: []string{"TANDEM_REDIS_ULR=x"}, wantErr: "TANDEM_REDIS_ULR"},
		{name: "bad value", env: []string{"TANDEM_SYNC_INTERVAL=soon"}, wantErr: "TANDEM_SYNC_INTERVAL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, url, interval := newFlags()
			err := Parse(fs, tt.args, tt.env, "TANDEM_")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want mention of %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *url != tt.wantURL || *interval != tt.wantInterval {
				t.Errorf("got %s %s, want %s %s", *url, *interval, tt.wantURL, tt.wantInterval)
			}
		})
	}
}

func TestUsageNamesEnvironment(t *testing.T) {
	fs, _, _ := newFlags()
	u := Usage(fs, "TANDEM_")
	for _, want := range []string{"--redis-url", "$TANDEM_REDIS_URL", "--sync-interval", "(default 1m0s)"} {
		if !strings.Contains(u, want) {
			t.Errorf("usage lacks %q:\n%s", want, u)
		}
	}
}
