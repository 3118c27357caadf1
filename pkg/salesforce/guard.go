package salesforce

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Guards on what Salesforce (or whatever answers in its place: a proxy, a captive portal, an
// attacker in the middle) sends back. Every body is read under a size cap (WithMaxResponseBytes,
// DefaultMaxResponseBytes) before anything parses it, so the memory a response costs is bounded
// by the cap times the decoder's overhead; then a JSON body must be valid UTF-8 (encoding/json
// would otherwise replace bad bytes silently, and a record would sync with mangled text) and
// nest at most maxJSONDepth deep (Salesforce's answers nest about eight deep). All checks are
// single linear passes, so a hostile body costs time in proportion to its capped size.

// maxJSONDepth bounds the nesting of arrays and objects in a response.
const maxJSONDepth = 64

// Errors a response body can fail the guards with. Parsers wrap them; the connector classifies
// them as SALESFORCE_MALFORMED_RESPONSE.
var (
	// ErrInvalidUTF8 is a body that is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("response is not valid UTF-8")
	// ErrTooDeep is a body nested deeper than maxJSONDepth.
	ErrTooDeep = fmt.Errorf("response nests deeper than %d arrays or objects", maxJSONDepth)
)

// ResponseTooLargeError is a response body larger than the connector's cap. It is classified
// as SALESFORCE_RESPONSE_TOO_LARGE.
type ResponseTooLargeError struct {
	// Limit is the cap in bytes.
	Limit int64
}

func (e *ResponseTooLargeError) Error() string {
	return fmt.Sprintf("response larger than %d bytes", e.Limit)
}

// checkJSON applies the UTF-8 and nesting guards to a JSON body.
func checkJSON(data []byte) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w (first bad byte at offset %d)", ErrInvalidUTF8, firstInvalidUTF8(data))
	}
	depth, inString, escaped := 0, false, false
	for _, b := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
			}
		case b == '"':
			inString = true
		case b == '[' || b == '{':
			depth++
			if depth > maxJSONDepth {
				return ErrTooDeep
			}
		case b == ']' || b == '}':
			depth--
		}
	}
	return nil
}

func firstInvalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// decodeJSON checks data with checkJSON and unmarshals it into v.
func decodeJSON(data []byte, v any) error {
	if err := checkJSON(data); err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// decodeJSONNumbers is decodeJSON keeping numbers as json.Number, so that ids and amounts keep
// their exact text. Like json.Unmarshal, it refuses anything after the value.
func decodeJSONNumbers(data []byte, v any) error {
	if err := checkJSON(data); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid JSON: data after the top-level value")
	}
	return nil
}
