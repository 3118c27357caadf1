package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-sync/tandem/cmd/tandem/internal/settingsdoc"
	"github.com/tandem-sync/tandem/cmd/tandem/internal/sourcetree"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/settings"
)

// TestSettingsGenerated fails when what is generated from the services' flags — the variables
// every service accepts (pkg/platform/variables.go) and the README's settings table — is not
// what the flags give now.
func TestSettingsGenerated(t *testing.T) {
	root, err := sourcetree.Root(".")
	if err != nil {
		t.Fatal(err)
	}
	files, err := settingsdoc.Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range files {
		got, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s is stale; regenerate it with: cd cmd/tandem && go generate ./internal/settingsgen\n--- committed\n+++ generated\n%s", path, lineDiff(string(got), string(want)))
		}
	}
}

// TestSettingsListEveryService: the generator knows every service binary there is, so a new
// service's variables cannot be left out of what the others accept.
func TestSettingsListEveryService(t *testing.T) {
	mains, err := filepath.Glob(filepath.Join("..", "..", "services", "*", "cmd", "*"))
	if err != nil || len(mains) == 0 {
		t.Fatalf("no service binaries found under services/*/cmd (%v)", err)
	}
	var binaries, listed []string
	for _, m := range mains {
		binaries = append(binaries, filepath.Base(m))
	}
	for _, s := range settingsdoc.Services() {
		listed = append(listed, s.Name)
	}
	slices.Sort(binaries)
	slices.Sort(listed)
	if !slices.Equal(binaries, listed) {
		t.Errorf("settingsdoc.Services lists %v, the service binaries are %v", listed, binaries)
	}
}

// TestSettingsEveryServiceAcceptsEveryVariable parses, with each service's real flags as
// platform.Main does, an environment that sets every variable of the other services: none is
// refused and none sets a flag of the service; a typo is still refused.
func TestSettingsEveryServiceAcceptsEveryVariable(t *testing.T) {
	for _, svc := range settingsdoc.Services() {
		t.Run(svc.Name, func(t *testing.T) {
			parse := func(environ []string) (*flag.FlagSet, error) {
				fs := flag.NewFlagSet(svc.Name, flag.ContinueOnError)
				svc.Register(fs)
				return fs, settings.Parse(fs, nil, environ, platform.EnvPrefix, settings.AlsoKnown(platform.Variables()))
			}
			fs, _ := parse(nil)
			own := settings.Known(fs, platform.EnvPrefix)
			var others []string
			for _, v := range platform.Variables() {
				if !slices.Contains(own, v) {
					// A value no flag of any type would take: it must not be parsed at all.
					others = append(others, v+"=not-a-value-for-"+svc.Name)
				}
			}
			if len(others) == 0 {
				t.Fatal("no variables of other services to try")
			}
			fs, err := parse(others)
			if err != nil {
				t.Fatalf("the other services' variables: %v", err)
			}
			fs.VisitAll(func(f *flag.Flag) {
				if f.Value.String() != f.DefValue {
					t.Errorf("--%s = %s, want its default %s: another service's variable set it", f.Name, f.Value, f.DefValue)
				}
			})
			_, err = parse(append(others, "TANDEM_REDIS_ULR=redis://typo"))
			if err == nil || !strings.Contains(err.Error(), "TANDEM_REDIS_ULR (did you mean TANDEM_REDIS_URL?)") {
				t.Errorf("TANDEM_REDIS_ULR: err = %v, want it refused with a suggestion", err)
			}
		})
	}
}

func TestSettingsTable(t *testing.T) {
	services := []settingsdoc.Service{
		{Name: "a", Register: func(fs *flag.FlagSet) {
			fs.String("shared", "x", "in both")
			fs.Int("width", 1, "columns | of <a>")
		}},
		{Name: "b", Register: func(fs *flag.FlagSet) {
			fs.String("shared", "x", "in both")
			fs.Int("width", 2, "rows of b")
			fs.Bool("only-b", false, "")
		}},
	}
	all := settingsdoc.Collect(services)
	if got, want := settingsdoc.Variables(all), []string{"TANDEM_ONLY_B", "TANDEM_SHARED", "TANDEM_WIDTH"}; !slices.Equal(got, want) {
		t.Errorf("Variables = %v, want %v", got, want)
	}
	table := settingsdoc.Table(all, services)
	for _, row := range []string{
		"| `TANDEM_ONLY_B` | `--only-b` | b | `false` |  |\n",
		"| `TANDEM_SHARED` | `--shared` | all | `x` | in both |\n",
		"| `TANDEM_WIDTH` | `--width` | a | `1` | columns \\| of &lt;a&gt; |\n| `TANDEM_WIDTH` | `--width` | b | `2` | rows of b |\n",
	} {
		if !strings.Contains(table, row) {
			t.Errorf("table lacks %q:\n%s", row, table)
		}
	}
	readme := "# T\n\n" + settingsdoc.BeginMarker + "\nold\n" + settingsdoc.EndMarker + "\n\nafter\n"
	got, err := settingsdoc.Splice([]byte(readme), "new\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "# T\n\n" + settingsdoc.BeginMarker + "\nnew\n" + settingsdoc.EndMarker + "\n\nafter\n"; string(got) != want {
		t.Errorf("Splice = %q, want %q", got, want)
	}
	for _, broken := range []string{"no markers\n", settingsdoc.BeginMarker + "\nno end\n", settingsdoc.BeginMarker + "\n" + settingsdoc.EndMarker + "\n" + settingsdoc.BeginMarker + "\n"} {
		if _, err := settingsdoc.Splice([]byte(broken), "new\n"); err == nil {
			t.Errorf("Splice(%q) succeeded", broken)
		}
	}
}

// lineDiff shows the lines of a and b that differ, "-" for a's and "+" for b's, with a line of
// context either side (a longest-common-subsequence diff: the files are small).
func lineDiff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	// lcs[i][j] is the length of the longest common subsequence of x[i:] and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
	}
	var lines []line
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			lines = append(lines, line{' ', x[i]})
			i++
			j++
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			lines = append(lines, line{'-', x[i]})
			i++
		default:
			lines = append(lines, line{'+', y[j]})
			j++
		}
	}
	var out strings.Builder
	for k, l := range lines {
		near := l.op != ' ' || (k > 0 && lines[k-1].op != ' ') || (k+1 < len(lines) && lines[k+1].op != ' ')
		if near {
			fmt.Fprintf(&out, "%c%s\n", l.op, l.text)
		}
	}
	return out.String()
}

func TestLineDiff(t *testing.T) {
	got := lineDiff("a\nb\nc\nd\ne\n", "a\nb\nC\nd\ne\nf\n")
	want := " b\n-c\n+C\n d\n e\n+f\n \n"
	if got != want {
		t.Errorf("lineDiff =\n%q\nwant\n%q", got, want)
	}
}
