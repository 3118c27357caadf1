package soql

import (
	"fmt"
	"strings"
)

// Type is a field's type as far as filtering cares.
type Type int

// Field types.
const (
	TypeString Type = iota + 1 // text, email, phone, picklist, text area ...
	TypeID                     // id and reference fields
	TypeBoolean
	TypeNumber
	TypeDate
	TypeDateTime
	TypeMultiPicklist
)

// FieldInfo describes a field to Check.
type FieldInfo struct {
	// Name is the field's API name, as the schema spells it.
	Name string
	Type Type
	// Filterable and Sortable are false for long text areas, which Salesforce refuses in WHERE
	// and ORDER BY.
	Filterable bool
	Sortable   bool
}

// Schema tells Check which objects, fields and relationships exist. Names are matched
// case-insensitively by the implementation.
type Schema interface {
	// Object returns the API name of a queryable object.
	Object(name string) (apiName string, ok bool)
	// Field describes a field of object.
	Field(object, field string) (FieldInfo, bool)
	// Parent resolves a parent relationship of object (Account on Contact, Who on Event) to the
	// object whose fields it exposes (for a polymorphic relationship, the "Name" object).
	Parent(object, relationship string) (target string, ok bool)
	// Child resolves a child relationship of object (EventRelations on Event) to the child
	// object.
	Child(object, relationship string) (child string, ok bool)
}

// Check validates the query against schema as Salesforce does before running it: the object
// exists (INVALID_TYPE), every field and relationship exists and no field is selected twice
// (INVALID_FIELD, MALFORMED_QUERY), filters use values of the field's type and operators the
// field supports (INVALID_FIELD, INVALID_QUERY_FILTER_OPERATOR), and subqueries name child
// relationships.
func (q *Query) Check(schema Schema) error {
	object, ok := schema.Object(q.From.Name)
	if !ok {
		return &Error{
			Code: CodeInvalidType,
			Message: fmt.Sprintf("sObject type '%s' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
				q.From.Name),
			Pos: q.From.Pos,
		}
	}
	return q.check(schema, object)
}

func (q *Query) check(schema Schema, object string) error {
	seen := map[string]bool{}
	for _, item := range q.Select {
		switch {
		case item.Field != nil:
			_, canonical, err := resolve(schema, object, *item.Field)
			if err != nil {
				return err
			}
			key := strings.ToLower(canonical)
			if seen[key] {
				return malformed(item.Pos, "duplicate field selected: %s", item.Field)
			}
			seen[key] = true
		case item.Subquery != nil:
			sub := item.Subquery
			child, ok := schema.Child(object, sub.From.Name)
			if !ok {
				return &Error{
					Code: CodeInvalidType,
					Message: fmt.Sprintf("Didn't understand relationship '%s' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.",
						sub.From.Name),
					Pos: sub.From.Pos,
				}
			}
			key := "(" + strings.ToLower(sub.From.Name)
			if seen[key] {
				return malformed(item.Pos, "duplicate field selected: %s", sub.From.Name)
			}
			seen[key] = true
			if err := sub.check(schema, child); err != nil {
				return err
			}
		}
	}
	if q.Where != nil {
		if err := checkExpr(schema, object, q.Where); err != nil {
			return err
		}
	}
	for _, o := range q.OrderBy {
		info, _, err := resolve(schema, object, o.Field)
		if err != nil {
			return err
		}
		if !info.Sortable {
			return &Error{Code: CodeInvalidField, Message: fmt.Sprintf("field '%s' can not be sorted in a query call", info.Name), Pos: o.Field.Pos}
		}
	}
	return nil
}

// resolve follows a path through parent relationships to its field.
func resolve(schema Schema, object string, path Path) (FieldInfo, string, error) {
	current := object
	var canonical []string
	for i, part := range path.Parts {
		if i == len(path.Parts)-1 {
			info, ok := schema.Field(current, part)
			if !ok {
				return FieldInfo{}, "", &Error{
					Code: CodeInvalidField,
					Message: fmt.Sprintf("No such column '%s' on entity '%s'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
						part, current),
					Pos: path.Pos,
				}
			}
			canonical = append(canonical, info.Name)
			return info, strings.Join(canonical, "."), nil
		}
		target, ok := schema.Parent(current, part)
		if !ok {
			return FieldInfo{}, "", &Error{
				Code: CodeInvalidField,
				Message: fmt.Sprintf("Didn't understand relationship '%s' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.",
					part),
				Pos: path.Pos,
			}
		}
		canonical = append(canonical, strings.ToLower(part))
		current = target
	}
	return FieldInfo{}, "", malformed(path.Pos, "empty field path")
}

func checkExpr(schema Schema, object string, e Expr) error {
	switch e := e.(type) {
	case *And:
		for _, t := range e.Terms {
			if err := checkExpr(schema, object, t); err != nil {
				return err
			}
		}
	case *Or:
		for _, t := range e.Terms {
			if err := checkExpr(schema, object, t); err != nil {
				return err
			}
		}
	case *Not:
		return checkExpr(schema, object, e.X)
	case *Comparison:
		info, _, err := resolve(schema, object, e.Field)
		if err != nil {
			return err
		}
		if !info.Filterable {
			return &Error{Code: CodeInvalidField, Message: fmt.Sprintf("field '%s' can not be filtered in query call", info.Name), Pos: e.Field.Pos}
		}
		return checkComparison(info, e)
	}
	return nil
}

func checkComparison(info FieldInfo, c *Comparison) error {
	badOperator := func() error {
		return &Error{
			Code:    CodeInvalidFilterOperator,
			Message: fmt.Sprintf("invalid operator on %s field: %s", typeWord(info.Type), c.Op),
			Pos:     c.Field.Pos,
		}
	}
	switch c.Op {
	case OpLike:
		if info.Type != TypeString {
			return badOperator()
		}
	case OpIncludes, OpExcludes:
		if info.Type != TypeMultiPicklist {
			return badOperator()
		}
	case OpLt, OpLe, OpGt, OpGe:
		if info.Type == TypeBoolean || info.Type == TypeMultiPicklist {
			return badOperator()
		}
	}
	values := c.Values
	if !c.Op.isList() {
		values = []Value{c.Value}
	}
	for _, v := range values {
		if v.Kind == KindNull {
			if c.Op != OpEq && c.Op != OpNe && c.Op != OpIn && c.Op != OpNotIn {
				return malformed(v.Pos, "unexpected token: null")
			}
			continue
		}
		if !literalFits(info.Type, v.Kind) {
			quoted := info.Type == TypeString || info.Type == TypeID || info.Type == TypeMultiPicklist
			should := "should not"
			if quoted {
				should = "should"
			}
			return &Error{
				Code:    CodeInvalidField,
				Message: fmt.Sprintf("value of filter criterion for field '%s' must be of type %s and %s be enclosed in quotes", info.Name, typeWord(info.Type), should),
				Pos:     v.Pos,
			}
		}
		if info.Type == TypeID && !validIDLiteral(v.Str) {
			return &Error{Code: CodeInvalidFilterOperator, Message: fmt.Sprintf("invalid ID field: %s", v.Str), Pos: v.Pos}
		}
	}
	return nil
}

func literalFits(t Type, k Kind) bool {
	switch t {
	case TypeString, TypeID, TypeMultiPicklist:
		return k == KindString
	case TypeBoolean:
		return k == KindBool
	case TypeNumber:
		return k == KindNumber
	case TypeDate:
		return k == KindDate || k == KindDateLiteral
	case TypeDateTime:
		return k == KindDateTime || k == KindDateLiteral
	}
	return false
}

func typeWord(t Type) string {
	switch t {
	case TypeString:
		return "string"
	case TypeID:
		return "id"
	case TypeBoolean:
		return "boolean"
	case TypeNumber:
		return "double"
	case TypeDate:
		return "date"
	case TypeDateTime:
		return "dateTime"
	case TypeMultiPicklist:
		return "multipicklist"
	}
	return "unknown"
}

// validIDLiteral accepts what Salesforce accepts as an id in a filter: 15 or 18 letters and
// digits, or the empty string, which Salesforce accepts and which matches nothing.
func validIDLiteral(s string) bool {
	if s == "" {
		return true
	}
	if len(s) != 15 && len(s) != 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIdentPart(s[i]) || s[i] == '_' {
			return false
		}
	}
	return true
}
