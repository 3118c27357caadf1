package sfsim

import (
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer" //nolint:gosec // a grant type, not a credential
	// maxAssertionLifetime bounds how far in the future a JWT assertion's exp may lie.
	// Salesforce asks for three minutes; it tolerates a little more, as does the simulator.
	maxAssertionLifetime = 5 * time.Minute
	// clockSkew is the leeway on exp for clocks that disagree.
	clockSkew = 30 * time.Second
)

type app struct {
	ConnectedApp
	key *rsa.PublicKey // nil: no JWT bearer flow
}

type session struct {
	userID   string
	clientID string
	lastUsed time.Time
}

type authState struct {
	mu       sync.Mutex
	apps     map[string]*app
	sessions map[string]*session
}

func (a *authState) init() {
	a.apps = map[string]*app{}
	a.sessions = map[string]*session{}
}

func (a *authState) expireAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sessions = map[string]*session{}
}

func (a *authState) endSessionsOf(userID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for token, sess := range a.sessions {
		if sess.userID == userID {
			delete(a.sessions, token)
		}
	}
}

// parsePublicKey reads an RSA public key from an X.509 certificate or a public key PEM block.
func parsePublicKey(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("certificate: no PEM block")
	}
	var pub any
	switch block.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		pub = cert.PublicKey
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		pub = k
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		pub = k
	default:
		return nil, fmt.Errorf("certificate: PEM block %q is neither a certificate nor a public key", block.Type)
	}
	rsaKey, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("certificate: key is %T, Salesforce verifies RS256 with an RSA key", pub)
	}
	return rsaKey, nil
}

// AddConnectedApp registers (or replaces) a connected app.
func (s *Server) AddConnectedApp(ca ConnectedApp) error {
	if ca.ClientID == "" {
		return errors.New("sfsim: connected app needs a client id")
	}
	a := &app{ConnectedApp: ca}
	if len(ca.CertificatePEM) > 0 {
		key, err := parsePublicKey(ca.CertificatePEM)
		if err != nil {
			return fmt.Errorf("sfsim: connected app %s: %w", ca.ClientID, err)
		}
		a.key = key
	}
	if ca.ExecutionUserID != "" {
		norm, ok := NormalizeID(ca.ExecutionUserID)
		if !ok {
			return fmt.Errorf("sfsim: connected app %s: execution user %q is not an id", ca.ClientID, ca.ExecutionUserID)
		}
		a.ExecutionUserID = norm
	}
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	s.auth.apps[ca.ClientID] = a
	return nil
}

// oauthError is the token endpoint's error body.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, oauthError{Error: code, Description: description})
}

// tokenResponse mirrors Salesforce's token response, field order included.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	Signature   string `json:"signature"`
	Scope       string `json:"scope"`
	InstanceURL string `json:"instance_url"`
	ID          string `json:"id"`
	TokenType   string `json:"token_type"`
	IssuedAt    string `json:"issued_at"`
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "must use HTTP POST")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "invalid request body")
		return
	}
	var (
		userID string
		a      *app
		code   string
		desc   string
	)
	switch grant := r.PostForm.Get("grant_type"); grant {
	case jwtBearerGrant:
		a, userID, code, desc = s.checkAssertion(r.PostForm.Get("assertion"), r)
	case "client_credentials":
		a, userID, code, desc = s.checkClientCredentials(r)
	case "":
		code, desc = "invalid_request", "grant type not specified"
	default:
		code, desc = "unsupported_grant_type", "grant type not supported"
	}
	if code != "" {
		writeOAuthError(w, http.StatusBadRequest, code, desc)
		return
	}

	now := s.now()
	token := s.orgID[:15] + "!" + randomToken(72)
	s.auth.mu.Lock()
	// Forget sessions that timed out, so a long-running simulator does not accumulate them.
	for t, sess := range s.auth.sessions {
		if now.Sub(sess.lastUsed) >= s.lifetime {
			delete(s.auth.sessions, t)
		}
	}
	s.auth.sessions[token] = &session{userID: userID, clientID: a.ClientID, lastUsed: now}
	s.auth.mu.Unlock()

	idURL := s.base(r) + "/id/" + s.orgID + "/" + userID
	issuedAt := strconv.FormatInt(now.UnixMilli(), 10)
	// Salesforce signs id+issued_at with the consumer secret so a client can tell the
	// response came from it.
	mac := hmac.New(sha256.New, []byte(a.ClientSecret))
	mac.Write([]byte(idURL + issuedAt))
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: token,
		Signature:   base64.StdEncoding.EncodeToString(mac.Sum(nil)),
		Scope:       "api",
		InstanceURL: s.base(r),
		ID:          idURL,
		TokenType:   "Bearer",
		IssuedAt:    issuedAt,
	})
}

// audiences returns the JWT audiences the org accepts: the login servers and its own URL.
func (s *Server) audiences(r *http.Request) []string {
	return []string{"https://login.salesforce.com", "https://test.salesforce.com", s.base(r)}
}

// checkAssertion verifies a JWT bearer assertion the way Salesforce does and returns the
// app and user it authorizes, or an OAuth error code and description.
func (s *Server) checkAssertion(assertion string, r *http.Request) (*app, string, string, string) {
	if assertion == "" {
		return nil, "", "invalid_request", "assertion not specified"
	}
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, &claims); err != nil {
		return nil, "", "invalid_grant", "invalid assertion"
	}
	s.auth.mu.Lock()
	a := s.auth.apps[claims.Issuer]
	s.auth.mu.Unlock()
	if a == nil {
		return nil, "", "invalid_client_id", "client identifier invalid"
	}
	if a.key == nil {
		return nil, "", "invalid_grant", "invalid assertion"
	}
	now := s.now()
	verified := jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(assertion, &verified, func(*jwt.Token) (any, error) { return a.key, nil },
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(clockSkew),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, "", "invalid_grant", "expired authorization code"
	case err != nil:
		return nil, "", "invalid_grant", "invalid assertion"
	}
	if verified.ExpiresAt.Sub(now) > maxAssertionLifetime+clockSkew {
		return nil, "", "invalid_grant", "invalid assertion"
	}
	audOK := false
	for _, aud := range verified.Audience {
		if slices.Contains(s.audiences(r), strings.TrimRight(aud, "/")) {
			audOK = true
		}
	}
	if !audOK {
		return nil, "", "invalid_grant", "audience is invalid"
	}
	if verified.Subject == "" {
		return nil, "", "invalid_grant", "invalid assertion"
	}
	s.mu.RLock()
	user := s.userByUsername(verified.Subject)
	s.mu.RUnlock()
	switch {
	case user == nil:
		return nil, "", "invalid_grant", "invalid assertion"
	case user.get("IsActive") != true:
		return nil, "", "invalid_grant", "inactive user"
	case len(a.AllowedProfileIDs) > 0 && !profileAllowed(a.AllowedProfileIDs, user.str("ProfileId")):
		return nil, "", "invalid_grant", "user hasn't approved this consumer"
	}
	return a, user.id, "", ""
}

func profileAllowed(allowed []string, profile string) bool {
	for _, p := range allowed {
		if norm, ok := NormalizeID(p); ok && norm == profile {
			return true
		}
	}
	return false
}

func (s *Server) checkClientCredentials(r *http.Request) (*app, string, string, string) {
	clientID, secret, basic := r.BasicAuth()
	if !basic {
		clientID, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.auth.mu.Lock()
	a := s.auth.apps[clientID]
	s.auth.mu.Unlock()
	if a == nil || a.ClientSecret == "" || !hmac.Equal([]byte(a.ClientSecret), []byte(secret)) {
		return nil, "", "invalid_client", "invalid client credentials"
	}
	if a.ExecutionUserID == "" {
		return nil, "", "invalid_grant", "no client credentials user enabled"
	}
	s.mu.RLock()
	user := s.st.records[a.ExecutionUserID]
	s.mu.RUnlock()
	if user == nil || user.obj.name != "User" {
		return nil, "", "invalid_grant", "no client credentials user enabled"
	}
	if user.get("IsActive") != true {
		return nil, "", "invalid_grant", "inactive user"
	}
	return a, user.id, "", ""
}

// userByUsername finds a user by username, case-insensitively as Salesforce does. Callers
// hold s.mu.
func (s *Server) userByUsername(username string) *record {
	f := s.schema.object("User").field("Username")
	id, ok := s.st.unique[f][uniqueKey(f, username)]
	if !ok {
		return nil
	}
	return s.st.records[id]
}

// authenticate resolves the request's bearer token to its user, extending the session.
func (s *Server) authenticate(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	var token string
	switch {
	case len(h) > 7 && strings.EqualFold(h[:7], "Bearer "):
		token = strings.TrimSpace(h[7:])
	case len(h) > 6 && strings.EqualFold(h[:6], "OAuth "):
		token = strings.TrimSpace(h[6:])
	default:
		return "", false
	}
	now := s.now()
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	sess := s.auth.sessions[token]
	if sess == nil {
		return "", false
	}
	if now.Sub(sess.lastUsed) >= s.lifetime {
		delete(s.auth.sessions, token)
		return "", false
	}
	sess.lastUsed = now
	return sess.userID, true
}
