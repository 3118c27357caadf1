package servertest

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/tandem-sync/tandem/pkg/devkit/localnats"
)

// NATS starts an embedded nats-server with JetStream on a free port, storing its files in a
// directory of the test's own, and shuts it down when the test ends.
func NATS(t testing.TB) *localnats.Server {
	t.Helper()
	// TempDir registers its removal before Shutdown is registered, so the directory is
	// removed only after the server has stopped writing to it.
	srv, err := localnats.Start(localnats.Options{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// NATSConn starts a server as NATS does and returns a connection to it, closed when the test
// ends (before the server shuts down).
func NATSConn(t testing.TB) *nats.Conn {
	t.Helper()
	srv := NATS(t)
	nc, err := nats.Connect(srv.ClientURL(), nats.Name(t.Name()))
	if err != nil {
		t.Fatalf("connect to nats-server %s: %v", srv.ClientURL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}
