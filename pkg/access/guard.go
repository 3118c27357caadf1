package access

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Defaults for GuardOptions.
const (
	DefaultMutationsPerSecond = 5
	DefaultMutationBurst      = 20
)

// GuardOptions tune a Guard.
type GuardOptions struct {
	// MutationsPerSecond and MutationBurst bound each caller's calls of methods that change
	// something (Rule.Mutates); zero means the defaults.
	MutationsPerSecond float64
	MutationBurst      int
	// Logger logs refusals at DEBUG and failures to check a token at WARN; nil discards.
	Logger *slog.Logger
}

// Guard is the one interceptor that authenticates and authorises every call.
type Guard struct {
	tokens *Tokens
	policy Policy
	opts   GuardOptions
	log    *slog.Logger

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// NewGuard returns a Guard checking callers' tokens against tokens and methods against policy.
func NewGuard(tokens *Tokens, policy Policy, opts GuardOptions) *Guard {
	if opts.MutationsPerSecond <= 0 {
		opts.MutationsPerSecond = DefaultMutationsPerSecond
	}
	if opts.MutationBurst <= 0 {
		opts.MutationBurst = DefaultMutationBurst
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Guard{tokens: tokens, policy: policy, opts: opts, log: log, limiters: map[string]*rate.Limiter{}}
}

// ServerOptions are the gRPC server options that install the Guard.
func (g *Guard) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(g.Unary), grpc.ChainStreamInterceptor(g.Stream)}
}

// Unary authorises a unary call.
func (g *Guard) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	rule, caller, err := g.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if rule.Public {
		return handler(ctx, req)
	}
	if err := g.authorize(ctx, info.FullMethod, rule, caller, req); err != nil {
		return nil, err
	}
	return handler(WithCaller(ctx, caller), req)
}

// Stream authorises a streaming call; for a method whose rule names an org, every message the
// client sends is checked as a unary request would be.
func (g *Guard) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	rule, caller, err := g.authenticate(ctx, info.FullMethod)
	if err != nil {
		return err
	}
	if rule.Public {
		return handler(srv, ss)
	}
	if err := g.authorize(ctx, info.FullMethod, rule, caller, nil); err != nil {
		return err
	}
	return handler(srv, &guardedStream{ServerStream: ss, ctx: WithCaller(ctx, caller), g: g, method: info.FullMethod, rule: rule, caller: caller})
}

// guardedStream checks each received message's org and carries the caller in its context.
type guardedStream struct {
	grpc.ServerStream
	ctx    context.Context
	g      *Guard
	method string
	rule   Rule
	caller *Caller
}

func (s *guardedStream) Context() context.Context { return s.ctx }

func (s *guardedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if s.rule.Org == "" {
		return nil
	}
	return s.g.checkOrg(s.ctx, s.method, s.rule, s.caller, m)
}

// authenticate finds the method's rule and, unless it is public, the caller.
func (g *Guard) authenticate(ctx context.Context, method string) (Rule, *Caller, error) {
	rule, ok := g.policy[method]
	if !ok {
		g.log.DebugContext(ctx, "refused a call of a method without an access rule", slog.String("method", method))
		return Rule{}, nil, status.Errorf(codes.PermissionDenied, "%s is not open to callers", method)
	}
	if rule.Public {
		return rule, nil, nil
	}
	if cn, ok := clientCertName(ctx); ok && !hasAuthorization(ctx) {
		// Mutual TLS: the certificate's authority, which the server trusts, vouches for the name.
		caller, err := g.tokens.AuthenticateCert(ctx, cn)
		return g.authenticated(ctx, rule, caller, err)
	}
	secret, err := bearer(ctx)
	if err != nil {
		return Rule{}, nil, err
	}
	caller, err := g.tokens.Authenticate(ctx, secret)
	return g.authenticated(ctx, rule, caller, err)
}

// authenticated turns the outcome of a token check into a gRPC answer.
func (g *Guard) authenticated(ctx context.Context, rule Rule, caller *Caller, err error) (Rule, *Caller, error) {
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return Rule{}, nil, status.Errorf(codes.Unauthenticated, "%v: send a valid token as \"authorization: Bearer <token>\"", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return Rule{}, nil, status.FromContextError(err).Err()
	case err != nil:
		g.log.WarnContext(ctx, "cannot check a caller's token", slog.Any("error", err))
		return Rule{}, nil, status.Error(codes.Unavailable, "cannot check the token now; try again")
	}
	return rule, caller, nil
}

// clientCertName returns the subject common name of the call's client certificate, when the
// TLS handshake verified one against the server's client authorities.
func clientCertName(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return "", false
	}
	return info.State.VerifiedChains[0][0].Subject.CommonName, true
}

// hasAuthorization reports whether the call sent an authorization header: a bearer token wins
// over a client certificate.
func hasAuthorization(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get("authorization")) > 0
}

// bearer returns the token of the call's "authorization: Bearer <token>" metadata.
func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("authorization")
	if len(values) == 0 {
		return "", status.Error(codes.Unauthenticated, "no credentials: send a token as \"authorization: Bearer <token>\" (the tandem CLI: --token or TANDEM_TOKEN)")
	}
	if len(values) > 1 {
		return "", status.Error(codes.Unauthenticated, "more than one authorization header")
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
		return "", status.Error(codes.Unauthenticated, "the authorization header must be \"Bearer <token>\"")
	}
	return strings.TrimSpace(token), nil
}

// authorize checks the caller's role, the org the request names (req nil: checked per message
// later), and the caller's rate of changes.
func (g *Guard) authorize(ctx context.Context, method string, rule Rule, caller *Caller, req any) error {
	if !caller.AtLeast(rule.Role) {
		g.log.DebugContext(ctx, "refused a call: role too low", slog.String("method", method), slog.String("token_id", caller.TokenID))
		return status.Errorf(codes.PermissionDenied, "%s needs the %s role; this token is a %s", shortMethod(method), RoleName(rule.Role), RoleName(caller.Role))
	}
	if req != nil && rule.Org != "" {
		if err := g.checkOrg(ctx, method, rule, caller, req); err != nil {
			return err
		}
	}
	if rule.Mutates && !g.limiter(caller.TokenID).Allow() {
		return status.Errorf(codes.ResourceExhausted, "too many changes: at most %g a second with bursts of %d per token; slow down", g.opts.MutationsPerSecond, g.opts.MutationBurst)
	}
	return nil
}

// checkOrg checks that the caller covers the org req names. The answer for an org outside the
// caller's scope does not depend on whether the org exists: nothing has been looked up.
func (g *Guard) checkOrg(ctx context.Context, method string, rule Rule, caller *Caller, req any) error {
	msg, ok := req.(proto.Message)
	if !ok {
		return status.Error(codes.Internal, "request is not a protobuf message")
	}
	org := orgOf(msg, rule.Org)
	if org == "" {
		return status.Errorf(codes.InvalidArgument, "%s is required", rule.Org)
	}
	if !caller.Covers(org) {
		g.log.DebugContext(ctx, "refused a call: org outside the token's scope", slog.String("method", method), slog.String("token_id", caller.TokenID))
		return status.Errorf(codes.PermissionDenied, "this token has no access to org %s", org)
	}
	return nil
}

func (g *Guard) limiter(tokenID string) *rate.Limiter {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.limiters[tokenID]
	if !ok {
		l = rate.NewLimiter(rate.Limit(g.opts.MutationsPerSecond), g.opts.MutationBurst)
		g.limiters[tokenID] = l
	}
	return l
}

// shortMethod is "Service/Method" of a full method name.
func shortMethod(full string) string {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[i+1:]
	}
	return full
}
