package salesforce

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	jwtBearerGrant      = "urn:ietf:params:oauth:grant-type:jwt-bearer" //nolint:gosec // a grant type, not a credential
	productionAudience  = "https://login.salesforce.com"
	sandboxAudience     = "https://test.salesforce.com"
	jwtLifetime         = 3 * time.Minute
	tokenRequestTimeout = 30 * time.Second
	maxTokenResponse    = 64 << 10
)

// token is an access token and the instance it is valid for.
type token struct {
	accessToken string
	instanceURL string // scheme://host, no trailing slash
	userURL     string // the identity URL ("id"), which names the org and user
}

// tokenResponse is the token endpoint's success answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	InstanceURL string `json:"instance_url"`
	ID          string `json:"id"`
	TokenType   string `json:"token_type"`
	IssuedAt    string `json:"issued_at"`
	Signature   string `json:"signature"`
	Scope       string `json:"scope"`
}

// ParseTokenResponse reads the token endpoint's answer to a successful request. fallbackURL is
// used when the answer names no instance (the My Domain URL).
func ParseTokenResponse(body []byte, fallbackURL string) (accessToken, instanceURL string, err error) {
	t, err := parseTokenResponse(body, fallbackURL)
	if err != nil {
		return "", "", err
	}
	return t.accessToken, t.instanceURL, nil
}

func parseTokenResponse(body []byte, fallbackURL string) (*token, error) {
	var r tokenResponse
	if err := decodeJSON(body, &r); err != nil {
		return nil, fmt.Errorf("decode token response: %w", err)
	}
	if r.AccessToken == "" {
		return nil, errors.New("token response has no access_token")
	}
	if r.TokenType != "" && !strings.EqualFold(r.TokenType, "Bearer") {
		return nil, fmt.Errorf("token response has token_type %q, want Bearer", r.TokenType)
	}
	instance := r.InstanceURL
	if instance == "" {
		instance = fallbackURL
	}
	// The instance is reached as the My Domain was: over https, unless the My Domain itself was
	// a plain-http simulator the connector was allowed to use.
	base, err := baseURL(instance, strings.HasPrefix(strings.ToLower(strings.TrimSpace(fallbackURL)), "http://"))
	if err != nil {
		return nil, fmt.Errorf("token response instance_url: %w", err)
	}
	return &token{accessToken: r.AccessToken, instanceURL: base, userURL: r.ID}, nil
}

// ParseTokenError reads the token endpoint's answer to a failed request.
func ParseTokenError(status int, body []byte) *TokenError {
	var r struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(body), &r); err != nil || r.Error == "" {
		return &TokenError{StatusCode: status, Code: http.StatusText(status), Description: clip(strings.TrimSpace(string(body)), maxErrorText)}
	}
	return &TokenError{StatusCode: status, Code: r.Error, Description: r.ErrorDescription}
}

// baseURL validates an absolute https URL (or http, with allowHTTP: simulators and lab servers
// only, since a token and the org's data would cross the network in clear) and returns its
// scheme://host.
func baseURL(raw string, allowHTTP bool) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("%q is not an absolute https URL", raw)
	}
	if u.Scheme == "http" && !allowHTTP {
		return "", fmt.Errorf("%q is plain http, which would send tokens and records in clear: use its https URL (plain http only for simulators, with --allow-http)", u.Scheme+"://"+u.Host)
	}
	return u.Scheme + "://" + u.Host, nil
}

// defaultAudience is the JWT audience for a My Domain: sandboxes log in at test.salesforce.com.
func defaultAudience(myDomain string) string {
	u, err := url.Parse(myDomain)
	if err == nil && strings.HasSuffix(strings.ToLower(u.Hostname()), ".sandbox.my.salesforce.com") {
		return sandboxAudience
	}
	return productionAudience
}

// authenticator obtains and caches access tokens, one per subject (the Salesforce username a
// token acts as): the integration user's, which every org-wide read and, by default, every write
// uses, and under the JWT bearer flow with write_as REP one per rep that writes (see userSubject). Under the client credentials flow
// every token acts as the connected app's execution user, so there is a single subject, "".
//
// A token is minted once per subject and session: it is reused until the session it holds
// times out (sessionTimeout), then replaced before use, so that neither a request nor a login
// is spent on a session Salesforce has ended. Sessions unused past their timeout are dropped,
// which bounds the cache to the reps writing within one timeout.
type authenticator struct {
	flow            tandemv1.SalesforceAuth
	tokenURL        string
	myDomain        string
	clientID        string
	clientSecret    string
	key             *rsa.PrivateKey
	audience        string
	integrationUser string
	// writeAs is whom writes act as (see userSubject).
	writeAs tandemv1.SalesforceWriteIdentity

	http    *http.Client
	now     func() time.Time
	fetched func(ctx context.Context, renewal bool, err error) // telemetry hook

	// sessionTimeout is the org's session timeout: Salesforce ends a session unused for this
	// long, and extends it when used in the second half of its lifetime.
	sessionTimeout time.Duration

	mu        sync.Mutex
	tokens    map[string]*session
	lastSweep time.Time
	flight    singleflight.Group
}

// session is a cached token and when Salesforce will end its session if it is not used.
type session struct {
	tok     *token
	expires time.Time
}

// use reports whether the session is still open at now and, if so, extends it as Salesforce
// does: a request in the second half of the timeout starts it anew.
func (s *session) use(now time.Time, timeout time.Duration) bool {
	if !now.Before(s.expires) {
		return false
	}
	if now.After(s.expires.Add(-timeout / 2)) {
		s.expires = now.Add(timeout)
	}
	return true
}

// perUser reports whether tokens can act as individual users (JWT bearer).
func (a *authenticator) perUser() bool {
	return a.flow == tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER
}

// integrationSubject is the subject org-wide reads run as.
func (a *authenticator) integrationSubject() string {
	if !a.perUser() {
		return ""
	}
	return a.integrationUser
}

// repWrites reports whether writes act as each rep, with the rep's own token: write_as REP under
// the JWT bearer flow. Otherwise every write of the org acts as one Salesforce user.
func (a *authenticator) repWrites() bool {
	return a.perUser() && a.writeAs == tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_REP
}

// userSubject is the subject writes for a user run as.
//
// By default (write_as INTEGRATION_USER) that is the integration user, whoever the user: creates
// set OwnerId to the rep, and the writes of all the org's reps share one token and the same
// sObject Collections calls, which keeps Salesforce calls per org rather than per rep. The
// integration user then needs edit access to every rep's contacts and events ("Modify All" on
// Contact and Event, or "Modify All Data"), and CreatedBy and LastModifiedBy show it.
//
// With write_as REP, under the JWT bearer flow, it is the rep, which is why a token per writing
// rep exists at all: records they create are theirs (CreatedBy shows them, as Lightning Sync
// shows the organizer), their edits and deletes are theirs (LastModifiedBy) and only what their
// profile and the sharing rules allow, and the Accounts and invitees a write looks up are the
// ones they can see — at the cost of a token, an Account lookup and write calls per rep.
//
// Under the client credentials flow there is no choice: one token, and creates set OwnerId.
func (a *authenticator) userSubject(u *tandemv1.SyncUser) (string, error) {
	if !a.repWrites() || u == nil {
		return a.integrationSubject(), nil
	}
	if u.GetUsername() == "" {
		return "", syncerr.New(syncerr.SyncUserNotInDirectory, "user %s has no Salesforce username to act as", u.GetUserId())
	}
	return u.GetUsername(), nil
}

// sharedWriterID returns the id of the Salesforce user every write of the org acts as (the
// integration user, or the connected app's execution user), from the identity URL its token came
// with (".../id/<org id>/<user id>"); "" when each rep writes as themselves, or when the URL
// names no user.
func (a *authenticator) sharedWriterID(ctx context.Context) (string, error) {
	if a.repWrites() {
		return "", nil
	}
	t, err := a.token(ctx, a.integrationSubject())
	if err != nil {
		return "", err
	}
	id := t.userURL[strings.LastIndexByte(t.userURL, '/')+1:]
	if !strings.Contains(t.userURL, "/id/") || !isUserID(id) {
		return "", nil
	}
	return id, nil
}

// isUserID reports whether id is a Salesforce User id: 15 or 18 letters and digits, starting
// with the User key prefix 005.
func isUserID(id string) bool {
	if (len(id) != 15 && len(id) != 18) || !strings.HasPrefix(id, "005") {
		return false
	}
	for _, r := range id {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}

// writer names, for messages, whom writes act as.
func (a *authenticator) writer() string {
	switch {
	case a.repWrites():
		return "the user"
	case a.perUser():
		return "the integration user"
	default:
		return "the connected app's execution user"
	}
}

// writerAccessHint says what to do when Salesforce refuses a shared writer (the integration
// user, or the execution user) access to a rep's record; empty when each rep writes their own.
func (a *authenticator) writerAccessHint() string {
	switch {
	case a.repWrites():
		return ""
	case a.perUser():
		return "Tandem writes every rep's records as the integration user (the org's write_as is INTEGRATION_USER): " +
			"give it \"Modify All\" on Contact and Event (or \"Modify All Data\"), or set the org's write_as to REP so that each rep writes their own records"
	default:
		return "Tandem writes every rep's records as the connected app's execution user (client credentials flow): " +
			"give it \"Modify All\" on Contact and Event (or \"Modify All Data\"), or use the JWT bearer flow with write_as REP so that each rep writes their own records"
	}
}

// token returns the cached token for subject, fetching one (once, however many callers ask at
// the same time) when there is none or its session has timed out.
func (a *authenticator) token(ctx context.Context, subject string) (*token, error) {
	a.mu.Lock()
	now := a.now()
	a.sweep(now)
	var stale *token
	if s := a.tokens[subject]; s != nil {
		if s.use(now, a.sessionTimeout) {
			a.mu.Unlock()
			return s.tok, nil
		}
		stale = s.tok
	}
	a.mu.Unlock()
	return a.obtain(ctx, subject, stale)
}

// renew replaces stale, which Salesforce just rejected as expired. Every caller holding the
// same stale token shares one renewal; a caller whose stale token was already replaced gets
// the replacement without a new request.
func (a *authenticator) renew(ctx context.Context, subject string, stale *token) (*token, error) {
	return a.obtain(ctx, subject, stale)
}

func (a *authenticator) obtain(ctx context.Context, subject string, stale *token) (*token, error) {
	ch := a.flight.DoChan(subject, func() (any, error) {
		a.mu.Lock()
		var cur *token
		if s := a.tokens[subject]; s != nil {
			cur = s.tok
		}
		a.mu.Unlock()
		if cur != nil && cur != stale {
			return cur, nil
		}
		// The flight outlives any one caller: a caller that gives up must not fail the
		// renewal the others are waiting for.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tokenRequestTimeout)
		defer cancel()
		t, err := a.fetch(fctx, subject)
		if a.fetched != nil {
			a.fetched(fctx, stale != nil, err)
		}
		if err != nil {
			return nil, err
		}
		a.mu.Lock()
		a.store(subject, t)
		a.mu.Unlock()
		return t, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*token), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("salesforce token for %q: %w", subject, ctx.Err())
	}
}

// store caches a new token for subject; callers hold a.mu.
func (a *authenticator) store(subject string, t *token) {
	a.tokens[subject] = &session{tok: t, expires: a.now().Add(a.sessionTimeout)}
}

// sweep drops, at most every quarter timeout, the sessions that have timed out; callers hold
// a.mu.
func (a *authenticator) sweep(now time.Time) {
	if now.Sub(a.lastSweep) < a.sessionTimeout/4 {
		return
	}
	a.lastSweep = now
	for sub, s := range a.tokens {
		if !now.Before(s.expires) {
			delete(a.tokens, sub)
		}
	}
}

// forget drops subject's cached token when it is known to be unusable.
func (a *authenticator) forget(subject string, t *token) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.tokens[subject]; s != nil && s.tok == t {
		delete(a.tokens, subject)
	}
}

// fetch asks the token endpoint for a new token.
func (a *authenticator) fetch(ctx context.Context, subject string) (*token, error) {
	form := url.Values{}
	switch a.flow {
	case tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER:
		if subject == "" {
			return nil, syncerr.New(syncerr.SalesforceConfigMissing, "the JWT bearer flow needs the integration user's username")
		}
		assertion, err := a.assertion(subject)
		if err != nil {
			return nil, err
		}
		form.Set("grant_type", jwtBearerGrant)
		form.Set("assertion", assertion)
	case tandemv1.SalesforceAuth_SALESFORCE_AUTH_CLIENT_CREDENTIALS:
		form.Set("grant_type", "client_credentials")
		form.Set("client_id", a.clientID)
		form.Set("client_secret", a.clientSecret)
	default:
		return nil, syncerr.New(syncerr.SalesforceConfigMissing, "unsupported Salesforce auth flow %v", a.flow)
	}
	req, err := http.NewRequestWithContext(telemetry.WithHTTPOperation(ctx, "salesforce token"), http.MethodPost, a.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, syncerr.Wrap(syncerr.SalesforceConfigMissing, fmt.Errorf("token request: %w", err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, transportError("token", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return nil, transportError("token", err)
	}
	if len(body) > maxTokenResponse {
		return nil, syncerr.Wrap(syncerr.SalesforceResponseTooLarge, fmt.Errorf("token: %w", &ResponseTooLargeError{Limit: maxTokenResponse}))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, classifyTokenError(ParseTokenError(resp.StatusCode, body))
	}
	t, err := parseTokenResponse(body, a.myDomain)
	if err != nil {
		return nil, syncerr.Wrap(syncerr.SalesforceMalformedResponse, err)
	}
	return t, nil
}

// assertion signs the JWT bearer assertion for subject. The claims are a plain map so that
// "aud" is a string, as Salesforce documents it, not a one-element array.
func (a *authenticator) assertion(subject string) (string, error) {
	claims := jwt.MapClaims{
		"iss": a.clientID,
		"sub": subject,
		"aud": a.audience,
		"exp": a.now().Add(jwtLifetime).Unix(),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(a.key)
	if err != nil {
		return "", syncerr.Wrap(syncerr.SalesforceAuthFailed, fmt.Errorf("sign JWT assertion: %w", err))
	}
	return s, nil
}
