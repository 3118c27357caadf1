package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// The output formats of the admin commands.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatCSV   = "csv"
	formatYAML  = "yaml"
)

// listFormats are the formats of commands that print lists.
var listFormats = []string{formatTable, formatJSON, formatCSV}

// table is rows of cells under a header: printed aligned for people, or as CSV for
// spreadsheets (the sync error report, as Lightning Sync exports it).
type table struct {
	header []string
	rows   [][]string
}

func newTable(header ...string) *table { return &table{header: header} }

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range append([][]string{t.header}, t.rows...) {
		cells := make([]string, len(r))
		for i, c := range r {
			// One line per row: a message with a line break would break the table.
			cells[i] = strings.Join(strings.Fields(c), " ")
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func (t *table) csv(w io.Writer) error {
	cw := csv.NewWriter(w)
	header := make([]string, len(t.header))
	for i, h := range t.header {
		header[i] = strings.ToLower(strings.ReplaceAll(h, " ", "_"))
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	if err := cw.WriteAll(t.rows); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// jsonOf is a message as the JSON the commands print: protobuf's JSON with the .proto field
// names, as the YAML of configurations uses.
func jsonOf(m proto.Message) (json.RawMessage, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	// protojson varies its whitespace on purpose; the commands print it compact and stable.
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// renderList prints a list: t as a table or CSV, or msgs as a JSON array.
func renderList[M proto.Message](w io.Writer, format string, t *table, msgs []M) error {
	switch format {
	case formatCSV:
		return t.csv(w)
	case formatJSON:
		out := make([]json.RawMessage, 0, len(msgs))
		for _, m := range msgs {
			b, err := jsonOf(m)
			if err != nil {
				return err
			}
			out = append(out, b)
		}
		return writeJSON(w, out)
	}
	return t.print(w)
}

// renderOne prints one message: for people with human, as JSON, or as CSV rows of field paths
// and values.
func renderOne(w io.Writer, format string, m proto.Message, human func(io.Writer)) error {
	switch format {
	case formatJSON:
		b, err := jsonOf(m)
		if err != nil {
			return err
		}
		return writeJSON(w, b)
	case formatCSV:
		b, err := jsonOf(m)
		if err != nil {
			return err
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		t := newTable("field", "value")
		flatten("", v, t)
		slices.SortStableFunc(t.rows, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
		return t.csv(w)
	}
	human(w)
	return nil
}

// flatten adds a row per leaf of v, named by its path (kinds.0.records_in_sync).
func flatten(path string, v any, t *table) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			flatten(join(k), e, t)
		}
	case []any:
		for i, e := range v {
			flatten(join(fmt.Sprint(i)), e, t)
		}
	default:
		t.add(path, fmt.Sprint(v))
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
