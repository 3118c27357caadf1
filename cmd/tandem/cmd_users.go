package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func connectionCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &api{stdout: stdout, stderr: stderr}
	cmd := &cobra.Command{Use: "connection", Short: "test the org's connections to Exchange and Salesforce"}
	test := &cobra.Command{
		Use:   "test EMAIL",
		Short: "check, as a sync would, that Tandem reaches the user's mailbox and Salesforce; say what to fix",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, true, false, func(ctx context.Context, s *session) error {
				resp, err := s.admin().TestConnection(ctx, &tandemv1.TestConnectionRequest{OrgId: s.org, Email: args[0]})
				if err != nil {
					return err
				}
				if err := renderOne(stdout, a.output, resp, func(w io.Writer) { printChecks(w, args[0], resp) }); err != nil {
					return err
				}
				if !resp.GetOk() {
					return exitError(1)
				}
				return nil
			})
		},
	}
	cmd.AddCommand(test)
	a.bind(cmd, formatTable, formatJSON)
	return cmd
}

// printChecks prints a connection test as a checklist, with what to do about each failure.
func printChecks(w io.Writer, email string, resp *tandemv1.TestConnectionResponse) {
	fmt.Fprintf(w, "Connection test for %s:\n", email)
	for _, c := range resp.GetChecks() {
		fmt.Fprintf(w, "  %s %s", check(c.GetResult()), c.GetName())
		if c.GetDetail() != "" {
			fmt.Fprintf(w, ": %s", c.GetDetail())
		}
		fmt.Fprintln(w)
		if c.GetSuggestion() != "" {
			fmt.Fprintf(w, "      what to do: %s\n", c.GetSuggestion())
		}
	}
	if resp.GetOk() {
		fmt.Fprintln(w, "All checks passed.")
	} else {
		fmt.Fprintln(w, "Some checks failed.")
	}
}

func resetCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &api{stdout: stdout, stderr: stderr}
	cmd := &cobra.Command{
		Use:   "reset EMAIL",
		Short: "reset a user's sync: forget its links and sync state, then relink records instead of duplicating them",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u := parseUser(args[0])
			return a.run(cmd, true, false, func(ctx context.Context, s *session) error {
				resp, err := s.admin().ResetUserSync(ctx, &tandemv1.ResetUserSyncRequest{OrgId: s.org, UserId: u.id, Email: u.email})
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "reset of %s: %s (records are not changed; the next cycle relinks them)\n", u, resp.GetResetStatus())
				return nil
			})
		},
	}
	a.bind(cmd)
	return cmd
}

func resumeCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &api{stdout: stdout, stderr: stderr}
	cmd := &cobra.Command{
		Use:   "resume EMAIL",
		Short: "end a user's suspension once the cause in its last error is fixed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u := parseUser(args[0])
			return a.run(cmd, true, false, func(ctx context.Context, s *session) error {
				if _, err := s.admin().ResumeUserSync(ctx, &tandemv1.ResumeUserSyncRequest{OrgId: s.org, UserId: u.id, Email: u.email}); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "resumed %s: due at once\n", u)
				return nil
			})
		},
	}
	a.bind(cmd)
	return cmd
}

func deletesCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &api{stdout: stdout, stderr: stderr}
	cmd := &cobra.Command{Use: "deletes", Short: "mass deletes held for an admin's decision: list, approve, reject"}
	var user string
	list := &cobra.Command{
		Use:   "list",
		Short: "the holds awaiting a decision (of one user with --user)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u := parseUser(user)
			return a.run(cmd, true, false, func(ctx context.Context, s *session) error {
				resp, err := s.admin().ListHeldDeletes(ctx, &tandemv1.ListHeldDeletesRequest{OrgId: s.org, UserId: u.id, Email: u.email})
				if err != nil {
					return err
				}
				return renderList(stdout, a.output, holdTable(resp.GetHolds()), resp.GetHolds())
			})
		},
	}
	list.Flags().StringVar(&user, "user", "", "only this user's holds (email or id)")
	decide := func(verb string, decision tandemv1.HeldDeletesDecision, short string) *cobra.Command {
		return &cobra.Command{
			Use:   verb + " EMAIL HOLD_ID",
			Short: short,
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				u := parseUser(args[0])
				return a.run(cmd, true, false, func(ctx context.Context, s *session) error {
					_, err := s.admin().ResolveHeldDeletes(ctx, &tandemv1.ResolveHeldDeletesRequest{OrgId: s.org, UserId: u.id, Email: u.email, HoldId: args[1], Decision: decision})
					if err != nil {
						return err
					}
					fmt.Fprintf(stdout, "%sd hold %s of %s: the next cycle carries it out\n", verb, args[1], u)
					return nil
				})
			},
		}
	}
	cmd.AddCommand(list,
		decide("approve", tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_APPROVE, "carry out a hold's deletes"),
		decide("reject", tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_REJECT, "drop a hold's deletes and restore the missing records where the direction allows"))
	a.bind(cmd, listFormats...)
	return cmd
}

func holdTable(holds []*tandemv1.UserHeldDeletes) *table {
	t := newTable("EMAIL", "USER ID", "HOLD", "OBJECT", "SIDE", "DELETES", "OF SYNCED", "THRESHOLD", "HELD AT")
	for _, h := range holds {
		d := h.GetHeld()
		side := "Exchange"
		if d.GetTarget() == tandemv1.System_SYSTEM_SALESFORCE {
			side = "Salesforce"
		}
		t.add(h.GetEmail(), h.GetUserId(), d.GetHoldId(), kindWord(d.GetKind()), side, fmt.Sprint(d.GetCount()), fmt.Sprint(d.GetSynced()),
			fmt.Sprintf("%d%%", d.GetThresholdPercent()), h.GetCreatedAt().AsTime().UTC().Format(time.RFC3339))
	}
	return t
}
