package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"sigs.k8s.io/yaml"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Configurations and orgs are YAML documents: protobuf's JSON with the .proto field names
// (snake_case), enums by name, as `tandem config get` prints them.

// toYAML renders m as a YAML document.
func toYAML(m proto.Message) ([]byte, error) {
	j, err := jsonOf(m)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

// printDocs prints msgs as YAML documents, or as a JSON array with format json.
func printDocs[M proto.Message](w io.Writer, format string, msgs []M) error {
	if format == formatJSON {
		return renderList(w, formatJSON, nil, msgs)
	}
	for i, m := range msgs {
		b, err := toYAML(m)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(w, "---")
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// fromYAML decodes one YAML document into m, refusing fields m does not have.
func fromYAML(doc []byte, m proto.Message) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	return protojson.Unmarshal(j, m)
}

// yamlDocs splits a YAML stream into its non-empty documents.
func yamlDocs(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if len(bytes.TrimSpace(cur.Bytes())) > 0 {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	for line := range bytes.Lines(b) {
		if bytes.Equal(bytes.TrimRight(line, " \t\r\n"), []byte("---")) {
			flush()
			continue
		}
		cur.Write(line)
	}
	flush()
	return docs
}

// readInput reads a file, or stdin for "-".
func readInput(cmd *cobra.Command, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	return os.ReadFile(path) //nolint:gosec // reading the file the admin named is the point
}

// confirm asks on the command's input; anything but y or yes is no.
func confirm(cmd *cobra.Command, question string) bool {
	fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/N] ", question)
	answer, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}

// diff shows what applying desired over current changes (- now, + after).
func diff(current, desired proto.Message) string {
	return cmp.Diff(current, desired, protocmp.Transform())
}

func configCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &api{stdout: stdout, stderr: stderr}
	cmd := &cobra.Command{Use: "config", Short: "sync configurations as YAML: get, apply, delete"}
	get := &cobra.Command{
		Use:   "get [ID]",
		Short: "print the org's configurations (or one) as YAML documents",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, true, false, func(ctx context.Context, s *session) error {
				var cfgs []*tandemv1.SyncConfiguration
				if len(args) == 1 {
					resp, err := s.admin().GetSyncConfiguration(ctx, &tandemv1.GetSyncConfigurationRequest{OrgId: s.org, Id: args[0]})
					if err != nil {
						return err
					}
					cfgs = append(cfgs, resp.GetConfiguration())
				} else {
					resp, err := s.admin().ListSyncConfigurations(ctx, &tandemv1.ListSyncConfigurationsRequest{OrgId: s.org})
					if err != nil {
						return err
					}
					cfgs = resp.GetConfigurations()
				}
				return printDocs(stdout, a.output, cfgs)
			})
		},
	}
	var file string
	var yes bool
	apply := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "make the org's configurations what FILE says: validates all, shows the changes, asks, then writes",
		Long: `Apply reads YAML documents of sync configurations (as tandem config get prints them) from FILE
("-" for stdin). A document with an id replaces that configuration; one without matches the
configuration of the same name, or creates one. Every document is validated before anything is
written; the changes are shown and applied once you answer y (or with --yes). Applying the same
file twice changes nothing the second time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError("tandem config apply: -f FILE is required")
			}
			raw, err := readInput(cmd, file)
			if err != nil {
				return failed(cmd, err)
			}
			return a.run(cmd, true, false, func(ctx context.Context, s *session) error {
				return applyConfigs(ctx, cmd, s, file, raw, yes)
			})
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "YAML file of configurations; - for stdin")
	apply.Flags().BoolVarP(&yes, "yes", "y", false, "apply without asking")
	del := &cobra.Command{
		Use:   "delete ID",
		Short: "delete a configuration; its users stop syncing",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, true, false, func(ctx context.Context, s *session) error {
				if !yes && !confirm(cmd, fmt.Sprintf("Delete configuration %s? Its users stop syncing.", args[0])) {
					return usageErr{errors.New("not deleted (answer y, or pass --yes)")}
				}
				if _, err := s.admin().DeleteSyncConfiguration(ctx, &tandemv1.DeleteSyncConfigurationRequest{OrgId: s.org, Id: args[0]}); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "deleted configuration %s\n", args[0])
				return nil
			})
		},
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	cmd.AddCommand(get, apply, del)
	a.bind(cmd, formatYAML, formatJSON)
	return cmd
}

// applyConfigs applies the configurations of raw (read from file): all validated first, then
// each change shown, confirmed and written.
func applyConfigs(ctx context.Context, cmd *cobra.Command, s *session, file string, raw []byte, yes bool) error {
	out := cmd.OutOrStdout()
	docs := yamlDocs(raw)
	if len(docs) == 0 {
		return usageErr{fmt.Errorf("%s holds no configuration", file)}
	}
	existing, err := s.admin().ListSyncConfigurations(ctx, &tandemv1.ListSyncConfigurationsRequest{OrgId: s.org})
	if err != nil {
		return err
	}
	type change struct {
		current, desired *tandemv1.SyncConfiguration
	}
	var changes []change
	for i, doc := range docs {
		desired := &tandemv1.SyncConfiguration{}
		if err := fromYAML(doc, desired); err != nil {
			return usageErr{fmt.Errorf("%s, document %d: %w", file, i+1, err)}
		}
		if desired.GetOrgId() == "" {
			desired.OrgId = s.org
		}
		if desired.GetOrgId() != s.org {
			return usageErr{fmt.Errorf("%s, document %d: org_id %s is not the org applied to (%s; choose it with --org)", file, i+1, desired.GetOrgId(), s.org)}
		}
		desired.UpdatedAt = nil
		current, err := matchConfig(existing.GetConfigurations(), desired)
		if err != nil {
			return usageErr{fmt.Errorf("%s, document %d: %w", file, i+1, err)}
		}
		if current != nil {
			desired.Id = current.GetId()
		}
		// The server checks it, and says how it would store it (names trimmed, lists without
		// duplicates): what is compared with the stored configuration.
		valid, err := s.admin().PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: desired, ValidateOnly: true})
		if err != nil {
			return fmt.Errorf("%s, document %d (%s) is not valid: %w", file, i+1, desired.GetName(), s.a.explain(err))
		}
		desired = valid.GetConfiguration()
		if current != nil {
			now := proto.Clone(current).(*tandemv1.SyncConfiguration)
			now.UpdatedAt = nil
			if proto.Equal(now, desired) {
				fmt.Fprintf(out, "configuration %q (%s) unchanged\n", desired.GetName(), desired.GetId())
				continue
			}
			current = now
		}
		changes = append(changes, change{current, desired})
	}
	if len(changes) == 0 {
		return nil
	}
	for _, c := range changes {
		if c.current == nil {
			fmt.Fprintf(out, "configuration %q will be created:\n", c.desired.GetName())
			b, err := toYAML(c.desired)
			if err != nil {
				return err
			}
			if _, err := out.Write(b); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(out, "configuration %q (%s) will change (- now, + after):\n%s", c.desired.GetName(), c.desired.GetId(), diff(c.current, c.desired))
	}
	if !yes && !confirm(cmd, fmt.Sprintf("Apply %d change(s)?", len(changes))) {
		return usageErr{errors.New("nothing applied (answer y, or pass --yes)")}
	}
	for _, c := range changes {
		resp, err := s.admin().PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: c.desired})
		if err != nil {
			return fmt.Errorf("apply configuration %q: %w", c.desired.GetName(), s.a.explain(err))
		}
		verb := "changed"
		if c.current == nil {
			verb = "created"
		}
		fmt.Fprintf(out, "configuration %q (%s) %s\n", resp.GetConfiguration().GetName(), resp.GetConfiguration().GetId(), verb)
	}
	return nil
}

// matchConfig finds the configuration desired replaces: by id, else by name; nil for a new one.
func matchConfig(existing []*tandemv1.SyncConfiguration, desired *tandemv1.SyncConfiguration) (*tandemv1.SyncConfiguration, error) {
	if id := desired.GetId(); id != "" {
		for _, c := range existing {
			if c.GetId() == id {
				return c, nil
			}
		}
		return nil, fmt.Errorf("no configuration with id %s (drop the id to create one)", id)
	}
	var found *tandemv1.SyncConfiguration
	for _, c := range existing {
		if strings.TrimSpace(c.GetName()) == strings.TrimSpace(desired.GetName()) {
			if found != nil {
				return nil, fmt.Errorf("several configurations are named %q: give the id of the one to replace", desired.GetName())
			}
			found = c
		}
	}
	return found, nil
}
