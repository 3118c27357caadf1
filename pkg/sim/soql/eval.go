package soql

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Record is what a query is evaluated against.
//
// Get returns the value at path: a field name, or parent relationship names followed by a
// field name, all matched case-insensitively. ok is false when the object has no such field
// (an INVALID_FIELD error); a field that is empty, or a path through a relationship that is
// not set, gives nil and true.
//
// Values are nil, string, ID (Salesforce ids, compared as Salesforce compares 15- and 18-
// character ids), bool, int, int64, float64, time.Time (datetime fields) or Date (date fields).
// Multi-select picklists are strings with values separated by semicolons.
type Record interface {
	Get(path []string) (value any, ok bool)
}

// ID is a Salesforce record id as a field value. A 15-character id equals the 18-character
// form of the same id; 18-character ids compare case-insensitively.
type ID string

// Matcher evaluates one query's WHERE clause against many records. It resolves relative date
// literals once, against its Env, and compiles LIKE patterns once.
type Matcher struct {
	where Expr
	spans map[*Value]span
	likes map[*Comparison]likePattern
}

// Matcher prepares the query's condition for evaluation at env (zero Env: now, in UTC).
func (q *Query) Matcher(env Env) (*Matcher, error) {
	env = env.normalized()
	m := &Matcher{where: q.Where, spans: map[*Value]span{}, likes: map[*Comparison]likePattern{}}
	var prepare func(e Expr) error
	prepare = func(e Expr) error {
		switch e := e.(type) {
		case *And:
			for _, t := range e.Terms {
				if err := prepare(t); err != nil {
					return err
				}
			}
		case *Or:
			for _, t := range e.Terms {
				if err := prepare(t); err != nil {
					return err
				}
			}
		case *Not:
			return prepare(e.X)
		case *Comparison:
			lits := make([]*Value, 0, len(e.Values)+1)
			if e.Op.isList() {
				for i := range e.Values {
					lits = append(lits, &e.Values[i])
				}
			} else {
				lits = append(lits, &e.Value)
			}
			for _, v := range lits {
				if v.Kind != KindDateLiteral {
					continue
				}
				s, err := env.resolve(v.Literal)
				if err != nil {
					return &Error{Code: CodeMalformedQuery, Message: err.Error(), Pos: v.Pos}
				}
				m.spans[v] = s
			}
			if e.Op == OpLike {
				m.likes[e] = compileLike(e.Value)
			}
		}
		return nil
	}
	if q.Where != nil {
		if err := prepare(q.Where); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Match reports whether rec satisfies the query's WHERE clause, with date literals resolved
// against the current time in UTC. For many records or another clock, use Matcher.
func (q *Query) Match(rec Record) (bool, error) {
	m, err := q.Matcher(Env{})
	if err != nil {
		return false, err
	}
	return m.Match(rec)
}

// Match reports whether rec satisfies the condition. A query without WHERE matches everything.
func (m *Matcher) Match(rec Record) (bool, error) {
	if m.where == nil {
		return true, nil
	}
	return m.eval(m.where, rec)
}

func (m *Matcher) eval(e Expr, rec Record) (bool, error) {
	switch e := e.(type) {
	case *And:
		for _, t := range e.Terms {
			ok, err := m.eval(t, rec)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case *Or:
		for _, t := range e.Terms {
			ok, err := m.eval(t, rec)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case *Not:
		ok, err := m.eval(e.X, rec)
		return !ok, err
	case *Comparison:
		return m.compare(e, rec)
	}
	return false, fmt.Errorf("soql: unknown condition %T", e)
}

func (m *Matcher) compare(c *Comparison, rec Record) (bool, error) {
	raw, ok := rec.Get(c.Field.Parts)
	if !ok {
		return false, &Error{Code: CodeInvalidField, Message: fmt.Sprintf("No such column '%s'", c.Field), Pos: c.Field.Pos}
	}
	v := normalize(raw)
	switch c.Op {
	case OpIn, OpNotIn:
		found := false
		for i := range c.Values {
			eq, err := m.test(c, v, OpEq, &c.Values[i])
			if err != nil {
				return false, err
			}
			if eq {
				found = true
				break
			}
		}
		return found == (c.Op == OpIn), nil
	case OpIncludes, OpExcludes:
		return includes(c, v)
	case OpLike:
		if v == nil {
			return false, nil
		}
		s, ok := stringOf(v)
		if !ok {
			return false, typeError(c.Field, v, c.Value)
		}
		return m.likes[c].match(s), nil
	default:
		return m.test(c, v, c.Op, &c.Value)
	}
}

// test applies a single-value operator. Salesforce's null semantics: "= null" and "!= null"
// test for emptiness, an empty field is unequal to every value (so "!=" and NOT IN match it),
// and the ordering operators never match it.
func (m *Matcher) test(c *Comparison, v any, op Operator, lit *Value) (bool, error) {
	if lit.Kind == KindNull {
		switch op {
		case OpEq:
			return v == nil, nil
		case OpNe:
			return v != nil, nil
		}
		return false, nil
	}
	if v == nil {
		return op == OpNe, nil
	}
	r, err := m.relate(c.Field, v, lit)
	if err != nil {
		return false, err
	}
	switch op {
	case OpEq:
		return r == 0, nil
	case OpNe:
		return r != 0, nil
	case OpLt:
		return r < 0, nil
	case OpLe:
		return r <= 0, nil
	case OpGt:
		return r > 0, nil
	case OpGe:
		return r >= 0, nil
	}
	return false, fmt.Errorf("soql: operator %s is not a comparison", op)
}

// relate compares a field value with a literal: -1, 0 or +1. For a relative date literal, 0
// means inside its range, -1 before it and +1 after it, which gives every operator its
// Salesforce meaning (> TODAY is after today, <= TODAY is up to the end of today).
func (m *Matcher) relate(field Path, v any, lit *Value) (int, error) {
	switch v := v.(type) {
	case string:
		if lit.Kind == KindString {
			return foldCompare(v, lit.Str), nil
		}
	case ID:
		if lit.Kind == KindString {
			return compareID(string(v), lit.Str), nil
		}
	case bool:
		if lit.Kind == KindBool {
			return compareBool(v, lit.Bool), nil
		}
	case float64:
		if lit.Kind == KindNumber {
			return compareFloat(v, lit.Num), nil
		}
	case time.Time:
		switch lit.Kind {
		case KindDateTime:
			// Salesforce compares datetimes to the second: the milliseconds of a literal and of
			// a stored value (SystemModstamp keeps them) play no part, so "= 10:00:00Z" matches
			// 10:00:00.900 and "> 10:00:00Z" does not.
			return v.Truncate(time.Second).Compare(lit.Time.Truncate(time.Second)), nil
		case KindDateLiteral:
			s := m.spans[lit]
			switch {
			case v.Before(s.from):
				return -1, nil
			case v.Before(s.to):
				return 0, nil
			default:
				return 1, nil
			}
		}
	case Date:
		switch lit.Kind {
		case KindDate:
			return v.Compare(lit.Date), nil
		case KindDateLiteral:
			s := m.spans[lit]
			switch {
			case v.Compare(s.fromDate) < 0:
				return -1, nil
			case v.Compare(s.toDate) < 0:
				return 0, nil
			default:
				return 1, nil
			}
		}
	}
	return 0, typeError(field, v, *lit)
}

func typeError(field Path, v any, lit Value) *Error {
	name, quoted := typeName(v)
	should := "should not"
	if quoted {
		should = "should"
	}
	return &Error{
		Code:    CodeInvalidField,
		Message: fmt.Sprintf("value of filter criterion for field '%s' must be of type %s and %s be enclosed in quotes", field, name, should),
		Pos:     lit.Pos,
	}
}

func typeName(v any) (name string, quoted bool) {
	switch v.(type) {
	case string:
		return "string", true
	case ID:
		return "id", true
	case bool:
		return "boolean", false
	case float64:
		return "double", false
	case time.Time:
		return "dateTime", false
	case Date:
		return "date", false
	}
	return fmt.Sprintf("%T", v), false
}

// normalize maps the accepted Go types onto the few the evaluator compares.
func normalize(v any) any {
	switch v := v.(type) {
	case int:
		return float64(v)
	case int32:
		return float64(v)
	case int64:
		return float64(v)
	case float32:
		return float64(v)
	case *string:
		if v == nil {
			return nil
		}
		return *v
	}
	return v
}

func stringOf(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case ID:
		return string(v), true
	}
	return "", false
}

func includes(c *Comparison, v any) (bool, error) {
	if v == nil {
		return c.Op == OpExcludes, nil
	}
	s, ok := v.(string)
	if !ok {
		return false, &Error{Code: CodeInvalidFilterOperator, Message: fmt.Sprintf("invalid operator on field '%s': %s requires a multi-select picklist", c.Field, c.Op), Pos: c.Field.Pos}
	}
	have := map[string]bool{}
	for _, part := range strings.Split(s, ";") {
		have[strings.ToLower(strings.TrimSpace(part))] = true
	}
	matched := false
	for _, lit := range c.Values {
		if lit.Kind != KindString {
			return false, typeError(c.Field, s, lit)
		}
		all := true
		for _, want := range strings.Split(lit.Str, ";") {
			if !have[strings.ToLower(strings.TrimSpace(want))] {
				all = false
				break
			}
		}
		if all {
			matched = true
			break
		}
	}
	return matched == (c.Op == OpIncludes), nil
}

// foldCompare compares strings case-insensitively, as Salesforce compares text in filters
// and ORDER BY.
func foldCompare(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		la, lb := unicode.ToLower(ra), unicode.ToLower(rb)
		if la != lb {
			if la < lb {
				return -1
			}
			return 1
		}
		a, b = a[na:], b[nb:]
	}
	return cmpInt(len(a), len(b))
}

// compareID compares Salesforce ids: a 15-character id is case-sensitive and equals the
// first 15 characters of its 18-character form; the 18-character form is case-insensitive.
func compareID(a, b string) int {
	switch {
	case len(a) == 18 && len(b) == 18:
		if strings.EqualFold(a, b) {
			return 0
		}
		return strings.Compare(a, b)
	case len(a) >= 15 && len(b) >= 15 && (len(a) == 15 || len(b) == 15):
		return strings.Compare(a[:15], b[:15])
	}
	return strings.Compare(a, b)
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// likePattern is a compiled LIKE pattern: runes lower-cased, with -1 for % and -2 for _.
type likePattern []rune

const (
	likeAny = -1
	likeOne = -2
)

// compileLike compiles from the raw literal, where an escaped \% or \_ is a literal character
// and an unescaped one a wildcard.
func compileLike(v Value) likePattern {
	var p likePattern
	if v.Raw == "" {
		for _, r := range v.Str {
			switch r {
			case '%':
				p = append(p, likeAny)
			case '_':
				p = append(p, likeOne)
			default:
				p = append(p, unicode.ToLower(r))
			}
		}
		return p
	}
	raw := v.Raw
	for i := 0; i < len(raw); {
		r, n := utf8.DecodeRuneInString(raw[i:])
		switch {
		case r == '%':
			p = append(p, likeAny)
		case r == '_':
			p = append(p, likeOne)
		case r == '\\' && i+1 < len(raw):
			e := raw[i+1]
			n = 2
			switch e {
			case 'n', 'N':
				r = '\n'
			case 'r', 'R':
				r = '\r'
			case 't', 'T':
				r = '\t'
			case 'b', 'B':
				r = '\b'
			case 'f', 'F':
				r = '\f'
			case 'u', 'U':
				if code, err := strconv.ParseUint(raw[i+2:min(i+6, len(raw))], 16, 32); err == nil {
					r, n = rune(code), 6
				} else {
					r = rune(e)
				}
			default:
				r = rune(e)
			}
			p = append(p, unicode.ToLower(r))
		default:
			p = append(p, unicode.ToLower(r))
		}
		i += n
	}
	return p
}

// match runs the usual greedy wildcard match with backtracking to the last %, which is linear
// in practice and quadratic at worst, never exponential. It folds case rune by rune, without
// copying the text.
func (p likePattern) match(s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		r, n := utf8.DecodeRuneInString(s[si:])
		r = unicode.ToLower(r)
		switch {
		case pi < len(p) && (p[pi] == likeOne || p[pi] == r):
			pi++
			si += n
		case pi < len(p) && p[pi] == likeAny:
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			_, m := utf8.DecodeRuneInString(s[mark:])
			mark += m
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == likeAny {
		pi++
	}
	return pi == len(p)
}

// Sort orders records by the query's ORDER BY clause, stably: Salesforce's rules for nulls
// (first when ascending, last when descending, unless NULLS FIRST/LAST says otherwise) and
// case-insensitive text. Without ORDER BY it leaves recs as they are.
func (q *Query) Sort(recs []Record) error {
	if len(q.OrderBy) == 0 || len(recs) < 2 {
		return nil
	}
	type keyed struct {
		rec  Record
		keys []any
	}
	items := make([]keyed, len(recs))
	for i, r := range recs {
		keys := make([]any, len(q.OrderBy))
		for j, o := range q.OrderBy {
			v, ok := r.Get(o.Field.Parts)
			if !ok {
				return &Error{Code: CodeInvalidField, Message: fmt.Sprintf("No such column '%s'", o.Field), Pos: o.Field.Pos}
			}
			keys[j] = normalize(v)
		}
		items[i] = keyed{rec: r, keys: keys}
	}
	slices.SortStableFunc(items, func(a, b keyed) int {
		for j, o := range q.OrderBy {
			if c := compareForSort(a.keys[j], b.keys[j], o); c != 0 {
				return c
			}
		}
		return 0
	})
	for i := range items {
		recs[i] = items[i].rec
	}
	return nil
}

func compareForSort(a, b any, o Order) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil || b == nil:
		// Null placement does not flip with the direction.
		if (a == nil) == o.nullsFirst() {
			return -1
		}
		return 1
	}
	c := compareValues(a, b)
	if o.Dir == DirDesc {
		return -c
	}
	return c
}

// compareValues orders two non-nil field values; values of different types (which one field
// never holds) order by type so that sorting stays a total order.
func compareValues(a, b any) int {
	switch a := a.(type) {
	case string:
		if b, ok := b.(string); ok {
			return foldCompare(a, b)
		}
	case ID:
		if b, ok := b.(ID); ok {
			return compareID(string(a), string(b))
		}
	case bool:
		if b, ok := b.(bool); ok {
			return compareBool(a, b)
		}
	case float64:
		if b, ok := b.(float64); ok {
			return compareFloat(a, b)
		}
	case time.Time:
		if b, ok := b.(time.Time); ok {
			return a.Compare(b)
		}
	case Date:
		if b, ok := b.(Date); ok {
			return a.Compare(b)
		}
	}
	return strings.Compare(fmt.Sprintf("%T", a), fmt.Sprintf("%T", b))
}

// Window returns the slice bounds [lo, hi) of n sorted results that OFFSET and LIMIT keep.
func (q *Query) Window(n int) (lo, hi int) {
	lo = 0
	if q.Offset != nil {
		lo = min(*q.Offset, n)
	}
	hi = n
	if q.Limit != nil && *q.Limit < n-lo {
		hi = lo + *q.Limit
	}
	return lo, hi
}
