package store

import (
	"errors"
	"strings"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
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

// DefaultWorkerPool is the worker pool of an org whose worker_pool is empty, and the pool a
// worker serves when it is started without one.
const DefaultWorkerPool = "shared"

// maxWorkerPoolLen is a DNS label's limit, so a pool can name the workers' Deployment
// (exchange-worker-<pool>) and appear as one token in subjects and consumer names.
const maxWorkerPoolLen = 63

const workerPoolRule = "must be 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit (a DNS label), or empty for the default pool \"" + DefaultWorkerPool + "\""

// ValidWorkerPool reports whether name is a worker pool's name: a DNS label (RFC 1123), which
// also makes it a valid NATS subject token and part of a durable consumer's name.
func ValidWorkerPool(name string) bool {
	if name == "" || len(name) > maxWorkerPoolLen || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '-' {
			continue
		}
		return false
	}
	return true
}

// WorkerPool returns the pool of workers that serves org: its worker_pool, or the default pool.
func WorkerPool(org *tandemv1.Org) string { return PoolOrDefault(org.GetWorkerPool()) }

// PoolOrDefault is the pool name, or the default pool for an empty name (an org without a
// worker_pool, a worker started without --pool).
func PoolOrDefault(name string) string {
	if name == "" {
		return DefaultWorkerPool
	}
	return name
}
