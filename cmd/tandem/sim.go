package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
)

func simCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: tandem sim exchange|salesforce [flags]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "exchange":
		err = simExchange(ctx, args[1:], stdout, stderr)
	case "salesforce":
		err = simSalesforce(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "tandem sim: unknown simulator %q (exchange or salesforce)\n", args[0])
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "tandem sim:", err)
		return 1
	}
	return 0
}

// serveUntilDone serves h on addr until ctx ends.
func serveUntilDone(ctx context.Context, addr string, h http.Handler, announce func(url string)) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	announce("http://" + lis.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func randomSecret() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// simFlags are the flags both simulators take: the same seeding as `tandem dev`, a dump on
// exit, and the fault admin endpoint for a chaos process.
type simFlags struct {
	seeding    devenv.Seeding
	dump       string
	faultAdmin bool
}

func (f *simFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.seeding.Users, "users", 5, "sales reps (rep1@acme.example ...), as with tandem dev")
	fs.IntVar(&f.seeding.ContactsPerUser, "contacts-per-user", 40, "contacts per rep, split between the sides as with tandem dev")
	fs.Int64Var(&f.seeding.Seed, "seed", 1, "seed of the generated data and of the faults' probabilities")
	fs.StringVar(&f.dump, "dump", "", "on exit (SIGINT/SIGTERM), write the simulator's state to this directory")
	fs.BoolVar(&f.faultAdmin, "faults-admin", false, "serve the fault admin endpoint "+ewssim.FaultAdminPath+" (GET, POST, DELETE JSON), for a chaos run")
}

func (f *simFlags) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.seeding.Users < 1 || f.seeding.ContactsPerUser < 0 {
		return errors.New("--users must be at least 1 and --contacts-per-user not negative")
	}
	return nil
}

// writeDump writes the dump after the server stopped, so that it holds every request served.
func (f *simFlags) writeDump(stdout io.Writer, serveErr error, name string, dump func() any) error {
	if f.dump == "" {
		return serveErr
	}
	if err := devenv.WriteDump(f.dump, name, dump()); err != nil {
		return errors.Join(serveErr, err)
	}
	fmt.Fprintf(stdout, "Wrote %s\n", filepath.Join(f.dump, name))
	return serveErr
}

func simExchange(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tandem sim exchange", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f simFlags
	f.register(fs)
	listen := fs.String("listen", "127.0.0.1:8443", "address to listen on")
	version := fs.String("server-version", "Exchange2019", "Exchange2016, Exchange2019 or ExchangeOnline")
	password := fs.String("password", "", "the service account's password (default: a random one, printed)")
	if err := f.parse(fs, args); err != nil {
		return err
	}
	account := devenv.ServiceAccount
	if *password == "" {
		*password = randomSecret()
	}
	sim := ewssim.New(ewssim.Config{
		ServerVersion: *version, FaultSeed: f.seeding.Seed, FaultAdmin: f.faultAdmin,
		ServiceAccounts: []ewssim.ServiceAccount{{Username: account, Password: *password, ImpersonateAll: true}},
	})
	mailboxes, err := devenv.SeedExchange(sim, f.seeding)
	if err != nil {
		return err
	}
	err = serveUntilDone(ctx, *listen, sim, func(url string) {
		sim.SetBaseURL(url)
		fmt.Fprintf(stdout, "Simulated Exchange (%s) at %s\n", *version, url)
		fmt.Fprintf(stdout, "  EWS:             %s/EWS/Exchange.asmx\n", url)
		fmt.Fprintf(stdout, "  Autodiscover:    %s/autodiscover/autodiscover.svc (SOAP), %s/autodiscover/autodiscover.xml (POX)\n", url, url)
		fmt.Fprintf(stdout, "  Service account: %s  password: %s  (Basic, impersonates every mailbox)\n", account, *password)
		fmt.Fprintf(stdout, "  Mailboxes:       %d, %s … (seed %d, %d contacts per rep in all)\n", len(mailboxes), first(mailboxes), f.seeding.Seed, f.seeding.ContactsPerUser)
		if f.faultAdmin {
			fmt.Fprintf(stdout, "  Fault admin:     %s%s\n", url, ewssim.FaultAdminPath)
		}
		fmt.Fprintln(stdout, "Ctrl-C to stop.")
	})
	return f.writeDump(stdout, err, devenv.ExchangeDumpFile, func() any { return sim.Dump() })
}

func simSalesforce(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tandem sim salesforce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f simFlags
	f.register(fs)
	listen := fs.String("listen", "127.0.0.1:8444", "address to listen on")
	publicURL := fs.String("public-url", "", "the URL clients reach the org at, advertised as instance_url (for a proxy in front); default: the listening address")
	allocation := fs.Int64("daily-api-allocation", 15000, "the org's daily API request allocation")
	pubsubListen := fs.String("pubsub-listen", "127.0.0.1:8445", "address of the Pub/Sub API (Change Data Capture; gRPC, plain text); empty: not served")
	keyOut := fs.String("key-out", filepath.Join(os.TempDir(), "tandem-sim-connected-app.key"), "where to write the connected app's private key (PEM)")
	if err := f.parse(fs, args); err != nil {
		return err
	}
	if *publicURL != "" {
		if u, err := url.Parse(*publicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--public-url %q is not an absolute http(s) URL", *publicURL)
		}
	}
	keyPEM, certPEM, err := sfsim.NewConnectedAppKey("tandem-sim")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*keyOut, keyPEM, 0o600); err != nil {
		return err
	}
	const clientID = "tandem-sim-connected-app"
	secret := randomSecret()
	sim := sfsim.New(sfsim.Config{
		DailyAllocation: *allocation, TokenLifetime: 2 * time.Hour, BaseURL: *publicURL,
		FaultSeed: f.seeding.Seed, FaultAdmin: f.faultAdmin,
		ConnectedApps: []sfsim.ConnectedApp{{ClientID: clientID, CertificatePEM: certPEM}},
	})
	admin := sim.AdminUserID()
	if err := sim.AddConnectedApp(sfsim.ConnectedApp{ClientID: clientID + "-cc", ClientSecret: secret, ExecutionUserID: admin}); err != nil {
		return err
	}
	profile, users, err := devenv.SeedSalesforce(sim, f.seeding)
	if err != nil {
		return err
	}
	adminUser, _ := sim.Get("User", admin)
	pubsubAddr, stopPubSub, err := startPubSub(ctx, *pubsubListen, sim)
	if err != nil {
		return err
	}
	err = serveUntilDone(ctx, *listen, sim, func(listening string) {
		advertised := *publicURL
		if advertised == "" {
			advertised = listening
			sim.SetBaseURL(listening)
		}
		fmt.Fprintf(stdout, "Simulated Salesforce org %s at %s (My Domain), listening on %s\n", sim.OrgID(), advertised, listening)
		fmt.Fprintf(stdout, "  JWT bearer:         consumer key %s, private key %s, integration user %v\n", clientID, *keyOut, adminUser["Username"])
		fmt.Fprintf(stdout, "  Client credentials: consumer key %s-cc, secret %s\n", clientID, secret)
		fmt.Fprintf(stdout, "  Sales Rep profile:  %s; %d reps %s … (seed %d, %d contacts per rep in all)\n", profile, len(users), devenv.RepEmail(0), f.seeding.Seed, f.seeding.ContactsPerUser)
		fmt.Fprintf(stdout, "  Daily API allocation: %d\n", *allocation)
		if pubsubAddr != "" {
			fmt.Fprintf(stdout, "  Pub/Sub API:        %s (gRPC, plain text): Change Data Capture on %s, %s\n", pubsubAddr, sfsim.TopicContactChanges, sfsim.TopicEventChanges)
		}
		if f.faultAdmin {
			fmt.Fprintf(stdout, "  Fault admin:        %s%s\n", listening, sfsim.FaultAdminPath)
		}
		fmt.Fprintln(stdout, "Ctrl-C to stop.")
	})
	err = errors.Join(err, stopPubSub())
	return f.writeDump(stdout, err, devenv.SalesforceDumpFile, func() any { return sim.Dump() })
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
