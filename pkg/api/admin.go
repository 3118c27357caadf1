package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/access"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/reconcile/engine"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// PutOrg creates or replaces an org's connection settings; empty secrets keep stored ones.
func (s *Server) PutOrg(ctx context.Context, req *tandemv1.PutOrgRequest) (*tandemv1.PutOrgResponse, error) {
	org := req.GetOrg()
	if err := required("org.org_id", org.GetOrgId()); err != nil {
		return nil, err
	}
	if s.rules != nil {
		if err := s.rules.Check(org); err != nil {
			return nil, s.grpcError(ctx, err)
		}
	}
	org.UpdatedAt = timestamppb.New(s.now())
	stored, err := s.st.PutOrg(ctx, org)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	if err := s.st.DueNow(ctx, org.GetOrgId()); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &tandemv1.PutOrgResponse{Org: store.Redact(stored)}, nil
}

// GetOrg returns an org without its secrets.
func (s *Server) GetOrg(ctx context.Context, req *tandemv1.GetOrgRequest) (*tandemv1.GetOrgResponse, error) {
	if err := required("org_id", req.GetOrgId()); err != nil {
		return nil, err
	}
	org, err := s.st.GetOrgRedacted(ctx, req.GetOrgId())
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &tandemv1.GetOrgResponse{Org: org}, nil
}

// ListOrgs returns the orgs the caller covers, without secrets.
func (s *Server) ListOrgs(ctx context.Context, _ *tandemv1.ListOrgsRequest) (*tandemv1.ListOrgsResponse, error) {
	orgs, err := s.st.ListOrgs(ctx)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &tandemv1.ListOrgsResponse{Orgs: visibleOrgs(access.CallerFrom(ctx), orgs)}, nil
}

// TestConnection checks Exchange (as the given rep) and Salesforce, like the Lightning Sync
// connection test, and says what to do about each failed check.
func (s *Server) TestConnection(ctx context.Context, req *tandemv1.TestConnectionRequest) (*tandemv1.TestConnectionResponse, error) {
	if err := required("org_id", req.GetOrgId(), "email", req.GetEmail()); err != nil {
		return nil, err
	}
	if s.checker == nil {
		return nil, status.Error(codes.Unavailable, "connection tests are not available on this server")
	}
	org, err := s.st.GetOrg(ctx, req.GetOrgId())
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	resp := &tandemv1.TestConnectionResponse{Ok: true}
	add := func(name string, err error, detail string) {
		c := &tandemv1.ConnectionCheck{Name: name, Result: tandemv1.CheckResult_CHECK_RESULT_PASSED, Detail: detail}
		if err != nil {
			se := syncerr.As(err).Proto()
			c.Result, c.Detail, c.Suggestion = tandemv1.CheckResult_CHECK_RESULT_FAILED, se.GetMessage(), se.GetSuggestion()
			resp.Ok = false
		}
		resp.Checks = append(resp.Checks, c)
	}

	add("Microsoft Exchange service account provided", presence(serviceAccount(org), syncerr.ExchangeConfigurationMissing), serviceAccount(org))
	if serviceAccount(org) != "" {
		user, uerr := s.st.FindUserByEmail(ctx, org.GetOrgId(), req.GetEmail())
		mb := exchange.Mailbox{OrgID: org.GetOrgId(), Address: req.GetEmail()}
		if uerr == nil {
			mb.UserID = user.GetUserId()
		}
		folders, err := s.checker.Exchange(ctx, org, mb)
		detail := ""
		if err == nil {
			detail = fmt.Sprintf("mailbox %s on %s; Salesforce_Sync folder ready", req.GetEmail(), folders.ServerVersion)
		}
		add("Exchange mailbox "+req.GetEmail()+" reachable and impersonated", err, detail)
	}
	present := org.GetSalesforce().GetMyDomainUrl()
	add("Salesforce connected app", s.salesforceCheck(ctx, org), present)
	return resp, nil
}

func (s *Server) salesforceCheck(ctx context.Context, org *tandemv1.Org) error {
	if org.GetSalesforce().GetMyDomainUrl() == "" {
		return syncerr.New(syncerr.SalesforceConfigMissing, "the org has no Salesforce My Domain URL")
	}
	return s.checker.Salesforce(ctx, org)
}

func presence(v string, code syncerr.Code) error {
	if strings.TrimSpace(v) == "" {
		return syncerr.New(code, "not provided")
	}
	return nil
}

// PutSyncConfiguration creates or replaces a sync configuration; users observe it next cycle.
func (s *Server) PutSyncConfiguration(ctx context.Context, req *tandemv1.PutSyncConfigurationRequest) (*tandemv1.PutSyncConfigurationResponse, error) {
	cfg := req.GetConfiguration()
	if err := required("configuration.org_id", cfg.GetOrgId()); err != nil {
		return nil, err
	}
	if req.GetValidateOnly() {
		valid, err := store.ValidateConfiguration(cfg.GetOrgId(), cfg)
		if err != nil {
			return nil, s.grpcError(ctx, err)
		}
		return &tandemv1.PutSyncConfigurationResponse{Configuration: valid}, nil
	}
	cfg.UpdatedAt = timestamppb.New(s.now())
	stored, err := s.st.PutConfiguration(ctx, cfg.GetOrgId(), cfg)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	if err := s.st.DueNow(ctx, cfg.GetOrgId()); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &tandemv1.PutSyncConfigurationResponse{Configuration: stored}, nil
}

// ListSyncConfigurations returns an org's configurations.
func (s *Server) ListSyncConfigurations(ctx context.Context, req *tandemv1.ListSyncConfigurationsRequest) (*tandemv1.ListSyncConfigurationsResponse, error) {
	if err := required("org_id", req.GetOrgId()); err != nil {
		return nil, err
	}
	cfgs, err := s.st.ListConfigurations(ctx, req.GetOrgId())
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &tandemv1.ListSyncConfigurationsResponse{Configurations: cfgs}, nil
}

// GetSyncConfiguration returns one configuration of an org.
func (s *Server) GetSyncConfiguration(ctx context.Context, req *tandemv1.GetSyncConfigurationRequest) (*tandemv1.GetSyncConfigurationResponse, error) {
	if err := required("org_id", req.GetOrgId(), "id", req.GetId()); err != nil {
		return nil, err
	}
	// A malformed id names no configuration that could exist: PutSyncConfiguration refuses it.
	if err := validIDs("org_id", req.GetOrgId(), "id", req.GetId()); err != nil {
		return nil, err
	}
	cfg, err := s.st.GetConfiguration(ctx, req.GetOrgId(), req.GetId())
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &tandemv1.GetSyncConfigurationResponse{Configuration: cfg}, nil
}

// DeleteSyncConfiguration deletes a configuration; its users stop syncing. Like a change, the
// deletion makes the org due, so the users' statuses stop showing the deleted configuration at
// once instead of an interval later.
func (s *Server) DeleteSyncConfiguration(ctx context.Context, req *tandemv1.DeleteSyncConfigurationRequest) (*tandemv1.DeleteSyncConfigurationResponse, error) {
	if err := required("org_id", req.GetOrgId(), "id", req.GetId()); err != nil {
		return nil, err
	}
	if err := s.st.DeleteConfiguration(ctx, req.GetOrgId(), req.GetId()); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	if err := s.st.DueNow(ctx, req.GetOrgId()); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &tandemv1.DeleteSyncConfigurationResponse{}, nil
}

// ResetUserSync marks a user, named by id or email, for reset; the scheduler carries it out at
// the next cycle.
func (s *Server) ResetUserSync(ctx context.Context, req *tandemv1.ResetUserSyncRequest) (*tandemv1.ResetUserSyncResponse, error) {
	_, uk, err := s.userOf(ctx, req.GetOrgId(), req.GetUserId(), req.GetEmail())
	if err != nil {
		return nil, err
	}
	if err := s.st.MarkReset(ctx, uk); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	// A reset is an admin's answer to a user who does not sync: it ends a suspension too, or the
	// reset would wait for the next probe.
	if err := s.status.Resume(ctx, uk, s.now()); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	if err := s.st.DueNow(ctx, uk.OrgID); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	rs, err := s.st.ResetStatus(ctx, uk)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &tandemv1.ResetUserSyncResponse{ResetStatus: rs}, nil
}

// ResumeUserSync ends the suspension of a user, named by id or email: the user is due at once.
// If the next read fails permanently again, the exchange-worker suspends the user again.
func (s *Server) ResumeUserSync(ctx context.Context, req *tandemv1.ResumeUserSyncRequest) (*tandemv1.ResumeUserSyncResponse, error) {
	user, uk, err := s.userOf(ctx, req.GetOrgId(), req.GetUserId(), req.GetEmail())
	if err != nil {
		return nil, err
	}
	if err := s.status.Resume(ctx, uk, s.now()); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	if err := s.st.DueNow(ctx, uk.OrgID); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	us, err := s.userStatus(ctx, uk.OrgID, user)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &tandemv1.ResumeUserSyncResponse{Status: us}, nil
}

// ResolveHeldDeletes records an admin's decision on a mass-delete hold; the user's next cycle
// carries it out. The user is named by id or email. By id, the user need not be in the
// directory any more: a hold outlives its user's place there, and is still decided; an email
// is looked up in the directory.
func (s *Server) ResolveHeldDeletes(ctx context.Context, req *tandemv1.ResolveHeldDeletesRequest) (*tandemv1.ResolveHeldDeletesResponse, error) {
	if err := required("org_id", req.GetOrgId()); err != nil {
		return nil, err
	}
	if err := userRequired(req.GetUserId(), req.GetEmail()); err != nil {
		return nil, err
	}
	if err := required("hold_id", req.GetHoldId()); err != nil {
		return nil, err
	}
	if err := validIDs("org_id", req.GetOrgId(), "hold_id", req.GetHoldId()); err != nil {
		return nil, err
	}
	if err := checkUserRef(req.GetUserId(), req.GetEmail()); err != nil {
		return nil, err
	}
	var approve bool
	switch req.GetDecision() {
	case tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_APPROVE:
		approve = true
	case tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_REJECT:
	default:
		return nil, status.Error(codes.InvalidArgument, "decision must be APPROVE or REJECT")
	}
	userID := req.GetUserId()
	if userID == "" {
		user, err := s.lookupUser(ctx, req.GetOrgId(), "", req.GetEmail())
		if err != nil {
			return nil, err
		}
		userID = user.GetUserId()
	}
	uk := store.UserKey{OrgID: req.GetOrgId(), UserID: userID}
	if err := s.syncer.Decide(ctx, uk, req.GetHoldId(), approve); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	if err := s.st.DueNow(ctx, uk.OrgID); err != nil && !errors.Is(err, context.Canceled) {
		return nil, s.grpcError(ctx, err)
	}
	return &tandemv1.ResolveHeldDeletesResponse{}, nil
}

// ListHeldDeletes lists the mass-delete holds awaiting a decision, of one user (by id or email,
// in the org's directory) or of every user of the directory, oldest first.
func (s *Server) ListHeldDeletes(ctx context.Context, req *tandemv1.ListHeldDeletesRequest) (*tandemv1.ListHeldDeletesResponse, error) {
	if err := orgRequired(req.GetOrgId()); err != nil {
		return nil, err
	}
	var users []*tandemv1.SyncUser
	if req.GetUserId() != "" || req.GetEmail() != "" {
		user, err := s.lookupUser(ctx, req.GetOrgId(), req.GetUserId(), req.GetEmail())
		if err != nil {
			return nil, err
		}
		users = []*tandemv1.SyncUser{user}
	} else {
		var err error
		if users, err = s.st.ListUsers(ctx, req.GetOrgId()); err != nil {
			return nil, s.grpcError(ctx, err)
		}
	}
	holds, err := s.heldDeletes(ctx, req.GetOrgId(), users)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &tandemv1.ListHeldDeletesResponse{Holds: holds}, nil
}

// heldReads bounds the users whose holds ListHeldDeletes reads at once.
const heldReads = 16

// heldDeletes reads the undecided holds of users, every kind, oldest first (then by user, kind
// and hold id, for a stable order). A user's holds are one HGETALL per kind, read for several
// users at once so that an org of thousands of users is listed in a moment.
func (s *Server) heldDeletes(ctx context.Context, orgID string, users []*tandemv1.SyncUser) ([]*tandemv1.UserHeldDeletes, error) {
	led := ledger.New(s.st)
	perUser := make([][]*tandemv1.UserHeldDeletes, len(users))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(heldReads)
	for i, u := range users {
		g.Go(func() error {
			uk := store.UserKey{OrgID: orgID, UserID: u.GetUserId()}
			for _, kind := range engine.Kinds {
				holds, err := led.Holds(gctx, uk, kind)
				if err != nil {
					return err
				}
				for _, h := range holds {
					perUser[i] = append(perUser[i], &tandemv1.UserHeldDeletes{
						UserId: u.GetUserId(), Email: u.GetEmail(), Held: h.GetSummary(), CreatedAt: h.GetCreatedAt(),
					})
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := slices.Concat(perUser...)
	slices.SortFunc(out, func(a, b *tandemv1.UserHeldDeletes) int {
		return cmp.Or(
			a.GetCreatedAt().AsTime().Compare(b.GetCreatedAt().AsTime()),
			cmp.Compare(a.GetUserId(), b.GetUserId()),
			cmp.Compare(a.GetHeld().GetKind(), b.GetHeld().GetKind()),
			cmp.Compare(a.GetHeld().GetHoldId(), b.GetHeld().GetHoldId()),
		)
	})
	return out, nil
}

// DeleteOrg deletes an org with everything Tandem keeps for it (see store.DeleteOrg); records in
// Exchange and Salesforce are not touched. Work in flight for the org stops: the workers find no
// settings, the scheduler no org, a reconciler its lease gone. API tokens are kept: a token
// scoped to the deleted org keeps naming it and finds nothing of it, but covers the org again
// should it be created anew with the same id (a Salesforce org id never changes) — revoke such
// tokens with RevokeToken unless that is meant. NotFound when Tandem keeps nothing for the org.
func (s *Server) DeleteOrg(ctx context.Context, req *tandemv1.DeleteOrgRequest) (*tandemv1.DeleteOrgResponse, error) {
	if err := orgRequired(req.GetOrgId()); err != nil {
		return nil, err
	}
	n, err := s.st.DeleteOrg(ctx, req.GetOrgId())
	if err != nil {
		if n > 0 {
			// Part of the org is gone: say so, since the answer is only an error.
			s.log.WarnContext(ctx, "org deleted in part; call DeleteOrg again to finish", telemetry.Org(req.GetOrgId()), slog.Int64("keys", n))
		}
		return nil, s.grpcError(ctx, err)
	}
	s.log.InfoContext(ctx, "org deleted", telemetry.Org(req.GetOrgId()), slog.Int64("keys", n),
		slog.Any("by", access.CallerFrom(ctx)))
	return &tandemv1.DeleteOrgResponse{}, nil
}
