// Package api implements Tandem's gRPC API: StatusService (what is syncing, what is not and
// why — the Lightning Sync status tables, the sync error report, dry-run plans) and AdminService
// (orgs, sync configurations, connection tests, reset sync, held mass deletes). It is the one
// place where Tandem's errors are mapped to gRPC codes.
package api

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandem-sync/tandem/pkg/access"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/reconcile/engine"
	"github.com/tandem-sync/tandem/pkg/seal"
	tstatus "github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Checker tests an org's connections for AdminService.TestConnection.
type Checker interface {
	// Exchange prepares the mailbox as a sync would (Autodiscover, impersonation, folders).
	Exchange(ctx context.Context, org *tandemv1.Org, mb exchange.Mailbox) (exchange.Folders, error)
	// Salesforce obtains a token and makes one cheap call.
	Salesforce(ctx context.Context, org *tandemv1.Org) error
}

// Server serves both services.
type Server struct {
	tandemv1.UnimplementedStatusServiceServer
	tandemv1.UnimplementedAdminServiceServer
	tandemv1.UnimplementedAccessServiceServer

	st      *store.Store
	tokens  *access.Tokens
	status  *tstatus.Store
	syncer  *engine.Syncer
	checker Checker
	log     *slog.Logger
	now     func() time.Time
	// rules are checked on every org PutOrg stores (see WithOrgRules); nil checks nothing.
	rules *store.OrgRules
	// watchSlots holds a token per open watch (see maxWatches); watchesStopped is closed by
	// StopWatches.
	watchSlots     chan struct{}
	watchesStopped chan struct{}
	stopWatches    sync.Once
	// tokenWatches counts the open watches of each API token (see maxWatchesPerToken).
	tokenWatchesMu sync.Mutex
	tokenWatches   map[string]int
}

// Option configures a Server.
type Option func(*Server)

// WithOrgRules makes PutOrg refuse an org that breaks rules (store.OrgRules: the 18-character
// Salesforce org id, https URLs unless rules.AllowHTTP), with one violation per field saying
// what to enter. The status-api sets them from its --allow-http; `tandem dev` and the tests,
// which store orgs of the simulators, go without.
func WithOrgRules(rules store.OrgRules) Option { return func(s *Server) { s.rules = &rules } }

// New returns the API server.
func New(st *store.Store, sy *engine.Syncer, checker Checker, log *slog.Logger, opts ...Option) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{st: st, status: tstatus.New(st), syncer: sy, checker: checker, log: log, now: time.Now,
		watchSlots: make(chan struct{}, maxWatches), watchesStopped: make(chan struct{}), tokenWatches: map[string]int{}}
	s.tokens = access.NewTokens(st, func() time.Time { return s.now() })
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// Register registers the API's services on srv. Their callers are authenticated and authorised
// by the access.Guard srv was built with (see access.Guard.ServerOptions); the handlers rely on
// it, and list nothing to a call that did not pass one.
func (s *Server) Register(srv grpc.ServiceRegistrar) {
	tandemv1.RegisterStatusServiceServer(srv, s)
	tandemv1.RegisterAdminServiceServer(srv, s)
	tandemv1.RegisterAccessServiceServer(srv, s)
}

// grpcError maps an error to a gRPC status: not found, invalid argument and unauthenticated
// errors keep their meaning, and a change that would send a stored secret somewhere new is a
// failed precondition; anything else is logged and reported as internal, without detail
// that could leak a secret.
func (s *Server) grpcError(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, access.ErrDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, access.ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, store.ErrCertBound):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrInvalidID), errors.Is(err, store.ErrInvalidPageToken):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, store.ErrSecretNotBound):
		// The message names the secret to send again and the settings that changed; the
		// store shows URLs without their userinfo and query.
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, store.ErrNoKeyring), errors.Is(err, seal.ErrOpen), errors.Is(err, seal.ErrUnknownKey):
		s.log.ErrorContext(ctx, "secrets cannot be sealed or opened", slog.Any("error", err))
		return status.Error(codes.FailedPrecondition, "org credentials cannot be sealed or opened: check the seal key")
	}
	s.log.ErrorContext(ctx, "request failed", slog.Any("error", err))
	return status.Error(codes.Internal, "internal error")
}

func required(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" {
			return status.Errorf(codes.InvalidArgument, "%s is required", fields[i])
		}
	}
	return nil
}

// pageSize clamps a request's page size.
func pageSize(n int32) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return int(n)
}

// userRequired checks that a request names a user, by id or email. It is checked before the
// lookup, whose errors go through grpcError: a status error returned from there would be
// reported as internal.
func userRequired(userID, email string) error {
	if userID == "" && email == "" {
		return status.Error(codes.InvalidArgument, "user_id or email is required")
	}
	return nil
}

// user finds a user by id or, without one, by email.
func (s *Server) user(ctx context.Context, orgID, userID, email string) (*tandemv1.SyncUser, error) {
	if userID != "" {
		return s.st.GetUser(ctx, orgID, userID)
	}
	return s.st.FindUserByEmail(ctx, orgID, email)
}
