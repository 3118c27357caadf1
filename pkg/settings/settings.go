// Package settings maps environment variables onto command-line flags, so that every Tandem
// component declares each setting once — as a flag with its default and help text — and can be
// configured either way: `--redis-url` or TANDEM_REDIS_URL. A flag given on the command line wins
// over the environment.
//
// It is strict: an environment variable with the prefix that names no flag is an error, so a
// typo (TANDEM_REDIS_ULR) fails at start-up instead of silently using a default. Variables that
// belong to other components of the same product (AlsoKnown) are ignored instead, so that one
// environment — a ConfigMap shared by every Deployment — can configure them all.
package settings

import (
	"flag"
	"fmt"
	"sort"
	"strings"
)

// EnvName returns the environment variable for a flag: prefix + upper-case name with dashes
// turned into underscores ("redis-url" → "TANDEM_REDIS_URL").
func EnvName(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Option changes how Parse reads the environment.
type Option func(*options)

type options struct {
	alsoKnown map[string]bool
}

// AlsoKnown names the environment variables of the other components of the product (those of
// fs may be among them): Parse ignores them rather than refusing them as typos, and suggests
// them for a misspelt variable. Only the variables of no component remain errors.
func AlsoKnown(names []string) Option {
	return func(o *options) {
		for _, n := range names {
			o.alsoKnown[n] = true
		}
	}
}

// Parse parses args into fs, then sets every flag not given on the command line from its
// environment variable in environ (os.Environ() format). A prefixed variable that names no flag
// of fs is ignored if AlsoKnown names it and is otherwise an error, which lists the variables
// of fs and suggests the known variable a misspelt one probably meant.
func Parse(fs *flag.FlagSet, args, environ []string, prefix string, opts ...Option) error {
	o := options{alsoKnown: map[string]bool{}}
	for _, opt := range opts {
		opt(&o)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	byEnv := map[string]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) { byEnv[EnvName(prefix, f.Name)] = f })

	var unknown []string
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, prefix) {
			continue
		}
		f, known := byEnv[name]
		if !known {
			if !o.alsoKnown[name] {
				unknown = append(unknown, name)
			}
			continue
		}
		if given[f.Name] {
			continue
		}
		if err := fs.Set(f.Name, value); err != nil {
			return fmt.Errorf("environment variable %s: %w", name, err)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	candidates := Known(fs, prefix)
	for n := range o.alsoKnown {
		if _, own := byEnv[n]; !own && strings.HasPrefix(n, prefix) {
			candidates = append(candidates, n)
		}
	}
	sort.Strings(candidates)
	described := make([]string, len(unknown))
	for i, name := range unknown {
		described[i] = name
		if guess := closest(name, candidates); guess != "" {
			described[i] += " (did you mean " + guess + "?)"
		}
	}
	return fmt.Errorf("unknown environment variables %s (known: %s)", strings.Join(described, ", "), strings.Join(Known(fs, prefix), ", "))
}

// Known lists the environment variables fs understands, sorted.
func Known(fs *flag.FlagSet, prefix string) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, EnvName(prefix, f.Name)) })
	sort.Strings(names)
	return names
}

// Usage returns fs's help text with each flag's environment variable, for --help.
func Usage(fs *flag.FlagSet, prefix string) string {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "  --%s", f.Name)
		if name != "" {
			fmt.Fprintf(&b, " %s", name)
		}
		fmt.Fprintf(&b, "\n    \t%s", strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
			fmt.Fprintf(&b, " (default %s)", f.DefValue)
		}
		fmt.Fprintf(&b, " [$%s]\n", EnvName(prefix, f.Name))
	})
	return b.String()
}

// maxTypo is the most single-character edits (insertions, deletions, substitutions,
// transpositions of neighbours) that closest takes for a typo.
const maxTypo = 2

// closest returns the candidate nearest to name within maxTypo edits, the first of equals; ""
// if none is that near.
func closest(name string, candidates []string) string {
	best, bestDist := "", maxTypo+1
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b: Levenshtein's, with a
// swap of two neighbouring characters counted as one edit (ULR for URL).
func editDistance(a, b string) int {
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
