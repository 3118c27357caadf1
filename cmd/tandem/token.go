package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tandem-sync/tandem/pkg/access"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func tokenCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &api{stdout: stdout, stderr: stderr}
	cmd := &cobra.Command{Use: "token", Short: "API tokens: create, list, revoke, generate"}
	var name, role, certCN string
	var orgs []string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create --name NAME --role viewer|admin|operator [--org-ids ID,...] [--ttl 720h]",
		Short: "issue a token; its secret is printed once, on stdout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := access.ParseRole(role)
			if err != nil {
				return usageError("--role: %v", err)
			}
			req := &tandemv1.CreateTokenRequest{Name: name, Role: r, ClientCertCn: certCN}
			for _, o := range append(orgs, a.org) {
				if o = strings.TrimSpace(o); o != "" {
					req.OrgIds = append(req.OrgIds, o)
				}
			}
			if ttl != 0 {
				req.Ttl = durationpb.New(ttl)
			}
			return a.run(cmd, false, false, func(ctx context.Context, s *session) error {
				resp, err := s.access().CreateToken(ctx, req)
				if err != nil {
					return err
				}
				t := resp.GetToken()
				fmt.Fprintf(stderr, "issued token %s (%s%s); its secret is shown once:\n", t.GetTokenId(), access.RoleName(t.GetRole()), orgList(t))
				fmt.Fprintln(stdout, resp.GetSecret())
				return nil
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "what the token is for (required)")
	create.Flags().StringVar(&role, "role", "", "viewer, admin or operator (required)")
	create.Flags().StringSliceVar(&orgs, "org-ids", nil, "orgs the token covers, comma-separated (every token but an operator's needs one; --org counts too)")
	create.Flags().StringVar(&certCN, "client-cert-cn", "", "also authenticate client certificates with this subject common name as the token (mutual TLS; the API's --client-ca must trust their authority)")
	create.Flags().DurationVar(&ttl, "ttl", 0, "how long the token works; 0 for a token that does not expire")
	_ = create.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{"viewer", "admin", "operator"}, cobra.ShellCompDirectiveNoFileComp))

	list := &cobra.Command{
		Use:   "list",
		Short: "the tokens this token may see, never their secrets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, false, false, func(ctx context.Context, s *session) error {
				resp, err := s.access().ListTokens(ctx, &tandemv1.ListTokensRequest{})
				if err != nil {
					return err
				}
				return renderList(stdout, a.output, tokenTable(resp.GetTokens()), resp.GetTokens())
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke TOKEN_ID",
		Short: "revoke a token at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, false, false, func(ctx context.Context, s *session) error {
				if _, err := s.access().RevokeToken(ctx, &tandemv1.RevokeTokenRequest{TokenId: args[0]}); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "revoked token %s\n", args[0])
				return nil
			})
		},
	}
	generate := &cobra.Command{
		Use:   "generate",
		Short: "print a new random secret, for a deployment's tandem-operator-token Secret (no API needed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret, err := access.NewSecret()
			if err != nil {
				return failed(cmd, err)
			}
			fmt.Fprintln(stdout, secret)
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke, generate)
	a.bind(cmd, listFormats...)
	return cmd
}

func orgList(t *tandemv1.ApiToken) string {
	if len(t.GetOrgIds()) == 0 {
		return ", every org"
	}
	return " of " + strings.Join(t.GetOrgIds(), ", ")
}

func tokenTable(tokens []*tandemv1.ApiToken) *table {
	t := newTable("ID", "NAME", "ROLE", "ORGS", "CREATED", "EXPIRES", "CREATED BY", "CLIENT CERTIFICATE")
	for _, tok := range tokens {
		orgs := strings.Join(tok.GetOrgIds(), ",")
		if orgs == "" {
			orgs = "*"
		}
		expires := "never"
		if tok.GetExpiresAt() != nil {
			expires = tok.GetExpiresAt().AsTime().UTC().Format(time.RFC3339)
		}
		t.add(tok.GetTokenId(), tok.GetName(), access.RoleName(tok.GetRole()), orgs,
			tok.GetCreatedAt().AsTime().UTC().Format(time.RFC3339), expires, tok.GetCreatedBy(), tok.GetClientCertCn())
	}
	return t
}
