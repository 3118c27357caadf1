package retry

import (
	"errors"
	"time"
)

// permanenter is implemented by errors that know whether retrying can help; *syncerr.Error
// implements it from the error catalogue.
type permanenter interface{ Permanent() bool }

// retryAfterer is implemented by errors that carry the delay an upstream asked for:
// *syncerr.Error (Retry-After, BackOffMilliseconds, an org's exhausted API budget) and After.
type retryAfterer interface{ RetryAfter() time.Duration }

// Permanent marks err as one that retrying cannot fix, for Do and for everyone the error
// reaches (the bus terminates and dead-letters a message whose handler returns it).
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Permanent() bool { return true }

// IsPermanent reports whether the first error in err's chain that classifies itself (with a
// Permanent() bool method) says retrying cannot help. The outermost classification wins, so a
// caller can deliberately reclassify an error by wrapping it.
func IsPermanent(err error) bool {
	var p permanenter
	return errors.As(err, &p) && p.Permanent()
}

// Abort makes Do stop and return err itself (without this wrapper). It is an operation's own
// judgement that another attempt now cannot help — a write that may already have happened, a
// failure this caller does not repeat — without calling the error permanent: whoever Do
// returns it to may still retry later. Abort(nil) is nil.
func Abort(err error) error {
	if err == nil {
		return nil
	}
	return &abortError{err: err}
}

type abortError struct{ err error }

func (e *abortError) Error() string { return e.err.Error() }
func (e *abortError) Unwrap() error { return e.err }

// After marks err as asking for the next attempt to wait d, for errors that carry a
// server-sent delay in a form of their own (a header or a SOAP element already parsed).
// After(nil, d) is nil.
func After(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &afterError{err: err, delay: d}
}

type afterError struct {
	err   error
	delay time.Duration
}

func (e *afterError) Error() string             { return e.err.Error() }
func (e *afterError) Unwrap() error             { return e.err }
func (e *afterError) RetryAfter() time.Duration { return e.delay }

// ServerDelay is the delay the first error in err's chain with a RetryAfter() time.Duration
// method asks for, or 0 (also for a negative one).
func ServerDelay(err error) time.Duration {
	var r retryAfterer
	if errors.As(err, &r) {
		return max(r.RetryAfter(), 0)
	}
	return 0
}
