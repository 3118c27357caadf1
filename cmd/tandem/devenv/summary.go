package devenv

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// UserRow is one user's line of the progress table.
type UserRow struct {
	Email                      string
	ExchangeToSF, SFToExchange tandemv1.DirectionStatus
	InSync, Pending, Held      int64
	LastError                  string
}

// Summary is the environment's state, for the progress table and `tandem dev --json`.
type Summary struct {
	Users           int     `json:"users"`
	ContactsInSync  int64   `json:"contacts_in_sync"`
	EventsInSync    int64   `json:"events_in_sync"`
	Seconds         float64 `json:"seconds"`
	EWSCalls        int64   `json:"ews_calls"`
	SalesforceCalls int64   `json:"salesforce_calls"`
	Errors          int64   `json:"errors"`
	PendingWrites   int64   `json:"pending_writes"`
	Cycle           uint64  `json:"cycle"`
	Synced          bool    `json:"synced"`
	// Reason says why the environment is not in sync yet.
	Reason string    `json:"reason,omitempty"`
	Rows   []UserRow `json:"-"`
	// SettledAt is when every status was found settled, before the simulators were compared
	// (zero unless they were): with nothing in flight, they already agreed then if they agree.
	SettledAt time.Time `json:"-"`
}

// Summary reads every syncing user's status and, with the simulators, checks that both sides
// actually hold the same contacts.
func (e *Env) Summary(ctx context.Context) (Summary, error) {
	st := e.Platform.Store
	sum := Summary{Seconds: e.Elapsed().Seconds()}
	users, err := st.ListUsers(ctx, e.OrgID)
	if err != nil {
		return sum, err
	}
	stat := status.New(st)
	var reasons []string
	for _, u := range users {
		us, err := stat.Get(ctx, store.UserKey{OrgID: e.OrgID, UserID: u.GetUserId()})
		if err != nil {
			return sum, err
		}
		if us.GetAssignedToActiveConfiguration() != tandemv1.CheckResult_CHECK_RESULT_PASSED {
			continue
		}
		sum.Users++
		row := UserRow{Email: u.GetEmail()}
		if le := us.GetLastError(); le != nil {
			row.LastError = le.GetCode()
		}
		for _, ks := range us.GetKinds() {
			switch ks.GetKind() {
			case tandemv1.RecordKind_RECORD_KIND_CONTACT:
				sum.ContactsInSync += ks.GetRecordsInSync()
				row.ExchangeToSF, row.SFToExchange = ks.GetExchangeToSalesforce(), ks.GetSalesforceToExchange()
				row.InSync, row.Pending, row.Held = ks.GetRecordsInSync(), ks.GetPendingWrites(), ks.GetHeldDeletes()
			case tandemv1.RecordKind_RECORD_KIND_EVENT:
				sum.EventsInSync += ks.GetRecordsInSync()
			}
			sum.PendingWrites += ks.GetPendingWrites()
		}
		if !status.Settled(row.ExchangeToSF) || !status.Settled(row.SFToExchange) || row.Pending > 0 || row.Held > 0 {
			reasons = append(reasons, fmt.Sprintf("%s: Exchange→Salesforce %s, Salesforce→Exchange %s, %d writes pending, %d deletes held",
				row.Email, statusText(row.ExchangeToSF), statusText(row.SFToExchange), row.Pending, row.Held))
		}
		sum.Rows = append(sum.Rows, row)
	}
	sort.Slice(sum.Rows, func(i, j int) bool { return sum.Rows[i].Email < sum.Rows[j].Email })
	entries, _, err := st.ListErrors(ctx, e.OrgID, "", store.MaxErrorPageSize, "")
	if err != nil {
		return sum, err
	}
	sum.Errors = int64(len(entries))
	sch, err := st.GetSchedule(ctx, e.OrgID)
	if err != nil {
		return sum, err
	}
	sum.Cycle = sch.Cycle
	if e.EWS != nil {
		sum.EWSCalls = e.EWS.Counts()["Total"]
		sum.SalesforceCalls, _ = e.Salesforce.APIUsage()
	}
	if sum.Users == 0 {
		reasons = append(reasons, "no user is assigned to the sync configuration yet (the user directory loads on the first cycle)")
	}
	if e.EWS != nil && len(reasons) == 0 {
		// Only once every status says so: the comparison dumps both simulators, in the process
		// that `tandem bench` measures.
		sum.SettledAt = time.Now()
		reasons = e.disagreements()
	}
	sum.Synced = len(reasons) == 0
	if !sum.Synced {
		sum.Reason = strings.Join(reasons[:min(len(reasons), 3)], "; ")
		if len(reasons) > 3 {
			sum.Reason += fmt.Sprintf("; and %d more", len(reasons)-3)
		}
	}
	return sum, nil
}

// statusText is the Lightning Sync wording of a direction status.
func statusText(d tandemv1.DirectionStatus) string {
	switch d {
	case tandemv1.DirectionStatus_DIRECTION_STATUS_NOT_STARTED:
		return "not started"
	case tandemv1.DirectionStatus_DIRECTION_STATUS_INITIAL_SYNC_IN_PROGRESS:
		return "initial sync in progress"
	case tandemv1.DirectionStatus_DIRECTION_STATUS_INITIAL_SYNC_COMPLETED:
		return "initial sync completed"
	case tandemv1.DirectionStatus_DIRECTION_STATUS_SYNC_IN_PROGRESS:
		return "sync in progress"
	case tandemv1.DirectionStatus_DIRECTION_STATUS_IN_SYNC:
		return "in sync"
	case tandemv1.DirectionStatus_DIRECTION_STATUS_NOT_SET_TO_SYNC:
		return "not set to sync"
	}
	return "not started"
}

// StatusText is the wording of a direction status in the progress table.
func StatusText(d tandemv1.DirectionStatus) string { return statusText(d) }

// contactKey is what must agree between a contact's two copies.
type contactKey struct {
	first, last, email, title, department, phone, mobile string
}

func norm(s string) string { return strings.TrimSpace(s) }

// disagreements compares, per user, the contacts of the mailbox's Salesforce_Sync folder with
// the user's contacts in Salesforce, independently of Tandem's own bookkeeping. It is called
// every second while `--until-synced` or `tandem bench` waits, in the process it measures, so
// it reads each simulator's dump once and each Salesforce contact once (grouped by owner),
// rather than every contact for every user.
func (e *Env) disagreements() []string {
	exDump, sfDump := e.EWS.Dump(), e.Salesforce.Dump()
	sfByOwner := map[string]map[contactKey]int{}
	for _, c := range sfDump.Contacts {
		owner := dumpText(c["OwnerId"])
		if sfByOwner[owner] == nil {
			sfByOwner[owner] = map[contactKey]int{}
		}
		s := func(k string) string { return norm(dumpText(c[k])) }
		sfByOwner[owner][contactKey{s("FirstName"), s("LastName"), strings.ToLower(s("Email")), s("Title"), s("Department"), s("Phone"), s("MobilePhone")}]++
	}
	var out []string
	for userID, email := range e.Mailboxes {
		ex := map[contactKey]int{}
		for _, c := range exDump.Mailboxes[email].Contacts {
			ex[contactKey{norm(c.GivenName), norm(c.Surname), strings.ToLower(norm(c.EmailAddress1)), norm(c.JobTitle), norm(c.Department), norm(c.BusinessPhone), norm(c.MobilePhone)}]++
		}
		sf := sfByOwner[userID]
		if len(ex) == 0 && len(sf) == 0 {
			continue
		}
		exCount, sfCount := total(ex), total(sf)
		if exCount != sfCount {
			out = append(out, fmt.Sprintf("%s: %d contacts in Exchange, %d in Salesforce", email, exCount, sfCount))
			continue
		}
		for k, n := range ex {
			if sf[k] != n {
				out = append(out, fmt.Sprintf("%s: %s %s <%s> differs between Exchange and Salesforce", email, k.first, k.last, k.email))
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// dumpText is a Salesforce dump value as text: "" for an absent or null field.
func dumpText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

func total(m map[contactKey]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}
