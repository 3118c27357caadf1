package api

import (
	"context"
	"sort"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/reconcile/engine"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// GetOrgStatus returns an org's system status (Tables 1–3).
func (s *Server) GetOrgStatus(ctx context.Context, req *tandemv1.GetOrgStatusRequest) (*tandemv1.GetOrgStatusResponse, error) {
	if err := required("org_id", req.GetOrgId()); err != nil {
		return nil, err
	}
	org, err := s.st.GetOrgRedacted(ctx, req.GetOrgId())
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	out := &tandemv1.OrgStatus{OrgId: org.GetOrgId(), ServiceAccount: serviceAccount(org)}
	users, err := s.countUsers(ctx, org.GetOrgId())
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	out.UsersExpected, out.UsersLinked, out.UsersSuspended = users.expected, users.linked, users.suspended
	switch {
	case users.recognized:
		out.ServiceAccountRecognized = tandemv1.CheckResult_CHECK_RESULT_PASSED
	case users.refused:
		out.ServiceAccountRecognized = tandemv1.CheckResult_CHECK_RESULT_FAILED
	}
	for _, kind := range engine.Kinds {
		a, err := s.st.Activity(ctx, org.GetOrgId(), store.KindName(kind))
		if err != nil {
			return nil, s.grpcError(ctx, err)
		}
		ka := &tandemv1.KindActivity{Kind: kind, SyncedLast_60Minutes: a.LastHour, SyncedLast_24Hours: a.LastDay}
		if !a.Last.IsZero() {
			ka.LastSyncAt = timestamppb.New(a.Last)
		}
		out.Activity = append(out.Activity, ka)
	}
	if out.SalesforceApi, err = s.status.SalesforceUsage(ctx, org.GetOrgId()); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	sch, err := s.st.GetSchedule(ctx, org.GetOrgId())
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	out.LastCycle = sch.Cycle
	return &tandemv1.GetOrgStatusResponse{Status: out}, nil
}

// userCounts are an org's users assigned to active configurations, by state, and whether the
// Exchange service account was recognized for any of them (or refused for any).
type userCounts struct {
	expected, linked, suspended int64
	recognized, refused         bool
}

func (s *Server) countUsers(ctx context.Context, orgID string) (userCounts, error) {
	var c userCounts
	users, err := s.st.ListUsers(ctx, orgID)
	if err != nil {
		return c, err
	}
	for _, u := range users {
		us, err := s.status.Get(ctx, store.UserKey{OrgID: orgID, UserID: u.GetUserId()})
		if err != nil {
			return c, err
		}
		if us.GetAssignedToActiveConfiguration() != tandemv1.CheckResult_CHECK_RESULT_PASSED {
			continue
		}
		c.expected++
		linked := len(us.GetKinds()) > 0
		for _, ks := range us.GetKinds() {
			linked = linked && ks.GetAddressesLinked() == tandemv1.CheckResult_CHECK_RESULT_PASSED
		}
		if linked {
			c.linked++
		}
		if us.GetSuspended() {
			c.suspended++
		}
		switch us.GetRecognizedByServiceAccount() {
		case tandemv1.CheckResult_CHECK_RESULT_PASSED:
			c.recognized = true
		case tandemv1.CheckResult_CHECK_RESULT_FAILED:
			c.refused = true
		}
	}
	return c, nil
}

// serviceAccount is "Microsoft Exchange service account provided": the account, the OAuth app,
// or empty for None.
func serviceAccount(org *tandemv1.Org) string {
	ex := org.GetExchange()
	if ex.GetAuth() == tandemv1.ExchangeAuth_EXCHANGE_AUTH_OAUTH_CLIENT_CREDENTIALS {
		return ex.GetClientId()
	}
	return ex.GetServiceAccount()
}

// userStatus assembles one user's status.
func (s *Server) userStatus(ctx context.Context, orgID string, u *tandemv1.SyncUser) (*tandemv1.UserStatus, error) {
	uk := store.UserKey{OrgID: orgID, UserID: u.GetUserId()}
	us, err := s.status.Get(ctx, uk)
	if err != nil {
		return nil, err
	}
	us.Email = u.GetEmail()
	if us.ResetStatus, err = s.st.ResetStatus(ctx, uk); err != nil {
		return nil, err
	}
	return us, nil
}

// GetUserStatus returns one user's status (Tables 4–6).
func (s *Server) GetUserStatus(ctx context.Context, req *tandemv1.GetUserStatusRequest) (*tandemv1.GetUserStatusResponse, error) {
	if err := orgRequired(req.GetOrgId()); err != nil {
		return nil, err
	}
	u, err := s.lookupUser(ctx, req.GetOrgId(), req.GetUserId(), req.GetEmail())
	if err != nil {
		return nil, err
	}
	us, err := s.userStatus(ctx, req.GetOrgId(), u)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &tandemv1.GetUserStatusResponse{Status: us}, nil
}

// ListUserStatuses returns the statuses of an org's users, ordered by user id.
func (s *Server) ListUserStatuses(ctx context.Context, req *tandemv1.ListUserStatusesRequest) (*tandemv1.ListUserStatusesResponse, error) {
	if err := required("org_id", req.GetOrgId()); err != nil {
		return nil, err
	}
	users, err := s.st.ListUsers(ctx, req.GetOrgId())
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	sort.Slice(users, func(i, j int) bool { return users[i].GetUserId() < users[j].GetUserId() })
	start := sort.Search(len(users), func(i int) bool { return users[i].GetUserId() > req.GetPageToken() })
	if req.GetPageToken() == "" {
		start = 0
	}
	end := min(len(users), start+pageSize(req.GetPageSize()))
	resp := &tandemv1.ListUserStatusesResponse{}
	for _, u := range users[start:end] {
		us, err := s.userStatus(ctx, req.GetOrgId(), u)
		if err != nil {
			return nil, s.grpcError(ctx, err)
		}
		resp.Statuses = append(resp.Statuses, us)
	}
	if end < len(users) && end > start {
		resp.NextPageToken = users[end-1].GetUserId()
	}
	return resp, nil
}

// ListSyncErrors returns the sync error report: the org's, or one user's, named by id or email.
// By id the user need not be in the directory (the report keeps the entries of a user who left
// it); an email is looked up in the directory, and one that matches no user is NotFound.
func (s *Server) ListSyncErrors(ctx context.Context, req *tandemv1.ListSyncErrorsRequest) (*tandemv1.ListSyncErrorsResponse, error) {
	if err := orgRequired(req.GetOrgId()); err != nil {
		return nil, err
	}
	if err := checkUserRef(req.GetUserId(), req.GetEmail()); err != nil {
		return nil, err
	}
	userID := req.GetUserId()
	if userID == "" && req.GetEmail() != "" {
		u, err := s.lookupUser(ctx, req.GetOrgId(), "", req.GetEmail())
		if err != nil {
			return nil, err
		}
		userID = u.GetUserId()
	}
	entries, next, err := s.st.ListErrors(ctx, req.GetOrgId(), userID, pageSize(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	for _, e := range entries {
		if err := s.attachHold(ctx, e); err != nil {
			return nil, s.grpcError(ctx, err)
		}
	}
	return &tandemv1.ListSyncErrorsResponse{Entries: entries, NextPageToken: next}, nil
}

// attachHold gives an entry about held deletes the hold awaiting a decision, so the report says
// what ResolveHeldDeletes needs: the hold's id, its counts and the records concerned.
func (s *Server) attachHold(ctx context.Context, e *tandemv1.SyncErrorEntry) error {
	switch syncerr.Code(e.GetError().GetCode()) {
	case syncerr.SyncMassDeleteHeld, syncerr.SyncSideLooksEmpty:
	default:
		return nil
	}
	if e.GetUserId() == "" {
		return nil
	}
	holds, err := ledger.New(s.st).Holds(ctx, store.UserKey{OrgID: e.GetOrgId(), UserID: e.GetUserId()}, e.GetKind())
	if err != nil || len(holds) == 0 {
		return err
	}
	e.HeldDeletes = holds[0].GetSummary()
	return nil
}

// PlanUserSync shows what the user's next cycle would do, without writing.
func (s *Server) PlanUserSync(ctx context.Context, req *tandemv1.PlanUserSyncRequest) (*tandemv1.PlanUserSyncResponse, error) {
	if err := orgRequired(req.GetOrgId()); err != nil {
		return nil, err
	}
	u, err := s.lookupUser(ctx, req.GetOrgId(), req.GetUserId(), req.GetEmail())
	if err != nil {
		return nil, err
	}
	plan, err := s.syncer.Plan(ctx, store.UserKey{OrgID: req.GetOrgId(), UserID: u.GetUserId()})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return plan, nil
}
