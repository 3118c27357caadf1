// Command tandem is Tandem's command line: `tandem dev` runs every service in one process with
// embedded NATS and Redis and simulated (or real) Exchange and Salesforce; `tandem sim` runs a
// simulator on its own; `tandem chaos` runs the services under faults; `tandem bench` measures
// throughput, API calls, latency and memory; `tandem plan` shows what a user's next sync cycle
// would do; `tandem status` shows statuses from a running status-api.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/tandem-sync/tandem/pkg/platform"
)

const usage = `Tandem keeps salespeople's contacts and calendar events in sync between Microsoft Exchange and Salesforce.

Usage:
  tandem dev [flags]                   run everything in one process (try: tandem dev --help)
  tandem sim exchange|salesforce ...   run a simulated Exchange or Salesforce server
  tandem chaos [flags]                 run the services under faults; check nothing is lost or duplicated
  tandem bench [flags]                 measure sync speed, API calls against the minimum, latency and memory
  tandem plan --user EMAIL [flags]     show what a user's next cycle would create, update and delete
  tandem status [--user EMAIL] [flags] show an org's or a user's sync status
  tandem token create|list|revoke|generate  issue, list and revoke API tokens
  tandem version                       print the version, commit and Go version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "dev":
		return devCommand(args[1:], stdout, stderr)
	case "chaos":
		return chaosCommand(args[1:], stdout, stderr)
	case "bench":
		return benchCommand(args[1:], stdout, stderr)
	case "sim":
		return simCommand(args[1:], stdout, stderr)
	case "plan":
		return planCommand(args[1:], stdout, stderr)
	case "status":
		return statusCommand(args[1:], stdout, stderr)
	case "token":
		return tokenCommand(args[1:], stdout, stderr)
	case "version":
		printVersion(stdout, platform.BuildInfo())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "tandem: unknown command %q\n\n%s", args[0], usage)
	return 2
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
