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
		{name: "misspelt variable", env: []string{"TANDEM_REDIS_ULR=x"}, wantErr: "TANDEM_REDIS_ULR (did you mean TANDEM_REDIS_URL?)"},
		{name: "unknown variables are all listed, with what is known", env: []string{"TANDEM_ZZZ=1", "TANDEM_AAA=2"},
			wantErr: "unknown environment variables TANDEM_AAA, TANDEM_ZZZ (known: TANDEM_REDIS_URL, TANDEM_SYNC_INTERVAL)"},
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

// TestParseAlsoKnown: a variable of another component is ignored — it sets nothing here and is
// no error — while one of no component still is, with the nearest known variable suggested
// from every component's.
func TestParseAlsoKnown(t *testing.T) {
	product := []string{"TANDEM_ALLOW_HTTP", "TANDEM_GRACEFUL_STOP", "TANDEM_REDIS_URL", "TANDEM_SYNC_INTERVAL"}
	tests := []struct {
		name    string
		env     []string
		wantURL string
		wantErr string
	}{
		{name: "another component's variables", env: []string{"TANDEM_ALLOW_HTTP=true", "TANDEM_GRACEFUL_STOP=3s", "TANDEM_REDIS_URL=redis://env"}, wantURL: "redis://env"},
		{name: "a typo of this component's", env: []string{"TANDEM_ALLOW_HTTP=true", "TANDEM_REDIS_ULR=x"}, wantErr: "TANDEM_REDIS_ULR (did you mean TANDEM_REDIS_URL?)"},
		{name: "a typo of another component's", env: []string{"TANDEM_GRACEFUL_STPP=3s"}, wantErr: "TANDEM_GRACEFUL_STPP (did you mean TANDEM_GRACEFUL_STOP?)"},
		{name: "nothing near", env: []string{"TANDEM_COLOUR=blue"}, wantErr: "unknown environment variables TANDEM_COLOUR (known: TANDEM_REDIS_URL, TANDEM_SYNC_INTERVAL)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, url, _ := newFlags()
			err := Parse(fs, nil, tt.env, "TANDEM_", AlsoKnown(product))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want mention of %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *url != tt.wantURL {
				t.Errorf("--redis-url = %s, want %s", *url, tt.wantURL)
			}
			if fs.Lookup("allow-http") != nil {
				t.Error("another component's variable registered a flag")
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"URL", "URL", 0}, {"URL", "ULR", 1}, {"URL", "URLS", 1}, {"URL", "RL", 1},
		{"URL", "UXY", 2}, {"TANDEM_TICK", "TANDEM_JITTER", 5}, {"ab", "", 2},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := editDistance(tc.b, tc.a); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.b, tc.a, got, tc.want)
		}
	}
}
