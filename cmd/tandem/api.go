package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tandem-sync/tandem/pkg/access"
	"github.com/tandem-sync/tandem/pkg/certs"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// defaultAPIAddr is where `tandem dev` serves its API, without TLS.
const defaultAPIAddr = "127.0.0.1:9090"

// apiTimeout bounds one command's calls (a watch runs until interrupted).
const apiTimeout = 30 * time.Second

// api is what the admin commands share: how to reach the API, as whom, in which org, and how
// to print what it answers.
type api struct {
	addr, token, ca, org, output string
	cert, key                    string
	plaintext                    bool
	stdout, stderr               io.Writer
	formats                      []string
}

// bind registers the connection flags on cmd (and its subcommands) and the output formats it
// prints in, the first being the default.
func (a *api) bind(cmd *cobra.Command, formats ...string) {
	addr := os.Getenv("TANDEM_ADDR")
	if addr == "" {
		addr = defaultAPIAddr
	}
	plaintext, _ := strconv.ParseBool(os.Getenv("TANDEM_PLAINTEXT"))
	// The default address is tandem dev's, which serves without TLS.
	plaintext = plaintext || addr == defaultAPIAddr
	fs := cmd.PersistentFlags()
	fs.StringVar(&a.addr, "addr", addr, "the API's address ($TANDEM_ADDR; tandem dev serves "+defaultAPIAddr+")")
	fs.StringVar(&a.token, "token", os.Getenv("TANDEM_TOKEN"), "the API token ($TANDEM_TOKEN; tandem dev prints one)")
	fs.StringVar(&a.ca, "ca", os.Getenv("TANDEM_CA"), "PEM file of the authorities that sign the API's TLS certificate ($TANDEM_CA); empty for the system's")
	fs.StringVar(&a.cert, "cert", os.Getenv("TANDEM_CERT"), "PEM file of a client certificate to authenticate with instead of a token ($TANDEM_CERT; mutual TLS)")
	fs.StringVar(&a.key, "key", os.Getenv("TANDEM_KEY"), "PEM file of the client certificate's private key ($TANDEM_KEY)")
	fs.BoolVar(&a.plaintext, "plaintext", plaintext, "talk to the API without TLS ($TANDEM_PLAINTEXT; the default for tandem dev's address)")
	fs.StringVar(&a.org, "org", os.Getenv("TANDEM_ORG"), "the org id ($TANDEM_ORG); empty when the token sees exactly one org")
	if len(formats) > 0 {
		a.formats = formats
		fs.StringVarP(&a.output, "output", "o", formats[0], "output format: "+strings.Join(formats, ", "))
		_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
	}
}

// checkOutput refuses an output format the command does not print in.
func (a *api) checkOutput() error {
	if len(a.formats) > 0 && !slices.Contains(a.formats, a.output) {
		return usageError("--output %q: choose %s", a.output, strings.Join(a.formats, ", "))
	}
	return nil
}

// session is one command's connection to the API.
type session struct {
	a    *api
	conn *grpc.ClientConn
	org  string
}

func (s *session) status() tandemv1.StatusServiceClient {
	return tandemv1.NewStatusServiceClient(s.conn)
}
func (s *session) admin() tandemv1.AdminServiceClient { return tandemv1.NewAdminServiceClient(s.conn) }
func (s *session) access() tandemv1.AccessServiceClient {
	return tandemv1.NewAccessServiceClient(s.conn)
}

// run connects, resolves the org when needOrg, runs f within apiTimeout (without a timeout
// when watch), and reports f's error as the command's, in plain words.
func (a *api) run(cmd *cobra.Command, needOrg, watch bool, f func(context.Context, *session) error) error {
	if err := a.checkOutput(); err != nil {
		return err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if !watch {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, apiTimeout)
		defer cancel()
	}
	conn, err := a.dial()
	if err != nil {
		return failed(cmd, err)
	}
	defer conn.Close()
	s := &session{a: a, conn: conn, org: a.org}
	if needOrg && s.org == "" {
		if s.org, err = a.soleOrg(ctx, s); err != nil {
			return failed(cmd, err)
		}
	}
	if err := f(ctx, s); err != nil {
		if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
			return nil // interrupted: what a watch ends with
		}
		var usage usageErr
		if errors.As(err, &usage) {
			return usage.err
		}
		var exit exitError
		if errors.As(err, &exit) {
			return exit // the reason is printed already
		}
		return failed(cmd, a.explain(err))
	}
	return nil
}

// usageErr marks an error found after connecting that is the caller's mistake (exit 2).
type usageErr struct{ err error }

func (u usageErr) Error() string { return u.err.Error() }

// dial connects to the API with the flags' transport and token.
func (a *api) dial() (*grpc.ClientConn, error) {
	if a.token == "" && a.cert == "" {
		return nil, errors.New("no API token: pass --token or set TANDEM_TOKEN (tandem dev prints one; `tandem token create` issues more), or a client certificate with --cert and --key")
	}
	if a.cert != "" && a.plaintext {
		return nil, errors.New("--cert needs TLS: drop --plaintext")
	}
	creds := insecure.NewCredentials()
	if !a.plaintext {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if a.cert != "" {
			pair, err := tls.LoadX509KeyPair(a.cert, a.key)
			if err != nil {
				return nil, fmt.Errorf("--cert/--key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		if a.ca != "" {
			pool, err := certs.Pool(a.ca)
			if err != nil {
				return nil, fmt.Errorf("--ca: %w", err)
			}
			cfg.RootCAs = pool
		}
		creds = credentials.NewTLS(cfg)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if a.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(access.Bearer{Token: a.token, Insecure: a.plaintext}))
	}
	return grpc.NewClient(a.addr, opts...)
}

// soleOrg is the one org the token sees.
func (a *api) soleOrg(ctx context.Context, s *session) (string, error) {
	resp, err := s.admin().ListOrgs(ctx, &tandemv1.ListOrgsRequest{})
	if err != nil {
		return "", a.explain(err)
	}
	if len(resp.GetOrgs()) != 1 {
		return "", fmt.Errorf("the token sees %d orgs at %s: choose one with --org or $TANDEM_ORG", len(resp.GetOrgs()), a.addr)
	}
	return resp.GetOrgs()[0].GetOrgId(), nil
}

// explain turns an API error into a sentence with a hint.
func (a *api) explain(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		hint := "is `tandem dev` running?"
		switch {
		case a.plaintext && a.addr != defaultAPIAddr:
			hint = "is it running, and does it serve TLS (drop --plaintext)?"
		case !a.plaintext:
			hint = "is it running, and does it serve plain text (--plaintext, as tandem dev does)?"
		}
		return fmt.Errorf("no Tandem API at %s — %s (%s)", a.addr, hint, st.Message())
	case codes.Unauthenticated:
		return fmt.Errorf("the API at %s refused the token: %s", a.addr, st.Message())
	case codes.PermissionDenied:
		return fmt.Errorf("not allowed: %s", st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("the API at %s did not answer within %s", a.addr, apiTimeout)
	case codes.ResourceExhausted:
		return fmt.Errorf("slow down: %s", st.Message())
	}
	return errors.New(st.Message())
}
