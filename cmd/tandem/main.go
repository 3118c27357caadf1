// Command tandem is Tandem's command line. `tandem dev` runs every service in one process with
// embedded NATS and Redis and simulated (or real) Exchange and Salesforce; `tandem sim` runs a
// simulator on its own; `tandem chaos` runs the services under faults; `tandem bench` measures
// throughput, API calls, latency and memory. Every other command is an admin's tool over the
// gRPC API of a running Tandem: statuses, users, the error report, configurations, orgs,
// connection tests, resets, held deletes, plans and API tokens.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tandem-sync/tandem/pkg/platform"
)

func main() {
	// Ctrl-C ends a watch cleanly; tandem dev, chaos and bench handle their own signals.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line with args and returns the exit status: 0 on success, 1 when the
// command failed, 2 when it was used wrongly.
func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdout, stderr)
}

// runContext is run under ctx: a command that runs until interrupted (watch) ends with ctx.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var exit exitError
	var failed failure
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return int(exit)
	case errors.As(err, &failed):
		fmt.Fprintf(stderr, "tandem %s: %v\n", failed.cmd, failed.err)
		return 1
	}
	// Cobra's own errors: an unknown command or flag, a wrong number of arguments.
	fmt.Fprintf(stderr, "tandem: %v (see tandem --help)\n", err)
	return 2
}

// exitError is a command's exit status, its reason already printed.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exited turns a legacy command's exit status into an error for cobra.
func exited(code int) error {
	if code == 0 {
		return nil
	}
	return exitError(code)
}

// failure is a command that could not do its work; run prints it as "tandem <cmd>: <err>".
type failure struct {
	cmd string
	err error
}

func (f failure) Error() string { return f.err.Error() }

func failed(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	return failure{cmd: cmd.CommandPath()[len("tandem "):], err: err}
}

// usageError is a command used wrongly (exit 2), with what to do instead.
func usageError(format string, args ...any) error { return fmt.Errorf(format, args...) }

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "tandem",
		Short: "Tandem keeps salespeople's contacts and calendar events in sync between Microsoft Exchange and Salesforce.",
		Long: `Tandem keeps salespeople's contacts and calendar events in sync between Microsoft Exchange and Salesforce.

The admin commands talk to a running Tandem's API: --addr or $TANDEM_ADDR, --token or $TANDEM_TOKEN
(tandem dev prints both), TLS unless --plaintext (or $TANDEM_PLAINTEXT=true, as for tandem dev).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(stderr)
			_ = cmd.Help()
			return exitError(2)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddGroup(&cobra.Group{ID: "run", Title: "Run Tandem:"}, &cobra.Group{ID: "admin", Title: "Administer a running Tandem:"})

	legacy := func(use, short string, f func([]string, io.Writer, io.Writer) int) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, GroupID: "run", DisableFlagParsing: true,
			RunE: func(_ *cobra.Command, args []string) error { return exited(f(args, stdout, stderr)) },
		}
	}
	root.AddCommand(
		legacy("dev [flags]", "run everything in one process (try: tandem dev --help)", devCommand),
		legacy("sim exchange|salesforce [flags]", "run a simulated Exchange or Salesforce server", simCommand),
		legacy("chaos [flags]", "run the services under faults; check nothing is lost or duplicated", chaosCommand),
		legacy("bench [flags]", "measure sync speed, API calls against the minimum, latency and memory", benchCommand),
		&cobra.Command{
			Use: "version", Short: "print the version, commit and Go version", GroupID: "run", Args: cobra.NoArgs,
			Run: func(*cobra.Command, []string) { printVersion(stdout, platform.BuildInfo()) },
		},
	)
	for _, c := range adminCommands(stdout, stderr) {
		c.GroupID = "admin"
		root.AddCommand(c)
	}
	return root
}

// printVersion prints what `tandem version` shows: the release, then the commit and the Go
// release it was built from, a line each.
func printVersion(w io.Writer, b platform.Build) {
	commit := b.Commit
	switch {
	case commit == "":
		commit = "unknown"
	case b.Modified:
		commit += " (with uncommitted changes)"
	}
	fmt.Fprintf(w, "tandem %s\ncommit: %s\n", b.Version, commit)
	if b.Date != "" {
		fmt.Fprintf(w, "date:   %s\n", b.Date)
	}
	fmt.Fprintf(w, "go:     %s %s/%s\n", b.GoVersion, runtime.GOOS, runtime.GOARCH)
}
