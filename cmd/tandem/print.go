package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func printPlan(w io.Writer, user string, plan *tandemv1.PlanUserSyncResponse) {
	counts := map[string]int{}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Next cycle for %s (dry run, nothing is written):\n\n", user)
	if len(plan.GetWrites()) > 0 {
		fmt.Fprintln(tw, "SIDE\tOPERATION\tRECORD\tFIELDS\tWHY")
	}
	for _, wr := range plan.GetWrites() {
		side := map[tandemv1.System]string{tandemv1.System_SYSTEM_EXCHANGE: "Exchange", tandemv1.System_SYSTEM_SALESFORCE: "Salesforce"}[wr.GetTarget()]
		op := strings.ToLower(strings.TrimPrefix(wr.GetOp().String(), "WRITE_OP_"))
		counts[side+" "+op]++
		name := wr.GetDisplayName()
		if name == "" {
			name = wr.GetTargetId()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", side, op, name, strings.Join(wr.GetFields(), ","), wr.GetReason())
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, side := range []string{"Exchange", "Salesforce"} {
		fmt.Fprintf(w, "%s: %d creates, %d updates, %d deletes\n", side, counts[side+" create"], counts[side+" update"], counts[side+" delete"])
	}
	fmt.Fprintf(w, "%d unchanged, %d conflicts\n", plan.GetUnchanged(), plan.GetConflicts())
	for _, h := range plan.GetHeld() {
		fmt.Fprintf(w, "held for approval: %d deletes of %d synced (hold %s)\n", h.GetCount(), h.GetSynced(), h.GetHoldId())
	}
}

func check(c tandemv1.CheckResult) string {
	switch c {
	case tandemv1.CheckResult_CHECK_RESULT_PASSED:
		return "✓"
	case tandemv1.CheckResult_CHECK_RESULT_FAILED:
		return "✗"
	}
	return "?"
}

func printUserStatus(w io.Writer, us *tandemv1.UserStatus) {
	fmt.Fprintf(w, "User %s (%s)\n", us.GetEmail(), us.GetUserId())
	fmt.Fprintf(w, "  Assigned to an active configuration:        %s %s\n", check(us.GetAssignedToActiveConfiguration()), us.GetConfigurationId())
	fmt.Fprintf(w, "  Mailbox on a supported version of Exchange: %s %s\n", check(us.GetMailboxVersionSupported()), us.GetExchangeVersion())
	fmt.Fprintf(w, "  Recognized by the Exchange service account: %s\n", check(us.GetRecognizedByServiceAccount()))
	if rs := us.GetResetStatus(); rs != tandemv1.ResetStatus_RESET_STATUS_UNSPECIFIED {
		fmt.Fprintf(w, "  Reset sync:                                 %s\n", strings.ToLower(strings.TrimPrefix(rs.String(), "RESET_STATUS_")))
	}
	if us.GetSuspended() {
		fmt.Fprintf(w, "  Sync suspended:                             since %s after %d permanent failures; next probe %s (AdminService.ResumeUserSync resumes it)\n",
			us.GetSuspendedAt().AsTime().Local().Format(time.DateTime), us.GetPermanentFailures(), us.GetNextSyncAt().AsTime().Local().Format(time.DateTime))
	}
	for _, ks := range us.GetKinds() {
		fmt.Fprintf(w, "  %s:\n", strings.ToLower(strings.TrimPrefix(ks.GetKind().String(), "RECORD_KIND_"))+"s")
		fmt.Fprintf(w, "    Folder found:                  %s\n", check(ks.GetFolderFound()))
		fmt.Fprintf(w, "    Email addresses linked:        %s\n", check(ks.GetAddressesLinked()))
		fmt.Fprintf(w, "    Salesforce to Exchange:        %s\n", devenv.StatusText(ks.GetSalesforceToExchange()))
		fmt.Fprintf(w, "    Exchange to Salesforce:        %s\n", devenv.StatusText(ks.GetExchangeToSalesforce()))
		fmt.Fprintf(w, "    Records in sync:               %d (%d writes pending, %d deletes held)\n", ks.GetRecordsInSync(), ks.GetPendingWrites(), ks.GetHeldDeletes())
	}
	if e := us.GetLastError(); e != nil {
		fmt.Fprintf(w, "  Last error: %s: %s\n    %s\n", e.GetCode(), e.GetMessage(), e.GetSuggestion())
	}
}

func printOrgStatus(w io.Writer, os *tandemv1.OrgStatus) {
	account := os.GetServiceAccount()
	if account == "" {
		account = "None"
	}
	fmt.Fprintf(w, "Org %s (cycle %d)\n", os.GetOrgId(), os.GetLastCycle())
	fmt.Fprintf(w, "  Exchange service account provided:   %s\n", account)
	fmt.Fprintf(w, "  Service account recognized:          %s\n", check(os.GetServiceAccountRecognized()))
	fmt.Fprintf(w, "  Users with linked email addresses:   %d of %d\n", os.GetUsersLinked(), os.GetUsersExpected())
	if n := os.GetUsersSuspended(); n > 0 {
		fmt.Fprintf(w, "  Users whose sync is suspended:       %d\n", n)
	}
	for _, a := range os.GetActivity() {
		last := "never"
		if a.GetLastSyncAt() != nil {
			last = a.GetLastSyncAt().AsTime().Local().Format(time.DateTime)
		}
		fmt.Fprintf(w, "  %-8s last sync %s, %d synced in the last 60 minutes, %d in the last 24 hours\n",
			strings.ToLower(strings.TrimPrefix(a.GetKind().String(), "RECORD_KIND_"))+"s", last, a.GetSyncedLast_60Minutes(), a.GetSyncedLast_24Hours())
	}
	if api := os.GetSalesforceApi(); api.GetDailyMax() > 0 {
		fmt.Fprintf(w, "  Salesforce API: %d of %d used today (%d reserved for others)\n", api.GetUsed(), api.GetDailyMax(), api.GetReserve())
	}
}
