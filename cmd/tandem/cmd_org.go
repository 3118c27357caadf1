package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// orgSecret is a secret of an org's connections, given to `tandem org apply` from a file or an
// environment variable, never in the YAML.
type orgSecret struct {
	flag, field string
	set         func(*tandemv1.Org, string)
	get         func(*tandemv1.Org) string
	source      string
}

func orgSecrets() []*orgSecret {
	ex := func(o *tandemv1.Org) *tandemv1.ExchangeConnection {
		if o.Exchange == nil {
			o.Exchange = &tandemv1.ExchangeConnection{}
		}
		return o.Exchange
	}
	sf := func(o *tandemv1.Org) *tandemv1.SalesforceConnection {
		if o.Salesforce == nil {
			o.Salesforce = &tandemv1.SalesforceConnection{}
		}
		return o.Salesforce
	}
	return []*orgSecret{
		{flag: "exchange-password", field: "exchange.password",
			set: func(o *tandemv1.Org, v string) { ex(o).Password = v }, get: func(o *tandemv1.Org) string { return o.GetExchange().GetPassword() }},
		{flag: "exchange-client-secret", field: "exchange.client_secret",
			set: func(o *tandemv1.Org, v string) { ex(o).ClientSecret = v }, get: func(o *tandemv1.Org) string { return o.GetExchange().GetClientSecret() }},
		{flag: "salesforce-private-key", field: "salesforce.private_key_pem",
			set: func(o *tandemv1.Org, v string) { sf(o).PrivateKeyPem = v }, get: func(o *tandemv1.Org) string { return o.GetSalesforce().GetPrivateKeyPem() }},
		{flag: "salesforce-client-secret", field: "salesforce.client_secret",
			set: func(o *tandemv1.Org, v string) { sf(o).ClientSecret = v }, get: func(o *tandemv1.Org) string { return o.GetSalesforce().GetClientSecret() }},
	}
}

// read returns the secret named by source: file:PATH or env:NAME.
func (s *orgSecret) read() (string, error) {
	kind, ref, ok := strings.Cut(s.source, ":")
	switch {
	case ok && kind == "file":
		b, err := os.ReadFile(ref) //nolint:gosec // the file the admin named for the secret
		if err != nil {
			return "", fmt.Errorf("--%s: %w", s.flag, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case ok && kind == "env":
		v, set := os.LookupEnv(ref)
		if !set || v == "" {
			return "", fmt.Errorf("--%s: environment variable %s is not set", s.flag, ref)
		}
		return v, nil
	}
	return "", fmt.Errorf("--%s %q: give file:PATH or env:NAME (never the secret itself)", s.flag, s.source)
}

func orgCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &api{stdout: stdout, stderr: stderr}
	cmd := &cobra.Command{Use: "org", Short: "orgs' connection settings as YAML: get, apply (secrets from files or the environment)"}
	get := &cobra.Command{
		Use:   "get [ORG_ID]",
		Short: "print an org's settings (or every org's) as YAML, without secrets",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, false, false, func(ctx context.Context, s *session) error {
				var orgs []*tandemv1.Org
				if len(args) == 1 {
					resp, err := s.admin().GetOrg(ctx, &tandemv1.GetOrgRequest{OrgId: args[0]})
					if err != nil {
						return err
					}
					orgs = append(orgs, resp.GetOrg())
				} else {
					resp, err := s.admin().ListOrgs(ctx, &tandemv1.ListOrgsRequest{})
					if err != nil {
						return err
					}
					orgs = resp.GetOrgs()
				}
				return printDocs(stdout, a.output, orgs)
			})
		},
	}
	var file string
	var yes bool
	secrets := orgSecrets()
	apply := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "create or change an org from YAML; secrets come from --exchange-password file:PATH|env:NAME and the like",
		Long: `Apply reads one org's settings as YAML (as tandem org get prints them) from FILE ("-" for stdin),
shows the changes, asks (or --yes) and stores them. Secrets are never in the YAML: give each with
its flag as file:PATH or env:NAME. A secret not given keeps its stored value — except that changing
where it is sent (an EWS, Autodiscover or token URL, a tenant, a Salesforce My Domain, ...) needs
the secret again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError("tandem org apply: -f FILE is required")
			}
			values := map[*orgSecret]string{}
			for _, sec := range secrets {
				if sec.source == "" {
					continue
				}
				v, err := sec.read()
				if err != nil {
					return usageError("%v", err)
				}
				values[sec] = v
			}
			raw, err := readInput(cmd, file)
			if err != nil {
				return failed(cmd, err)
			}
			docs := yamlDocs(raw)
			if len(docs) != 1 {
				return usageError("%s: give exactly one org (it holds %d documents)", file, len(docs))
			}
			desired := &tandemv1.Org{}
			if err := fromYAML(docs[0], desired); err != nil {
				return usageError("%s: %v", file, err)
			}
			for _, sec := range secrets {
				if sec.get(desired) != "" {
					return usageError("%s holds %s: secrets never go into settings files; pass --%s file:PATH or env:NAME", file, sec.field, sec.flag)
				}
				if v, ok := values[sec]; ok {
					sec.set(desired, v)
				}
			}
			given := len(values)
			desired.UpdatedAt = nil
			return a.run(cmd, false, false, func(ctx context.Context, s *session) error {
				return applyOrg(ctx, cmd, s, desired, given, yes)
			})
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "YAML file of the org; - for stdin")
	apply.Flags().BoolVarP(&yes, "yes", "y", false, "apply without asking")
	for _, sec := range secrets {
		apply.Flags().StringVar(&sec.source, sec.flag, "", sec.field+" from file:PATH or env:NAME")
	}
	cmd.AddCommand(get, apply)
	a.bind(cmd, formatYAML, formatJSON)
	return cmd
}

// applyOrg shows what storing desired (with given secrets) changes, asks, and stores it.
func applyOrg(ctx context.Context, cmd *cobra.Command, s *session, desired *tandemv1.Org, given int, yes bool) error {
	out := cmd.OutOrStdout()
	var current *tandemv1.Org
	resp, err := s.admin().GetOrg(ctx, &tandemv1.GetOrgRequest{OrgId: desired.GetOrgId()})
	switch {
	case status.Code(err) == codes.NotFound:
	case err != nil:
		return err
	default:
		current = resp.GetOrg()
		current.UpdatedAt = nil
	}
	// What is compared is without secrets, as the API returns orgs.
	shown := proto.Clone(desired).(*tandemv1.Org)
	for _, sec := range orgSecrets() {
		if sec.get(shown) != "" {
			sec.set(shown, "")
		}
	}
	switch {
	case current == nil:
		fmt.Fprintf(out, "org %s will be created with %d secret(s)\n", desired.GetOrgId(), given)
	case proto.Equal(current, shown) && given == 0:
		fmt.Fprintf(out, "org %s unchanged\n", desired.GetOrgId())
		return nil
	default:
		fmt.Fprintf(out, "org %s will change (- now, + after)", desired.GetOrgId())
		if given > 0 {
			fmt.Fprintf(out, ", with %d secret(s) sent again", given)
		}
		fmt.Fprintf(out, ":\n%s", diff(current, shown))
	}
	if !yes && !confirm(cmd, "Apply?") {
		return usageErr{errors.New("nothing applied (answer y, or pass --yes)")}
	}
	if _, err := s.admin().PutOrg(ctx, &tandemv1.PutOrgRequest{Org: desired}); err != nil {
		return err
	}
	fmt.Fprintf(out, "org %s stored\n", desired.GetOrgId())
	return nil
}
