package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	"github.com/tandem-sync/tandem/pkg/status"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func statusCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &api{stdout: stdout, stderr: stderr}
	var user string
	org := func(cmd *cobra.Command) error {
		return a.run(cmd, true, false, func(ctx context.Context, s *session) error {
			resp, err := s.status().GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: s.org})
			if err != nil {
				return err
			}
			return renderOne(stdout, a.output, resp.GetStatus(), func(w io.Writer) { printOrgStatus(w, resp.GetStatus()) })
		})
	}
	userStatus := func(cmd *cobra.Command, who string) error {
		u := parseUser(who)
		return a.run(cmd, true, false, func(ctx context.Context, s *session) error {
			resp, err := s.status().GetUserStatus(ctx, &tandemv1.GetUserStatusRequest{OrgId: s.org, UserId: u.id, Email: u.email})
			if err != nil {
				return err
			}
			return renderOne(stdout, a.output, resp.GetStatus(), func(w io.Writer) { printUserStatus(w, resp.GetStatus()) })
		})
	}
	cmd := &cobra.Command{
		Use:   "status [org | user EMAIL]",
		Short: "show the org's status (Lightning Sync's system status) or a user's",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user != "" {
				return userStatus(cmd, user)
			}
			return org(cmd)
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "a user's email or id (same as: status user EMAIL)")
	a.bind(cmd, listFormats...)
	cmd.AddCommand(
		&cobra.Command{Use: "org", Short: "the org's status", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error { return org(cmd) }},
		&cobra.Command{Use: "user EMAIL", Short: "a user's status", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error { return userStatus(cmd, args[0]) }},
	)
	return cmd
}

// User states, as `tandem users --status` filters them.
const (
	stateInSync      = "in-sync"
	stateSyncing     = "syncing"
	stateError       = "error"
	stateSuspended   = "suspended"
	stateBlocked     = "blocked"
	stateNotAssigned = "not-assigned"
)

var userStates = []string{stateInSync, stateSyncing, stateError, stateSuspended, stateBlocked, stateNotAssigned}

// userState sums up a user's status in one word.
func userState(us *tandemv1.UserStatus) string {
	switch {
	case us.GetAssignedToActiveConfiguration() != tandemv1.CheckResult_CHECK_RESULT_PASSED:
		return stateNotAssigned
	case us.GetMailboxClaimedByOrg() != "":
		return stateBlocked
	case us.GetSuspended():
		return stateSuspended
	case us.GetLastError() != nil:
		return stateError
	}
	for _, k := range us.GetKinds() {
		for _, d := range []tandemv1.DirectionStatus{k.GetSalesforceToExchange(), k.GetExchangeToSalesforce()} {
			if !status.Settled(d) {
				return stateSyncing
			}
		}
	}
	if len(us.GetKinds()) == 0 {
		return stateSyncing
	}
	return stateInSync
}

// userRow is a user's line in `tandem users` and `tandem watch`.
func userRow(us *tandemv1.UserStatus) []string {
	var inSync, pending int64
	var dirs []string
	for _, k := range us.GetKinds() {
		inSync += k.GetRecordsInSync()
		pending += k.GetPendingWrites()
		dirs = append(dirs, fmt.Sprintf("%s: %s / %s", kindWord(k.GetKind()), devenv.StatusText(k.GetSalesforceToExchange()), devenv.StatusText(k.GetExchangeToSalesforce())))
	}
	problem := ""
	switch {
	case us.GetMailboxClaimedByOrg() != "":
		problem = "mailbox synced by org " + us.GetMailboxClaimedByOrg()
	case us.GetLastError() != nil:
		problem = us.GetLastError().GetCode() + ": " + us.GetLastError().GetMessage()
	}
	return []string{us.GetEmail(), us.GetUserId(), userState(us), fmt.Sprint(inSync), fmt.Sprint(pending), strings.Join(dirs, "; "), problem}
}

var userHeader = []string{"EMAIL", "USER ID", "STATE", "IN SYNC", "PENDING", "SALESFORCE→EXCHANGE / EXCHANGE→SALESFORCE", "PROBLEM"}

func kindWord(k tandemv1.RecordKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "RECORD_KIND_")) + "s"
}

func usersCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &api{stdout: stdout, stderr: stderr}
	var state string
	cmd := &cobra.Command{
		Use:   "users",
		Short: "every user of the org with its sync state, filterable by state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if state != "" && !slices.Contains(userStates, state) {
				return usageError("--status %q: choose %s", state, strings.Join(userStates, ", "))
			}
			return a.run(cmd, true, false, func(ctx context.Context, s *session) error {
				users, err := listUsers(ctx, s)
				if err != nil {
					return err
				}
				t := newTable(userHeader...)
				var shown []*tandemv1.UserStatus
				for _, us := range users {
					if state != "" && userState(us) != state {
						continue
					}
					shown = append(shown, us)
					t.add(userRow(us)...)
				}
				return renderList(stdout, a.output, t, shown)
			})
		},
	}
	cmd.Flags().StringVar(&state, "status", "", "only users in this state: "+strings.Join(userStates, ", "))
	_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(userStates, cobra.ShellCompDirectiveNoFileComp))
	a.bind(cmd, listFormats...)
	return cmd
}

// listUsers reads every page of the org's user statuses.
func listUsers(ctx context.Context, s *session) ([]*tandemv1.UserStatus, error) {
	var out []*tandemv1.UserStatus
	token := ""
	for {
		resp, err := s.status().ListUserStatuses(ctx, &tandemv1.ListUserStatusesRequest{OrgId: s.org, PageSize: 1000, PageToken: token})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetStatuses()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

func watchCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &api{stdout: stdout, stderr: stderr}
	cmd := &cobra.Command{
		Use:   "watch [EMAIL]",
		Short: "follow users' statuses live (every user, or one), until interrupted",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var u userRef
			if len(args) == 1 {
				u = parseUser(args[0])
			}
			return a.run(cmd, true, true, func(ctx context.Context, s *session) error {
				stream, err := s.status().WatchUserStatus(ctx, &tandemv1.WatchUserStatusRequest{OrgId: s.org, UserId: u.id, Email: u.email})
				if err != nil {
					return err
				}
				if a.output == formatTable {
					fmt.Fprintln(stdout, strings.Join(append([]string{"TIME"}, userHeader...), "  "))
				}
				for {
					resp, err := stream.Recv()
					if err != nil {
						return err
					}
					if err := printWatched(stdout, a.output, time.Now(), resp.GetStatus()); err != nil {
						return err
					}
				}
			})
		},
	}
	a.bind(cmd, formatTable, formatJSON)
	return cmd
}

// printWatched prints one status a watch received: a line of the table, or a JSON object per line.
func printWatched(w io.Writer, format string, at time.Time, us *tandemv1.UserStatus) error {
	if format == formatJSON {
		b, err := jsonOf(us)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintln(w, strings.Join(append([]string{at.Format(time.TimeOnly)}, userRow(us)...), "  "))
	return err
}

func errorsCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &api{stdout: stdout, stderr: stderr}
	var user, object, code string
	var limit int
	cmd := &cobra.Command{
		Use:   "errors",
		Short: "the sync error report, newest first (--output csv exports it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var kind tandemv1.RecordKind
			switch object {
			case "":
			case "contact", "contacts":
				kind = tandemv1.RecordKind_RECORD_KIND_CONTACT
			case "event", "events":
				kind = tandemv1.RecordKind_RECORD_KIND_EVENT
			default:
				return usageError("--object %q: choose contact or event", object)
			}
			u := parseUser(user)
			return a.run(cmd, true, false, func(ctx context.Context, s *session) error {
				var entries []*tandemv1.SyncErrorEntry
				token := ""
				for {
					resp, err := s.status().ListSyncErrors(ctx, &tandemv1.ListSyncErrorsRequest{OrgId: s.org, UserId: u.id, Email: u.email, PageSize: 1000, PageToken: token})
					if err != nil {
						return err
					}
					for _, e := range resp.GetEntries() {
						if (kind == 0 || e.GetKind() == kind) && (code == "" || strings.EqualFold(e.GetError().GetCode(), code)) {
							entries = append(entries, e)
						}
					}
					if token = resp.GetNextPageToken(); token == "" || (limit > 0 && len(entries) >= limit) {
						break
					}
				}
				if limit > 0 && len(entries) > limit {
					entries = entries[:limit]
				}
				return renderList(stdout, a.output, errorTable(entries), entries)
			})
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "only this user's errors (email or id)")
	cmd.Flags().StringVar(&object, "object", "", "only errors about contact or event records")
	cmd.Flags().StringVar(&code, "code", "", "only errors with this code (e.g. SALESFORCE_FIELD_INVALID)")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many entries; 0 for all")
	a.bind(cmd, listFormats...)
	return cmd
}

func errorTable(entries []*tandemv1.SyncErrorEntry) *table {
	t := newTable("LAST SEEN", "USER ID", "OBJECT", "RECORD", "CODE", "MESSAGE", "SUGGESTION", "OCCURRENCES")
	for _, e := range entries {
		object := ""
		if e.GetKind() != tandemv1.RecordKind_RECORD_KIND_UNSPECIFIED {
			object = strings.TrimSuffix(kindWord(e.GetKind()), "s")
		}
		t.add(e.GetLastSeenAt().AsTime().UTC().Format(time.RFC3339), e.GetUserId(), object, e.GetError().GetRecordId(),
			e.GetError().GetCode(), e.GetError().GetMessage(), e.GetError().GetSuggestion(), fmt.Sprint(e.GetOccurrences()))
	}
	return t
}

func planCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &api{stdout: stdout, stderr: stderr}
	var user string
	cmd := &cobra.Command{
		Use:   "plan EMAIL",
		Short: "what a user's next cycle would create, update and delete (a dry run)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				user = args[0]
			}
			if user == "" {
				return usageError("tandem plan: name the user: tandem plan EMAIL")
			}
			u := parseUser(user)
			return a.run(cmd, true, false, func(ctx context.Context, s *session) error {
				plan, err := s.status().PlanUserSync(ctx, &tandemv1.PlanUserSyncRequest{OrgId: s.org, UserId: u.id, Email: u.email})
				if err != nil {
					return err
				}
				return renderOne(stdout, a.output, plan, func(w io.Writer) { printPlan(w, u.String(), plan) })
			})
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "the user's email or id (same as the argument)")
	a.bind(cmd, listFormats...)
	return cmd
}
