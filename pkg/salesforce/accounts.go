package salesforce

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// A contact's company is, in Salesforce, the name of its Account: the poll reads it as
// Account.Name with the contact. The other way, Tandem sets a contact's AccountId only to an
// Account that already exists under exactly the company's name and that the writer can see;
// it never creates, renames or removes Accounts. Where it cannot set the Account, the rest of the
// write goes ahead and the result carries a SALESFORCE_ACCOUNT_NOT_SET warning for the
// company_name field, which tells the reconciler that Salesforce kept its previous Account.

// maxAccountName is the length of Account.Name: a longer company cannot name an Account.
const maxAccountName = 255

// accountsByName are the Accounts a write batch's companies name: exact name to Account ids.
type accountsByName map[string][]string

// accountCache keeps, for a while, which Accounts a company's exact name named in a lookup, as
// one subject sees them, so that the writes of a burst look each company up once rather than
// once per call. An Account created, renamed or deleted meanwhile is seen when the answer
// expires, as if the change had come just after the write; a contact written with a cached
// Account that has since been deleted or hidden is sent again after a fresh lookup (see
// Connector.write).
type accountCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[accountKey]cachedAccounts
	pruned  time.Time // when expired answers were last dropped
}

type accountKey struct{ subject, name string }

type cachedAccounts struct {
	ids []string // none: no Account has the name
	at  time.Time
}

func newAccountCache(ttl time.Duration) *accountCache {
	return &accountCache{ttl: ttl, entries: map[accountKey]cachedAccounts{}}
}

// get returns the Accounts a lookup found for name no longer than the cache's ttl ago.
func (a *accountCache) get(subject, name string, now time.Time) ([]string, bool) {
	if a.ttl <= 0 {
		return nil, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.entries[accountKey{subject, name}]
	if !ok || now.Sub(e.at) >= a.ttl {
		return nil, false
	}
	return e.ids, true
}

// put keeps what a lookup of names found (names it did not find have no Account) and, at most
// once per ttl, drops the answers that have expired: the cache holds at most the companies
// looked up within two ttls.
func (a *accountCache) put(subject string, names []string, found accountsByName, now time.Time) {
	if a.ttl <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Sub(a.pruned) >= a.ttl {
		for k, e := range a.entries {
			if now.Sub(e.at) >= a.ttl {
				delete(a.entries, k)
			}
		}
		a.pruned = now
	}
	for _, name := range names {
		a.entries[accountKey{subject, name}] = cachedAccounts{ids: found[name], at: now}
	}
}

// forget drops the answers for names.
func (a *accountCache) forget(subject string, names []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, name := range names {
		delete(a.entries, accountKey{subject, name})
	}
}

// writesCompany reports whether cmd sets a contact's company.
func writesCompany(cmd *tandemv1.WriteCommand) bool {
	switch cmd.GetOp() {
	case tandemv1.WriteOp_WRITE_OP_CREATE:
		return true
	case tandemv1.WriteOp_WRITE_OP_UPDATE:
		return newFieldSet(cmd.GetFields()).has(fCompanyName)
	}
	return false
}

// lookUpAccounts finds the Accounts named by the companies that cmds set, as subject so that
// only Accounts the writer can see are found: each rep under write_as REP, the integration user
// otherwise. Companies looked up within the account cache's ttl are answered from it; the others
// cost one query for the whole apply, however many users' commands it carries (more only if the
// names exceed a statement's length), and nothing when every company is cached or no command
// sets one. cached lists the companies answered from the cache.
func (c *Connector) lookUpAccounts(ctx context.Context, subject string, cmds []*tandemv1.WriteCommand, useCache bool) (found accountsByName, cached map[string]bool, err error) {
	var names []string
	for _, cmd := range cmds {
		name := cmd.GetRecord().GetContact().GetCompanyName()
		if name != "" && charCount(name) <= maxAccountName && writesCompany(cmd) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	found, cached = accountsByName{}, map[string]bool{}
	now := c.now()
	if useCache {
		names = slices.DeleteFunc(names, func(name string) bool {
			ids, ok := c.accounts.get(subject, name, now)
			if ok {
				found[name], cached[name] = ids, true
			}
			return ok
		})
	}
	if len(names) == 0 {
		return found, cached, nil
	}
	stmt := selectStmt{fields: []string{"Id", "Name"}, from: "Account", orderBy: "Id", inField: "Name", inValues: names}
	stmts, err := stmt.chunks(c.cfg.maxSOQLLength)
	if err != nil {
		return nil, nil, syncerr.Wrap(syncerr.SyncInternal, fmt.Errorf("look up accounts: %w", err))
	}
	read := accountsByName{}
	for _, q := range stmts {
		err := c.queryPages(ctx, subject, q, false, func(page *QueryResult) error {
			for _, r := range page.Records {
				// SOQL compares names without regard to case; the company must match exactly, so
				// that reading the Account's name back gives the company that was written.
				name := r.String("Name")
				if _, asked := slices.BinarySearch(names, name); asked {
					read[name] = append(read[name], r.String("Id"))
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("look up %d account names: %w", len(names), err)
		}
	}
	c.accounts.put(subject, names, read, now)
	for name, ids := range read {
		found[name] = ids
	}
	return found, cached, nil
}

// staleAccount reports whether the contact write r, sent as item, may have failed because of
// the Account its company was set to from the account cache: deleted since, or no longer visible
// to the writer.
func (st *applyState) staleAccount(r ref, item collectionItem, o collectionOutcome) bool {
	if o.err == nil || (o.err.ErrorCode != "ENTITY_IS_DELETED" && o.err.ErrorCode != "INVALID_CROSS_REFERENCE_KEY") {
		return false
	}
	_, sentAccount := item.body["AccountId"]
	return sentAccount && st.cachedAccounts[r.cmd().GetRecord().GetContact().GetCompanyName()]
}

// setAccount sets the AccountId of a contact write (values in vals, the contact as it will be
// held in c) from its company, or adds the warning saying why it could not.
func (st *applyState) setAccount(r ref, c *tandemv1.Contact, fields fieldSet, create bool, vals map[string]any) {
	if !fields.has(fCompanyName) {
		return
	}
	name := c.GetCompanyName()
	var why string
	switch ids := st.accounts[name]; {
	case name == "" && (create || c.GetSalesforceAccountId() == ""):
		return // no company and no Account: nothing to set
	case name == "":
		why = "the company was cleared in Exchange; Tandem does not remove a Salesforce contact from its Account, so the contact keeps it"
	case len(ids) == 1:
		vals["AccountId"] = ids[0]
		c.SalesforceAccountId = ids[0]
		return
	case len(ids) > 1:
		why = fmt.Sprintf("%d Accounts are named %q; Tandem cannot tell which one the contact belongs to", len(ids), name)
	default:
		why = fmt.Sprintf("no Account named exactly %q exists or is visible to %s", name, st.writer)
	}
	if create {
		// A new contact without an Account has no company in Salesforce.
		c.CompanyName = ""
	}
	w := &syncerr.Error{Code: syncerr.SalesforceAccountNotSet, Detail: why + "; the contact's other fields were saved",
		RecordID: r.cmd().GetTargetId(), Field: fCompanyName}
	r.result().Warnings = append(r.result().Warnings, w.Proto())
}
