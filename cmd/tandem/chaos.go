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
	"syscall"
	"time"

	"github.com/tandem-sync/tandem/cmd/tandem/chaos"
	"github.com/tandem-sync/tandem/pkg/settings"
)

const chaosEnvPrefix = "TANDEM_CHAOS_"

func chaosCommand(args []string, stdout, stderr io.Writer) int {
	var opts chaos.Options
	var jsonOut bool
	fs := flag.NewFlagSet("tandem chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&opts.Duration, "duration", time.Minute, "how long users edit and faults are injected before the system settles")
	fs.Uint64Var(&opts.Seed, "seed", 1, "seed of the users' edits, the seeded data and the schedule of faults")
	fs.IntVar(&opts.Users, "users", 4, "simulated sales reps")
	fs.IntVar(&opts.ContactsPerUser, "contacts-per-user", 30, "contacts seeded per rep before the run")
	fs.IntVar(&opts.Replicas, "replicas", 2, "processes of each worker and of the reconciler")
	fs.DurationVar(&opts.Interval, "interval", 2*time.Second, "the org's sync interval")
	fs.DurationVar(&opts.Settle, "settle", 3*time.Minute, "how long the system may take to converge once the faults stop")
	fs.StringVar(&opts.Dir, "dir", "", "keep the run's binaries, logs and server state here (default: a temporary directory, kept only when the run fails)")
	fs.StringVar(&opts.LogLevel, "log-level", "info", "the services' log level; debug traces every reconciler decision by record id and sync key")
	fs.BoolVar(&jsonOut, "json", false, "print the result as one JSON object, the last line of stdout")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: tandem chaos [flags]

Runs Tandem's services as separate processes (several replicas of the workers and the
reconciler) against a real nats-server and redis-server (AOF on) and both simulators, while
simulated users edit their contacts on both sides and chaos kills and restarts processes,
restarts NATS (sometimes without its store) and Redis, flushes Redis once, and makes
Exchange and Salesforce fail. Then it stops the faults, lets the system settle, and checks
both simulators against a model of what the users did: nothing lost, duplicated or
resurrected, every user converged. It exits 1 when that does not hold. Run it from Tandem's
source tree (it builds the services); it needs redis-server on PATH.

Every flag can also be set with its environment variable.

%s`, settings.Usage(fs, chaosEnvPrefix))
	}
	if err := settings.Parse(fs, args, os.Environ(), chaosEnvPrefix); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "tandem chaos:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	opts.Progress = stderr
	if !jsonOut {
		opts.Progress = stdout
	}
	res, err := chaos.Run(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "tandem chaos:", err)
		return 1
	}
	if !res.Converged {
		fmt.Fprintf(stderr, "tandem chaos: seed %d FAILED: %d lost, %d duplicated, %d resurrected, %d differing, %d unknown; logs in %s\n",
			res.Seed, res.Lost, res.Duplicated, res.Resurrected, res.Differing, res.Unknown, res.Dir)
		for _, v := range res.Violations {
			fmt.Fprintln(stderr, "  -", v)
		}
	}
	if jsonOut {
		b, err := json.Marshal(res)
		if err != nil {
			fmt.Fprintln(stderr, "tandem chaos:", err)
			return 1
		}
		fmt.Fprintln(stdout, string(b))
	} else if res.Converged {
		fmt.Fprintf(stdout, "tandem chaos: seed %d passed: %d edits, %d people in sync, faults %v, %.0fs\n", res.Seed, res.Edits, res.People, res.Faults, res.Seconds)
	}
	if !res.Converged {
		return 1
	}
	return 0
}
