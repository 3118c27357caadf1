package store

import (
	"errors"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every *ValidationError.
var ErrInvalid = errors.New("invalid argument")

// FieldViolation is one problem with one field of a request.
type FieldViolation struct {
	// Field is the field's path, e.g. "contacts.filters[0].operator".
	Field string
	// Description says what is wrong, for the admin.
	Description string
}

// ValidationError lists everything wrong with a value the store was asked to write; the API
// maps it to InvalidArgument with one violation per field.
type ValidationError struct {
	Violations []FieldViolation
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Violations))
	for _, v := range e.Violations {
		parts = append(parts, v.Field+": "+v.Description)
	}
	return "invalid: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// violations collects FieldViolations.
type violations []FieldViolation

func (v *violations) add(field, description string) {
	*v = append(*v, FieldViolation{Field: field, Description: description})
}

func (v violations) err() error {
	if len(v) == 0 {
		return nil
	}
	return &ValidationError{Violations: v}
}

const idRule = "must be 1 to 128 letters, digits, '_' or '-'"
