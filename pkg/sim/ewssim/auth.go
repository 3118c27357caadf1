package ewssim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// principal is who a request authenticated as.
type principal struct {
	// name identifies the principal in logs: a username or an app's client id, never a secret.
	name       string
	account    *ServiceAccount
	app        *OAuthApp
	ownMailbox string
}

func (p *principal) mayImpersonate(address string) bool {
	if p.app != nil || p.account.ImpersonateAll {
		return true
	}
	return slices.ContainsFunc(p.account.Impersonate, func(a string) bool { return strings.EqualFold(a, address) })
}

// authenticate checks the Authorization header; on failure it writes a 401 and returns false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*principal, bool) {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	switch strings.ToLower(scheme) {
	case "basic":
		if p := s.basicPrincipal(strings.TrimSpace(cred)); p != nil {
			return p, true
		}
	case "bearer":
		p, expired := s.bearerPrincipal(strings.TrimSpace(cred))
		if p != nil {
			return p, true
		}
		if expired {
			s.unauthorized(w, r, "TokenExpired", `Bearer error="invalid_token", error_description="The access token has expired"`,
				"2000003;reason=\"The access token has expired. It's valid from ... and to ...\";error_category=\"invalid_lifetime\"")
			return nil, false
		}
	}
	s.unauthorized(w, r, "Unauthorized", "", "")
	return nil, false
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, reason, bearerChallenge, diagnostics string) {
	if len(s.cfg.ServiceAccounts) > 0 || len(s.cfg.OAuthApps) == 0 {
		w.Header().Add("WWW-Authenticate", `Basic realm="`+hostOnly(r.Host)+`"`)
	}
	if bearerChallenge == "" && len(s.cfg.OAuthApps) > 0 {
		bearerChallenge = `Bearer client_id="00000002-0000-0ff1-ce00-000000000000", token_types="app_asserted_user_v1 service_asserted_app_v1"`
	}
	if bearerChallenge != "" {
		w.Header().Add("WWW-Authenticate", bearerChallenge)
	}
	if diagnostics != "" {
		w.Header().Set("X-Ms-Diagnostics", diagnostics)
	}
	s.counts.add("Rejected")
	s.counts.add("Rejected:" + reason)
	s.log.DebugContext(r.Context(), "ewssim: unauthorized", "path", r.URL.Path, "reason", reason)
	w.WriteHeader(http.StatusUnauthorized)
}

func hostOnly(host string) string {
	if h, _, ok := strings.Cut(host, ":"); ok {
		return h
	}
	return host
}

func (s *Server) basicPrincipal(cred string) *principal {
	raw, err := base64.StdEncoding.DecodeString(cred)
	if err != nil {
		return nil
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil
	}
	for i := range s.cfg.ServiceAccounts {
		a := &s.cfg.ServiceAccounts[i]
		if !sameAccount(a.Username, user) {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(a.Password), []byte(pass)) != 1 {
			return nil
		}
		own := a.Mailbox
		if own == "" && strings.Contains(a.Username, "@") {
			own = a.Username
		}
		return &principal{name: a.Username, account: a, ownMailbox: own}
	}
	return nil
}

// sameAccount reports whether the presented login names the configured account, accepting
// "DOMAIN\user" for "user@domain.tld" (and the reverse) when DOMAIN is the first DNS label.
func sameAccount(configured, presented string) bool {
	if strings.EqualFold(configured, presented) {
		return true
	}
	cu, cd := splitLogin(configured)
	pu, pd := splitLogin(presented)
	return cu != "" && strings.EqualFold(cu, pu) && cd != "" && strings.EqualFold(cd, pd)
}

// splitLogin returns the user and the NetBIOS-style domain of a login.
func splitLogin(login string) (user, domain string) {
	if d, u, ok := strings.Cut(login, `\`); ok {
		return u, d
	}
	if u, d, ok := strings.Cut(login, "@"); ok {
		label, _, _ := strings.Cut(d, ".")
		return u, label
	}
	return "", ""
}

func (s *Server) bearerPrincipal(token string) (p *principal, expired bool) {
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	t, ok := s.tokens.tokens[token]
	if !ok {
		return nil, false
	}
	if !s.now().Before(t.expires) {
		return nil, true
	}
	return &principal{name: t.app.ClientID, app: t.app}, false
}

// tokenStore holds the access tokens the token endpoint issued.
type tokenStore struct {
	mu     sync.Mutex
	tokens map[string]issuedToken
}

type issuedToken struct {
	app     *OAuthApp
	expires time.Time
}

// The scope Exchange Online's EWS accepts for app-only tokens.
const ewsScope = "https://outlook.office365.com/.default"

// serveToken implements the Microsoft identity platform's client-credentials grant:
// POST /{tenant}/oauth2/v2.0/token with grant_type, client_id, client_secret (in the form or as
// HTTP Basic) and scope.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.counts.add("Token")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.reject(w, r, "MethodNotAllowed", http.StatusMethodNotAllowed)
		return
	}
	if f, ok := s.faults.take("Token", "", false); ok {
		s.counts.add("Fault:" + f.Kind.String())
		if s.applyTransportFault(w, r, f) {
			return
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.tokenError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain a valid form.")
		return
	}
	tenant, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	clientID, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if id, sec, ok := r.BasicAuth(); ok {
		clientID, secret = id, sec
	}
	switch {
	case r.PostForm.Get("grant_type") != "client_credentials":
		s.tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
		return
	case clientID == "":
		s.tokenError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the parameter 'client_id'.")
		return
	case !slices.Contains(strings.Fields(r.PostForm.Get("scope")), ewsScope):
		s.tokenError(w, http.StatusBadRequest, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.")
		return
	}
	var app *OAuthApp
	tenantKnown := false
	for i := range s.cfg.OAuthApps {
		a := &s.cfg.OAuthApps[i]
		if strings.EqualFold(a.TenantID, tenant) {
			tenantKnown = true
			if a.ClientID == clientID {
				app = a
			}
		}
	}
	switch {
	case !tenantKnown:
		s.tokenError(w, http.StatusBadRequest, "invalid_request", "AADSTS90002: Tenant '"+tenant+"' not found.")
		return
	case app == nil:
		s.tokenError(w, http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application with identifier '"+clientID+"' was not found in the directory.")
		return
	case subtle.ConstantTimeCompare([]byte(app.ClientSecret), []byte(secret)) != 1:
		s.tokenError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		return
	}

	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		s.tokenError(w, http.StatusInternalServerError, "temporarily_unavailable", "could not generate a token")
		return
	}
	token := "ewssim." + base64.RawURLEncoding.EncodeToString(buf)
	now := s.now()
	s.tokens.mu.Lock()
	for k, t := range s.tokens.tokens {
		if now.After(t.expires) {
			delete(s.tokens.tokens, k)
		}
	}
	s.tokens.tokens[token] = issuedToken{app: app, expires: now.Add(s.cfg.TokenLifetime)}
	s.tokens.mu.Unlock()

	secs := int(s.cfg.TokenLifetime / time.Second)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	// Encoding a map of strings and ints cannot fail; a write error means the client left.
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": token,
	})
}

func (s *Server) tokenError(w http.ResponseWriter, status int, code, desc string) {
	s.counts.add("Rejected")
	s.counts.add("Rejected:" + code)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": code, "error_description": desc, "error_codes": []int{}})
}
