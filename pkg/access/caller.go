// Package access decides who may call Tandem's API. Every call is authenticated — by the bearer
// token in its "authorization" metadata — and authorised by one interceptor (Guard) against one
// table (Policy): the role each method needs and where in its request the org it acts on is
// named. A caller is scoped to a set of orgs with a role: a viewer reads statuses, errors and
// plans; an admin also changes configurations, resets users, decides held deletes, tests
// connections and issues tokens for its orgs; an operator does everything in every org and
// manages the orgs themselves.
//
// The check happens before any handler runs and before anything is looked up, so naming an org
// outside the caller's scope is refused the same way whether the org exists or not.
package access

import (
	"context"
	"slices"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Caller is an authenticated caller: the token it presented and what that token allows.
type Caller struct {
	// TokenID identifies the token.
	TokenID string
	// Name is the token's name.
	Name string
	// Role is what the caller may do.
	Role tandemv1.Role
	// Orgs are the orgs the caller may see and act on; an operator covers every org.
	Orgs []string
}

// Operator reports whether the caller is an operator.
func (c *Caller) Operator() bool { return c != nil && c.Role == tandemv1.Role_ROLE_OPERATOR }

// AtLeast reports whether the caller's role includes role.
func (c *Caller) AtLeast(role tandemv1.Role) bool { return c != nil && c.Role >= role }

// Covers reports whether the caller may see and act on org.
func (c *Caller) Covers(org string) bool {
	return c.Operator() || (c != nil && org != "" && slices.Contains(c.Orgs, org))
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller the Guard authenticated for this call; nil outside one. A handler
// that filters what it returns by org (ListOrgs, ListTokens) shows nothing to a nil caller.
func CallerFrom(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}
