package salesforce

import (
	"context"
	"fmt"
	"slices"

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

// lookUpAccounts finds the Accounts named by the companies that cmds set, with one query for
// the whole apply, however many users' commands it carries (more only if the names exceed a
// statement's length), as subject so that only Accounts the writer can see are found: each rep
// under write_as REP, the integration user otherwise. Nothing is queried when no command sets a
// company.
func (c *Connector) lookUpAccounts(ctx context.Context, subject string, cmds []*tandemv1.WriteCommand) (accountsByName, error) {
	var names []string
	for _, cmd := range cmds {
		name := cmd.GetRecord().GetContact().GetCompanyName()
		if name != "" && charCount(name) <= maxAccountName && writesCompany(cmd) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	names = slices.Compact(names)
	stmt := selectStmt{fields: []string{"Id", "Name"}, from: "Account", orderBy: "Id", inField: "Name", inValues: names}
	stmts, err := stmt.chunks(c.cfg.maxSOQLLength)
	if err != nil {
		return nil, syncerr.Wrap(syncerr.SyncInternal, fmt.Errorf("look up accounts: %w", err))
	}
	found := accountsByName{}
	for _, q := range stmts {
		err := c.queryPages(ctx, subject, q, false, func(page *QueryResult) error {
			for _, r := range page.Records {
				// SOQL compares names without regard to case; the company must match exactly, so
				// that reading the Account's name back gives the company that was written.
				name := r.String("Name")
				if _, asked := slices.BinarySearch(names, name); asked {
					found[name] = append(found[name], r.String("Id"))
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("look up %d account names: %w", len(names), err)
		}
	}
	return found, nil
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
