package soql

import (
	"fmt"
	"strings"
	"time"
)

// Query is a parsed SELECT statement. A subquery (a child relationship in the field list) is a
// Query too; its From is the child relationship's name.
type Query struct {
	Select  []SelectItem
	From    Name
	Where   Expr // nil without a WHERE clause
	OrderBy []Order
	Limit   *int
	Offset  *int
}

// Name is an object or relationship name as written, with its position.
type Name struct {
	Name string
	Pos  int
}

// Path is a field reference: a field name, or relationship names followed by a field name
// (Account.Name, Who.Email), as written.
type Path struct {
	Parts []string
	Pos   int
}

func (p Path) String() string { return strings.Join(p.Parts, ".") }

// SelectItem is one element of the field list: exactly one of Field, Subquery or Count is set.
type SelectItem struct {
	Field    *Path
	Subquery *Query
	Count    bool // COUNT()
	Pos      int
}

// IsCount reports whether the query is SELECT COUNT() ...: Salesforce then answers with
// totalSize and no records.
func (q *Query) IsCount() bool {
	return len(q.Select) == 1 && q.Select[0].Count
}

// Direction is an ORDER BY direction.
type Direction int

// Directions; DirDefault is ascending but renders without a keyword.
const (
	DirDefault Direction = iota
	DirAsc
	DirDesc
)

// NullsOrder says where nulls sort.
type NullsOrder int

// Null placements; NullsDefault is first when ascending and last when descending.
const (
	NullsDefault NullsOrder = iota
	NullsFirst
	NullsLast
)

// Order is one ORDER BY item.
type Order struct {
	Field Path
	Dir   Direction
	Nulls NullsOrder
}

// nullsFirst resolves the default placement the way Salesforce does.
func (o Order) nullsFirst() bool {
	switch o.Nulls {
	case NullsFirst:
		return true
	case NullsLast:
		return false
	default:
		return o.Dir != DirDesc
	}
}

// Expr is a WHERE condition: *And, *Or, *Not or *Comparison.
type Expr interface {
	// Position is the offset of the condition's first token.
	Position() int
	isExpr()
}

// And is a conjunction of two or more conditions.
type And struct{ Terms []Expr }

// Or is a disjunction of two or more conditions.
type Or struct{ Terms []Expr }

// Not negates a condition.
type Not struct {
	X   Expr
	Pos int
}

// Operator is a comparison operator.
type Operator int

// Operators. != and <> parse to OpNe.
const (
	OpEq Operator = iota + 1
	OpNe
	OpLt
	OpLe
	OpGt
	OpGe
	OpLike
	OpIn
	OpNotIn
	OpIncludes
	OpExcludes
)

var opText = map[Operator]string{
	OpEq: "=", OpNe: "!=", OpLt: "<", OpLe: "<=", OpGt: ">", OpGe: ">=",
	OpLike: "LIKE", OpIn: "IN", OpNotIn: "NOT IN", OpIncludes: "INCLUDES", OpExcludes: "EXCLUDES",
}

func (o Operator) String() string {
	if s, ok := opText[o]; ok {
		return s
	}
	return fmt.Sprintf("Operator(%d)", int(o))
}

// isList reports whether the operator takes a parenthesised list of values.
func (o Operator) isList() bool {
	return o == OpIn || o == OpNotIn || o == OpIncludes || o == OpExcludes
}

// Comparison is field op value, or field op (values) for the list operators.
type Comparison struct {
	Field  Path
	Op     Operator
	Value  Value   // for single-value operators
	Values []Value // for IN, NOT IN, INCLUDES, EXCLUDES
}

// Position is where the conjunction starts in the statement: its first term.
func (e *And) Position() int { return e.Terms[0].Position() }

// Position is where the disjunction starts in the statement: its first term.
func (e *Or) Position() int { return e.Terms[0].Position() }

// Position is where NOT stands in the statement.
func (e *Not) Position() int { return e.Pos }

// Position is where the comparison's field stands in the statement.
func (e *Comparison) Position() int { return e.Field.Pos }
func (*And) isExpr()                {}
func (*Or) isExpr()                 {}
func (*Not) isExpr()                {}
func (*Comparison) isExpr()         {}

// Kind is the kind of a literal.
type Kind int

// Literal kinds.
const (
	KindString Kind = iota + 1
	KindNumber
	KindBool
	KindNull
	KindDate
	KindDateTime
	KindDateLiteral // TODAY, LAST_N_DAYS:n ...
)

func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindNumber:
		return "number"
	case KindBool:
		return "boolean"
	case KindNull:
		return "null"
	case KindDate:
		return "date"
	case KindDateTime:
		return "dateTime"
	case KindDateLiteral:
		return "date literal"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Value is a literal.
type Value struct {
	Kind Kind
	// Str is a string literal's decoded value.
	Str string
	// Raw is the literal as written: for a string, the text between the quotes with its
	// escapes; for a number, date or datetime, its text. Rendering uses it when set, so a
	// parsed query re-renders exactly; LIKE patterns are compiled from it because only the raw
	// form tells an escaped \% from a wildcard.
	Raw  string
	Num  float64
	Bool bool
	// Time is a datetime literal's instant.
	Time time.Time
	// Date is a date literal's day.
	Date Date
	// Literal is a relative date literal.
	Literal DateLiteral
	Pos     int
}

// DateLiteral is a relative date literal such as TODAY or LAST_N_DAYS:30. N is zero for the
// literals that take no number.
type DateLiteral struct {
	Name string // upper case
	N    int
}

func (d DateLiteral) String() string {
	if spec, ok := dateLiterals[d.Name]; ok && spec.takesN {
		return fmt.Sprintf("%s:%d", d.Name, d.N)
	}
	return d.Name
}
