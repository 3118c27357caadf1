package bus

import (
	"errors"

	"github.com/tandem-sync/tandem/pkg/retry"
)

// Errors returned by the bus.
var (
	// ErrNoMsgID is returned by Publish without a message id: without one a retried publish
	// would store the message twice.
	ErrNoMsgID = errors.New("bus: message id is required")
	// ErrPayloadTooLarge is returned by Publish for a message larger than MaxPayload.
	ErrPayloadTooLarge = errors.New("bus: message exceeds the maximum payload")
	// ErrUnknownConsumer is returned by Consume for a consumer that is not in the topology.
	ErrUnknownConsumer = errors.New("bus: consumer is not in the topology")
)

// Permanent marks err as one that retrying cannot fix: a handler returning it has its message
// terminated and dead-lettered at once. Permanent(nil) is nil. It is retry.Permanent, so Do
// and the bus read the mark the same way.
func Permanent(err error) error { return retry.Permanent(err) }

// IsPermanent reports whether the first error in err's chain that classifies itself (with a
// Permanent() bool method) says retrying cannot help. The outermost classification wins, so a
// caller can deliberately reclassify an error by wrapping it.
func IsPermanent(err error) bool { return retry.IsPermanent(err) }

// contender is implemented by errors that report contention rather than a failure.
type contender interface{ Contended() bool }

// Contended marks err as contention for something another process holds (a user's lease): the
// message is retried like any transient failure, after the delay err asks for, but logged at
// debug level, since waiting one's turn is expected work, not a fault. Contended(nil) is nil.
func Contended(err error) error {
	if err == nil {
		return nil
	}
	return &contendedError{err: err}
}

type contendedError struct{ err error }

func (e *contendedError) Error() string   { return e.err.Error() }
func (e *contendedError) Unwrap() error   { return e.err }
func (e *contendedError) Contended() bool { return true }

// IsContended reports whether err, or an error it wraps, is marked as contention.
func IsContended(err error) bool {
	var c contender
	return errors.As(err, &c) && c.Contended()
}
