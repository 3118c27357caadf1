package api

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandem-sync/tandem/pkg/access"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// CreateToken issues an API token; its secret is in the response only.
func (s *Server) CreateToken(ctx context.Context, req *tandemv1.CreateTokenRequest) (*tandemv1.CreateTokenResponse, error) {
	tok, secret, err := s.tokens.Issue(ctx, access.CallerFrom(ctx), req)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &tandemv1.CreateTokenResponse{Token: tok, Secret: secret}, nil
}

// ListTokens returns the tokens the caller may see, without secrets.
func (s *Server) ListTokens(ctx context.Context, _ *tandemv1.ListTokensRequest) (*tandemv1.ListTokensResponse, error) {
	all, err := s.st.ListTokens(ctx)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	caller := access.CallerFrom(ctx)
	resp := &tandemv1.ListTokensResponse{}
	for _, t := range all {
		if access.Sees(caller, t) {
			resp.Tokens = append(resp.Tokens, t)
		}
	}
	return resp, nil
}

// RevokeToken revokes a token the caller may see; any other id, existing or not, is not found.
func (s *Server) RevokeToken(ctx context.Context, req *tandemv1.RevokeTokenRequest) (*tandemv1.RevokeTokenResponse, error) {
	if err := required("token_id", req.GetTokenId()); err != nil {
		return nil, err
	}
	all, err := s.st.ListTokens(ctx)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	caller := access.CallerFrom(ctx)
	for _, t := range all {
		if t.GetTokenId() == req.GetTokenId() && access.Sees(caller, t) {
			if err := s.st.DeleteToken(ctx, t.GetTokenId()); err != nil {
				return nil, s.grpcError(ctx, err)
			}
			return &tandemv1.RevokeTokenResponse{}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "no token %s that this caller may revoke", req.GetTokenId())
}

// visibleOrgs keeps the orgs the caller covers.
func visibleOrgs(caller *access.Caller, orgs []*tandemv1.Org) []*tandemv1.Org {
	out := orgs[:0:0]
	for _, o := range orgs {
		if caller.Covers(o.GetOrgId()) {
			out = append(out, o)
		}
	}
	return out
}
