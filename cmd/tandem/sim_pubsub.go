package main

import (
	"context"
	"net"

	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
)

// startPubSub serves the simulated org's Pub/Sub API (Change Data Capture, plain-text gRPC) on
// addr; empty addr serves nothing. stop ends it and reports how it ended.
func startPubSub(ctx context.Context, addr string, sim *sfsim.Server) (listening string, stop func() error, err error) {
	if addr == "" {
		return "", func() error { return nil }, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sim.ServePubSub(ctx, lis) }()
	return lis.Addr().String(), func() error {
		cancel()
		return <-done
	}, nil
}
