package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tandem-sync/tandem/pkg/access"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// apiFlags are the flags of the commands that talk to a status-api.
type apiFlags struct {
	addr, org, token, ca string
	plaintext            bool
}

// defaultAPIAddr is where `tandem dev` serves its API, without TLS.
const defaultAPIAddr = "127.0.0.1:9090"

func (a *apiFlags) register(fs *flag.FlagSet) {
	addr, fromEnv := os.LookupEnv("TANDEM_ADDR")
	if !fromEnv || addr == "" {
		addr = defaultAPIAddr
	}
	plaintext, _ := strconv.ParseBool(os.Getenv("TANDEM_PLAINTEXT"))
	// The default address is tandem dev's, which serves without TLS.
	plaintext = plaintext || addr == defaultAPIAddr
	fs.StringVar(&a.addr, "addr", addr, "the status-api's gRPC address ($TANDEM_ADDR; tandem dev serves "+defaultAPIAddr+")")
	fs.StringVar(&a.token, "token", os.Getenv("TANDEM_TOKEN"), "the API token ($TANDEM_TOKEN; tandem dev prints one)")
	fs.StringVar(&a.ca, "ca", os.Getenv("TANDEM_CA"), "PEM file of the authorities that sign the API's TLS certificate ($TANDEM_CA); empty for the system's")
	fs.BoolVar(&a.plaintext, "plaintext", plaintext, "talk to the API without TLS ($TANDEM_PLAINTEXT; the default for tandem dev's address)")
	fs.StringVar(&a.org, "org", "", "the org id; empty when the token sees exactly one org")
}

// dial connects to the API with the flags' transport and token.
func (a *apiFlags) dial() (*grpc.ClientConn, error) {
	if a.token == "" {
		return nil, errors.New("no API token: pass --token or set TANDEM_TOKEN (tandem dev prints one; `tandem token create` issues more)")
	}
	creds := insecure.NewCredentials()
	if !a.plaintext {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if a.ca != "" {
			pem, err := os.ReadFile(a.ca)
			if err != nil {
				return nil, fmt.Errorf("--ca: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ca %s: no PEM certificate in it", a.ca)
			}
		}
		creds = credentials.NewTLS(cfg)
	}
	return grpc.NewClient(a.addr, grpc.WithTransportCredentials(creds),
		grpc.WithPerRPCCredentials(access.Bearer{Token: a.token, Insecure: a.plaintext}))
}

// explain turns an API error into a sentence with a hint.
func (a *apiFlags) explain(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		hint := "is `tandem dev` running?"
		if a.plaintext && a.addr != defaultAPIAddr {
			hint = "is it running, and does it serve TLS (drop --plaintext)?"
		} else if !a.plaintext {
			hint = "is it running, and does it serve plain text (--plaintext, as tandem dev does)?"
		}
		return fmt.Errorf("no Tandem API at %s — %s (%s)", a.addr, hint, st.Message())
	case codes.Unauthenticated:
		return fmt.Errorf("the API at %s refused the token: %s", a.addr, st.Message())
	case codes.PermissionDenied:
		return fmt.Errorf("not allowed: %s", st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("the API at %s did not answer in time", a.addr)
	}
	return errors.New(st.Message())
}

// connect dials the API and resolves the org.
func (a *apiFlags) connect(ctx context.Context) (*grpc.ClientConn, string, error) {
	conn, err := a.dial()
	if err != nil {
		return nil, "", err
	}
	if a.org != "" {
		return conn, a.org, nil
	}
	resp, err := tandemv1.NewAdminServiceClient(conn).ListOrgs(ctx, &tandemv1.ListOrgsRequest{})
	if err != nil {
		conn.Close()
		return nil, "", a.explain(err)
	}
	if len(resp.GetOrgs()) != 1 {
		conn.Close()
		return nil, "", fmt.Errorf("the token sees %d orgs at %s: choose one with --org", len(resp.GetOrgs()), a.addr)
	}
	return conn, resp.GetOrgs()[0].GetOrgId(), nil
}

func planCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tandem plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a apiFlags
	a.register(fs)
	user := fs.String("user", "", "the user's email (required)")
	if err := fs.Parse(args); err != nil {
		return exitFor(err)
	}
	if *user == "" {
		fmt.Fprintln(stderr, "tandem plan: --user EMAIL is required")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, org, err := a.connect(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "tandem plan:", err)
		return 1
	}
	defer conn.Close()
	plan, err := tandemv1.NewStatusServiceClient(conn).PlanUserSync(ctx, &tandemv1.PlanUserSyncRequest{OrgId: org, Email: *user})
	if err != nil {
		fmt.Fprintln(stderr, "tandem plan:", a.explain(err))
		return 1
	}
	printPlan(stdout, *user, plan)
	return 0
}

func printPlan(w io.Writer, user string, plan *tandemv1.PlanUserSyncResponse) {
	counts := map[string]int{}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Next cycle for %s (dry run, nothing is written):\n\n", user)
	if len(plan.GetWrites()) > 0 {
		fmt.Fprintln(tw, "SIDE\tOPERATION\tRECORD\tFIELDS\tWHY")
	}
	for _, wr := range plan.GetWrites() {
		side := map[tandemv1.System]string{tandemv1.System_SYSTEM_EXCHANGE: "Exchange", tandemv1.System_SYSTEM_SALESFORCE: "Salesforce"}[wr.GetTarget()]
		op := strings.ToLower(strings.TrimPrefix(wr.GetOp().String(), "WRITE_OP_"))
		counts[side+" "+op]++
		name := wr.GetDisplayName()
		if name == "" {
			name = wr.GetTargetId()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", side, op, name, strings.Join(wr.GetFields(), ","), wr.GetReason())
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, side := range []string{"Exchange", "Salesforce"} {
		fmt.Fprintf(w, "%s: %d creates, %d updates, %d deletes\n", side, counts[side+" create"], counts[side+" update"], counts[side+" delete"])
	}
	fmt.Fprintf(w, "%d unchanged, %d conflicts\n", plan.GetUnchanged(), plan.GetConflicts())
	for _, h := range plan.GetHeld() {
		fmt.Fprintf(w, "held for approval: %d deletes of %d synced (hold %s)\n", h.GetCount(), h.GetSynced(), h.GetHoldId())
	}
}

func statusCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tandem status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a apiFlags
	a.register(fs)
	user := fs.String("user", "", "a user's email; empty for the org's status")
	if err := fs.Parse(args); err != nil {
		return exitFor(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, org, err := a.connect(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "tandem status:", err)
		return 1
	}
	defer conn.Close()
	client := tandemv1.NewStatusServiceClient(conn)
	if *user != "" {
		resp, err := client.GetUserStatus(ctx, &tandemv1.GetUserStatusRequest{OrgId: org, Email: *user})
		if err != nil {
			fmt.Fprintln(stderr, "tandem status:", a.explain(err))
			return 1
		}
		printUserStatus(stdout, resp.GetStatus())
		return 0
	}
	resp, err := client.GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: org})
	if err != nil {
		fmt.Fprintln(stderr, "tandem status:", a.explain(err))
		return 1
	}
	printOrgStatus(stdout, resp.GetStatus())
	return 0
}

func check(c tandemv1.CheckResult) string {
	switch c {
	case tandemv1.CheckResult_CHECK_RESULT_PASSED:
		return "✓"
	case tandemv1.CheckResult_CHECK_RESULT_FAILED:
		return "✗"
	}
	return "?"
}

func printUserStatus(w io.Writer, us *tandemv1.UserStatus) {
	fmt.Fprintf(w, "User %s (%s)\n", us.GetEmail(), us.GetUserId())
	fmt.Fprintf(w, "  Assigned to an active configuration:        %s %s\n", check(us.GetAssignedToActiveConfiguration()), us.GetConfigurationId())
	fmt.Fprintf(w, "  Mailbox on a supported version of Exchange: %s %s\n", check(us.GetMailboxVersionSupported()), us.GetExchangeVersion())
	fmt.Fprintf(w, "  Recognized by the Exchange service account: %s\n", check(us.GetRecognizedByServiceAccount()))
	if rs := us.GetResetStatus(); rs != tandemv1.ResetStatus_RESET_STATUS_UNSPECIFIED {
		fmt.Fprintf(w, "  Reset sync:                                 %s\n", strings.ToLower(strings.TrimPrefix(rs.String(), "RESET_STATUS_")))
	}
	if us.GetSuspended() {
		fmt.Fprintf(w, "  Sync suspended:                             since %s after %d permanent failures; next probe %s (AdminService.ResumeUserSync resumes it)\n",
			us.GetSuspendedAt().AsTime().Local().Format(time.DateTime), us.GetPermanentFailures(), us.GetNextSyncAt().AsTime().Local().Format(time.DateTime))
	}
	for _, ks := range us.GetKinds() {
		fmt.Fprintf(w, "  %s:\n", strings.ToLower(strings.TrimPrefix(ks.GetKind().String(), "RECORD_KIND_"))+"s")
		fmt.Fprintf(w, "    Folder found:                  %s\n", check(ks.GetFolderFound()))
		fmt.Fprintf(w, "    Email addresses linked:        %s\n", check(ks.GetAddressesLinked()))
		fmt.Fprintf(w, "    Salesforce to Exchange:        %s\n", devenv.StatusText(ks.GetSalesforceToExchange()))
		fmt.Fprintf(w, "    Exchange to Salesforce:        %s\n", devenv.StatusText(ks.GetExchangeToSalesforce()))
		fmt.Fprintf(w, "    Records in sync:               %d (%d writes pending, %d deletes held)\n", ks.GetRecordsInSync(), ks.GetPendingWrites(), ks.GetHeldDeletes())
	}
	if e := us.GetLastError(); e != nil {
		fmt.Fprintf(w, "  Last error: %s: %s\n    %s\n", e.GetCode(), e.GetMessage(), e.GetSuggestion())
	}
}

func printOrgStatus(w io.Writer, os *tandemv1.OrgStatus) {
	account := os.GetServiceAccount()
	if account == "" {
		account = "None"
	}
	fmt.Fprintf(w, "Org %s (cycle %d)\n", os.GetOrgId(), os.GetLastCycle())
	fmt.Fprintf(w, "  Exchange service account provided:   %s\n", account)
	fmt.Fprintf(w, "  Service account recognized:          %s\n", check(os.GetServiceAccountRecognized()))
	fmt.Fprintf(w, "  Users with linked email addresses:   %d of %d\n", os.GetUsersLinked(), os.GetUsersExpected())
	if n := os.GetUsersSuspended(); n > 0 {
		fmt.Fprintf(w, "  Users whose sync is suspended:       %d\n", n)
	}
	for _, a := range os.GetActivity() {
		last := "never"
		if a.GetLastSyncAt() != nil {
			last = a.GetLastSyncAt().AsTime().Local().Format(time.DateTime)
		}
		fmt.Fprintf(w, "  %-8s last sync %s, %d synced in the last 60 minutes, %d in the last 24 hours\n",
			strings.ToLower(strings.TrimPrefix(a.GetKind().String(), "RECORD_KIND_"))+"s", last, a.GetSyncedLast_60Minutes(), a.GetSyncedLast_24Hours())
	}
	if api := os.GetSalesforceApi(); api.GetDailyMax() > 0 {
		fmt.Fprintf(w, "  Salesforce API: %d of %d used today (%d reserved for others)\n", api.GetUsed(), api.GetDailyMax(), api.GetReserve())
	}
}

func exitFor(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
