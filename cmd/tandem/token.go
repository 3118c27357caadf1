package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tandem-sync/tandem/pkg/access"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

//nolint:gosec // G101: usage text that names the token flags, not a credential
const tokenUsage = `Usage:
  tandem token create --name NAME --role viewer|admin|operator [--org-ids ID,...] [--ttl 720h]
                                   issue a token; its secret is printed once
  tandem token list [--output table|json]
                                   the tokens this token may see (never their secrets)
  tandem token revoke TOKEN_ID     revoke a token at once
  tandem token generate            print a new random secret, for a deployment's operator-token Secret

Every subcommand but generate talks to the API: --addr/$TANDEM_ADDR, --token/$TANDEM_TOKEN.
`

func tokenCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, tokenUsage)
		return 2
	}
	switch args[0] {
	case "create":
		return tokenCreate(args[1:], stdout, stderr)
	case "list":
		return tokenList(args[1:], stdout, stderr)
	case "revoke":
		return tokenRevoke(args[1:], stdout, stderr)
	case "generate":
		secret, err := access.NewSecret()
		if err != nil {
			fmt.Fprintln(stderr, "tandem token generate:", err)
			return 1
		}
		fmt.Fprintln(stdout, secret)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, tokenUsage)
		return 0
	}
	fmt.Fprintf(stderr, "tandem token: unknown subcommand %q\n\n%s", args[0], tokenUsage)
	return 2
}

func tokenCreate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tandem token create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a apiFlags
	a.register(fs)
	name := fs.String("name", "", "what the token is for (required)")
	role := fs.String("role", "", "viewer, admin or operator (required)")
	orgs := fs.String("org-ids", "", "comma-separated orgs the token covers (all but operator tokens need one); --org works too")
	ttl := fs.Duration("ttl", 0, "how long the token works; 0 for a token that does not expire")
	if err := fs.Parse(args); err != nil {
		return exitFor(err)
	}
	r, err := access.ParseRole(*role)
	if err != nil {
		fmt.Fprintln(stderr, "tandem token create: --role:", err)
		return 2
	}
	req := &tandemv1.CreateTokenRequest{Name: *name, Role: r}
	for _, list := range []string{*orgs, a.org} {
		for o := range strings.SplitSeq(list, ",") {
			if o = strings.TrimSpace(o); o != "" {
				req.OrgIds = append(req.OrgIds, o)
			}
		}
	}
	if *ttl != 0 {
		req.Ttl = durationpb.New(*ttl)
	}
	return withAccess(a, "tandem token create", stderr, func(ctx context.Context, c tandemv1.AccessServiceClient) error {
		resp, err := c.CreateToken(ctx, req)
		if err != nil {
			return err
		}
		t := resp.GetToken()
		fmt.Fprintf(stderr, "issued token %s (%s%s); its secret is shown once:\n", t.GetTokenId(), access.RoleName(t.GetRole()), orgList(t))
		fmt.Fprintln(stdout, resp.GetSecret())
		return nil
	})
}

func tokenList(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tandem token list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a apiFlags
	a.register(fs)
	output := fs.String("output", "table", "table or json")
	if err := fs.Parse(args); err != nil {
		return exitFor(err)
	}
	if *output != "table" && *output != "json" {
		fmt.Fprintf(stderr, "tandem token list: --output %q: choose table or json\n", *output)
		return 2
	}
	return withAccess(a, "tandem token list", stderr, func(ctx context.Context, c tandemv1.AccessServiceClient) error {
		resp, err := c.ListTokens(ctx, &tandemv1.ListTokensRequest{})
		if err != nil {
			return err
		}
		if *output == "json" {
			return printTokensJSON(stdout, resp.GetTokens())
		}
		printTokens(stdout, resp.GetTokens())
		return nil
	})
}

func tokenRevoke(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tandem token revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a apiFlags
	a.register(fs)
	ids, err := parseInterspersed(fs, args)
	if err != nil {
		return exitFor(err)
	}
	if len(ids) != 1 {
		fmt.Fprintln(stderr, "tandem token revoke: give one TOKEN_ID (see tandem token list)")
		return 2
	}
	id := ids[0]
	return withAccess(a, "tandem token revoke", stderr, func(ctx context.Context, c tandemv1.AccessServiceClient) error {
		if _, err := c.RevokeToken(ctx, &tandemv1.RevokeTokenRequest{TokenId: id}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked token %s\n", id)
		return nil
	})
}

// withAccess runs f against the API's AccessService and reports its error as the command's.
func withAccess(a apiFlags, cmd string, stderr io.Writer, f func(context.Context, tandemv1.AccessServiceClient) error) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := a.dial()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	}
	defer conn.Close()
	if err := f(ctx, tandemv1.NewAccessServiceClient(conn)); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, a.explain(err))
		return 1
	}
	return 0
}

func orgList(t *tandemv1.ApiToken) string {
	if len(t.GetOrgIds()) == 0 {
		return ", every org"
	}
	return " of " + strings.Join(t.GetOrgIds(), ", ")
}

func printTokens(w io.Writer, tokens []*tandemv1.ApiToken) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tORGS\tCREATED\tEXPIRES")
	for _, t := range tokens {
		orgs := strings.Join(t.GetOrgIds(), ",")
		if orgs == "" {
			orgs = "*"
		}
		expires := "never"
		if t.GetExpiresAt() != nil {
			expires = t.GetExpiresAt().AsTime().UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.GetTokenId(), t.GetName(), access.RoleName(t.GetRole()), orgs,
			t.GetCreatedAt().AsTime().UTC().Format(time.RFC3339), expires)
	}
	tw.Flush()
}

func printTokensJSON(w io.Writer, tokens []*tandemv1.ApiToken) error {
	out := make([]json.RawMessage, 0, len(tokens))
	for _, t := range tokens {
		b, err := protojson.Marshal(t)
		if err != nil {
			return err
		}
		out = append(out, b)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// parseInterspersed parses args with fs, allowing flags after positional arguments (tandem token
// revoke ID --token T), and returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
