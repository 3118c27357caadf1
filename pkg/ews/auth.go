package ews

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tandem-sync/tandem/pkg/telemetry"
)

// Credentials authenticate requests to Exchange (EWS and Autodiscover).
type Credentials interface {
	// Authorize adds authentication to req.
	Authorize(ctx context.Context, req *http.Request) error
}

// invalidator is implemented by credentials that cache something the server may reject before
// it expires (an OAuth token revoked early); after a 401 the client invalidates and tries once more.
type invalidator interface {
	invalidate()
}

// BasicAuth is a service account with impersonation rights, authenticated with HTTP Basic.
// Username is "user@domain" (UPN) or "DOMAIN\user" (down-level logon name); Exchange accepts both.
type BasicAuth struct {
	Username string
	Password string
}

// NewBasicAuth validates the account name's form and returns the credentials.
func NewBasicAuth(username, password string) (*BasicAuth, error) {
	if err := validateAccountName(username); err != nil {
		return nil, err
	}
	if password == "" {
		return nil, errors.New("ews: service account password is empty")
	}
	return &BasicAuth{Username: username, Password: password}, nil
}

func validateAccountName(name string) error {
	if user, domain, ok := strings.Cut(name, `\`); ok {
		if user == "" || domain == "" || strings.Contains(domain, `\`) {
			return fmt.Errorf(`ews: service account %q: want DOMAIN\user or user@domain`, name)
		}
		return nil
	}
	if user, domain, ok := strings.Cut(name, "@"); ok && user != "" && domain != "" && !strings.Contains(domain, "@") {
		return nil
	}
	return fmt.Errorf(`ews: service account %q: want DOMAIN\user or user@domain`, name)
}

// Authorize sets the Basic authorization header.
func (b *BasicAuth) Authorize(_ context.Context, req *http.Request) error {
	req.SetBasicAuth(b.Username, b.Password)
	return nil
}

// Domain returns the DNS domain of a user@domain account name, "" for DOMAIN\user (a NetBIOS
// name is no DNS domain, so it cannot seed Autodiscover).
func (b *BasicAuth) Domain() string {
	if _, domain, ok := strings.Cut(b.Username, "@"); ok {
		return strings.ToLower(domain)
	}
	return ""
}

// String hides the password.
func (b *BasicAuth) String() string { return "basic(" + b.Username + ", password redacted)" }

// LogValue hides the password from structured logs.
func (b *BasicAuth) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", "basic"), slog.String("username", b.Username))
}

// DefaultScope is the scope of EWS tokens from the Microsoft identity platform.
const DefaultScope = "https://outlook.office365.com/.default"

// OAuthConfig configures OAuth 2.0 client credentials (an Entra app with full_access_as_app).
type OAuthConfig struct {
	TenantID     string
	ClientID     string
	ClientSecret string
	// TokenURL overrides https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token.
	TokenURL string
	// Scope overrides DefaultScope.
	Scope string
	// HTTPClient fetches tokens; nil means a default client.
	HTTPClient *http.Client
}

// OAuth authenticates with bearer tokens from the client-credentials grant. Tokens are cached
// and renewed shortly before they expire; a token Exchange rejects is dropped and fetched again.
type OAuth struct {
	cfg    clientcredentials.Config
	client *http.Client

	// lock serialises token fetches while letting waiters give up with their context.
	lock chan struct{}

	mu        sync.Mutex
	token     *oauth2.Token
	refreshAt time.Time
	now       func() time.Time
}

// NewOAuth returns OAuth credentials.
func NewOAuth(cfg OAuthConfig) (*OAuth, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("ews: OAuth client id and secret are required")
	}
	tokenURL := cfg.TokenURL
	if tokenURL == "" {
		if cfg.TenantID == "" {
			return nil, errors.New("ews: OAuth needs a tenant id or a token URL")
		}
		tokenURL = "https://login.microsoftonline.com/" + url.PathEscape(cfg.TenantID) + "/oauth2/v2.0/token"
	}
	scope := cfg.Scope
	if scope == "" {
		scope = DefaultScope
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &OAuth{
		cfg: clientcredentials.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			TokenURL:     tokenURL,
			Scopes:       []string{scope},
			AuthStyle:    oauth2.AuthStyleInParams,
		},
		client: hc,
		lock:   make(chan struct{}, 1),
		now:    time.Now,
	}, nil
}

// Authorize sets a bearer token, fetching one when none is cached or it is about to expire.
func (o *OAuth) Authorize(ctx context.Context, req *http.Request) error {
	tok, err := o.accessToken(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

func (o *OAuth) cached() (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.token != nil && o.now().Before(o.refreshAt) {
		return o.token.AccessToken, true
	}
	return "", false
}

func (o *OAuth) accessToken(ctx context.Context) (string, error) {
	if tok, ok := o.cached(); ok {
		return tok, nil
	}
	select {
	case o.lock <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-o.lock }()
	// Another caller may have fetched a token while this one waited.
	if tok, ok := o.cached(); ok {
		return tok, nil
	}
	tok, err := o.cfg.Token(context.WithValue(telemetry.WithHTTPOperation(ctx, "oauth token"), oauth2.HTTPClient, o.client))
	if err != nil {
		return "", fmt.Errorf("fetch OAuth token from %s: %w", o.cfg.TokenURL, err)
	}
	now := o.now()
	refreshAt := now.Add(time.Hour)
	if !tok.Expiry.IsZero() {
		// Renew ahead of expiry by a fifth of the lifetime, at most five minutes, so that a
		// request never leaves with a token that expires on its way.
		early := min(tok.Expiry.Sub(now)/5, 5*time.Minute)
		refreshAt = tok.Expiry.Add(-early)
	}
	o.mu.Lock()
	o.token, o.refreshAt = tok, refreshAt
	o.mu.Unlock()
	return tok.AccessToken, nil
}

func (o *OAuth) invalidate() {
	o.mu.Lock()
	o.token = nil
	o.mu.Unlock()
}

// String hides the secret.
func (o *OAuth) String() string { return "oauth(" + o.cfg.ClientID + ", secret redacted)" }

// LogValue hides the secret from structured logs.
func (o *OAuth) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", "oauth"), slog.String("client_id", o.cfg.ClientID),
		slog.String("token_url", o.cfg.TokenURL))
}
