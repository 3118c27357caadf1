package soql

import (
	"strconv"
	"strings"
)

// String renders the query in a canonical form: upper-case keywords, single spaces, names as
// written. Parsing the result gives back an equal query.
func (q *Query) String() string {
	var b strings.Builder
	q.render(&b)
	return b.String()
}

func (q *Query) render(b *strings.Builder) {
	b.WriteString("SELECT ")
	for i, item := range q.Select {
		if i > 0 {
			b.WriteString(", ")
		}
		switch {
		case item.Count:
			b.WriteString("COUNT()")
		case item.Subquery != nil:
			b.WriteByte('(')
			item.Subquery.render(b)
			b.WriteByte(')')
		case item.Field != nil:
			b.WriteString(item.Field.String())
		}
	}
	b.WriteString(" FROM ")
	b.WriteString(q.From.Name)
	if q.Where != nil {
		b.WriteString(" WHERE ")
		renderExpr(b, q.Where)
	}
	for i, o := range q.OrderBy {
		if i == 0 {
			b.WriteString(" ORDER BY ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(o.Field.String())
		switch o.Dir {
		case DirAsc:
			b.WriteString(" ASC")
		case DirDesc:
			b.WriteString(" DESC")
		}
		switch o.Nulls {
		case NullsFirst:
			b.WriteString(" NULLS FIRST")
		case NullsLast:
			b.WriteString(" NULLS LAST")
		}
	}
	if q.Limit != nil {
		b.WriteString(" LIMIT ")
		b.WriteString(strconv.Itoa(*q.Limit))
	}
	if q.Offset != nil {
		b.WriteString(" OFFSET ")
		b.WriteString(strconv.Itoa(*q.Offset))
	}
}

func renderExpr(b *strings.Builder, e Expr) {
	switch e := e.(type) {
	case *And:
		renderJoined(b, e.Terms, " AND ")
	case *Or:
		renderJoined(b, e.Terms, " OR ")
	case *Not:
		b.WriteString("NOT ")
		renderOperand(b, e.X)
	case *Comparison:
		b.WriteString(e.Field.String())
		b.WriteByte(' ')
		b.WriteString(e.Op.String())
		b.WriteByte(' ')
		if e.Op.isList() {
			b.WriteByte('(')
			for i, v := range e.Values {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(v.String())
			}
			b.WriteByte(')')
			return
		}
		b.WriteString(e.Value.String())
	}
}

func renderJoined(b *strings.Builder, terms []Expr, joiner string) {
	for i, t := range terms {
		if i > 0 {
			b.WriteString(joiner)
		}
		renderOperand(b, t)
	}
}

// renderOperand parenthesises compound conditions so that nesting survives a round trip.
func renderOperand(b *strings.Builder, e Expr) {
	switch e.(type) {
	case *And, *Or:
		b.WriteByte('(')
		renderExpr(b, e)
		b.WriteByte(')')
	default:
		renderExpr(b, e)
	}
}

// String renders the literal as SOQL source.
func (v Value) String() string {
	switch v.Kind {
	case KindString:
		if v.Raw != "" || v.Str == "" {
			return "'" + v.Raw + "'"
		}
		return Quote(v.Str)
	case KindNumber:
		if v.Raw != "" {
			return v.Raw
		}
		return strconv.FormatFloat(v.Num, 'f', -1, 64)
	case KindBool:
		if v.Bool {
			return "true"
		}
		return "false"
	case KindNull:
		return "null"
	case KindDate:
		if v.Raw != "" {
			return v.Raw
		}
		return v.Date.String()
	case KindDateTime:
		if v.Raw != "" {
			return v.Raw
		}
		return v.Time.UTC().Format("2006-01-02T15:04:05.000Z")
	case KindDateLiteral:
		return v.Literal.String()
	}
	return ""
}

// Quote renders s as a SOQL string literal, escaping quotes, backslashes and control characters.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'':
			b.WriteString(`\'`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
