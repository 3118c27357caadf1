package access

import (
	"context"

	"google.golang.org/grpc/credentials"
)

// Bearer is a client's per-call credentials: it sends a token as "authorization: Bearer
// <token>". It refuses to send the token over a connection without TLS unless Insecure is set,
// which only a client of a local `tandem dev` should do.
type Bearer struct {
	Token    string
	Insecure bool
}

var _ credentials.PerRPCCredentials = Bearer{}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b Bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.Token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (b Bearer) RequireTransportSecurity() bool { return !b.Insecure }
