package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tandem-sync/tandem/cmd/tandem/bench"
)

func benchCommand(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return bench.Command(ctx, args, os.Environ(), stdout, stderr)
}
