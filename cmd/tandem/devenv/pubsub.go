package devenv

import (
	"context"
	"net"
)

// servePubSub serves the Salesforce simulator's Pub/Sub API (Change Data Capture) on a free
// local port until the environment closes, and returns its address (host:port, plain text).
func (e *Env) servePubSub() (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Salesforce.ServePubSub(ctx, lis) }()
	e.closers = append(e.closers, func(context.Context) error {
		cancel()
		return <-done
	})
	return lis.Addr().String(), nil
}
