package sfsim

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-sync/tandem/pkg/sim/soql"
)

// sfTimeLayout is how Salesforce renders datetimes in JSON.
const sfTimeLayout = "2006-01-02T15:04:05.000-0700"

// formatTime renders a datetime the way Salesforce does: 2024-01-02T03:04:05.000+0000.
func formatTime(t time.Time) string { return t.UTC().Format(sfTimeLayout) }

// inputTimeLayouts are the datetime forms Salesforce accepts in request bodies and in the
// getUpdated/getDeleted parameters.
var inputTimeLayouts = []string{
	"2006-01-02T15:04:05.000-0700",
	"2006-01-02T15:04:05-0700",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05.000Z",
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range inputTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Truncate(time.Millisecond), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a valid datetime", s)
}

// valueError is a value a field cannot hold: Salesforce rejects the request body with
// JSON_PARSER_ERROR.
type valueError struct {
	field *Field
	value any
}

func (e *valueError) Error() string {
	kind := "VALUE_STRING"
	switch e.value.(type) {
	case bool:
		kind = "VALUE_" + strings.ToUpper(strconv.FormatBool(e.value.(bool)))
	case json.Number, float64, int, int64:
		kind = "VALUE_NUMBER_INT"
	case map[string]any:
		kind = "START_OBJECT"
	case []any:
		kind = "START_ARRAY"
	}
	return fmt.Sprintf("Cannot deserialize instance of %s from %s value %v or request may be missing a required field", soapType(e.field.Type), kind, e.value)
}

func soapType(t FieldType) string {
	switch t {
	case TypeBoolean:
		return "boolean"
	case TypeDateTime:
		return "datetime"
	case TypeDate:
		return "date"
	case TypeDouble:
		return "double"
	case TypeInt:
		return "int"
	}
	return "string"
}

// coerce converts an input value (decoded JSON, or a Go value from a backdoor edit) to the
// stored representation of field f. nil, and the empty string, mean null: Salesforce
// stores no empty strings.
func coerce(f *Field, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if s, ok := v.(string); ok && s == "" {
		return nil, nil
	}
	bad := &valueError{field: f, value: v}
	switch f.Type {
	case TypeBoolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, bad
	case TypeDateTime:
		switch v := v.(type) {
		case string:
			t, err := parseTime(v)
			if err != nil {
				return nil, bad
			}
			return t, nil
		case time.Time:
			return v.UTC().Truncate(time.Millisecond), nil
		}
		return nil, bad
	case TypeDate:
		switch v := v.(type) {
		case string:
			if d, err := soql.ParseDate(v); err == nil {
				return d, nil
			}
			if t, err := parseTime(v); err == nil {
				return soql.DateOf(t), nil
			}
			return nil, bad
		case time.Time:
			return soql.DateOf(v.UTC()), nil
		case soql.Date:
			return v, nil
		}
		return nil, bad
	case TypeDouble, TypeInt:
		var f64 float64
		switch n := v.(type) {
		case json.Number:
			x, err := n.Float64()
			if err != nil {
				return nil, bad
			}
			f64 = x
		case float64:
			f64 = n
		case int:
			f64 = float64(n)
		case int64:
			f64 = float64(n)
		case string:
			x, err := strconv.ParseFloat(n, 64)
			if err != nil {
				return nil, bad
			}
			f64 = x
		default:
			return nil, bad
		}
		if math.IsNaN(f64) || math.IsInf(f64, 0) {
			return nil, bad
		}
		if f.Type == TypeInt {
			if f64 != math.Trunc(f64) || math.Abs(f64) > math.MaxInt32 {
				return nil, bad
			}
			return int64(f64), nil
		}
		return f64, nil
	default:
		// Text, id and reference fields take strings; Salesforce also takes numbers and
		// booleans for them and stores their text.
		switch v := v.(type) {
		case string:
			return v, nil
		case json.Number:
			return v.String(), nil
		case bool:
			return strconv.FormatBool(v), nil
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64), nil
		case int:
			return strconv.Itoa(v), nil
		case int64:
			return strconv.FormatInt(v, 10), nil
		}
		return nil, bad
	}
}

// jsonValue renders a stored value for a JSON response.
func jsonValue(v any) any {
	switch v := v.(type) {
	case time.Time:
		return formatTime(v)
	case soql.Date:
		return v.String()
	}
	return v
}

// formatPlain renders a stored value as text (duplicate keys, messages).
func formatPlain(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case time.Time:
		return formatTime(v)
	case soql.Date:
		return v.String()
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(v, 10)
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// dumpValue renders a stored value for Dump: RFC 3339 times and dates.
func dumpValue(v any) any {
	switch v := v.(type) {
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case soql.Date:
		return v.String()
	}
	return v
}
