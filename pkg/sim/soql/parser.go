package soql

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Parse parses a SOQL SELECT statement. Errors are *Error with Code MALFORMED_QUERY (or
// NUMBER_OUTSIDE_VALID_RANGE for an OFFSET above 2000) and the position of the offending token.
func Parse(q string) (*Query, error) {
	if n := utf8.RuneCountInString(q); n > MaxQueryLength {
		return nil, malformed(MaxQueryLength, "SOQL statements cannot exceed %d characters; this one has %d", MaxQueryLength, n)
	}
	toks, err := lex(q)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	query, err := p.query(false)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.unexpected(t)
	}
	return query, nil
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) unexpected(t token) *Error {
	return malformed(t.pos, "unexpected token: %s", t.describe())
}

// keyword reports whether the next token is the keyword kw (case-insensitive).
func (p *parser) keyword(kw string) bool {
	t := p.peek()
	return t.kind == tokIdent && strings.EqualFold(t.text, kw)
}

func (p *parser) acceptKeyword(kw string) bool {
	if p.keyword(kw) {
		p.i++
		return true
	}
	return false
}

func (p *parser) expectKeyword(kw string) error {
	if !p.acceptKeyword(kw) {
		return p.unexpected(p.peek())
	}
	return nil
}

func (p *parser) expect(kind tokenKind) (token, error) {
	t := p.peek()
	if t.kind != kind {
		return t, p.unexpected(t)
	}
	return p.next(), nil
}

// reserved words cannot be field or object names.
var reserved = map[string]bool{
	"SELECT": true, "FROM": true, "WHERE": true, "AND": true, "OR": true, "NOT": true,
	"ORDER": true, "BY": true, "LIMIT": true, "OFFSET": true, "IN": true, "LIKE": true,
	"INCLUDES": true, "EXCLUDES": true, "NULL": true, "TRUE": true, "FALSE": true,
	"GROUP": true, "HAVING": true, "WITH": true, "FOR": true, "USING": true, "ASC": true,
	"DESC": true, "NULLS": true,
}

func (p *parser) name() (token, error) {
	t := p.peek()
	if t.kind != tokIdent || reserved[strings.ToUpper(t.text)] {
		return t, p.unexpected(t)
	}
	return p.next(), nil
}

func (p *parser) query(sub bool) (*Query, error) {
	if err := p.expectKeyword("SELECT"); err != nil {
		return nil, err
	}
	q := &Query{}
	for {
		item, err := p.selectItem(sub)
		if err != nil {
			return nil, err
		}
		q.Select = append(q.Select, item)
		if p.peek().kind != tokComma {
			break
		}
		p.next()
	}
	for _, item := range q.Select {
		if item.Count && len(q.Select) > 1 {
			other := q.Select[0]
			if other.Count {
				other = q.Select[1]
			}
			return nil, malformed(other.Pos, "Field must be grouped or aggregated: %s", selectItemText(other))
		}
	}
	if err := p.expectKeyword("FROM"); err != nil {
		return nil, err
	}
	from, err := p.name()
	if err != nil {
		return nil, err
	}
	q.From = Name{Name: from.text, Pos: from.pos}
	if p.acceptKeyword("WHERE") {
		if q.Where, err = p.condition(); err != nil {
			return nil, err
		}
	}
	if p.acceptKeyword("ORDER") {
		if err := p.expectKeyword("BY"); err != nil {
			return nil, err
		}
		for {
			o, err := p.order()
			if err != nil {
				return nil, err
			}
			q.OrderBy = append(q.OrderBy, o)
			if p.peek().kind != tokComma {
				break
			}
			p.next()
		}
	}
	if p.acceptKeyword("LIMIT") {
		n, err := p.count()
		if err != nil {
			return nil, err
		}
		q.Limit = &n
	}
	if p.acceptKeyword("OFFSET") {
		t := p.peek()
		n, err := p.count()
		if err != nil {
			return nil, err
		}
		if n > MaxOffset {
			return nil, &Error{Code: CodeNumberOutsideRange, Message: "Maximum SOQL offset allowed is 2000", Pos: t.pos}
		}
		q.Offset = &n
	}
	return q, nil
}

func selectItemText(item SelectItem) string {
	switch {
	case item.Field != nil:
		return item.Field.String()
	case item.Count:
		return "COUNT()"
	default:
		return "(" + item.Subquery.String() + ")"
	}
}

// count reads a non-negative integer for LIMIT and OFFSET.
func (p *parser) count() (int, error) {
	t := p.peek()
	if t.kind != tokNumber || strings.ContainsAny(t.text, ".+-") {
		return 0, p.unexpected(t)
	}
	n, err := strconv.Atoi(t.text)
	if err != nil {
		return 0, &Error{Code: CodeNumberOutsideRange, Message: "number out of range: " + t.text, Pos: t.pos}
	}
	p.next()
	return n, nil
}

func (p *parser) selectItem(sub bool) (SelectItem, error) {
	t := p.peek()
	switch {
	case t.kind == tokLParen:
		if sub {
			return SelectItem{}, p.unexpected(t)
		}
		p.next()
		q, err := p.query(true)
		if err != nil {
			return SelectItem{}, err
		}
		if _, err := p.expect(tokRParen); err != nil {
			return SelectItem{}, err
		}
		return SelectItem{Subquery: q, Pos: t.pos}, nil
	case t.kind == tokIdent && strings.EqualFold(t.text, "COUNT") && p.toks[p.i+1].kind == tokLParen:
		p.next()
		p.next()
		if _, err := p.expect(tokRParen); err != nil {
			return SelectItem{}, err
		}
		if sub {
			return SelectItem{}, malformed(t.pos, "COUNT() is not supported in a subquery")
		}
		return SelectItem{Count: true, Pos: t.pos}, nil
	default:
		path, err := p.path()
		if err != nil {
			return SelectItem{}, err
		}
		return SelectItem{Field: &path, Pos: path.Pos}, nil
	}
}

func (p *parser) path() (Path, error) {
	first, err := p.name()
	if err != nil {
		return Path{}, err
	}
	path := Path{Parts: []string{first.text}, Pos: first.pos}
	for p.peek().kind == tokDot {
		p.next()
		part, err := p.name()
		if err != nil {
			return Path{}, err
		}
		path.Parts = append(path.Parts, part.text)
	}
	return path, nil
}

func (p *parser) order() (Order, error) {
	path, err := p.path()
	if err != nil {
		return Order{}, err
	}
	o := Order{Field: path}
	switch {
	case p.acceptKeyword("ASC"):
		o.Dir = DirAsc
	case p.acceptKeyword("DESC"):
		o.Dir = DirDesc
	}
	if p.acceptKeyword("NULLS") {
		switch {
		case p.acceptKeyword("FIRST"):
			o.Nulls = NullsFirst
		case p.acceptKeyword("LAST"):
			o.Nulls = NullsLast
		default:
			return Order{}, p.unexpected(p.peek())
		}
	}
	return o, nil
}

// condition parses a sequence of terms joined by one boolean operator. Salesforce rejects AND
// and OR mixed at one level without parentheses, and so does this parser.
func (p *parser) condition() (Expr, error) {
	first, err := p.term()
	if err != nil {
		return nil, err
	}
	terms := []Expr{first}
	joiner := ""
	for p.keyword("AND") || p.keyword("OR") {
		t := p.peek()
		op := strings.ToUpper(t.text)
		if joiner != "" && op != joiner {
			return nil, p.unexpected(t)
		}
		joiner = op
		p.next()
		term, err := p.term()
		if err != nil {
			return nil, err
		}
		terms = append(terms, term)
	}
	switch joiner {
	case "AND":
		return &And{Terms: terms}, nil
	case "OR":
		return &Or{Terms: terms}, nil
	default:
		return first, nil
	}
}

func (p *parser) term() (Expr, error) {
	t := p.peek()
	switch {
	case t.kind == tokIdent && strings.EqualFold(t.text, "NOT"):
		p.next()
		x, err := p.term()
		if err != nil {
			return nil, err
		}
		return &Not{X: x, Pos: t.pos}, nil
	case t.kind == tokLParen:
		p.next()
		x, err := p.condition()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tokRParen); err != nil {
			return nil, err
		}
		return x, nil
	default:
		return p.comparison()
	}
}

func (p *parser) comparison() (Expr, error) {
	field, err := p.path()
	if err != nil {
		return nil, err
	}
	c := &Comparison{Field: field}
	t := p.peek()
	switch {
	case t.kind == tokOp:
		p.next()
		c.Op = map[string]Operator{"=": OpEq, "!=": OpNe, "<>": OpNe, "<": OpLt, "<=": OpLe, ">": OpGt, ">=": OpGe}[t.text]
	case p.acceptKeyword("LIKE"):
		c.Op = OpLike
	case p.acceptKeyword("IN"):
		c.Op = OpIn
	case p.acceptKeyword("INCLUDES"):
		c.Op = OpIncludes
	case p.acceptKeyword("EXCLUDES"):
		c.Op = OpExcludes
	case p.keyword("NOT") && p.toks[p.i+1].kind == tokIdent && strings.EqualFold(p.toks[p.i+1].text, "IN"):
		p.next()
		p.next()
		c.Op = OpNotIn
	default:
		return nil, p.unexpected(t)
	}
	if c.Op.isList() {
		if _, err := p.expect(tokLParen); err != nil {
			return nil, err
		}
		for {
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			c.Values = append(c.Values, v)
			if p.peek().kind != tokComma {
				break
			}
			p.next()
		}
		if _, err := p.expect(tokRParen); err != nil {
			return nil, err
		}
		return c, nil
	}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	if c.Op == OpLike && v.Kind != KindString {
		return nil, malformed(v.Pos, "unexpected token: %s", p.toks[p.i-1].describe())
	}
	c.Value = v
	return c, nil
}

func (p *parser) value() (Value, error) {
	t := p.peek()
	switch t.kind {
	case tokString:
		p.next()
		return Value{Kind: KindString, Str: t.str, Raw: t.text, Pos: t.pos}, nil
	case tokNumber:
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return Value{}, malformed(t.pos, "invalid number: %s", t.text)
		}
		p.next()
		return Value{Kind: KindNumber, Num: f, Raw: t.text, Pos: t.pos}, nil
	case tokDate:
		d, err := ParseDate(t.text)
		if err != nil {
			return Value{}, malformed(t.pos, "invalid date: %s", t.text)
		}
		p.next()
		return Value{Kind: KindDate, Date: d, Raw: t.text, Pos: t.pos}, nil
	case tokDateTime:
		tm, err := parseDateTime(t.text)
		if err != nil {
			return Value{}, malformed(t.pos, "invalid datetime: %s", t.text)
		}
		p.next()
		return Value{Kind: KindDateTime, Time: tm, Raw: t.text, Pos: t.pos}, nil
	case tokIdent:
		upper := strings.ToUpper(t.text)
		switch upper {
		case "NULL":
			p.next()
			return Value{Kind: KindNull, Pos: t.pos}, nil
		case "TRUE", "FALSE":
			p.next()
			return Value{Kind: KindBool, Bool: upper == "TRUE", Pos: t.pos}, nil
		}
		spec, ok := dateLiterals[upper]
		if !ok {
			return Value{}, p.unexpected(t)
		}
		p.next()
		lit := DateLiteral{Name: upper}
		if spec.takesN {
			if _, err := p.expect(tokColon); err != nil {
				return Value{}, err
			}
			n, err := p.count()
			if err != nil {
				return Value{}, err
			}
			lit.N = n
		}
		return Value{Kind: KindDateLiteral, Literal: lit, Pos: t.pos}, nil
	default:
		return Value{}, p.unexpected(t)
	}
}

// ParseDate parses a date in the yyyy-mm-dd form.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return Date{}, err
	}
	return DateOf(t), nil
}
