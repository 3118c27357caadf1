package api

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// maxEmailLen is the longest address SMTP allows (RFC 5321: 64 + 1 + 255).
const maxEmailLen = 320

// orgRequired checks a request's org_id: present and well formed.
func orgRequired(orgID string) error {
	if err := required("org_id", orgID); err != nil {
		return err
	}
	return validIDs("org_id", orgID)
}

// validIDs checks the ids a request names, given as field name, value pairs: an empty value is
// left to required; any other must be a valid id (store.ValidID), or the call is refused with
// InvalidArgument naming the field. Checked before any lookup, a malformed id is told apart
// from one that does not exist.
func validIDs(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		name, v := fields[i], fields[i+1]
		if v == "" || store.ValidID(v) {
			continue
		}
		hint := ""
		if name == "user_id" && strings.Contains(v, "@") {
			hint = " (to name a user by email, set email instead)"
		}
		return status.Errorf(codes.InvalidArgument, "%s must be 1 to 128 letters, digits, '_' or '-'%s", name, hint)
	}
	return nil
}

// validEmail checks an email a request names, if any.
func validEmail(email string) error {
	if email == "" {
		return nil
	}
	if len(email) > maxEmailLen || !strings.Contains(email, "@") {
		return status.Errorf(codes.InvalidArgument, "email must be an email address of at most %d characters", maxEmailLen)
	}
	return nil
}

// checkUserRef checks a request's user_id and email, when it names a user by either.
func checkUserRef(userID, email string) error {
	if err := validIDs("user_id", userID); err != nil {
		return err
	}
	return validEmail(email)
}

// lookupUser finds the user a request names, by user_id or, without one, by email, in the
// org's directory: InvalidArgument when it names none or a malformed one, NotFound when the
// directory has no such user. Its errors are gRPC statuses, ready to return.
// userOf is the user a request names, by id or email, in the org it names, and its key: both
// required and well formed, the user known to the org's directory.
func (s *Server) userOf(ctx context.Context, orgID, userID, email string) (*tandemv1.SyncUser, store.UserKey, error) {
	if err := orgRequired(orgID); err != nil {
		return nil, store.UserKey{}, err
	}
	user, err := s.lookupUser(ctx, orgID, userID, email)
	if err != nil {
		return nil, store.UserKey{}, err
	}
	return user, store.UserKey{OrgID: orgID, UserID: user.GetUserId()}, nil
}

func (s *Server) lookupUser(ctx context.Context, orgID, userID, email string) (*tandemv1.SyncUser, error) {
	if err := userRequired(userID, email); err != nil {
		return nil, err
	}
	if err := checkUserRef(userID, email); err != nil {
		return nil, err
	}
	u, err := s.user(ctx, orgID, userID, email)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return u, nil
}
