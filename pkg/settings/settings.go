// Package settings maps environment variables onto command-line flags, so that every Tandem
// component declares each setting once — as a flag with its default and help text — and can be
// configured either way: `--redis-url` or TANDEM_REDIS_URL. A flag given on the command line wins
// over the environment.
//
// It is strict: an environment variable with the prefix that names no flag is an error, so a
// typo (TANDEM_REDIS_ULR) fails at start-up instead of silently using a default.
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

// Parse parses args into fs, then sets every flag not given on the command line from its
// environment variable in environ (os.Environ() format). Unknown prefixed variables are errors.
func Parse(fs *flag.FlagSet, args, environ []string, prefix string) error {
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
			unknown = append(unknown, name)
			continue
		}
		if given[f.Name] {
			continue
		}
		if err := fs.Set(f.Name, value); err != nil {
			return fmt.Errorf("environment variable %s: %w", name, err)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown environment variables %s (known: %s)", strings.Join(unknown, ", "), strings.Join(Known(fs, prefix), ", "))
	}
	return nil
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
