package devenv

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tandem-sync/tandem/pkg/ews"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/salesforce"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
	salesforceworker "github.com/tandem-sync/tandem/services/salesforce-worker"
)

// Dump writes both sides' state to dir as exchange.json and salesforce.json, once both are read.
//
// With the simulators, the files are the simulators' own dumps (ewssim.Dump, sfsim.Dump), as
// `tandem sim --dump` writes them.
//
// Against real endpoints, Dump reads both sides through Tandem's connectors, built from the org's
// stored settings as the workers build them, and writes a RealDump per side: for every user whose
// configuration syncs contacts, the contacts as Tandem's canonical records. From Exchange, a full
// read of the user's Salesforce_Sync folder; from Salesforce, one poll for all users of the
// contacts each user syncs, by the configuration's scope and filters. The reads never write to
// either system: a mailbox without a Salesforce_Sync folder is reported as such, not given one.
func (e *Env) Dump(ctx context.Context, dir string) error {
	if e.EWS != nil {
		return errors.Join(
			WriteDump(dir, ExchangeDumpFile, e.EWS.Dump()),
			WriteDump(dir, SalesforceDumpFile, e.Salesforce.Dump()),
		)
	}
	ex, sf, err := e.readReal(ctx)
	if err != nil {
		return fmt.Errorf("dump org %s: %w", e.OrgID, err)
	}
	return errors.Join(
		WriteDump(dir, ExchangeDumpFile, ex),
		WriteDump(dir, SalesforceDumpFile, sf),
	)
}

// The dump files' names in a dump directory.
const (
	ExchangeDumpFile   = "exchange.json"
	SalesforceDumpFile = "salesforce.json"
)

// WriteDump writes one side's dump (an *ewssim.Dump, *sfsim.Dump or *RealDump) to dir/name, in
// the one format every dump of `tandem dev` and `tandem sim` has: indented JSON and a final
// newline.
func WriteDump(dir, name string, v any) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("dump %s: %w", name, err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("dump %s: %w", name, err)
	}
	return nil
}

// RealDump is one side's dump against real endpoints, the same shape for both sides:
//
//	{"users": [{"user_id": "005...", "mailbox": "rep1@acme.example", "contacts": [Record, ...]}, ...]}
//
// Users are ordered by user id, each user's records by id.
type RealDump struct {
	// Users are the org's users whose configuration syncs contacts.
	Users []UserDump `json:"users"`
}

// UserDump is one user's contacts on one side.
type UserDump struct {
	// UserID is the user's Salesforce User Id; Mailbox the user's email, the mailbox Tandem syncs.
	UserID  string `json:"user_id"`
	Mailbox string `json:"mailbox"`
	// Contacts are the contacts that sync: in Exchange, those of the user's Salesforce_Sync
	// folder; in Salesforce, those in the user's scope that pass the configuration's filters.
	Contacts Records `json:"contacts"`
	// OutOfScope (Salesforce only) are the contacts in the user's scope that the configuration's
	// filters leave out.
	OutOfScope Records `json:"out_of_scope,omitempty"`
	// SyncFolderMissing (Exchange only) is true when the mailbox has no Salesforce_Sync folder:
	// Tandem has not prepared it yet, or the user deleted it.
	SyncFolderMissing bool `json:"sync_folder_missing,omitempty"`
}

// Records are canonical records (tandem.v1.Record); in JSON, an array of their protojson
// encodings with the proto field names (given_name, email_address1, ...).
type Records []*tandemv1.Record

// MarshalJSON encodes the records with protojson.
func (rs Records) MarshalJSON() ([]byte, error) {
	raw := make([]json.RawMessage, len(rs))
	for i, r := range rs {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encode record %s: %w", r.GetId(), err)
		}
		raw[i] = b
	}
	return json.Marshal(raw)
}

// UnmarshalJSON decodes records MarshalJSON encoded.
func (rs *Records) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(Records, len(raw))
	for i, m := range raw {
		out[i] = &tandemv1.Record{}
		if err := protojson.Unmarshal(m, out[i]); err != nil {
			return fmt.Errorf("decode record %d: %w", i, err)
		}
	}
	*rs = out
	return nil
}

// salesforceReader is what the dump needs of a Salesforce connector.
type salesforceReader interface {
	Poll(ctx context.Context, req salesforce.PollRequest, emit salesforce.EmitFunc) (string, error)
}

// readReal reads both sides' contacts for every user whose configuration syncs contacts.
func (e *Env) readReal(ctx context.Context) (ex, sf *RealDump, err error) {
	st := e.Platform.Store
	audience, err := syncedUsers(ctx, st, e.OrgID)
	if err != nil {
		return nil, nil, err
	}
	org, err := st.GetOrg(ctx, e.OrgID)
	if err != nil {
		return nil, nil, err
	}
	log := e.Platform.Logger.With(slog.String("component", "dump"))
	exConn, err := readOnlyExchange(org, e.allowHTTP(), log)
	if err != nil {
		return nil, nil, fmt.Errorf("build the Exchange connector: %w", err)
	}
	// The salesforce-worker's own connector: a poll only queries.
	sfConn, err := salesforceworker.RESTConnectors(e.Platform, devClientName, true)(org)
	if err != nil {
		return nil, nil, fmt.Errorf("build the Salesforce connector: %w", err)
	}
	sf, err = readSalesforce(ctx, sfConn, audience)
	if err != nil {
		return nil, nil, err
	}
	ex = &RealDump{Users: []UserDump{}}
	for _, a := range audience {
		mb := exchange.Mailbox{OrgID: e.OrgID, UserID: a.User.GetUserId(), Address: a.User.GetEmail()}
		d, err := readExchange(ctx, exConn, mb)
		if err != nil {
			return nil, nil, err
		}
		ex.Users = append(ex.Users, d)
	}
	return ex, sf, nil
}

// syncedUsers are the org's users whose configuration syncs contacts, by user id, with the scope
// and filters the configuration gives their Salesforce contacts.
func syncedUsers(ctx context.Context, st *store.Store, orgID string) ([]salesforce.Audience, error) {
	assigned, err := st.ListAssignments(ctx, orgID)
	if err != nil {
		return nil, err
	}
	var out []salesforce.Audience
	for _, a := range assigned {
		contacts := a.Config.GetContacts()
		if contacts.GetDirection() == tandemv1.SyncDirection_SYNC_DIRECTION_UNSPECIFIED {
			continue
		}
		out = append(out, salesforce.Audience{User: a.User, Scope: contacts.GetScope(), Filters: contacts.GetFilters()})
	}
	return out, nil
}

// readExchange reads the mailbox's Salesforce_Sync folder in full.
func readExchange(ctx context.Context, conn exchange.Connector, mb exchange.Mailbox) (UserDump, error) {
	d := UserDump{UserID: mb.UserID, Mailbox: mb.Address}
	if mb.Address == "" {
		return d, fmt.Errorf("user %s has no email address, so no Exchange mailbox to read", mb.UserID)
	}
	records := map[string]*tandemv1.Record{}
	err := conn.Changes(ctx, mb, tandemv1.RecordKind_RECORD_KIND_CONTACT, "", func(_ context.Context, p exchange.Page) error {
		collect(records, p.Changes)
		return nil
	})
	var refused *refusedWrite
	if errors.As(err, &refused) && refused.op == "CreateFolder" {
		// Reading prepares the mailbox, which creates a missing Salesforce_Sync folder.
		d.SyncFolderMissing = true
		return d, nil
	}
	if err != nil {
		return d, fmt.Errorf("read the %s folder of user %s (%s) in Exchange: %w", exchange.SyncFolderName, mb.UserID, mb.Address, err)
	}
	d.Contacts = sorted(records)
	return d, nil
}

// readSalesforce reads, in one poll for all of them, the contacts of every user of audience.
func readSalesforce(ctx context.Context, conn salesforceReader, audience []salesforce.Audience) (*RealDump, error) {
	in, out := map[string]map[string]*tandemv1.Record{}, map[string]map[string]*tandemv1.Record{}
	for _, a := range audience {
		in[a.User.GetUserId()], out[a.User.GetUserId()] = map[string]*tandemv1.Record{}, map[string]*tandemv1.Record{}
	}
	if len(audience) > 0 {
		req := salesforce.PollRequest{Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT, Audience: audience}
		_, err := conn.Poll(ctx, req, func(_ context.Context, userID string, changes []*tandemv1.Change, _ bool) error {
			if in[userID] == nil {
				return fmt.Errorf("contacts for user %s, who was not asked for", userID)
			}
			for _, ch := range changes {
				if ch.GetOutOfScope() {
					collect(out[userID], []*tandemv1.Change{ch})
				} else {
					collect(in[userID], []*tandemv1.Change{ch})
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read the Salesforce contacts of %d users: %w", len(audience), err)
		}
	}
	d := &RealDump{Users: []UserDump{}}
	for _, a := range audience {
		id := a.User.GetUserId()
		d.Users = append(d.Users, UserDump{UserID: id, Mailbox: a.User.GetEmail(), Contacts: sorted(in[id]), OutOfScope: sorted(out[id])})
	}
	return d, nil
}

// collect applies changes read in full to records, by id. A full read lists records, but one
// made while the read runs may also report a record's deletion.
func collect(records map[string]*tandemv1.Record, changes []*tandemv1.Change) {
	for _, ch := range changes {
		switch ch.GetType() {
		case tandemv1.ChangeType_CHANGE_TYPE_UPSERT:
			records[ch.GetRecord().GetId()] = ch.GetRecord()
		case tandemv1.ChangeType_CHANGE_TYPE_DELETE:
			delete(records, ch.GetRecord().GetId())
		}
	}
}

func sorted(records map[string]*tandemv1.Record) Records {
	out := make(Records, 0, len(records))
	for _, r := range records {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *tandemv1.Record) int { return cmp.Compare(a.GetId(), b.GetId()) })
	return out
}

// readOnlyExchange builds the org's Exchange connector with the constructor and settings the
// exchange-worker uses (exchangeworker.EWSConnectors), on an HTTP client that refuses every EWS
// operation but reads: reading a mailbox through the connector first prepares it, and preparing
// creates the Salesforce_Sync folder when there is none.
func readOnlyExchange(org *tandemv1.Org, allowHTTP bool, log *slog.Logger) (*ews.Connector, error) {
	hc := ews.DefaultHTTPClient(org.GetExchange().GetInsecureSkipVerify())
	hc.Transport = ewsReadOnly{next: hc.Transport}
	return ews.NewConnector(ews.ConnectorConfig{Connection: org.GetExchange(), HTTPClient: hc, AllowHTTP: allowHTTP, Logger: log})
}

// ewsMessages is the namespace of EWS operations, which SOAPAction names them in.
const ewsMessages = "http://schemas.microsoft.com/exchange/services/2006/messages/"

// ewsReads are the EWS operations that only read.
var ewsReads = map[string]bool{"GetFolder": true, "FindFolder": true, "SyncFolderItems": true, "GetItem": true, "FindItem": true}

// ewsReadOnly sends only the EWS operations that read. Every EWS request names its operation
// in SOAPAction; requests that name none (Autodiscover, OAuth tokens) change no mailbox.
type ewsReadOnly struct{ next http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t ewsReadOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	action := strings.Trim(req.Header.Get("SOAPAction"), `"`)
	if op, ok := strings.CutPrefix(action, ewsMessages); ok && !ewsReads[op] {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &refusedWrite{op: op}
	}
	return t.next.RoundTrip(req)
}

// refusedWrite is an EWS operation ewsReadOnly refused to send.
type refusedWrite struct{ op string }

func (e *refusedWrite) Error() string {
	return fmt.Sprintf("EWS %s not sent: the dump only reads", e.op)
}
