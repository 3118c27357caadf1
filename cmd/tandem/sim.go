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
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

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

func simExchange(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tandem sim exchange", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8443", "address to listen on")
	users := fs.Int("users", 5, "mailboxes to create (rep1@DOMAIN ...)")
	contacts := fs.Int("contacts", 20, "contacts seeded in each mailbox's Salesforce_Sync folder")
	events := fs.Int("events", 10, "events seeded in each mailbox's calendar")
	domain := fs.String("domain", "acme.example", "the mailboxes' domain")
	version := fs.String("server-version", "Exchange2019", "Exchange2016, Exchange2019 or ExchangeOnline")
	seed := fs.Int64("seed", 1, "seed of the generated data")
	if err := fs.Parse(args); err != nil {
		return err
	}
	account, password := "svc-tandem@"+*domain, randomSecret()
	sim := ewssim.New(ewssim.Config{ServerVersion: *version, ServiceAccounts: []ewssim.ServiceAccount{{Username: account, Password: password, ImpersonateAll: true}}})
	var mailboxes []string
	for i := range *users {
		address := fmt.Sprintf("rep%d@%s", i+1, *domain)
		if err := sim.Seed(address, *contacts, *events, *seed+int64(i)); err != nil {
			return err
		}
		mailboxes = append(mailboxes, address)
	}
	return serveUntilDone(ctx, *listen, sim, func(url string) {
		sim.SetBaseURL(url)
		fmt.Fprintf(stdout, "Simulated Exchange (%s) at %s\n", *version, url)
		fmt.Fprintf(stdout, "  EWS:             %s/EWS/Exchange.asmx\n", url)
		fmt.Fprintf(stdout, "  Autodiscover:    %s/autodiscover/autodiscover.svc (SOAP), %s/autodiscover/autodiscover.xml (POX)\n", url, url)
		fmt.Fprintf(stdout, "  Service account: %s  password: %s  (Basic, impersonates every mailbox)\n", account, password)
		fmt.Fprintf(stdout, "  Mailboxes:       %d, %s … (%d contacts, %d events each)\n", len(mailboxes), first(mailboxes), *contacts, *events)
		fmt.Fprintln(stdout, "Ctrl-C to stop.")
	})
}

func simSalesforce(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tandem sim salesforce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8444", "address to listen on")
	users := fs.Int("users", 5, "sales reps to create (rep1@DOMAIN ...)")
	contacts := fs.Int("contacts", 20, "contacts seeded per rep")
	events := fs.Int("events", 10, "events seeded per rep")
	domain := fs.String("domain", "acme.example", "the reps' email domain")
	allocation := fs.Int64("daily-api-allocation", 15000, "the org's daily API request allocation")
	keyOut := fs.String("key-out", filepath.Join(os.TempDir(), "tandem-sim-connected-app.key"), "where to write the connected app's private key (PEM)")
	seed := fs.Int64("seed", 1, "seed of the generated data")
	if err := fs.Parse(args); err != nil {
		return err
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
		DailyAllocation: *allocation, TokenLifetime: 2 * time.Hour,
		ConnectedApps: []sfsim.ConnectedApp{{ClientID: clientID, CertificatePEM: certPEM}},
	})
	admin := sim.AdminUserID()
	if err := sim.AddConnectedApp(sfsim.ConnectedApp{ClientID: clientID + "-cc", ClientSecret: secret, ExecutionUserID: admin}); err != nil {
		return err
	}
	profile := sim.AddProfile("Sales Rep")
	for i := range *users {
		email := fmt.Sprintf("rep%d@%s", i+1, *domain)
		id, err := sim.AddUser(sfsim.User{Username: email, Email: email, FirstName: "Rep", LastName: fmt.Sprint(i + 1), ProfileID: profile, IsActive: true})
		if err != nil {
			return err
		}
		if _, err := sim.SeedContacts(id, *contacts, *seed+int64(i)); err != nil {
			return err
		}
		if _, err := sim.SeedEvents(id, *events, *seed+int64(i)); err != nil {
			return err
		}
	}
	adminUser, _ := sim.Get("User", admin)
	return serveUntilDone(ctx, *listen, sim, func(url string) {
		sim.SetBaseURL(url)
		fmt.Fprintf(stdout, "Simulated Salesforce org %s at %s (My Domain)\n", sim.OrgID(), url)
		fmt.Fprintf(stdout, "  JWT bearer:         consumer key %s, private key %s, integration user %v\n", clientID, *keyOut, adminUser["Username"])
		fmt.Fprintf(stdout, "  Client credentials: consumer key %s-cc, secret %s\n", clientID, secret)
		fmt.Fprintf(stdout, "  Sales Rep profile:  %s; %d reps rep1@%s … with %d contacts and %d events each\n", profile, *users, *domain, *contacts, *events)
		fmt.Fprintf(stdout, "  Daily API allocation: %d\n", *allocation)
		fmt.Fprintln(stdout, "Ctrl-C to stop.")
	})
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
