package ews

import (
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

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// ConnectorConfig configures a Connector.
type ConnectorConfig struct {
	// Connection is the org's Exchange connection. Required.
	Connection *tandemv1.ExchangeConnection
	// HTTPClient sends every request (EWS, Autodiscover, OAuth tokens); nil means
	// DefaultHTTPClient with the connection's insecure_skip_verify.
	HTTPClient *http.Client
	// AllowHTTP permits plain-HTTP EWS and Autodiscover URLs; only for simulators and tests.
	AllowHTTP bool
	// PageSize is MaxChangesReturned per SyncFolderItems page; zero means 512.
	PageSize int
	// Client tunes the EWS client; its Credentials, HTTPClient, MaxConcurrencyPerMailbox and
	// Logger are set from the fields above and the connection.
	Client Config
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// TracerProvider and MeterProvider, when set, make every HTTP request (EWS, Autodiscover,
	// OAuth tokens) a client span named for its operation ("ews FindItem", "autodiscover
	// GetUserSettings", "oauth token") and measure it with the HTTP client metrics; see
	// telemetry.InstrumentHTTPClient for what spans leave out. Both nil (the default) records
	// nothing.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// Connector implements exchange.Connector over EWS for one org's Exchange connection.
type Connector struct {
	client       *Client
	autodiscover *Autodiscover
	ewsURL       string
	domains      []string
	pageSize     int
	log          *slog.Logger

	prepares singleflight.Group
	// folders caches, per mailbox address, where its requests go and its folders. Entries do
	// not expire: folder ids stay valid while the folders exist, and failed drops the entry of a
	// mailbox whose folder or server a request no longer finds (see exchange.Connector.Folders).
	mu      sync.Mutex
	folders map[string]folderEntry
}

type folderEntry struct {
	target  Target
	folders exchange.Folders
}

var _ exchange.Connector = (*Connector)(nil)

// NewConnector returns a Connector for cfg.
func NewConnector(cfg ConnectorConfig) (*Connector, error) {
	conn := cfg.Connection
	if conn == nil {
		return nil, syncerr.New(syncerr.ExchangeConfigurationMissing, "no Exchange connection")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = DefaultHTTPClient(conn.GetInsecureSkipVerify())
	}
	hc = telemetry.InstrumentHTTPClient(hc, cfg.TracerProvider, cfg.MeterProvider)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var creds Credentials
	var primaryDomain string
	switch conn.GetAuth() {
	case tandemv1.ExchangeAuth_EXCHANGE_AUTH_BASIC:
		basic, err := NewBasicAuth(conn.GetServiceAccount(), conn.GetPassword())
		if err != nil {
			return nil, syncerr.Wrap(syncerr.ExchangeConfigurationMissing, err)
		}
		creds, primaryDomain = basic, basic.Domain()
	case tandemv1.ExchangeAuth_EXCHANGE_AUTH_OAUTH_CLIENT_CREDENTIALS:
		oauth, err := NewOAuth(OAuthConfig{
			TenantID: conn.GetTenantId(), ClientID: conn.GetClientId(), ClientSecret: conn.GetClientSecret(),
			TokenURL: conn.GetTokenUrl(), HTTPClient: hc,
		})
		if err != nil {
			return nil, syncerr.Wrap(syncerr.ExchangeConfigurationMissing, err)
		}
		creds = oauth
	default:
		return nil, syncerr.New(syncerr.ExchangeConfigurationMissing, "Exchange connection has no authentication method")
	}
	ccfg := cfg.Client
	ccfg.Credentials = creds
	ccfg.HTTPClient = hc
	ccfg.MaxConcurrencyPerMailbox = int(conn.GetMaxConcurrencyPerMailbox())
	ccfg.Logger = logger
	client, err := NewClient(ccfg)
	if err != nil {
		return nil, syncerr.Wrap(syncerr.ExchangeConfigurationMissing, err)
	}
	c := &Connector{
		client:   client,
		ewsURL:   conn.GetEwsUrl(),
		pageSize: cfg.PageSize,
		log:      logger,
		folders:  make(map[string]folderEntry),
	}
	if c.pageSize <= 0 || c.pageSize > MaxSyncChanges {
		c.pageSize = MaxSyncChanges
	}
	if primaryDomain != "" {
		c.domains = append(c.domains, primaryDomain)
		for _, d := range conn.GetAdditionalDomains() {
			c.domains = append(c.domains, strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@")))
		}
	}
	if c.ewsURL != "" {
		u, err := url.Parse(c.ewsURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && cfg.AllowHTTP)) {
			return nil, syncerr.New(syncerr.ExchangeConfigurationMissing, "EWS URL %q: want an https URL", c.ewsURL)
		}
	} else {
		ad, err := NewAutodiscover(AutodiscoverConfig{
			Credentials:    creds,
			HTTPClient:     hc,
			URL:            conn.GetAutodiscoverUrl(),
			FallbackDomain: primaryDomain,
			AllowHTTP:      cfg.AllowHTTP,
			Logger:         logger,
		})
		if err != nil {
			return nil, syncerr.Wrap(syncerr.ExchangeConfigurationMissing, err)
		}
		c.autodiscover = ad
	}
	return c, nil
}

// Expect tells Autodiscover which mailboxes the connector will serve, so that their EWS URLs
// are found a hundred a request (exchange.Expecter). Addresses outside the org's domains,
// which target refuses, are left out; with a fixed EWS URL there is nothing to discover.
func (c *Connector) Expect(addresses []string) {
	if c.autodiscover == nil {
		return
	}
	var ours []string
	for _, a := range addresses {
		_, domain, ok := strings.Cut(strings.TrimSpace(a), "@")
		if ok && (len(c.domains) == 0 || slices.Contains(c.domains, strings.ToLower(domain))) {
			ours = append(ours, a)
		}
	}
	c.autodiscover.Expect(ours)
}

// Client returns the connector's EWS client (for connection tests and tools).
func (c *Connector) Client() *Client { return c.client }

// target resolves where mb's requests go. Only addresses in the service account's domain or
// the org's additional domains are accepted; the domain check is skipped when the account's
// domain is unknown (DOMAIN\user accounts, OAuth apps).
func (c *Connector) target(ctx context.Context, mb exchange.Mailbox) (Target, error) {
	address := strings.TrimSpace(mb.Address)
	_, domain, ok := strings.Cut(address, "@")
	if !ok || domain == "" {
		return Target{}, syncerr.New(syncerr.ExchangeMailboxNotFound, "%q is not an email address", mb.Address)
	}
	if len(c.domains) > 0 && !slices.Contains(c.domains, strings.ToLower(domain)) {
		return Target{}, syncerr.New(syncerr.ExchangeMailboxNotFound,
			"%s is not in the service account's domain or the org's additional domains (%s)", address, strings.Join(c.domains, ", "))
	}
	if c.ewsURL != "" {
		return Target{URL: c.ewsURL, Address: address}, nil
	}
	s, err := c.autodiscover.Discover(ctx, address)
	if err != nil {
		return Target{}, err
	}
	return Target{URL: s.EWSURL, Address: address}, nil
}

// failed reacts to a whole-request failure: a mailbox whose endpoint stopped answering or
// whose folders vanished is looked up afresh next time. A whole request fails as item not found
// only when the folder it names is gone (Exchange answers some operations on a deleted folder's
// id that way); items of a batch that are not found fail alone and do not come here.
func (c *Connector) failed(mb exchange.Mailbox, err error) {
	var se *syncerr.Error
	if !errors.As(err, &se) {
		return
	}
	switch se.Code {
	case syncerr.ExchangeUnavailable, syncerr.ExchangeTLS, syncerr.ExchangeMailboxNotFound:
		if c.autodiscover != nil {
			c.autodiscover.Forget(mb.Address)
		}
		c.forget(mb)
	case syncerr.ExchangeFolderNotFound, syncerr.ExchangeItemNotFound:
		c.forget(mb)
	}
}

// relocates reports a failure after which a mailbox's folders are looked up again and the
// request may be tried once more at once: they, or the mailbox, are no longer where the cache
// says.
func relocates(err error) bool {
	switch syncerr.As(err).Code {
	case syncerr.ExchangeFolderNotFound, syncerr.ExchangeItemNotFound, syncerr.ExchangeMailboxNotFound:
		return true
	}
	return false
}

func (c *Connector) forget(mb exchange.Mailbox) {
	c.mu.Lock()
	delete(c.folders, strings.ToLower(mb.Address))
	c.mu.Unlock()
}

// Prepare checks the mailbox can be reached and impersonated, finds its calendar and finds or
// creates the Salesforce_Sync folder under Contacts. It always asks Exchange, and caches what
// it found for Folders, Changes and Apply.
//
// Concurrent Prepares in one process share one run. Across processes, every creator looks
// again after creating: if a server let a race create two folders, all workers pick the same
// one (the oldest by creation time, then the smallest id) and the other stays unused.
func (c *Connector) Prepare(ctx context.Context, mb exchange.Mailbox) (exchange.Folders, error) {
	e, err := c.prepareShared(ctx, mb)
	// Callers sharing a run all learn that it created the folder.
	return e.folders, err
}

// prepareShared runs prepare once for all concurrent callers on mb.
func (c *Connector) prepareShared(ctx context.Context, mb exchange.Mailbox) (folderEntry, error) {
	ch := c.prepares.DoChan(strings.ToLower(mb.Address), func() (any, error) {
		return c.prepare(context.WithoutCancel(ctx), mb)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			c.failed(mb, r.Err)
			return folderEntry{}, r.Err
		}
		return r.Val.(folderEntry), nil
	case <-ctx.Done():
		return folderEntry{}, ctx.Err()
	}
}

func (c *Connector) prepare(ctx context.Context, mb exchange.Mailbox) (folderEntry, error) {
	t, err := c.target(ctx, mb)
	if err != nil {
		return folderEntry{}, err
	}
	wellKnown, err := c.client.GetFolders(ctx, t, CalendarFolder, ContactsFolder)
	if err != nil {
		return folderEntry{}, err
	}
	version, _ := c.client.ServerVersion(t.URL)
	if !version.Supported() {
		return folderEntry{}, syncerr.New(syncerr.ExchangeUnsupportedVersion,
			"mailbox %s is on Exchange %s; Tandem needs Exchange 2016 or later", mb.Address, version)
	}
	calendar, contacts := wellKnown[0], wellKnown[1]
	folder, created, err := c.syncFolder(ctx, t, FolderID{ID: contacts.ID.ID})
	if err != nil {
		return folderEntry{}, err
	}
	f := exchange.Folders{
		ContactsFolderID:      folder.ID.ID,
		CalendarFolderID:      calendar.ID.ID,
		CreatedContactsFolder: created,
		ServerVersion:         version.String(),
	}
	e := folderEntry{target: t, folders: f}
	c.mu.Lock()
	c.folders[strings.ToLower(mb.Address)] = e
	c.mu.Unlock()
	c.log.InfoContext(ctx, "mailbox prepared", "org", mb.OrgID, "user", mb.UserID, "mailbox", mb.Address,
		"server_version", f.ServerVersion, "created_folder", created)
	return e, nil
}

// syncFolder finds or creates the Salesforce_Sync folder under contacts.
func (c *Connector) syncFolder(ctx context.Context, t Target, contacts FolderID) (Folder, bool, error) {
	found, err := c.findSyncFolders(ctx, t, contacts)
	if err != nil {
		return Folder{}, false, err
	}
	if len(found) > 0 {
		return found[0], false, nil
	}
	made, err := c.client.CreateFolder(ctx, t, contacts, exchange.SyncFolderName, "IPF.Contact")
	if err != nil && !errors.Is(err, ErrFolderExists) {
		return Folder{}, false, err
	}
	// Look again: after ErrorFolderExists to find the winner's folder, after a success to
	// notice a racer that a lenient server let create a second one.
	found, ferr := c.findSyncFolders(ctx, t, contacts)
	if ferr == nil && len(found) == 0 && err != nil {
		// Folder names are unique regardless of case, but the restriction may compare them
		// exactly: a user's "salesforce_sync" blocks the create yet does not match it.
		found, ferr = c.listSyncFolders(ctx, t, contacts)
	}
	if ferr != nil {
		return Folder{}, false, ferr
	}
	if len(found) == 0 {
		if err == nil {
			return made, true, nil
		}
		return Folder{}, false, syncerr.New(syncerr.ExchangeFolderNotFound,
			"%s reported the %s folder exists but it cannot be found", t.Address, exchange.SyncFolderName)
	}
	return found[0], err == nil && found[0].ID.ID == made.ID.ID, nil
}

// findSyncFolders lists the Salesforce_Sync folders under contacts, the one to use first.
func (c *Connector) findSyncFolders(ctx context.Context, t Target, contacts FolderID) ([]Folder, error) {
	all, err := c.client.FindFolders(ctx, t, contacts, exchange.SyncFolderName)
	if err != nil {
		return nil, err
	}
	return pickSyncFolders(all), nil
}

// listSyncFolders is findSyncFolders without the server-side restriction.
func (c *Connector) listSyncFolders(ctx context.Context, t Target, contacts FolderID) ([]Folder, error) {
	all, err := c.client.FindFolders(ctx, t, contacts, "")
	if err != nil {
		return nil, err
	}
	var named []Folder
	for _, f := range all {
		if f.DisplayName != "" {
			named = append(named, f)
		}
	}
	return pickSyncFolders(named), nil
}

// pickSyncFolders keeps the folders named Salesforce_Sync (in any case), the one to use first.
func pickSyncFolders(all []Folder) []Folder {
	var found []Folder
	for _, f := range all {
		if strings.EqualFold(f.DisplayName, exchange.SyncFolderName) || f.DisplayName == "" {
			found = append(found, f)
		}
	}
	// Folders whose creation time is known come first, oldest first; ids break ties.
	slices.SortFunc(found, func(a, b Folder) int {
		if n := cmp.Compare(boolRank(a.Created.IsZero()), boolRank(b.Created.IsZero())); n != 0 {
			return n
		}
		if n := a.Created.Compare(b.Created); n != 0 {
			return n
		}
		return strings.Compare(a.ID.ID, b.ID.ID)
	})
	return found
}

// Folders returns mb's folders as last located, preparing the mailbox only when they are not
// cached. A cached answer reports no folder creation and the server version Exchange gave in
// its latest answer for the mailbox's endpoint.
func (c *Connector) Folders(ctx context.Context, mb exchange.Mailbox) (exchange.Folders, error) {
	e, cached, err := c.mailbox(ctx, mb)
	if err != nil {
		return exchange.Folders{}, err
	}
	f := e.folders
	if cached {
		f.CreatedContactsFolder = false
		if v, ok := c.client.ServerVersion(e.target.URL); ok {
			f.ServerVersion = v.String()
		}
	}
	return f, nil
}

// mailbox returns mb's target and folders, preparing the mailbox when they are not cached;
// cached says they came from the cache.
func (c *Connector) mailbox(ctx context.Context, mb exchange.Mailbox) (folderEntry, bool, error) {
	c.mu.Lock()
	e, ok := c.folders[strings.ToLower(mb.Address)]
	c.mu.Unlock()
	if ok {
		return e, true, nil
	}
	e, err := c.prepareShared(ctx, mb)
	return e, false, err
}

func folderOf(f exchange.Folders, kind tandemv1.RecordKind) (FolderID, error) {
	switch kind {
	case tandemv1.RecordKind_RECORD_KIND_CONTACT:
		return FolderID{ID: f.ContactsFolderID}, nil
	case tandemv1.RecordKind_RECORD_KIND_EVENT:
		return FolderID{ID: f.CalendarFolderID}, nil
	}
	return FolderID{}, syncerr.New(syncerr.SyncMalformedMessage, "record kind %v has no Exchange folder", kind)
}

// elementOf is the EWS element of the items of kind.
func elementOf(kind tandemv1.RecordKind) string {
	if kind == tandemv1.RecordKind_RECORD_KIND_EVENT {
		return "CalendarItem"
	}
	return "Contact"
}

// Changes reads what changed in kind's folder since cursor (a SyncState), page by page. When
// Exchange rejects the sync state it starts over from scratch, marking the pages Full.
//
// The folder comes from the cache. When Exchange no longer finds it (or the mailbox) before
// any page was handed over, the folders are located again and the read starts once more; a
// sync state of a folder that was replaced is rejected, so that read starts from scratch.
func (c *Connector) Changes(ctx context.Context, mb exchange.Mailbox, kind tandemv1.RecordKind, cursor string, page func(context.Context, exchange.Page) error, opts ...exchange.ChangesOption) error {
	o := exchange.ChangesOptionsOf(opts)
	for again := true; ; again = false {
		e, cached, err := c.mailbox(ctx, mb)
		if err != nil {
			return err
		}
		folder, err := folderOf(e.folders, kind)
		if err != nil {
			return err
		}
		delivered := false
		err = c.read(ctx, e.target, mb, kind, folder, cursor, o.Known, func(ctx context.Context, p exchange.Page) error {
			delivered = true
			return page(ctx, p)
		})
		if again && cached && !delivered && relocates(err) {
			c.log.InfoContext(ctx, "cached folder no longer found, locating it again", "org", mb.OrgID, "user", mb.UserID,
				"mailbox", mb.Address, "kind", kind.String(), "err", err)
			continue
		}
		return err
	}
}

// read is Changes on a located folder.
func (c *Connector) read(ctx context.Context, t Target, mb exchange.Mailbox, kind tandemv1.RecordKind, folder FolderID, cursor string, known exchange.KnownFunc, page func(context.Context, exchange.Page) error) error {
	state, full, restarted := cursor, cursor == "", false
	for {
		res, err := c.client.SyncFolderItems(ctx, t, folder, state, c.pageSize)
		if err != nil {
			if errors.Is(err, ErrInvalidSyncState) && state != "" && !restarted {
				c.log.WarnContext(ctx, "sync state rejected, reading the folder from scratch",
					"org", mb.OrgID, "user", mb.UserID, "mailbox", mb.Address, "kind", kind.String())
				state, full, restarted = "", true, true
				continue
			}
			c.failed(mb, err)
			return err
		}
		changes, err := c.materialize(ctx, t, mb, kind, res.Changes, known)
		if err != nil {
			c.failed(mb, err)
			return err
		}
		if err := page(ctx, exchange.Page{Changes: changes, Cursor: res.SyncState, Last: res.Last, Full: full}); err != nil {
			return err
		}
		if res.Last {
			return nil
		}
		if res.SyncState == state && len(res.Changes) == 0 {
			// A server that neither advances nor finishes would keep the loop going forever.
			err := classify(fmt.Errorf("SyncFolderItems for %s: %w", mb.Address, malformed("page without changes, progress or end")))
			c.failed(mb, err)
			return err
		}
		state = res.SyncState
	}
}

// materialize turns SyncFolderItems changes into canonical changes, reading the full content of
// created and updated items with GetItem, except those whose change key is the version of a
// record known holds: that record is the item's content at that version (Tandem's own writes,
// whose results recorded the change key they left, and items read before). Items that are not
// contacts (or calendar items) are not synced and are skipped; an item deleted between the two
// calls is reported deleted.
func (c *Connector) materialize(ctx context.Context, t Target, mb exchange.Mailbox, kind tandemv1.RecordKind, changes []SyncChange, known exchange.KnownFunc) ([]*tandemv1.Change, error) {
	want := elementOf(kind)
	var ids []ItemID
	// keys holds, per item, the change keys the page reports it with ("" when one has none).
	keys := make(map[string][]string)
	for _, ch := range changes {
		if (ch.Kind == ChangeCreate || ch.Kind == ChangeUpdate) && ch.ItemElement == want {
			if _, seen := keys[ch.ID.ID]; !seen {
				ids = append(ids, ch.ID)
			}
			keys[ch.ID.ID] = append(keys[ch.ID.ID], ch.ID.ChangeKey)
		}
	}
	held := c.held(ctx, mb, kind, ids, keys, known)
	if len(held) > 0 {
		ids = slices.DeleteFunc(ids, func(id ItemID) bool { return held[id.ID] != nil })
	}
	items := make(map[string]*Item, len(ids))
	gone := make(map[string]bool)
	if len(ids) > 0 {
		res, err := c.client.GetItems(ctx, t, kind, ids)
		if err != nil {
			return nil, err
		}
		for i, r := range res {
			switch {
			case r.Err == nil && r.Item.Record != nil:
				items[ids[i].ID] = r.Item
			case errors.Is(r.Err, ErrItemNotFound):
				gone[ids[i].ID] = true
			case r.Err != nil && syncerr.As(r.Err).Retryable():
				return nil, r.Err
			case r.Err != nil:
				// A permanently unreadable item must not block the mailbox's sync: it is
				// skipped and logged, and read again when it next changes.
				c.log.ErrorContext(ctx, "skipping unreadable item", "org", mb.OrgID, "user", mb.UserID,
					"mailbox", mb.Address, "item", ids[i].ID, "err", r.Err)
			}
		}
	}
	var out []*tandemv1.Change
	emitted := make(map[string]bool)
	for _, ch := range changes {
		switch ch.Kind {
		case ChangeDelete:
			out = append(out, deleteChange(ch.ID.ID))
		case ChangeCreate, ChangeUpdate:
			if emitted[ch.ID.ID] {
				continue
			}
			if rec, ok := held[ch.ID.ID]; ok {
				emitted[ch.ID.ID] = true
				out = append(out, &tandemv1.Change{Type: tandemv1.ChangeType_CHANGE_TYPE_UPSERT, Record: rec})
			} else if it, ok := items[ch.ID.ID]; ok {
				emitted[ch.ID.ID] = true
				out = append(out, &tandemv1.Change{Type: tandemv1.ChangeType_CHANGE_TYPE_UPSERT, Record: it.Record})
			} else if gone[ch.ID.ID] {
				emitted[ch.ID.ID] = true
				out = append(out, deleteChange(ch.ID.ID))
			}
		}
	}
	return out, nil
}

// held returns, of the items ids, those known holds a record for at the very version the page
// reports (every time it reports the item), with that record. If known cannot answer, every
// item is fetched: that costs requests, never correctness.
func (c *Connector) held(ctx context.Context, mb exchange.Mailbox, kind tandemv1.RecordKind, ids []ItemID, keys map[string][]string, known exchange.KnownFunc) map[string]*tandemv1.Record {
	if known == nil || len(ids) == 0 {
		return nil
	}
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = id.ID
	}
	recs, err := known(ctx, names)
	if err != nil {
		c.log.WarnContext(ctx, "looking up the records Tandem holds failed; fetching them all", "org", mb.OrgID, "user", mb.UserID,
			"mailbox", mb.Address, "err", err)
		return nil
	}
	out := make(map[string]*tandemv1.Record)
	for _, id := range names {
		rec := recs[id]
		if rec.GetBody() == nil || rec.GetVersion() == "" || record.KindOf(rec) != kind {
			continue
		}
		if slices.ContainsFunc(keys[id], func(k string) bool { return k != rec.GetVersion() }) {
			continue
		}
		rec.Id = id
		out[id] = rec
	}
	return out
}

func deleteChange(id string) *tandemv1.Change {
	return &tandemv1.Change{Type: tandemv1.ChangeType_CHANGE_TYPE_DELETE, Record: &tandemv1.Record{Id: id}}
}

// Apply carries out cmds for mb's kind folder: creates (those whose sync key an item may carry
// already after looking it up, so that a repeated create updates the first attempt's item and
// a create whose item was deleted since is not made again; see applyCreates), then updates
// (which also tag the item with the command's sync key), then deletes, each in as few requests
// as EWS allows. Each write's result carries the item's id, the change key the write returned
// and the content written as Exchange holds it, without reading the item back (see
// writtenRecord).
func (c *Connector) Apply(ctx context.Context, mb exchange.Mailbox, kind tandemv1.RecordKind, cmds []*tandemv1.WriteCommand, opts ...exchange.ApplyOption) ([]*tandemv1.WriteResult, error) {
	o := exchange.ApplyOptionsOf(opts)
	results := make([]*tandemv1.WriteResult, len(cmds))
	for i, cmd := range cmds {
		results[i] = &tandemv1.WriteResult{CommandId: cmd.GetCommandId(), SyncKey: cmd.GetSyncKey(), Op: cmd.GetOp()}
	}
	if len(cmds) == 0 {
		return results, nil
	}
	e, _, err := c.mailbox(ctx, mb)
	if err != nil {
		return nil, err
	}
	t := e.target
	folder, err := folderOf(e.folders, kind)
	if err != nil {
		return nil, err
	}
	var creates, updates, deletes []int
	for i, cmd := range cmds {
		if err := validateCommand(cmd, kind); err != nil {
			fail(results[i], err)
			continue
		}
		switch cmd.GetOp() {
		case tandemv1.WriteOp_WRITE_OP_CREATE:
			creates = append(creates, i)
		case tandemv1.WriteOp_WRITE_OP_UPDATE:
			updates = append(updates, i)
		case tandemv1.WriteOp_WRITE_OP_DELETE:
			deletes = append(deletes, i)
		}
	}
	written := make(map[int]write)
	if err := c.applyCreates(ctx, t, kind, folder, cmds, creates, o, results, written); err != nil {
		c.failed(mb, err)
		return nil, err
	}
	if err := c.applyUpdates(ctx, t, cmds, updates, results, written); err != nil {
		c.failed(mb, err)
		return nil, err
	}
	if err := c.applyDeletes(ctx, t, kind, cmds, deletes, results); err != nil {
		c.failed(mb, err)
		return nil, err
	}
	for _, r := range results {
		if r.GetError().GetCode() == string(syncerr.ExchangeFolderNotFound) {
			// Creates into a folder that is gone fail one by one; the next call locates it again.
			c.forget(mb)
			break
		}
	}
	for i, w := range written {
		results[i].Record = writtenRecord(cmds[w.cmd], w.id)
	}
	return results, nil
}

// write is what a successful write left: the item, and the command whose content it holds.
type write struct {
	id  ItemID
	cmd int
}

func validateCommand(cmd *tandemv1.WriteCommand, kind tandemv1.RecordKind) error {
	bad := func(format string, args ...any) error {
		return &syncerr.Error{Code: syncerr.SyncMalformedMessage, Detail: fmt.Sprintf(format, args...), RecordID: cmd.GetTargetId()}
	}
	switch cmd.GetOp() {
	case tandemv1.WriteOp_WRITE_OP_CREATE:
		if cmd.GetSyncKey() == "" {
			return bad("create without a sync key")
		}
	case tandemv1.WriteOp_WRITE_OP_UPDATE:
		if cmd.GetTargetId() == "" {
			return bad("update without a target id")
		}
	case tandemv1.WriteOp_WRITE_OP_DELETE:
		if cmd.GetTargetId() == "" {
			return bad("delete without a target id")
		}
		return nil
	default:
		return bad("unknown write operation %v", cmd.GetOp())
	}
	switch kind {
	case tandemv1.RecordKind_RECORD_KIND_CONTACT:
		if cmd.GetRecord().GetContact() == nil {
			return bad("contact command without contact content")
		}
	case tandemv1.RecordKind_RECORD_KIND_EVENT:
		if cmd.GetRecord().GetEvent() == nil {
			return bad("event command without event content")
		}
	}
	return nil
}

func fail(r *tandemv1.WriteResult, err error) {
	r.Ok = false
	r.Error = syncerr.As(err).Proto()
}

// clockSkew allows for the difference between Tandem's clock (a command's issue time) and
// Exchange's (an item's creation time).
const clockSkew = 2 * time.Minute

// applyCreates carries out the creates. Those whose sync key an item may carry already
// (o.LooksUp: a retry, a redelivery, a command started before, a pair's item re-created) have
// their keys looked up first, with one FindItem over the target folder and Deleted Items, which
// tells three cases apart:
//
//   - the key is in the folder: an earlier attempt took effect. The item is updated to the
//     command's content, since that attempt may have written older content, and the create is
//     already applied.
//   - the key is only in Deleted Items, or (for a contact) in the main Contacts folder, on an
//     item created after the command was issued: an earlier attempt took effect and the user
//     has since deleted the item or moved it out of sync (items keep their extended properties
//     when moved). Creating it again would undo that removal, so the create fails as gone,
//     naming the removed item, and the caller carries the removal over instead. Older items
//     with the key are earlier incarnations of the pair and are ignored.
//   - otherwise the item is created.
//
// The other creates are first attempts for new pairs and are created directly: nothing can
// carry their keys yet (see exchange.Connector.Apply). A sync key twice in one batch is one
// create: the later commands share the first's outcome, and the key is looked up if any of
// them needs it. A
// lookup that fails, in either folder, fails the batch: creating without it could duplicate an
// item or bring back one the user deleted.
func (c *Connector) applyCreates(ctx context.Context, t Target, kind tandemv1.RecordKind, folder FolderID, cmds []*tandemv1.WriteCommand, idx []int, o exchange.ApplyOptions, results []*tandemv1.WriteResult, written map[int]write) error {
	if len(idx) == 0 {
		return nil
	}
	var keys []string
	for _, i := range idx {
		if o.LooksUp(cmds[i]) && !slices.Contains(keys, cmds[i].GetSyncKey()) {
			keys = append(keys, cmds[i].GetSyncKey())
		}
	}
	inFolder := map[string]*Item{}
	var ofKind []*Item
	removedTo := map[string]string{} // removed item id → where the user put it
	if len(keys) > 0 {
		c.log.DebugContext(ctx, "looking up the sync keys of creates that may repeat an earlier attempt", "mailbox", t.Address,
			"keys", len(keys), "creates", len(idx), "redelivered", o.Redelivered, "key_may_exist", len(o.KeyMayExist))
		found, err := c.client.FindItemsBySyncKey(ctx, t, lookupFolders(kind, folder), keys)
		if err != nil {
			return err
		}
		inFolder = firstBySyncKey(found[0])
		for f, gone := range found[1:] {
			for _, it := range gone {
				if it.Kind == kind {
					ofKind = append(ofKind, it)
					removedTo[it.ID.ID] = removalPlace(lookupFolders(kind, folder)[f+1])
				}
			}
		}
	}
	// earlierAttempt finds, among removed items, the item an earlier attempt of cmd created: one
	// created after the command was issued. An older item with the same key is an earlier
	// incarnation of the pair (deleted by the user or by Tandem before this create was decided)
	// and does not stop the create.
	earlierAttempt := func(cmd *tandemv1.WriteCommand) (*Item, bool) {
		var cands []*Item
		for _, it := range ofKind {
			if it.SyncKey != cmd.GetSyncKey() {
				continue
			}
			if issued := cmd.GetIssuedAt(); issued != nil && !it.Created.IsZero() && it.Created.Before(issued.AsTime().Add(-clockSkew)) {
				continue
			}
			cands = append(cands, it)
		}
		it, ok := firstBySyncKey(cands)[cmd.GetSyncKey()]
		return it, ok
	}

	first := make(map[string]int) // sync key → the batch's first command with it
	var duplicates, creates, upserts []int
	var records []*tandemv1.Record
	var updates []ItemUpdate
	for _, i := range idx {
		key := cmds[i].GetSyncKey()
		if _, ok := first[key]; ok {
			duplicates = append(duplicates, i)
			continue
		}
		first[key] = i
		if it, ok := inFolder[key]; ok {
			// The change key keeps an edit made since the lookup from being overwritten unseen:
			// the upsert then fails as a conflict and is tried again.
			upserts = append(upserts, i)
			updates = append(updates, ItemUpdate{ID: it.ID, Record: cmds[i].GetRecord()})
			continue
		}
		if it, ok := earlierAttempt(cmds[i]); ok {
			results[i].Record = &tandemv1.Record{Id: it.ID.ID}
			fail(results[i], &syncerr.Error{
				Code:     syncerr.ExchangeItemNotFound,
				Detail:   fmt.Sprintf("the %s was created in Exchange earlier and has been %s since (as %s); it is not created again", kindName(kind), removedTo[it.ID.ID], it.ID.ID),
				RecordID: it.ID.ID,
			})
			continue
		}
		rec := cloneRecord(cmds[i].GetRecord())
		rec.SyncKey = key
		creates = append(creates, i)
		records = append(records, rec)
	}
	if len(updates) > 0 {
		res, err := c.client.UpdateItems(ctx, t, updates)
		if err != nil {
			return err
		}
		for k, r := range res {
			i := upserts[k]
			if r.Err != nil {
				if errors.Is(r.Err, ErrItemNotFound) {
					// Deleted between the lookup and the update: gone all the same.
					results[i].Record = &tandemv1.Record{Id: updates[k].ID.ID}
				}
				fail(results[i], r.Err)
				continue
			}
			written[i] = write{id: r.Item.ID, cmd: i}
			results[i].Ok, results[i].AlreadyApplied = true, true
		}
	}
	if len(creates) > 0 {
		res, err := c.client.CreateItems(ctx, t, folder, records)
		if err != nil {
			return err
		}
		for k, r := range res {
			i := creates[k]
			if r.Err != nil {
				fail(results[i], r.Err)
				continue
			}
			written[i] = write{id: r.Item.ID, cmd: i}
			results[i].Ok = true
		}
	}
	for _, i := range duplicates {
		j := first[cmds[i].GetSyncKey()]
		results[i].Ok, results[i].Error = results[j].Ok, results[j].Error
		if results[j].Record != nil {
			results[i].Record = proto.Clone(results[j].Record).(*tandemv1.Record)
		}
		if w, ok := written[j]; ok {
			// The item holds the first command's content.
			written[i] = w
			results[i].AlreadyApplied = true
		}
	}
	return nil
}

// lookupFolders lists where a retried create looks for its sync key: the kind's synced folder
// first, then where a user's removal leaves an item Tandem created — Deleted Items, and for a
// contact the main Contacts folder, where Outlook users move contacts they stop syncing.
func lookupFolders(kind tandemv1.RecordKind, folder FolderID) []FolderID {
	folders := []FolderID{folder, DeletedItemsFolder}
	if kind == tandemv1.RecordKind_RECORD_KIND_CONTACT && folder != ContactsFolder {
		folders = append(folders, ContactsFolder)
	}
	return folders
}

// removalPlace says, for an error message, what finding an item in folder means.
func removalPlace(folder FolderID) string {
	if folder == DeletedItemsFolder {
		return "deleted (it is in Deleted Items)"
	}
	return fmt.Sprintf("moved out of sync (it is in %s)", folder)
}

func kindName(kind tandemv1.RecordKind) string {
	if kind == tandemv1.RecordKind_RECORD_KIND_EVENT {
		return "event"
	}
	return "contact"
}

// firstBySyncKey picks, per sync key, the item to treat as the create's result: the oldest,
// then the smallest id, so that every worker picks the same one should duplicates exist.
func firstBySyncKey(items []*Item) map[string]*Item {
	out := make(map[string]*Item)
	for _, it := range items {
		if it.SyncKey == "" {
			continue
		}
		cur, ok := out[it.SyncKey]
		if !ok || older(it, cur) {
			out[it.SyncKey] = it
		}
	}
	return out
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// older orders items like findSyncFolders orders folders: known creation times first, oldest
// first, then by id, so that the choice does not depend on the order Exchange listed them in.
func older(a, b *Item) bool {
	if ra, rb := boolRank(a.Created.IsZero()), boolRank(b.Created.IsZero()); ra != rb {
		return ra < rb
	}
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	return a.ID.ID < b.ID.ID
}

func (c *Connector) applyUpdates(ctx context.Context, t Target, cmds []*tandemv1.WriteCommand, idx []int, results []*tandemv1.WriteResult, written map[int]write) error {
	if len(idx) == 0 {
		return nil
	}
	ups := make([]ItemUpdate, len(idx))
	for k, i := range idx {
		ups[k] = ItemUpdate{
			ID:      ItemID{ID: cmds[i].GetTargetId(), ChangeKey: cmds[i].GetExpectedVersion()},
			Record:  cmds[i].GetRecord(),
			Fields:  cmds[i].GetFields(),
			SyncKey: cmds[i].GetSyncKey(),
		}
	}
	res, err := c.client.UpdateItems(ctx, t, ups)
	if err != nil {
		return err
	}
	for k, r := range res {
		i := idx[k]
		if r.Err != nil {
			fail(results[i], r.Err)
			continue
		}
		written[i] = write{id: r.Item.ID, cmd: i}
		results[i].Ok = true
	}
	return nil
}

func (c *Connector) applyDeletes(ctx context.Context, t Target, kind tandemv1.RecordKind, cmds []*tandemv1.WriteCommand, idx []int, results []*tandemv1.WriteResult) error {
	if len(idx) == 0 {
		return nil
	}
	ids := make([]ItemID, len(idx))
	for k, i := range idx {
		ids[k] = ItemID{ID: cmds[i].GetTargetId(), ChangeKey: cmds[i].GetExpectedVersion()}
	}
	errs, err := c.client.DeleteItems(ctx, t, ids, kind == tandemv1.RecordKind_RECORD_KIND_EVENT)
	if err != nil {
		return err
	}
	for k, derr := range errs {
		i := idx[k]
		results[i].Record = &tandemv1.Record{Id: ids[k].ID}
		switch {
		case derr == nil:
			results[i].Ok = true
		case errors.Is(derr, ErrItemNotFound):
			// Already gone: the delete's effect holds.
			results[i].Ok, results[i].AlreadyApplied = true, true
		default:
			fail(results[i], derr)
		}
	}
	return nil
}

func cloneRecord(r *tandemv1.Record) *tandemv1.Record {
	if r == nil {
		return &tandemv1.Record{}
	}
	return proto.Clone(r).(*tandemv1.Record)
}
