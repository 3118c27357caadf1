package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/settings"
)

const devEnvPrefix = "TANDEM_DEV_"

type devFlags struct {
	users, contacts         int
	seed                    int64
	interval, timeout       time.Duration
	untilSynced, jsonOut    bool
	notify                  bool
	insecureHTTP            bool
	dump, redisURL, logFile string
	logLevel, grpc, health  string
	ewsURL, autodiscover    string
	exUser, exPassword      string
	exTenant, exClient      string
	exSecret, exDomains     string
	sfOrg, sfURL, sfClient  string
	sfKeyFile, sfSecret     string
	sfUser, sfAudience      string
	sfProfiles, sfUsers     string
	sfPubSub                string
}

func (f *devFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.users, "users", 5, "simulated sales reps (Salesforce users with an Exchange mailbox)")
	fs.IntVar(&f.contacts, "contacts-per-user", 40, "contacts seeded per user: about half in Exchange, half in Salesforce, a few on both")
	fs.Int64Var(&f.seed, "seed", 1, "seed of the generated data")
	fs.DurationVar(&f.interval, "interval", 2*time.Second, "how often the org syncs")
	fs.BoolVar(&f.notify, "notify", true, "watch the mailboxes with EWS streaming notifications: a change in Exchange starts a cycle at once (--interval stays the fallback)")
	fs.BoolVar(&f.untilSynced, "until-synced", false, "exit 0 once every user's contacts are in sync both ways and both sides agree")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "with --until-synced: give up (exit 1, with the reason) after this long")
	fs.BoolVar(&f.jsonOut, "json", false, "print a JSON summary as the last line of stdout (progress goes to stderr)")
	fs.StringVar(&f.dump, "dump", "", "on exit, write both sides' final state to this directory as exchange.json and salesforce.json: the simulators' "+
		"own dumps or, against real endpoints, each synced user's contacts read through Tandem's connectors (read only), as "+
		`{"users": [{"user_id", "mailbox", "contacts": [tandem.v1.Record in protojson]}]}`)
	fs.StringVar(&f.redisURL, "redis-url", os.Getenv("REDIS_URL"), "Redis to use (default $REDIS_URL; else a redis-server on PATH is started on a free port; else an in-memory stand-in)")
	fs.StringVar(&f.logFile, "log-file", "", "where the services' JSON logs go (default: a new tandem-dev-*.log in "+os.TempDir()+", printed at start)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.grpc, "grpc-addr", "127.0.0.1:9090", "address of the gRPC status and admin API")
	fs.StringVar(&f.health, "health-addr", "127.0.0.1:8080", "address of /healthz and /readyz; empty to disable")
	fs.StringVar(&f.ewsURL, "exchange-ews-url", "", "real Exchange: EWS URL (instead of the simulator)")
	fs.StringVar(&f.autodiscover, "exchange-autodiscover-url", "", "real Exchange: Autodiscover URL, when no EWS URL is given")
	fs.StringVar(&f.exUser, "exchange-user", "", "real Exchange: service account, user@domain or domain\\user")
	fs.StringVar(&f.exPassword, "exchange-password", "", "real Exchange: service account password (prefer $TANDEM_DEV_EXCHANGE_PASSWORD)")
	fs.StringVar(&f.exTenant, "exchange-tenant", "", "real Exchange Online: tenant id, for OAuth client credentials")
	fs.StringVar(&f.exClient, "exchange-client-id", "", "real Exchange Online: app client id (full_access_as_app)")
	fs.StringVar(&f.exSecret, "exchange-client-secret", "", "real Exchange Online: app client secret (prefer $TANDEM_DEV_EXCHANGE_CLIENT_SECRET)")
	fs.StringVar(&f.exDomains, "exchange-additional-domains", "", "real Exchange: the reps' other email domains, comma-separated")
	fs.StringVar(&f.sfOrg, "salesforce-org-id", "", "real Salesforce: the org id (00D...)")
	fs.StringVar(&f.sfURL, "salesforce-url", "", "real Salesforce: the org's My Domain URL (instead of the simulator)")
	fs.BoolVar(&f.insecureHTTP, "insecure-http", false, "allow plain-http --exchange-* and --salesforce-url endpoints (test servers such as tandem sim only)")
	fs.StringVar(&f.sfClient, "salesforce-client-id", "", "real Salesforce: the connected app's consumer key")
	fs.StringVar(&f.sfKeyFile, "salesforce-key-file", "", "real Salesforce: the connected app certificate's private key (PEM), for the JWT bearer flow")
	fs.StringVar(&f.sfSecret, "salesforce-client-secret", "", "real Salesforce: the consumer secret, for the client credentials flow")
	fs.StringVar(&f.sfUser, "salesforce-username", "", "real Salesforce: the integration user (JWT bearer)")
	fs.StringVar(&f.sfAudience, "salesforce-audience", "https://test.salesforce.com", "real Salesforce: JWT audience (test.salesforce.com for sandboxes)")
	fs.StringVar(&f.sfProfiles, "salesforce-profiles", "", "real Salesforce: profile ids to sync, comma-separated")
	fs.StringVar(&f.sfUsers, "salesforce-users", "", "real Salesforce: user ids to sync, comma-separated")
	fs.StringVar(&f.sfPubSub, "salesforce-pubsub", "", "real Salesforce: Pub/Sub API host:port for Change Data Capture (api.pubsub.salesforce.com:7443; tandem sim's --pubsub-listen with --insecure-http); empty: poll only")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// options turns the flags into the environment's options.
func (f *devFlags) options() (devenv.Options, error) {
	opts := devenv.Options{
		Users: f.users, ContactsPerUser: f.contacts, Seed: f.seed, Interval: f.interval, Notify: f.notify, RedisURL: f.redisURL,
		LogLevel: f.logLevel, GRPCAddr: f.grpc, HealthAddr: f.health, InsecureHTTP: f.insecureHTTP,
	}
	if f.users < 1 || f.contacts < 0 {
		return opts, errors.New("--users must be at least 1 and --contacts-per-user not negative")
	}
	realEx := f.ewsURL != "" || f.autodiscover != "" || f.exUser != "" || f.exClient != ""
	realSF := f.sfURL != "" || f.sfClient != ""
	if realEx != realSF {
		return opts, errors.New("to use real endpoints, give both an Exchange (--exchange-*) and a Salesforce (--salesforce-*)")
	}
	if !realEx {
		return opts, nil
	}
	opts.Exchange = &devenv.ExchangeEndpoint{
		EWSURL: f.ewsURL, AutodiscoverURL: f.autodiscover, ServiceAccount: f.exUser, Password: f.exPassword,
		TenantID: f.exTenant, ClientID: f.exClient, ClientSecret: f.exSecret, AdditionalDomains: splitList(f.exDomains),
	}
	sf := &devenv.SalesforceEndpoint{
		OrgID: f.sfOrg, MyDomainURL: f.sfURL, ClientID: f.sfClient, ClientSecret: f.sfSecret,
		IntegrationUsername: f.sfUser, Audience: f.sfAudience, ProfileIDs: splitList(f.sfProfiles), UserIDs: splitList(f.sfUsers),
		PubSubEndpoint: f.sfPubSub,
	}
	if f.sfKeyFile != "" {
		key, err := os.ReadFile(f.sfKeyFile)
		if err != nil {
			return opts, fmt.Errorf("--salesforce-key-file: %w", err)
		}
		sf.PrivateKeyPEM = string(key)
	}
	opts.Salesforce = sf
	return opts, nil
}

func devCommand(args []string, stdout, stderr io.Writer) int {
	var f devFlags
	fs := flag.NewFlagSet("tandem dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: tandem dev [flags]

Runs every Tandem service in one process with an embedded NATS server (JetStream) and Redis,
against simulated Exchange and Salesforce servers seeded with sales reps and their contacts —
or, with the --exchange-* and --salesforce-* flags, against a real Exchange and a Salesforce
sandbox. A table shows each user's progress; Ctrl-C stops everything cleanly.

Every flag can also be set with its environment variable.

%s`, settings.Usage(fs, devEnvPrefix))
	}
	if err := settings.Parse(fs, args, os.Environ(), devEnvPrefix); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "tandem dev:", err)
		return 2
	}
	opts, err := f.options()
	if err != nil {
		fmt.Fprintln(stderr, "tandem dev:", err)
		return 2
	}
	defer takeTerminal()()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return runDev(ctx, f, opts, stdout, stderr)
}

func runDev(ctx context.Context, f devFlags, opts devenv.Options, stdout, stderr io.Writer) int {
	logFile, err := openLog(f.logFile)
	if err != nil {
		fmt.Fprintln(stderr, "tandem dev:", err)
		return 1
	}
	defer logFile.Close()
	f.logFile = logFile.Name()
	opts.Log, opts.Warn = logFile, stderr
	progressOut := stdout
	if f.jsonOut {
		progressOut = stderr
	}

	env, err := devenv.Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "tandem dev:", err)
		return 1
	}
	defer func() {
		if err := env.Close(context.Background()); err != nil {
			fmt.Fprintln(stderr, "tandem dev: stopping:", err)
		}
	}()
	fmt.Fprintf(progressOut, "Tandem dev: org %s, NATS embedded, Redis %s, gRPC API on %s, logs in %s\n",
		env.OrgID, redisLabel(env), env.StatusAPI.Addr(), f.logFile)
	fmt.Fprintln(progressOut, apiLine(env))
	if env.EWS != nil {
		fmt.Fprintf(progressOut, "Simulated Exchange at %s, simulated Salesforce at %s\n", env.EWSURL, env.SalesforceURL)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &watcher{env: env, out: progressOut, tty: isTerminal(progressOut), until: f.untilSynced, timeout: f.timeout, cancel: cancel, logFile: f.logFile}
	runErr := env.Run(runCtx, lifecycle.Component{Name: "progress", Run: w.run})

	final, err := env.Summary(context.Background())
	if err != nil {
		fmt.Fprintln(stderr, "tandem dev:", err)
	}
	w.render(final)
	if f.dump != "" {
		dumpEnv(ctx, env, f.dump, progressOut, stderr)
	}
	if f.jsonOut {
		b, _ := json.Marshal(final)
		fmt.Fprintln(stdout, string(b))
	}
	switch {
	case runErr != nil:
		fmt.Fprintln(stderr, "tandem dev:", runErr)
		return 1
	case !f.untilSynced:
		return 0
	case w.synced():
		fmt.Fprintf(progressOut, "In sync after %.1fs.\n", final.Seconds)
		return 0
	case w.timedOut():
		fmt.Fprintf(stderr, "tandem dev: not in sync after %s: %s\n", f.timeout, final.Reason)
		return 1
	default:
		fmt.Fprintf(stderr, "tandem dev: stopped before everything was in sync: %s\n", final.Reason)
		return 1
	}
}

// dumpEnv writes the environment's dump to dir. The run has stopped, by Ctrl-C perhaps: the dump
// still runs, until a second Ctrl-C, since against real endpoints it reads both sides.
func dumpEnv(ctx context.Context, env *devenv.Env, dir string, progressOut, stderr io.Writer) {
	ctx, stop := signal.NotifyContext(context.WithoutCancel(ctx), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if env.EWS == nil {
		fmt.Fprintln(progressOut, "Reading both sides for the dump (Ctrl-C to stop)")
	}
	if err := env.Dump(ctx, dir); err != nil {
		fmt.Fprintln(stderr, "tandem dev: dump:", err)
		return
	}
	fmt.Fprintf(progressOut, "Wrote %s and %s\n", filepath.Join(dir, devenv.ExchangeDumpFile), filepath.Join(dir, devenv.SalesforceDumpFile))
}

func redisLabel(env *devenv.Env) string {
	if env.EmbeddedRedis {
		return "in-memory (nothing persists)"
	}
	return env.RedisURL
}

// apiLine is the line a second terminal can export to use the CLI against the environment's API.
func apiLine(env *devenv.Env) string {
	return fmt.Sprintf("TANDEM_ADDR=%s TANDEM_PLAINTEXT=true TANDEM_TOKEN=%s", env.StatusAPI.Addr(), env.Token)
}

// openLog opens the services' log: path, or a new file of this run.
func openLog(path string) (*os.File, error) {
	if path == "" {
		return os.CreateTemp("", "tandem-dev-*.log")
	}
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600) //nolint:gosec // the log file the developer named
}

// watcher shows progress every second and, with --until-synced, stops the run once everything
// is in sync (or the timeout passes).
type watcher struct {
	env     *devenv.Env
	out     io.Writer
	tty     bool
	until   bool
	timeout time.Duration
	cancel  context.CancelFunc
	logFile string

	mu              sync.Mutex
	done, expired   bool
	lastLine        string
	consecutiveSync int
}

func (w *watcher) synced() bool   { w.mu.Lock(); defer w.mu.Unlock(); return w.done }
func (w *watcher) timedOut() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.expired }

func (w *watcher) run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	deadline := time.Now().Add(w.timeout)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		sum, err := w.env.Summary(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		w.render(sum)
		if !w.until {
			continue
		}
		w.mu.Lock()
		// Two checks in a row, so a write whose result just landed has had its echo read.
		if sum.Synced {
			w.consecutiveSync++
		} else {
			w.consecutiveSync = 0
		}
		switch {
		case w.consecutiveSync >= 2:
			w.done = true
			w.cancel()
		case time.Now().After(deadline):
			w.expired = true
			w.cancel()
		}
		w.mu.Unlock()
	}
}

// render shows the progress table: redrawn in place on a terminal, a line per change otherwise.
func (w *watcher) render(sum devenv.Summary) {
	w.mu.Lock()
	defer w.mu.Unlock()
	line := fmt.Sprintf("cycle %d  users %d  contacts in sync %d  pending writes %d  errors %d  EWS calls %d  Salesforce calls %d",
		sum.Cycle, sum.Users, sum.ContactsInSync, sum.PendingWrites, sum.Errors, sum.EWSCalls, sum.SalesforceCalls)
	if !w.tty {
		// A line per change of state, not per tick: the cycle and call counters, which move
		// every cycle, are shown but do not count as a change.
		state := fmt.Sprintf("%d %d %d %d %t", sum.Users, sum.ContactsInSync, sum.PendingWrites, sum.Errors, sum.Synced)
		if state == w.lastLine {
			return
		}
		w.lastLine = state
		fmt.Fprintf(w.out, "[%6.1fs] %s\n", sum.Seconds, line)
		if sum.Synced {
			fmt.Fprintf(w.out, "[%6.1fs] everything is in sync\n", sum.Seconds)
		}
		return
	}
	var b strings.Builder
	b.WriteString("\x1b[H\x1b[2J")
	fmt.Fprintf(&b, "Tandem dev — org %s — %s — Ctrl-C to stop\n", w.env.OrgID, time.Duration(sum.Seconds*float64(time.Second)).Round(time.Second))
	// The screen is redrawn: what the start printed for a second terminal stays on it.
	fmt.Fprintf(&b, "%s\nlogs: %s\n\n", apiLine(w.env), w.logFile)
	fmt.Fprintf(&b, "%-28s %-26s %-26s %8s %8s %6s  %s\n", "USER", "EXCHANGE → SALESFORCE", "SALESFORCE → EXCHANGE", "IN SYNC", "PENDING", "HELD", "LAST ERROR")
	for i, r := range sum.Rows {
		if i == 20 {
			fmt.Fprintf(&b, "… and %d more users\n", len(sum.Rows)-20)
			break
		}
		fmt.Fprintf(&b, "%-28s %-26s %-26s %8d %8d %6d  %s\n", r.Email, devenv.StatusText(r.ExchangeToSF), devenv.StatusText(r.SFToExchange), r.InSync, r.Pending, r.Held, r.LastError)
	}
	fmt.Fprintf(&b, "\n%s\n", line)
	if !sum.Synced && sum.Reason != "" {
		fmt.Fprintf(&b, "waiting for: %s\n", sum.Reason)
	} else if sum.Synced {
		b.WriteString("everything is in sync\n")
	}
	fmt.Fprint(w.out, b.String())
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
