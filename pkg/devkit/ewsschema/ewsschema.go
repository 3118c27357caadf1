// Package ewsschema holds Microsoft's EWS schema (types.xsd and messages.xsd, as Exchange
// serves them) and validates SOAP envelopes against it with xmllint. The EWS client's tests
// validate every request it builds and the simulator's tests every response it sends, against
// this one copy of the schema (see schema/SOURCE.txt for where it comes from).
package ewsschema

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

//go:embed schema/*.xsd schema/SOURCE.txt
var files embed.FS

const nsSOAP = "http://schemas.xmlsoap.org/soap/envelope/"

// ErrNoXmllint means xmllint is not installed (Debian: libxml2-utils).
var ErrNoXmllint = errors.New("xmllint is not installed (apt-get install libxml2-utils)")

// Problem is an envelope that failed validation.
type Problem struct {
	// Index is the envelope's position in the input.
	Index int
	// Detail is xmllint's complaint and the document.
	Detail string
}

// Parts cuts a SOAP envelope into the standalone documents the schema describes: each header
// element and the element inside the body, with the namespace declarations they inherit copied
// onto them. SOAP faults are not EWS schema types and are left out.
func Parts(envelope []byte) ([][]byte, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(envelope); err != nil {
		return nil, err
	}
	root := doc.Root()
	if root == nil {
		return nil, errors.New("empty document")
	}
	var out [][]byte
	for _, section := range []string{"Header", "Body"} {
		s := root.SelectElement(section)
		if s == nil {
			continue
		}
		for _, c := range s.ChildElements() {
			if c.Tag == "Fault" && c.NamespaceURI() == nsSOAP {
				continue
			}
			cp := c.Copy()
			for _, holder := range []*etree.Element{root, s} {
				for _, a := range holder.Attr {
					isDecl := a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns")
					if isDecl && cp.SelectAttr(a.FullKey()) == nil {
						cp.CreateAttr(a.FullKey(), a.Value)
					}
				}
			}
			d := etree.NewDocument()
			d.SetRoot(cp)
			b, err := d.WriteToBytes()
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
	}
	return out, nil
}

// Validate validates the parts of each envelope against the schema, in as few xmllint runs as
// it can, and returns the envelopes that fail. It returns ErrNoXmllint when xmllint is missing.
func Validate(ctx context.Context, envelopes [][]byte) ([]Problem, error) {
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		return nil, ErrNoXmllint
	}
	dir, err := os.MkdirTemp("", "ewsschema-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	schema, err := writeSchema(dir)
	if err != nil {
		return nil, err
	}

	var problems []Problem
	var docs []string
	origin := map[string]int{}
	for i, raw := range envelopes {
		parts, err := Parts(raw)
		if err != nil {
			problems = append(problems, Problem{i, fmt.Sprintf("not a SOAP envelope: %v\n%s", err, raw)})
			continue
		}
		for j, p := range parts {
			name := filepath.Join(dir, fmt.Sprintf("doc-%05d-%d.xml", i, j))
			if err := os.WriteFile(name, p, 0o600); err != nil {
				return nil, err
			}
			docs = append(docs, name)
			origin[name] = i
		}
	}
	const batch = 500
	for start := 0; start < len(docs); start += batch {
		chunk := docs[start:min(start+batch, len(docs))]
		out, err := exec.CommandContext(ctx, xmllint, append([]string{"--noout", "--schema", schema}, chunk...)...).CombinedOutput()
		if err == nil {
			continue
		}
		report := string(out)
		found := false
		for _, f := range chunk {
			if strings.Contains(report, f+" fails to validate") {
				found = true
				i := origin[f]
				problems = append(problems, Problem{i, fmt.Sprintf("fails EWS schema validation:\n%s\ndocument: %s", linesAbout(report, f), envelopes[i])})
			}
		}
		if !found {
			return problems, fmt.Errorf("xmllint failed: %w\n%s", err, report)
		}
	}
	sort.Slice(problems, func(i, j int) bool { return problems[i].Index < problems[j].Index })
	return problems, nil
}

// Check validates envelopes for a test: each failing envelope is a test error, named by
// names[i] when given. Without xmllint the test fails: it never passes unvalidated (.ci/run
// installs xmllint).
func Check(t testing.TB, envelopes [][]byte, names ...string) {
	t.Helper()
	problems, err := Validate(context.Background(), envelopes)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		name := fmt.Sprintf("envelope %d", p.Index)
		if p.Index < len(names) {
			name = names[p.Index]
		}
		t.Errorf("%s %s", name, p.Detail)
	}
}

// writeSchema copies the embedded schema into dir and returns the path of its entry point.
func writeSchema(dir string) (string, error) {
	err := fs.WalkDir(files, "schema", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, filepath.Base(path)), data, 0o600)
	})
	return filepath.Join(dir, "ews-validate.xsd"), err
}

func linesAbout(report, file string) string {
	var out []string
	for _, l := range strings.Split(report, "\n") {
		if strings.Contains(l, file) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
