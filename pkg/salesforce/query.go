package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-sync/tandem/pkg/syncerr"
)

// QueryResult is one page of a SOQL query's answer.
type QueryResult struct {
	// TotalSize is the number of rows the whole query matched.
	TotalSize int
	// Done is true on the last page.
	Done bool
	// NextRecordsURL is the path of the next page when Done is false.
	NextRecordsURL string
	// Records are the page's rows.
	Records []SObject

	// served is the answer's Date: the org's clock when it answered (zero when absent).
	served time.Time
}

// queryPageRows is how many rows a query page holds: Salesforce's default batch size, which is
// also the largest.
const queryPageRows = 2000

// SObject is one row as Salesforce returns it: field API names to JSON values (string,
// json.Number, bool, nil), relationship fields as nested SObjects and child subqueries as
// nested query results.
type SObject map[string]any

// ParseQueryResult reads a query or queryMore answer. Numbers stay json.Number so ids and
// amounts keep their exact text. The answer is decoded in one pass: a page is 2,000 rows, and
// a poll reads every row, read-back rows included.
func ParseQueryResult(body []byte) (*QueryResult, error) {
	var wire struct {
		TotalSize      *int             `json:"totalSize"`
		Done           *bool            `json:"done"`
		NextRecordsURL string           `json:"nextRecordsUrl"`
		Records        []map[string]any `json:"records"`
	}
	if err := decodeJSONNumbers(body, &wire); err != nil {
		return nil, fmt.Errorf("decode query result: %w", err)
	}
	if wire.Done == nil || wire.TotalSize == nil {
		return nil, errors.New("query result without done or totalSize")
	}
	r := &QueryResult{TotalSize: *wire.TotalSize, Done: *wire.Done, NextRecordsURL: wire.NextRecordsURL}
	if !r.Done && !strings.HasPrefix(r.NextRecordsURL, "/services/data/") {
		return nil, fmt.Errorf("query result not done but nextRecordsUrl is %q", r.NextRecordsURL)
	}
	r.Records = make([]SObject, 0, len(wire.Records))
	for i, rec := range wire.Records {
		if rec == nil {
			return nil, fmt.Errorf("query result record %d: record is null", i)
		}
		r.Records = append(r.Records, normalize(rec).(SObject))
	}
	return r, nil
}

// normalize turns nested JSON objects into SObjects so that lookups work at every level.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalize(e)
		}
		return SObject(t)
	case []any:
		for i, e := range t {
			t[i] = normalize(e)
		}
	}
	return v
}

// Get returns the value at a field path such as "Email" or "Account.Name". Field names match
// case-insensitively, as they do in SOQL.
func (o SObject) Get(path string) (any, bool) {
	cur := o
	for {
		name, rest, more := strings.Cut(path, ".")
		v, ok := cur.field(name)
		if !ok || !more {
			return v, ok
		}
		next, isObj := v.(SObject)
		if !isObj {
			return nil, false
		}
		cur, path = next, rest
	}
}

func (o SObject) field(name string) (any, bool) {
	if v, ok := o[name]; ok {
		return v, true
	}
	for k, v := range o {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// String returns the field as text: strings as they are, numbers and booleans in their JSON
// form, and "" for null or missing fields.
func (o SObject) String(path string) string {
	v, _ := o.Get(path)
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	default:
		return ""
	}
}

// Bool returns a boolean field, false when null or missing.
func (o SObject) Bool(path string) bool {
	v, _ := o.Get(path)
	b, _ := v.(bool)
	return b
}

// Int returns an integer field, 0 when null, missing or not an integer.
func (o SObject) Int(path string) int64 {
	v, _ := o.Get(path)
	n, ok := v.(json.Number)
	if !ok {
		return 0
	}
	i, err := n.Int64()
	if err != nil {
		f, ferr := n.Float64()
		if ferr != nil {
			return 0
		}
		return int64(f)
	}
	return i
}

// Time returns a datetime field. ok is false when the field is null or missing; err is set
// when it holds something that is not a datetime.
func (o SObject) Time(path string) (t time.Time, ok bool, err error) {
	s := o.String(path)
	if s == "" {
		return time.Time{}, false, nil
	}
	t, err = parseDateTime(s)
	return t, err == nil, err
}

// Child returns the rows of a child subquery (e.g. "EventRelations") and the path of its next
// page when Salesforce did not return all of them.
func (o SObject) Child(name string) (rows []SObject, next string) {
	v, _ := o.Get(name)
	sub, ok := v.(SObject)
	if !ok {
		return nil, ""
	}
	if done, _ := sub["done"].(bool); !done {
		next, _ = sub["nextRecordsUrl"].(string)
	}
	list, _ := sub["records"].([]any)
	for _, e := range list {
		if r, ok := e.(SObject); ok {
			rows = append(rows, r)
		}
	}
	return rows, next
}

// dateTimeLayouts are the forms Salesforce writes datetimes in: its own
// "2024-01-02T03:04:05.000+0000" and RFC 3339.
var dateTimeLayouts = []string{"2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05-0700", time.RFC3339Nano}

func parseDateTime(s string) (time.Time, error) {
	for _, layout := range dateTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a Salesforce datetime", s)
}

// queryPages runs a SOQL statement and calls page for every page, in order. all selects
// queryAll, which also returns deleted rows still in the recycle bin.
//
// The next page is fetched while page handles the current one, so that a long read costs the
// larger of the two rather than their sum: at most one page more is held. When page fails, the
// fetch under way is cancelled and waited for before queryPages returns.
func (c *Connector) queryPages(ctx context.Context, subject, soql string, all bool, page func(*QueryResult) error) error {
	op, path := "query", "query"
	if all {
		op, path = "queryAll", "queryAll"
	}
	res, err := c.queryPage(ctx, request{op: op, method: http.MethodGet, path: path, query: url.Values{"q": {soql}}, subject: subject, idempotent: true})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for {
		var next chan fetchedPage
		if !res.Done {
			next = make(chan fetchedPage, 1)
			more := request{op: op + "More", method: http.MethodGet, path: res.NextRecordsURL, subject: subject, idempotent: true}
			go func() {
				r, err := c.queryPage(ctx, more)
				next <- fetchedPage{r, err}
			}()
		}
		if err := page(res); err != nil {
			if next != nil {
				cancel()
				<-next
			}
			return err
		}
		if next == nil {
			return nil
		}
		f := <-next
		if f.err != nil {
			return f.err
		}
		res = f.res
	}
}

// fetchedPage is a query page fetched ahead, or why it could not be.
type fetchedPage struct {
	res *QueryResult
	err error
}

// queryPage fetches and parses one page of a query.
func (c *Connector) queryPage(ctx context.Context, req request) (*QueryResult, error) {
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	res, err := ParseQueryResult(resp.body)
	if err != nil {
		return nil, syncerr.Wrap(syncerr.SalesforceMalformedResponse, fmt.Errorf("%s: %w", req.op, err))
	}
	if date, err := http.ParseTime(resp.header.Get("Date")); err == nil {
		res.served = date.UTC()
	}
	return res, nil
}

// queryAllRows runs a statement and collects every row.
func (c *Connector) queryAllRows(ctx context.Context, subject, soql string) ([]SObject, error) {
	var rows []SObject
	err := c.queryPages(ctx, subject, soql, false, func(r *QueryResult) error {
		rows = append(rows, r.Records...)
		return nil
	})
	return rows, err
}
