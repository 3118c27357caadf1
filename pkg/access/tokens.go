package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// SecretPrefix starts every token secret Tandem issues, so that a secret scanner (and a person)
// can tell one when it sees it.
const SecretPrefix = "tandem_"

// BootstrapTokenID is the id of the deployment's operator token (see Bootstrap).
const BootstrapTokenID = "bootstrap"

// MinBootstrapSecret is the shortest secret Bootstrap accepts.
const MinBootstrapSecret = 32

// ErrUnauthenticated means a call carried no token, or one Tandem does not know, revoked or
// expired.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrDenied means the caller may not do what it asked.
var ErrDenied = errors.New("permission denied")

// NewSecret returns a new random token secret: SecretPrefix and 256 random bits.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate a token: %w", err)
	}
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// newTokenID returns a new random token id.
func newTokenID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate a token id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// SecretHash is the hash under which the store keeps a token: lowercase hex SHA-256 of the secret.
func SecretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Tokens issues, checks and revokes API tokens kept in the store.
type Tokens struct {
	st  *store.Store
	now func() time.Time
}

// NewTokens returns the tokens of st; now is the clock (nil: time.Now).
func NewTokens(st *store.Store, now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	return &Tokens{st: st, now: now}
}

// Authenticate returns the caller a secret identifies, or ErrUnauthenticated when no live token
// has it.
func (t *Tokens) Authenticate(ctx context.Context, secret string) (*Caller, error) {
	if secret == "" {
		return nil, ErrUnauthenticated
	}
	st, err := t.st.TokenBySecretHash(ctx, SecretHash(secret))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown or revoked token", ErrUnauthenticated)
	}
	if err != nil {
		return nil, err
	}
	return t.caller(st.GetToken())
}

// AuthenticateCert returns the caller a verified client certificate's subject common name
// identifies (see ApiToken.client_cert_cn), or ErrUnauthenticated when no live token is bound
// to it.
func (t *Tokens) AuthenticateCert(ctx context.Context, cn string) (*Caller, error) {
	if cn == "" {
		return nil, fmt.Errorf("%w: the client certificate has no common name", ErrUnauthenticated)
	}
	st, err := t.st.TokenByClientCert(ctx, cn)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no token is bound to client certificate %q", ErrUnauthenticated, cn)
	}
	if err != nil {
		return nil, err
	}
	return t.caller(st.GetToken())
}

// caller is the caller a live token makes, or ErrUnauthenticated for an expired one.
func (t *Tokens) caller(tok *tandemv1.ApiToken) (*Caller, error) {
	if exp := tok.GetExpiresAt(); exp != nil && !t.now().Before(exp.AsTime()) {
		return nil, fmt.Errorf("%w: token %s expired at %s", ErrUnauthenticated, tok.GetTokenId(), exp.AsTime().UTC().Format(time.RFC3339))
	}
	return &Caller{TokenID: tok.GetTokenId(), Name: tok.GetName(), Role: tok.GetRole(), Orgs: tok.GetOrgIds()}, nil
}

// Bootstrap makes secret the deployment's operator token (id BootstrapTokenID), replacing the
// secret it had: the first operator token of a deployment comes from a Kubernetes Secret or a
// file, and rotating that Secret rotates the token.
func (t *Tokens) Bootstrap(ctx context.Context, secret string) error {
	if len(secret) < MinBootstrapSecret {
		return fmt.Errorf("the operator token must be at least %d characters (generate one with `tandem token generate`)", MinBootstrapSecret)
	}
	tok := &tandemv1.ApiToken{
		TokenId: BootstrapTokenID, Name: "deployment operator token", Role: tandemv1.Role_ROLE_OPERATOR,
		CreatedAt: timestamppb.New(t.now()), CreatedBy: BootstrapTokenID,
	}
	return t.st.PutToken(ctx, &tandemv1.StoredToken{Token: tok, SecretSha256: SecretHash(secret)})
}

// Issue creates a token for req on behalf of by, and returns it with its secret. An admin may
// issue viewer and admin tokens for orgs it covers; only an operator issues operator tokens.
func (t *Tokens) Issue(ctx context.Context, by *Caller, req *tandemv1.CreateTokenRequest) (*tandemv1.ApiToken, string, error) {
	if err := CheckIssue(by, req); err != nil {
		return nil, "", err
	}
	id, err := newTokenID()
	if err != nil {
		return nil, "", err
	}
	secret, err := NewSecret()
	if err != nil {
		return nil, "", err
	}
	now := t.now()
	tok := &tandemv1.ApiToken{
		TokenId: id, Name: strings.TrimSpace(req.GetName()), Role: req.GetRole(),
		OrgIds: slices.Compact(slices.Sorted(slices.Values(req.GetOrgIds()))), CreatedAt: timestamppb.New(now), CreatedBy: by.TokenID,
		ClientCertCn: strings.TrimSpace(req.GetClientCertCn()),
	}
	if ttl := req.GetTtl(); ttl != nil {
		tok.ExpiresAt = timestamppb.New(now.Add(ttl.AsDuration()))
	}
	if err := t.st.PutToken(ctx, &tandemv1.StoredToken{Token: tok, SecretSha256: SecretHash(secret)}); err != nil {
		return nil, "", err
	}
	return tok, secret, nil
}

// CheckIssue checks a token request: store.ErrInvalid for a malformed one (naming the field),
// ErrDenied for one the caller may not make.
func CheckIssue(by *Caller, req *tandemv1.CreateTokenRequest) error {
	name := strings.TrimSpace(req.GetName())
	switch {
	case name == "":
		return fmt.Errorf("name is required: say what the token is for: %w", store.ErrInvalid)
	case len(name) > 200:
		return fmt.Errorf("name is %d characters; at most 200: %w", len(name), store.ErrInvalid)
	case req.GetRole() < tandemv1.Role_ROLE_VIEWER || req.GetRole() > tandemv1.Role_ROLE_OPERATOR:
		return fmt.Errorf("role must be viewer, admin or operator: %w", store.ErrInvalid)
	case req.GetRole() == tandemv1.Role_ROLE_OPERATOR && len(req.GetOrgIds()) > 0:
		return fmt.Errorf("org_ids must be empty for an operator token, which covers every org: %w", store.ErrInvalid)
	case req.GetRole() != tandemv1.Role_ROLE_OPERATOR && len(req.GetOrgIds()) == 0:
		return fmt.Errorf("org_ids: name at least one org the token covers: %w", store.ErrInvalid)
	case req.GetTtl() != nil && req.GetTtl().AsDuration() <= 0:
		return fmt.Errorf("ttl must be positive, or unset for a token that does not expire: %w", store.ErrInvalid)
	case len(req.GetClientCertCn()) > 64:
		return fmt.Errorf("client_cert_cn is %d characters; a certificate's common name has at most 64: %w", len(req.GetClientCertCn()), store.ErrInvalid)
	}
	for _, org := range req.GetOrgIds() {
		if !store.ValidID(org) {
			return fmt.Errorf("org_ids: %q is not an org id: %w", org, store.ErrInvalid)
		}
	}
	if !by.AtLeast(tandemv1.Role_ROLE_ADMIN) {
		return fmt.Errorf("%w: only admins and operators issue tokens", ErrDenied)
	}
	if req.GetRole() > by.Role {
		return fmt.Errorf("%w: a %s cannot issue a %s token", ErrDenied, RoleName(by.Role), RoleName(req.GetRole()))
	}
	for _, org := range req.GetOrgIds() {
		if !by.Covers(org) {
			return fmt.Errorf("%w: no access to org %s", ErrDenied, org)
		}
	}
	return nil
}

// Sees reports whether by may see (and revoke) tok: an operator sees every token, an admin the
// tokens that cover only orgs it covers itself, and no one else any.
func Sees(by *Caller, tok *tandemv1.ApiToken) bool {
	if by.Operator() {
		return true
	}
	if !by.AtLeast(tandemv1.Role_ROLE_ADMIN) || tok.GetRole() > by.Role || len(tok.GetOrgIds()) == 0 {
		return false
	}
	for _, org := range tok.GetOrgIds() {
		if !by.Covers(org) {
			return false
		}
	}
	return true
}

// RoleName is a role as the CLI and messages spell it: viewer, admin, operator.
func RoleName(r tandemv1.Role) string {
	switch r {
	case tandemv1.Role_ROLE_VIEWER:
		return "viewer"
	case tandemv1.Role_ROLE_ADMIN:
		return "admin"
	case tandemv1.Role_ROLE_OPERATOR:
		return "operator"
	}
	return "no role"
}

// ParseRole parses RoleName's spelling.
func ParseRole(s string) (tandemv1.Role, error) {
	for _, r := range []tandemv1.Role{tandemv1.Role_ROLE_VIEWER, tandemv1.Role_ROLE_ADMIN, tandemv1.Role_ROLE_OPERATOR} {
		if strings.EqualFold(s, RoleName(r)) {
			return r, nil
		}
	}
	return 0, fmt.Errorf("role %q: choose viewer, admin or operator", s)
}
