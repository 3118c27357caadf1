package ewssim

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// getter reads a property by path from the thing a restriction is evaluated on.
type getter func(p propPath) (vals []string, vt valueType, ok bool)

// restriction is a parsed t:Restriction search expression.
type restriction interface {
	match(get getter) bool
}

const (
	maxRestrictionDepth = 32
	maxRestrictionNodes = 1024
)

type restrictionParser struct {
	nodes int
	// unsupported is set when the expression uses something the simulator cannot evaluate; the
	// operation reports it in its response message.
	unsupported *ewsError
}

// parseRestriction parses the single search expression inside a t:Restriction element.
// forFolders selects the folder: FieldURIs instead of the item ones.
func parseRestriction(e *etree.Element, forFolders bool) (restriction, *soapFault, *ewsError) {
	ks, f := kids(e, nsTypes)
	if f != nil {
		return nil, f, nil
	}
	if len(ks) != 1 {
		return nil, schemaFault("Restriction must contain exactly one search expression"), nil
	}
	rp := &restrictionParser{}
	r, f := rp.parse(ks[0], 0, forFolders)
	if f != nil {
		return nil, f, nil
	}
	if rp.unsupported != nil {
		return nil, nil, rp.unsupported
	}
	return r, nil, nil
}

func (rp *restrictionParser) parse(e *etree.Element, depth int, forFolders bool) (restriction, *soapFault) {
	rp.nodes++
	if depth > maxRestrictionDepth || rp.nodes > maxRestrictionNodes {
		if rp.unsupported == nil {
			rp.unsupported = &ewsError{code: "ErrorRestrictionTooComplex", text: "The restriction is too complex for this operation."}
		}
		return always(false), nil
	}
	if e.NamespaceURI() != nsTypes {
		return nil, schemaFault("search expression %s is in the wrong namespace", e.FullTag())
	}
	switch e.Tag {
	case "And", "Or":
		ks, f := kids(e, nsTypes)
		if f != nil {
			return nil, f
		}
		if len(ks) == 0 {
			return nil, schemaFault("%s needs at least one search expression", e.Tag)
		}
		var list []restriction
		for _, k := range ks {
			r, f := rp.parse(k, depth+1, forFolders)
			if f != nil {
				return nil, f
			}
			list = append(list, r)
		}
		if e.Tag == "And" {
			return andExpr(list), nil
		}
		if set, ok := equalitySet(list); ok {
			return set, nil
		}
		return orExpr(list), nil
	case "Not":
		ks, f := kids(e, nsTypes)
		if f != nil {
			return nil, f
		}
		if len(ks) != 1 {
			return nil, schemaFault("Not needs exactly one search expression")
		}
		r, f := rp.parse(ks[0], depth+1, forFolders)
		if f != nil {
			return nil, f
		}
		return notExpr{r}, nil
	case "Exists":
		ks, f := kids(e, nsTypes)
		if f != nil {
			return nil, f
		}
		if len(ks) != 1 {
			return nil, schemaFault("Exists needs exactly one path")
		}
		p, f := rp.path(ks[0], forFolders)
		if f != nil {
			return nil, f
		}
		return existsExpr{p}, nil
	case "IsEqualTo", "IsNotEqualTo", "IsGreaterThan", "IsGreaterThanOrEqualTo", "IsLessThan", "IsLessThanOrEqualTo":
		ks, f := kids(e, nsTypes)
		if f != nil {
			return nil, f
		}
		if len(ks) != 2 || ks[1].Tag != "FieldURIOrConstant" {
			return nil, schemaFault("%s needs a path and a FieldURIOrConstant", e.Tag)
		}
		p, f := rp.path(ks[0], forFolders)
		if f != nil {
			return nil, f
		}
		cmp := compareExpr{op: e.Tag, path: p}
		operands, f := kids(ks[1], nsTypes)
		if f != nil {
			return nil, f
		}
		if len(operands) != 1 {
			return nil, schemaFault("FieldURIOrConstant needs exactly one element")
		}
		operand := operands[0]
		if operand.Tag == "Constant" {
			v := operand.SelectAttr("Value")
			if v == nil {
				return nil, schemaFault("Constant has no Value attribute")
			}
			cmp.constant = v.Value
		} else {
			other, f := rp.path(operand, forFolders)
			if f != nil {
				return nil, f
			}
			cmp.other = &other
		}
		return cmp, nil
	case "Contains":
		seq, f := sequence(e, nsTypes, []string{"FieldURI", "IndexedFieldURI", "ExtendedFieldURI", "Constant"})
		if f != nil {
			return nil, f
		}
		ks := e.ChildElements()
		if len(ks) != 2 || seq["Constant"] == nil {
			return nil, schemaFault("Contains needs a path and a Constant")
		}
		p, f := rp.path(ks[0], forFolders)
		if f != nil {
			return nil, f
		}
		c := containsExpr{path: p, value: seq["Constant"].SelectAttrValue("Value", ""),
			mode:       e.SelectAttrValue("ContainmentMode", "FullString"),
			comparison: e.SelectAttrValue("ContainmentComparison", "Exact")}
		if !slices.Contains([]string{"FullString", "Prefixed", "Substring", "PrefixOnWords", "ExactPhrase"}, c.mode) {
			return nil, enumFault(c.mode, "ContainmentModeType")
		}
		if !slices.Contains([]string{"Exact", "IgnoreCase", "IgnoreNonSpacingCharacters", "Loose",
			"IgnoreCaseAndNonSpacingCharacters", "LooseAndIgnoreCase", "LooseAndIgnoreNonSpace",
			"LooseAndIgnoreCaseAndIgnoreNonSpace"}, c.comparison) {
			return nil, enumFault(c.comparison, "ContainmentComparisonType")
		}
		return c, nil
	case "Excludes":
		ks, f := kids(e, nsTypes)
		if f != nil {
			return nil, f
		}
		if len(ks) != 2 || ks[1].Tag != "Bitmask" {
			return nil, schemaFault("Excludes needs a path and a Bitmask")
		}
		p, f := rp.path(ks[0], forFolders)
		if f != nil {
			return nil, f
		}
		mask, err := strconv.ParseInt(strings.TrimPrefix(strings.ToLower(ks[1].SelectAttrValue("Value", "")), "0x"), 16, 64)
		if err != nil {
			return nil, schemaFault("Bitmask value %q is not hexadecimal", ks[1].SelectAttrValue("Value", ""))
		}
		return excludesExpr{path: p, mask: mask}, nil
	}
	return nil, schemaFault("the element %s is not a search expression", e.FullTag())
}

func (rp *restrictionParser) path(e *etree.Element, forFolders bool) (propPath, *soapFault) {
	p, f, err := parsePath(e)
	if f != nil {
		return p, f
	}
	if err == nil && p.kind == pathField {
		isFolder := strings.HasPrefix(p.uri, "folder:")
		switch {
		case forFolders && !isFolder, forFolders && folderFieldURIs[p.uri] == "":
			err = &ewsError{code: "ErrorUnsupportedPathForQuery", text: "The property " + p.uri + " is not supported in folder restrictions."}
		case !forFolders && !knownItemURI(p.uri):
			err = &ewsError{code: "ErrorUnsupportedPathForQuery", text: "The property " + p.uri + " is not supported in item restrictions."}
		}
	}
	if forFolders && p.kind != pathField && err == nil {
		err = &ewsError{code: "ErrorUnsupportedPathForQuery", text: "The simulator restricts folders on folder: properties only."}
	}
	if err != nil && rp.unsupported == nil {
		rp.unsupported = err
	}
	return p, nil
}

// equalitySet turns an Or of IsEqualTo comparisons of one string property with constants — the
// query Tandem's connector makes to find items by sync key — into one set lookup per item, so
// it costs one property read per item instead of one per key.
func equalitySet(list []restriction) (inSetExpr, bool) {
	set := inSetExpr{values: map[string]bool{}}
	for i, r := range list {
		c, ok := r.(compareExpr)
		if !ok || c.op != "IsEqualTo" || c.other != nil || !stringPath(c.path) {
			return inSetExpr{}, false
		}
		if i == 0 {
			set.path = c.path
		} else if c.path.String() != set.path.String() {
			return inSetExpr{}, false
		}
		set.values[strings.ToLower(c.constant)] = true
	}
	return set, len(list) > 1
}

// stringPath reports whether every value of the property is compared as text.
func stringPath(p propPath) bool {
	switch p.kind {
	case pathExtended:
		return mapiValueType(p.ext.PropertyType) == vtString
	case pathIndexed:
		return true
	}
	return false
}

type inSetExpr struct {
	path   propPath
	values map[string]bool
}

func (s inSetExpr) match(get getter) bool {
	vals, _, ok := get(s.path)
	if !ok {
		return false
	}
	for _, v := range vals {
		if s.values[strings.ToLower(v)] {
			return true
		}
	}
	return false
}

type always bool

func (a always) match(getter) bool { return bool(a) }

type andExpr []restriction

func (a andExpr) match(get getter) bool {
	for _, r := range a {
		if !r.match(get) {
			return false
		}
	}
	return true
}

type orExpr []restriction

func (o orExpr) match(get getter) bool {
	for _, r := range o {
		if r.match(get) {
			return true
		}
	}
	return false
}

type notExpr struct{ r restriction }

func (n notExpr) match(get getter) bool { return !n.r.match(get) }

type existsExpr struct{ path propPath }

func (e existsExpr) match(get getter) bool {
	_, _, ok := get(e.path)
	return ok
}

type compareExpr struct {
	op       string
	path     propPath
	constant string
	other    *propPath
}

// match compares like a MAPI property restriction: a missing property matches nothing, a
// multi-valued one matches when any value does, strings compare case-insensitively.
func (c compareExpr) match(get getter) bool {
	vals, vt, ok := get(c.path)
	if !ok {
		return false
	}
	want := []string{c.constant}
	if c.other != nil {
		var ok bool
		if want, _, ok = get(*c.other); !ok {
			return false
		}
	}
	for _, v := range vals {
		for _, w := range want {
			if c.holds(compareValues(v, w, vt)) {
				return true
			}
		}
	}
	return false
}

func (c compareExpr) holds(cmp int) bool {
	switch c.op {
	case "IsEqualTo":
		return cmp == 0
	case "IsNotEqualTo":
		return cmp != 0
	case "IsGreaterThan":
		return cmp > 0
	case "IsGreaterThanOrEqualTo":
		return cmp >= 0
	case "IsLessThan":
		return cmp < 0
	default:
		return cmp <= 0
	}
}

// compareValues orders a and b as values of type vt, falling back to case-insensitive text.
func compareValues(a, b string, vt valueType) int {
	switch vt {
	case vtInt:
		x, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
		y, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
		if err1 == nil && err2 == nil {
			return cmpOrdered(x, y)
		}
	case vtDateTime:
		x, err1 := parseDateTime(a, time.UTC)
		y, err2 := parseDateTime(b, time.UTC)
		if err1 == nil && err2 == nil {
			return x.Compare(y)
		}
	case vtBool:
		x, ok1 := parseBool(a)
		y, ok2 := parseBool(b)
		if ok1 && ok2 {
			if x == y {
				return 0
			}
			if !x {
				return -1
			}
			return 1
		}
	}
	return strings.Compare(strings.ToLower(a), strings.ToLower(b))
}

func cmpOrdered(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

type containsExpr struct {
	path       propPath
	value      string
	mode       string
	comparison string
}

func (c containsExpr) match(get getter) bool {
	vals, _, ok := get(c.path)
	if !ok {
		return false
	}
	fold := strings.Contains(c.comparison, "IgnoreCase") || strings.HasPrefix(c.comparison, "Loose")
	want := c.value
	if fold {
		want = strings.ToLower(want)
	}
	for _, v := range vals {
		if fold {
			v = strings.ToLower(v)
		}
		switch c.mode {
		case "FullString":
			if v == want {
				return true
			}
		case "Prefixed":
			if strings.HasPrefix(v, want) {
				return true
			}
		case "PrefixOnWords":
			for _, w := range strings.Fields(v) {
				if strings.HasPrefix(w, want) {
					return true
				}
			}
		default:
			if strings.Contains(v, want) {
				return true
			}
		}
	}
	return false
}

type excludesExpr struct {
	path propPath
	mask int64
}

func (x excludesExpr) match(get getter) bool {
	vals, _, ok := get(x.path)
	if !ok || len(vals) == 0 {
		return false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(vals[0]), 10, 64)
	return err == nil && n&x.mask == 0
}
