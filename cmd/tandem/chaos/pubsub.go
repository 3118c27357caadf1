package chaos

import (
	"context"
	"net"

	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
)

// servePubSub serves the simulated org's Pub/Sub API (Change Data Capture) on a free local
// port until ctx ends, so that the salesforce-worker replicas subscribe as in production.
func servePubSub(ctx context.Context, sim *sfsim.Server) (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go func() { _ = sim.ServePubSub(ctx, lis) }()
	return lis.Addr().String(), nil
}
