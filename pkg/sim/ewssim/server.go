package ewssim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
)

// Server is a simulated Exchange server. It is an http.Handler and is safe for concurrent use
// by many clients and by the Go API at the same time.
type Server struct {
	cfg      Config
	version  serverVersion
	log      *slog.Logger
	now      func() time.Time
	maxBody  int64
	stateKey []byte

	mu        sync.RWMutex
	mailboxes map[string]*mailbox
	baseURL   string

	ops    map[string]operation
	notify *notifyHub
	counts counters
	faults faultSet
	tokens tokenStore
}

const defaultMaxRequestBytes = 16 << 20

// New returns a server for cfg. It panics when cfg.Validate fails: a broken simulator
// configuration is a programming error in the test or tool that builds it.
func New(cfg Config) *Server {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("ewssim: invalid configuration: %v", err))
	}
	v, _ := parseServerVersion(cfg.ServerVersion)
	s := &Server{
		cfg:       cfg,
		version:   v,
		log:       cfg.Logger,
		now:       cfg.Clock,
		maxBody:   cfg.MaxRequestBytes,
		stateKey:  make([]byte, 32),
		mailboxes: map[string]*mailbox{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxBody == 0 {
		s.maxBody = defaultMaxRequestBytes
	}
	if s.cfg.TokenLifetime == 0 {
		s.cfg.TokenLifetime = time.Hour
	}
	// Sync states are signed with a per-server key: a state from an earlier run of the
	// simulator is invalid, as one from another Exchange database would be.
	if _, err := rand.Read(s.stateKey); err != nil {
		panic(fmt.Sprintf("ewssim: read random key: %v", err))
	}
	s.tokens.tokens = map[string]issuedToken{}
	s.faults.seed(cfg.FaultSeed)
	s.ops = s.operations()
	s.notify = newNotifyHub(s)
	return s
}

// SetBaseURL sets the URL clients reach the server at (e.g. an httptest.Server's URL).
// Autodiscover answers with it; until it is set, the request's Host is used.
func (s *Server) SetBaseURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.baseURL = strings.TrimRight(u, "/")
}

// EWSURL returns the EWS endpoint URL Autodiscover hands out, based on SetBaseURL.
func (s *Server) EWSURL() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.baseURL + "/EWS/Exchange.asmx"
}

func (s *Server) base(r *http.Request) string {
	s.mu.RLock()
	b := s.baseURL
	s.mu.RUnlock()
	if b != "" {
		return b
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// Start serves on addr (e.g. "127.0.0.1:0") until stop is called, and returns the server's base
// URL. It sets the base URL unless SetBaseURL was called before.
func (s *Server) Start(addr string) (url string, stop func(context.Context) error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("ewssim: listen on %s: %w", addr, err)
	}
	url = "http://" + ln.Addr().String()
	s.mu.Lock()
	if s.baseURL == "" {
		s.baseURL = url
	}
	s.mu.Unlock()
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	hs.RegisterOnShutdown(s.closeStreams)
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	stop = func(ctx context.Context) error {
		err := hs.Shutdown(ctx)
		if serveErr := <-done; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
			err = serveErr
		}
		return err
	}
	return url, stop, nil
}

// AddMailbox creates an empty mailbox with the standard folders.
func (s *Server) AddMailbox(address string) error {
	address = strings.TrimSpace(address)
	if !validAddress(address) {
		return fmt.Errorf("ewssim: add mailbox: %q is not an SMTP address", address)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(address)
	if _, ok := s.mailboxes[key]; ok {
		return fmt.Errorf("%w: %s", ErrMailboxExists, address)
	}
	mb := newMailbox(address)
	mb.hub = s.notify
	s.mailboxes[key] = mb
	return nil
}

// Mailboxes lists the mailbox addresses, sorted.
func (s *Server) Mailboxes() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.mailboxes))
	for _, m := range s.mailboxes {
		out = append(out, m.address)
	}
	slices.Sort(out)
	return out
}

func validAddress(a string) bool {
	local, domain, ok := strings.Cut(a, "@")
	return ok && local != "" && domain != "" && !strings.ContainsAny(a, " \t\r\n<>\"")
}

func (s *Server) mailbox(address string) (*mailbox, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.mailboxes[strings.ToLower(strings.TrimSpace(address))]
	return m, ok
}

// ServeHTTP serves EWS, Autodiscover and the OAuth token endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.FaultAdmin && r.URL.Path == FaultAdminPath {
		s.serveFaultAdmin(w, r) // not Exchange traffic: left out of Counts
		return
	}
	s.counts.add("Total")
	w.Header().Set("Server", "Microsoft-IIS/10.0")
	w.Header().Set("X-AspNet-Version", "4.0.30319")
	path := strings.ToLower(r.URL.Path)
	switch {
	case path == "/ews/exchange.asmx":
		s.serveEWS(w, r)
	case path == "/autodiscover/autodiscover.svc":
		s.serveAutodiscoverSOAP(w, r)
	case path == "/autodiscover/autodiscover.xml":
		s.serveAutodiscoverPOX(w, r)
	case strings.HasSuffix(path, "/oauth2/v2.0/token"):
		s.serveToken(w, r)
	default:
		http.NotFound(w, r)
	}
}

// readBody reads a request body within the size cap; false means a response was written.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.reject(w, r, "MethodNotAllowed", http.StatusMethodNotAllowed)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.reject(w, r, "TooLarge", http.StatusRequestEntityTooLarge)
			return nil, false
		}
		s.reject(w, r, "ReadError", http.StatusBadRequest)
		return nil, false
	}
	return body, true
}

func (s *Server) reject(w http.ResponseWriter, r *http.Request, reason string, status int) {
	s.counts.add("Rejected")
	s.counts.add("Rejected:" + reason)
	s.log.DebugContext(r.Context(), "ewssim: request rejected", "path", r.URL.Path, "reason", reason, "status", status)
	http.Error(w, http.StatusText(status), status)
}

// parseXML parses a request body. encoding/xml never expands external entities, and the depth
// is capped so a hostile document cannot exhaust the stack.
func parseXML(body []byte) (*etree.Document, error) {
	doc := etree.NewDocument()
	doc.ReadSettings.MaxDepth = 128
	if err := doc.ReadFromBytes(body); err != nil {
		return nil, err
	}
	return doc, nil
}

// ewsCall is one EWS request being served.
type ewsCall struct {
	req *request
	who *principal
	mb  *mailbox
}

func (s *Server) serveEWS(w http.ResponseWriter, r *http.Request) {
	who, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	doc, err := parseXML(body)
	if err != nil {
		s.writeFault(w, r, "", schemaFault("the request is not well-formed XML: %v", err))
		return
	}
	req, fault := parseEnvelope(doc)
	if fault != nil {
		s.writeFault(w, r, "", fault)
		return
	}
	s.counts.add(req.opName)
	w.Header().Set("X-EwsHandler", req.opName)
	target := req.actAs
	if target == "" {
		target = who.ownMailbox
	}

	f, matched := s.faults.take(req.opName, target, true)
	if matched {
		s.counts.add("Fault:" + f.Kind.String())
		s.log.InfoContext(r.Context(), "ewssim: injecting fault", "operation", req.opName, "mailbox", target, "kind", f.Kind.String())
		if handled := s.applyFault(w, r, f); handled {
			return
		}
	}

	if fault := checkVersion(req.version, s.version); fault != nil {
		s.writeFault(w, r, req.opName, fault)
		return
	}
	call := &ewsCall{req: req, who: who}
	if fault := s.resolveMailbox(call, target); fault != nil {
		s.writeFault(w, r, req.opName, fault)
		return
	}
	if fault := s.checkAnchor(r, call); fault != nil {
		s.writeFault(w, r, req.opName, fault)
		return
	}

	if s.serveNotification(w, r, call) {
		return
	}
	handler, ok := s.ops[req.opName]
	if !ok {
		s.writeFault(w, r, req.opName, invalidRequest("the operation %s is not supported by the Exchange simulator", req.opName))
		return
	}
	resp, fault := handler(call)
	if fault != nil {
		s.writeFault(w, r, req.opName, fault)
		return
	}
	out, err := resp.WriteToBytes()
	if err != nil {
		http.Error(w, "render response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if matched && f.AfterWork {
		switch f.Kind {
		case FaultMalformedXML:
			writeBytes(w, http.StatusOK, out[:len(out)/2])
			return
		case FaultDropConnection:
			dropConnection(w)
			return
		}
	}
	s.log.DebugContext(r.Context(), "ewssim: served", "operation", req.opName, "mailbox", call.mb.address, "principal", who.name)
	writeBytes(w, http.StatusOK, out)
}

func (s *Server) writeFault(w http.ResponseWriter, r *http.Request, op string, f *soapFault) {
	s.counts.add("Rejected")
	s.counts.add("Rejected:" + f.code)
	s.log.DebugContext(r.Context(), "ewssim: soap fault", "operation", op, "code", f.code, "text", f.text)
	writeXML(w, http.StatusInternalServerError, faultDocument(s.version, f))
}

// resolveMailbox finds the mailbox the request acts on and checks the caller may act on it.
func (s *Server) resolveMailbox(call *ewsCall, target string) *soapFault {
	if call.req.actAs == "" {
		if call.who.app != nil {
			return &soapFault{code: "ErrorInvalidExchangeImpersonationHeaderData", text: "ExchangeImpersonation SOAP header must be present for this type of OAuth token."}
		}
		mb, ok := s.mailbox(target)
		if !ok {
			return &soapFault{code: "ErrorNonExistentMailbox", text: "The SMTP address has no mailbox associated with it.", values: [][2]string{{"SmtpAddress", target}}}
		}
		call.mb = mb
		return nil
	}
	mb, ok := s.mailbox(call.req.actAs)
	if !ok && call.req.actAsKind == "PrincipalName" {
		mb, ok = s.mailboxByPrincipal(call.req.actAs)
	}
	if !ok {
		return &soapFault{code: "ErrorNonExistentMailbox", text: "The SMTP address has no mailbox associated with it.", values: [][2]string{{"SmtpAddress", call.req.actAs}}}
	}
	if !call.who.mayImpersonate(mb.address) {
		return &soapFault{code: "ErrorImpersonateUserDenied", text: "The account does not have permission to impersonate the requested user."}
	}
	call.mb = mb
	return nil
}

// mailboxByPrincipal resolves a user principal name; in the simulator UPNs equal addresses.
func (s *Server) mailboxByPrincipal(upn string) (*mailbox, bool) {
	return s.mailbox(upn)
}

// checkAnchor counts (or, when configured, rejects) requests whose X-AnchorMailbox header is
// missing or names another mailbox: Exchange Online routes on it, and a client that forgets it
// works in tests but is throttled and misrouted in production.
func (s *Server) checkAnchor(r *http.Request, call *ewsCall) *soapFault {
	anchor := strings.TrimSpace(r.Header.Get("X-AnchorMailbox"))
	switch {
	case anchor == "":
		s.counts.add("MissingAnchorMailbox")
		if s.cfg.RequireAnchorMailbox {
			return invalidRequest("the X-AnchorMailbox header is required")
		}
	case !strings.EqualFold(anchor, call.mb.address):
		s.counts.add("AnchorMailboxMismatch")
	}
	return nil
}

type operation func(*ewsCall) (*etree.Document, *soapFault)

func (s *Server) operations() map[string]operation {
	return map[string]operation{
		"GetFolder":       s.opGetFolder,
		"FindFolder":      s.opFindFolder,
		"CreateFolder":    s.opCreateFolder,
		"SyncFolderItems": s.opSyncFolderItems,
		"GetItem":         s.opGetItem,
		"FindItem":        s.opFindItem,
		"CreateItem":      s.opCreateItem,
		"UpdateItem":      s.opUpdateItem,
		"DeleteItem":      s.opDeleteItem,
	}
}

// counters counts requests by operation and outcome.
type counters struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counters) add(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[key]++
}

// EmptySyncCount is the counter (Counts) of SyncFolderItems answers that listed no change: the
// calls of a poll that found nothing to read. They are counted under SyncFolderItems too.
const EmptySyncCount = "Empty:SyncFolderItems"

// StreamingNotificationsCount is the counter (Counts) of notifications sent on open
// GetStreamingEvents connections: messages, not requests.
const StreamingNotificationsCount = "StreamingNotifications"

// Counts returns request counters. Keys:
//
//   - "Total": every HTTP request;
//   - an EWS operation name ("GetItem", "SyncFolderItems", ...), "GetUserSettings",
//     "Autodiscover" (POX) and "Token": requests for it (including refused ones);
//   - "Rejected" and "Rejected:<reason>": requests answered with 401, 405, 413 or a SOAP fault;
//     the reason is "Unauthorized", "TokenExpired", "MethodNotAllowed", "TooLarge" or the fault's
//     EWS code (e.g. "Rejected:ErrorImpersonateUserDenied");
//   - "Fault:<kind>": injected faults that fired;
//   - EmptySyncCount: SyncFolderItems answers that listed no change;
//   - StreamingNotificationsCount: notifications sent on open GetStreamingEvents connections
//     (messages on a connection, not requests);
//   - "MissingAnchorMailbox", "AnchorMailboxMismatch": mailbox requests with no or another
//     X-AnchorMailbox header;
//   - "MeetingInvitationsSent", "MeetingCancellationsSent": calendar writes that asked
//     Exchange to email attendees.
func (s *Server) Counts() map[string]int64 {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	return maps.Clone(s.counts.m)
}

// ResetCounts sets every counter back to zero.
func (s *Server) ResetCounts() {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	clear(s.counts.m)
}
