package ews

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"golang.org/x/sync/singleflight"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/telemetry"
)

// Autodiscover namespaces and constants.
const (
	nsAddressing       = "http://www.w3.org/2005/08/addressing"
	nsAutodiscover     = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
	nsPOXRequest       = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	poxResponseSchema  = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
	getUserSettingsURI = nsAutodiscover + "/Autodiscover/GetUserSettings"
)

// Defaults of AutodiscoverConfig.
const (
	DefaultAutodiscoverRedirects = 10
	DefaultAutodiscoverTTL       = 24 * time.Hour
	DefaultAutodiscoverTimeout   = 30 * time.Second
	maxAutodiscoverResponse      = 1 << 20
)

// requestedSettings are the GetUserSettings settings Tandem asks for.
var requestedSettings = []string{"UserDisplayName", "CasVersion", "EwsSupportedSchemas", "ExternalEwsUrl", "InternalEwsUrl"}

// AutodiscoverConfig configures Autodiscover.
type AutodiscoverConfig struct {
	// Credentials authenticate the Autodiscover requests. Required.
	Credentials Credentials
	// HTTPClient sends requests; nil means DefaultHTTPClient(false). Redirects are followed by
	// Autodiscover itself, not by the client.
	HTTPClient *http.Client
	// URL overrides the endpoint: a SOAP .../autodiscover.svc or a POX .../autodiscover.xml URL.
	URL string
	// FallbackDomain is tried when the user's own domain does not answer (the service account's domain).
	FallbackDomain string
	// AllowHTTP permits plain-HTTP endpoints and redirects; only for simulators and tests.
	AllowHTTP bool
	// MaxRedirects caps redirects (HTTP, URL and address) per lookup; zero means 10.
	MaxRedirects int
	// CacheTTL is how long a user's settings are reused; zero means 24h.
	CacheTTL time.Duration
	// Timeout bounds each request; zero means 30s.
	Timeout time.Duration
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// UserSettings is what Autodiscover says about a mailbox.
type UserSettings struct {
	// EWSURL is the endpoint to use: the external URL when there is one, else the internal one.
	EWSURL         string
	ExternalEWSURL string
	InternalEWSURL string
	DisplayName    string
	// CasVersion is the Client Access server's version (SOAP only).
	CasVersion string
	// EwsSupportedSchemas lists the schema versions the server supports (SOAP only).
	EwsSupportedSchemas string
}

// Autodiscover finds mailboxes' EWS URLs and caches them per user. It is safe for concurrent use;
// concurrent lookups of one user share a single discovery.
type Autodiscover struct {
	cfg   AutodiscoverConfig
	http  *http.Client
	log   *slog.Logger
	group singleflight.Group
	now   func() time.Time

	mu    sync.Mutex
	cache map[string]cachedSettings
	// expected are the addresses the caller will ask about (Expect): a lookup that must ask
	// Autodiscover asks about those not cached yet in the same request.
	expected map[string]bool
	// asking holds, for each address a request for several users is asking about, a channel
	// closed when the answer is in: a lookup of such an address waits for it rather than
	// asking again.
	asking map[string]chan struct{}
}

type cachedSettings struct {
	settings *UserSettings
	expires  time.Time
}

// NewAutodiscover returns an Autodiscover for cfg.
func NewAutodiscover(cfg AutodiscoverConfig) (*Autodiscover, error) {
	if cfg.Credentials == nil {
		return nil, errors.New("ews: autodiscover credentials are required")
	}
	if cfg.URL != "" {
		u, err := url.Parse(cfg.URL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && cfg.AllowHTTP)) {
			return nil, fmt.Errorf("ews: autodiscover URL %q: want an https URL", cfg.URL)
		}
	}
	if cfg.MaxRedirects <= 0 {
		cfg.MaxRedirects = DefaultAutodiscoverRedirects
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultAutodiscoverTTL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultAutodiscoverTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Autodiscover{
		cfg:      cfg,
		http:     noRedirects(cfg.HTTPClient),
		log:      logger,
		now:      time.Now,
		cache:    make(map[string]cachedSettings),
		expected: make(map[string]bool),
		asking:   make(map[string]chan struct{}),
	}, nil
}

// MaxAutodiscoverUsers is how many users one GetUserSettings request asks about: Exchange
// accepts up to 100.
const MaxAutodiscoverUsers = 100

// Expect tells Autodiscover the addresses it will be asked about (an org's syncing mailboxes),
// so that the lookup of one asks, in the same GetUserSettings request, about up to
// MaxAutodiscoverUsers-1 others of its domain not cached yet: an org's mailboxes cost one
// request per hundred rather than one each.
func (a *Autodiscover) Expect(addresses []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, addr := range addresses {
		if key := addressKey(addr); key != "" {
			a.expected[key] = true
		}
	}
}

func addressKey(address string) string { return strings.ToLower(strings.TrimSpace(address)) }

// Discover returns the settings of address's mailbox, from the cache when they are fresh.
// Failures are classified: EXCHANGE_AUTH_FAILED when an endpoint rejected the credentials,
// EXCHANGE_MAILBOX_NOT_FOUND when it did not know the user, else EXCHANGE_AUTODISCOVER_FAILED.
func (a *Autodiscover) Discover(ctx context.Context, address string) (*UserSettings, error) {
	key := addressKey(address)
	if s, ok := a.cached(key); ok {
		return s, nil
	}
	ch := a.group.DoChan(key, func() (any, error) {
		// The discovery outlives any one caller's cancellation, since others may share it.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.Timeout*time.Duration(a.cfg.MaxRedirects+4))
		defer cancel()
		if s := a.discoverWithOthers(dctx, address); s != nil {
			return s, nil
		}
		s, err := a.discover(dctx, address)
		if err != nil {
			return nil, err
		}
		a.remember(key, s)
		return s, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*UserSettings), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Forget drops address's cached settings, so the next lookup asks again (after the EWS URL
// stopped answering, for instance because the mailbox moved).
func (a *Autodiscover) Forget(address string) {
	a.mu.Lock()
	delete(a.cache, addressKey(address))
	a.mu.Unlock()
}

// cached returns key's settings when the cache holds fresh ones.
func (a *Autodiscover) cached(key string) (*UserSettings, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.cache[key]
	if !ok || !a.now().Before(c.expires) {
		return nil, false
	}
	return c.settings, true
}

func (a *Autodiscover) remember(key string, s *UserSettings) {
	a.mu.Lock()
	a.cache[key] = cachedSettings{settings: s, expires: a.now().Add(a.cfg.CacheTTL)}
	a.mu.Unlock()
}

// others picks up to MaxAutodiscoverUsers-1 expected addresses of address's domain whose
// settings are neither cached nor being asked about, in a stable order, and marks them and
// address as being asked about; done ends that.
// When another request is asking about address already, others returns that request's
// channel instead.
func (a *Autodiscover) others(address string) (others []string, done func(), busy <-chan struct{}) {
	self := addressKey(address)
	_, domain, _ := strings.Cut(self, "@")
	a.mu.Lock()
	defer a.mu.Unlock()
	if asked := a.asking[self]; asked != nil {
		return nil, func() {}, asked
	}
	now := a.now()
	for key := range a.expected {
		if key == self || !strings.HasSuffix(key, "@"+domain) || a.asking[key] != nil {
			continue
		}
		if c, ok := a.cache[key]; ok && now.Before(c.expires) {
			continue
		}
		others = append(others, key)
	}
	if len(others) == 0 {
		return nil, func() {}, nil
	}
	slices.Sort(others)
	others = others[:min(len(others), MaxAutodiscoverUsers-1)]
	asked := make(chan struct{})
	marked := append([]string{self}, others...)
	for _, key := range marked {
		a.asking[key] = asked
	}
	return others, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, key := range marked {
			if a.asking[key] == asked {
				delete(a.asking, key)
			}
		}
		close(asked)
	}, nil
}

// discoverWithOthers asks the first SOAP endpoint that answers about address and the expected
// addresses of its domain not cached yet, all in one GetUserSettings request, and caches every
// user's settings the answer holds. It returns address's settings, or nil when there are no
// others to ask about or the answer does not settle address (an error or a redirect for it, or
// no endpoint answered the request as a whole): the caller then looks address up alone, which
// follows redirects and classifies failures. Others' redirects and errors are left to their
// own lookups likewise. When another lookup's request is asking about address already, it
// waits for that answer instead of asking again.
func (a *Autodiscover) discoverWithOthers(ctx context.Context, address string) *UserSettings {
	others, done, busy := a.others(address)
	defer done()
	if busy != nil {
		select {
		case <-busy:
		case <-ctx.Done():
		}
		s, _ := a.cached(addressKey(address))
		return s
	}
	if len(others) == 0 {
		return nil
	}
	users := append([]string{addressKey(address)}, others...)
	for _, ep := range a.endpoints(address) {
		if !strings.HasSuffix(strings.ToLower(ep), ".svc") || a.checkURL(ep) != nil {
			continue
		}
		answers, err := a.askMany(ctx, ep, users)
		if err != nil {
			a.log.DebugContext(ctx, "autodiscover request for several users failed", "endpoint", ep, "users", len(users), "error", err)
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		var mine *UserSettings
		found := 0
		for i, ans := range answers {
			if ans.err != nil || ans.settings == nil || ans.settings.EWSURL == "" || a.checkURL(ans.settings.EWSURL) != nil {
				continue
			}
			a.remember(users[i], ans.settings)
			found++
			if i == 0 {
				mine = ans.settings
			}
		}
		a.log.InfoContext(ctx, "autodiscover found EWS for several mailboxes in one request", "endpoint", ep, "users", len(users), "found", found)
		return mine
	}
	return nil
}

// endpoints lists the Autodiscover endpoints to try for address, in order.
func (a *Autodiscover) endpoints(address string) []string {
	if a.cfg.URL != "" {
		return []string{a.cfg.URL}
	}
	_, domain, _ := strings.Cut(address, "@")
	domains := []string{strings.ToLower(domain)}
	if fb := strings.ToLower(a.cfg.FallbackDomain); fb != "" && fb != domains[0] {
		domains = append(domains, fb)
	}
	var endpoints []string
	for _, d := range domains {
		endpoints = append(endpoints,
			"https://"+d+"/autodiscover/autodiscover.svc",
			"https://autodiscover."+d+"/autodiscover/autodiscover.svc")
	}
	return endpoints
}

// adFailure collects why each endpoint failed, and the most telling classification.
type adFailure struct {
	errs []error
	code syncerr.Code
}

func (f *adFailure) add(endpoint string, err error) {
	f.errs = append(f.errs, fmt.Errorf("%s: %w", endpoint, err))
	var he *HTTPError
	var ad *autodiscoverError
	switch {
	case errors.As(err, &he) && he.StatusCode == http.StatusUnauthorized:
		f.code = syncerr.ExchangeAuthFailed
	case errors.As(err, &ad) && ad.unknownUser && f.code == "":
		f.code = syncerr.ExchangeMailboxNotFound
	}
}

// autodiscoverError is an error an Autodiscover endpoint reported about the request or user.
type autodiscoverError struct {
	code, message string
	unknownUser   bool
}

func (e *autodiscoverError) Error() string {
	if e.message == "" {
		return "autodiscover: " + e.code
	}
	return "autodiscover: " + e.code + ": " + e.message
}

func (a *Autodiscover) discover(ctx context.Context, address string) (*UserSettings, error) {
	_, domain, ok := strings.Cut(address, "@")
	if !ok || domain == "" {
		return nil, syncerr.New(syncerr.ExchangeAutodiscoverFailed, "autodiscover: %q is not an email address", address)
	}
	var failure adFailure
	for _, ep := range a.endpoints(address) {
		s, err := a.follow(ctx, ep, address)
		if err == nil {
			a.log.InfoContext(ctx, "autodiscover found EWS", "mailbox", address, "ews_url", s.EWSURL, "endpoint", ep)
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("autodiscover %s: %w", address, ctx.Err())
		}
		failure.add(ep, err)
		if strings.HasSuffix(ep, ".svc") {
			// Servers without the SOAP service still answer the POX one on the same host.
			pox := strings.TrimSuffix(ep, ".svc") + ".xml"
			s, err := a.follow(ctx, pox, address)
			if err == nil {
				a.log.InfoContext(ctx, "autodiscover found EWS", "mailbox", address, "ews_url", s.EWSURL, "endpoint", pox)
				return s, nil
			}
			failure.add(pox, err)
		}
	}
	code := failure.code
	if code == "" {
		code = syncerr.ExchangeAutodiscoverFailed
	}
	err := errors.Join(failure.errs...)
	return nil, &syncerr.Error{Code: code, Detail: fmt.Sprintf("autodiscover %s: %v", address, err), Err: err}
}

// adAnswer is one Autodiscover answer: settings, or where to ask next.
type adAnswer struct {
	settings        *UserSettings
	redirectURL     string
	redirectAddress string
}

// follow asks endpoint for address's settings, following redirects.
func (a *Autodiscover) follow(ctx context.Context, endpoint, address string) (*UserSettings, error) {
	for hops := 0; ; hops++ {
		if hops > a.cfg.MaxRedirects {
			return nil, fmt.Errorf("more than %d redirects", a.cfg.MaxRedirects)
		}
		if err := a.checkURL(endpoint); err != nil {
			return nil, err
		}
		ans, err := a.ask(ctx, endpoint, address)
		if err != nil {
			return nil, err
		}
		switch {
		case ans.settings != nil:
			if ans.settings.EWSURL == "" {
				return nil, errors.New("no EWS URL in the answer")
			}
			if err := a.checkURL(ans.settings.EWSURL); err != nil {
				return nil, fmt.Errorf("EWS URL: %w", err)
			}
			return ans.settings, nil
		case ans.redirectURL != "":
			endpoint = ans.redirectURL
		case ans.redirectAddress != "":
			if strings.EqualFold(ans.redirectAddress, address) {
				return nil, errors.New("redirected to the same address")
			}
			address = ans.redirectAddress
		default:
			return nil, errors.New("answer has neither settings nor a redirect")
		}
		a.log.DebugContext(ctx, "autodiscover redirect", "endpoint", endpoint, "address", address)
	}
}

// checkURL accepts https URLs, and http ones only when AllowHTTP is set: credentials must
// never be sent in clear because a redirect said so.
func (a *Autodiscover) checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("invalid URL %q", raw)
	}
	if u.Scheme == "https" || (u.Scheme == "http" && a.cfg.AllowHTTP) {
		return nil
	}
	return fmt.Errorf("refusing non-https URL %q", raw)
}

// ask sends one Autodiscover request (SOAP or POX, by the endpoint's suffix).
func (a *Autodiscover) ask(ctx context.Context, endpoint, address string) (adAnswer, error) {
	pox := strings.HasSuffix(strings.ToLower(endpoint), ".xml")
	var body []byte
	var err error
	if pox {
		body, err = poxRequest(address)
	} else {
		body, err = soapAutodiscoverRequest(endpoint, address)
	}
	if err != nil {
		return adAnswer{}, err
	}
	data, redirect, err := a.post(ctx, endpoint, address, body, pox)
	switch {
	case err != nil:
		return adAnswer{}, err
	case redirect != "":
		return adAnswer{redirectURL: redirect}, nil
	case pox:
		return parsePOX(data)
	}
	answers, err := parseGetUserSettings(data, 1)
	if err != nil {
		return adAnswer{}, err
	}
	return answers[0].adAnswer, answers[0].err
}

// userAnswer is one user's part of a GetUserSettings answer: settings, a redirect, or err.
type userAnswer struct {
	adAnswer
	err error
}

// askMany asks a SOAP endpoint about several users in one GetUserSettings request. An HTTP
// redirect of the whole request is an error here: the caller looks each user up alone.
func (a *Autodiscover) askMany(ctx context.Context, endpoint string, addresses []string) ([]userAnswer, error) {
	body, err := soapAutodiscoverRequest(endpoint, addresses...)
	if err != nil {
		return nil, err
	}
	data, redirect, err := a.post(ctx, endpoint, addresses[0], body, false)
	if err != nil {
		return nil, err
	}
	if redirect != "" {
		return nil, fmt.Errorf("redirected to %s", redirect)
	}
	return parseGetUserSettings(data, len(addresses))
}

// post sends an Autodiscover request body to endpoint, anchored on address's mailbox. It
// returns the answer's body, or the Location of an HTTP redirect.
func (a *Autodiscover) post(ctx context.Context, endpoint, address string, body []byte, pox bool) (data []byte, redirect string, err error) {
	op := "autodiscover GetUserSettings"
	if pox {
		op = "autodiscover POX"
	}
	rctx, cancel := context.WithTimeout(telemetry.WithHTTPOperation(ctx, op), a.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("X-AnchorMailbox", address)
	if !pox {
		req.Header.Set("SOAPAction", `"`+getUserSettingsURI+`"`)
	}
	if err := a.cfg.Credentials.Authorize(rctx, req); err != nil {
		return nil, "", fmt.Errorf("authorize: %w", err)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	data, err = readLimited(resp.Body, resp.ContentLength, maxAutodiscoverResponse)
	if err != nil {
		return nil, "", err
	}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		loc, err := resp.Location()
		if err != nil {
			return nil, "", fmt.Errorf("HTTP %d without a usable Location: %w", resp.StatusCode, err)
		}
		return nil, loc.String(), nil
	case resp.StatusCode != http.StatusOK:
		return nil, "", httpError(resp, data)
	}
	return data, "", nil
}

func soapAutodiscoverRequest(endpoint string, addresses ...string) ([]byte, error) {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="utf-8"`)
	env := doc.CreateElement("soap:Envelope")
	env.CreateAttr("xmlns:soap", nsSOAP)
	env.CreateAttr("xmlns:a", nsAutodiscover)
	env.CreateAttr("xmlns:wsa", nsAddressing)
	h := add(env, "soap:Header")
	addText(h, "a:RequestedServerVersion", "Exchange2013")
	addText(h, "wsa:Action", getUserSettingsURI)
	addText(h, "wsa:To", endpoint)
	req := add(add(add(env, "soap:Body"), "a:GetUserSettingsRequestMessage"), "a:Request")
	users := add(req, "a:Users")
	for _, address := range addresses {
		addText(add(users, "a:User"), "a:Mailbox", address)
	}
	settings := add(req, "a:RequestedSettings")
	for _, s := range requestedSettings {
		addText(settings, "a:Setting", s)
	}
	return doc.WriteToBytes()
}

func poxRequest(address string) ([]byte, error) {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="utf-8"`)
	root := doc.CreateElement("Autodiscover")
	root.CreateAttr("xmlns", nsPOXRequest)
	req := add(root, "Request")
	addText(req, "EMailAddress", address)
	addText(req, "AcceptableResponseSchema", poxResponseSchema)
	return doc.WriteToBytes()
}

// adChild finds a child in the Autodiscover namespace. Microsoft's documentation spells that
// namespace with https in places while servers use http; both are accepted.
func adChild(e *etree.Element, local string) *etree.Element {
	if e == nil {
		return nil
	}
	for _, c := range e.ChildElements() {
		if c.Tag == local && isAutodiscoverNS(c.NamespaceURI()) {
			return c
		}
	}
	return nil
}

func isAutodiscoverNS(ns string) bool {
	return ns == nsAutodiscover || ns == "https://schemas.microsoft.com/exchange/2010/Autodiscover"
}

// parseGetUserSettings reads a SOAP GetUserSettings answer about n users: one answer per user,
// in the order of the request's users (as Exchange answers them). A failure of the whole
// request is the error.
func parseGetUserSettings(data []byte, n int) ([]userAnswer, error) {
	doc, err := parseXML(data)
	if err != nil {
		return nil, err
	}
	root := doc.Root()
	if !is(root, nsSOAP, "Envelope") {
		return nil, malformed("autodiscover answer is %s, not a SOAP envelope", root.FullTag())
	}
	first := firstChild(child(root, nsSOAP, "Body"))
	if is(first, nsSOAP, "Fault") {
		return nil, parseFault(first)
	}
	if first == nil || first.Tag != "GetUserSettingsResponseMessage" || !isAutodiscoverNS(first.NamespaceURI()) {
		return nil, malformed("autodiscover answer without GetUserSettingsResponseMessage")
	}
	resp := adChild(first, "Response")
	if code := strings.TrimSpace(adChild(resp, "ErrorCode").NotNil().Text()); code != "" && code != "NoError" {
		return nil, &autodiscoverError{code: code, message: adChild(resp, "ErrorMessage").NotNil().Text()}
	}
	var users []*etree.Element
	for _, u := range adChild(resp, "UserResponses").NotNil().ChildElements() {
		if u.Tag == "UserResponse" && isAutodiscoverNS(u.NamespaceURI()) {
			users = append(users, u)
		}
	}
	if len(users) == 0 {
		return nil, malformed("autodiscover answer without a UserResponse")
	}
	if len(users) != n {
		return nil, malformed("autodiscover answer with %d UserResponses for %d users", len(users), n)
	}
	out := make([]userAnswer, n)
	for i, u := range users {
		out[i].adAnswer, out[i].err = parseUserResponse(u)
	}
	return out, nil
}

// parseUserResponse reads one user's UserResponse.
func parseUserResponse(user *etree.Element) (adAnswer, error) {
	code := strings.TrimSpace(adChild(user, "ErrorCode").NotNil().Text())
	target := strings.TrimSpace(adChild(user, "RedirectTarget").NotNil().Text())
	switch code {
	case "", "NoError":
	case "RedirectAddress", "RedirectUrl":
		if target == "" {
			return adAnswer{}, malformed("autodiscover %s without a RedirectTarget", code)
		}
	}
	switch code {
	case "", "NoError":
	case "RedirectAddress":
		return adAnswer{redirectAddress: target}, nil
	case "RedirectUrl":
		return adAnswer{redirectURL: target}, nil
	default:
		return adAnswer{}, &autodiscoverError{
			code:        code,
			message:     adChild(user, "ErrorMessage").NotNil().Text(),
			unknownUser: code == "InvalidUser",
		}
	}
	s := &UserSettings{}
	for _, us := range adChild(user, "UserSettings").NotNil().ChildElements() {
		if us.Tag != "UserSetting" {
			continue
		}
		value := strings.TrimSpace(adChild(us, "Value").NotNil().Text())
		switch adChild(us, "Name").NotNil().Text() {
		case "UserDisplayName":
			s.DisplayName = value
		case "CasVersion":
			s.CasVersion = value
		case "EwsSupportedSchemas":
			s.EwsSupportedSchemas = value
		case "ExternalEwsUrl":
			s.ExternalEWSURL = value
		case "InternalEwsUrl":
			s.InternalEWSURL = value
		}
	}
	s.EWSURL = cmp.Or(s.ExternalEWSURL, s.InternalEWSURL)
	return adAnswer{settings: s}, nil
}

// parsePOX reads a POX Autodiscover answer (the Outlook response schema).
func parsePOX(data []byte) (adAnswer, error) {
	doc, err := parseXML(data)
	if err != nil {
		return adAnswer{}, err
	}
	root := doc.Root()
	if root.Tag != "Autodiscover" {
		return adAnswer{}, malformed("POX answer is %s, not Autodiscover", root.FullTag())
	}
	resp := childLocal(root, "Response")
	if resp == nil {
		return adAnswer{}, malformed("POX answer without a Response")
	}
	if e := childLocal(resp, "Error"); e != nil {
		code := strings.TrimSpace(childLocal(e, "ErrorCode").NotNil().Text())
		msg := strings.TrimSpace(childLocal(e, "Message").NotNil().Text())
		// Exchange answers 500 "The email address can't be found." for unknown users.
		return adAnswer{}, &autodiscoverError{code: code, message: msg, unknownUser: code == "500"}
	}
	account := childLocal(resp, "Account")
	if account == nil {
		return adAnswer{}, malformed("POX answer without an Account")
	}
	switch action := strings.TrimSpace(childLocal(account, "Action").NotNil().Text()); action {
	case "redirectAddr", "redirectUrl":
		addr := strings.TrimSpace(childLocal(account, "RedirectAddr").NotNil().Text())
		u := strings.TrimSpace(childLocal(account, "RedirectUrl").NotNil().Text())
		switch {
		case action == "redirectAddr" && addr != "":
			return adAnswer{redirectAddress: addr}, nil
		case action == "redirectUrl" && u != "":
			return adAnswer{redirectURL: u}, nil
		}
		return adAnswer{}, malformed("POX %s without a target", action)
	}
	s := &UserSettings{DisplayName: strings.TrimSpace(childLocal(childLocal(resp, "User"), "DisplayName").NotNil().Text())}
	for _, p := range account.ChildElements() {
		if p.Tag != "Protocol" {
			continue
		}
		ews := strings.TrimSpace(childLocal(p, "EwsUrl").NotNil().Text())
		switch strings.TrimSpace(childLocal(p, "Type").NotNil().Text()) {
		case "EXPR":
			s.ExternalEWSURL = cmp.Or(s.ExternalEWSURL, ews)
		case "EXCH":
			s.InternalEWSURL = cmp.Or(s.InternalEWSURL, ews)
		}
	}
	s.EWSURL = cmp.Or(s.ExternalEWSURL, s.InternalEWSURL)
	return adAnswer{settings: s}, nil
}
