package bus

import (
	"errors"
	"fmt"
	"time"
)

// Defaults for Config.
const (
	DefaultName             = "tandem"
	DefaultReplicas         = 1
	DefaultDuplicateWindow  = 10 * time.Minute
	DefaultDeadLetterMaxAge = 14 * 24 * time.Hour
	DefaultAckWait          = 30 * time.Second
	DefaultMaxDeliver       = 8
	// DefaultDeclareAttemptTimeout leaves a cluster under load time to answer, and is short
	// enough that a request lost before the cluster had a leader is soon sent again.
	DefaultDeclareAttemptTimeout = 10 * time.Second
)

// minAckWait keeps the InProgress heartbeat (every AckWait/3) from flooding the server.
const minAckWait = time.Second

// maxReplicas is JetStream's upper bound for stream replicas.
const maxReplicas = 5

// Config holds the bus's connection settings and the tunables of its topology.
type Config struct {
	// URL is the NATS server URL, or a comma-separated list of them. Required by Connect.
	URL string
	// Name is the connection name shown by the server (e.g. the service name).
	Name string
	// CredentialsFile is a NATS .creds file (user JWT and nkey seed); empty for no authentication.
	CredentialsFile string
	// CAFile is a PEM file of the certificate authorities that sign the NATS servers' TLS
	// certificates (tls:// URLs); empty trusts the system's roots.
	CAFile string
	// Replicas is the replica count of every stream: 1 in dev and tests, 3 in Kubernetes.
	Replicas int
	// DuplicateWindow is how long a stream remembers message ids to drop re-published
	// messages. It must outlast the longest retry of a publish.
	DuplicateWindow time.Duration
	// DeadLetterMaxAge is how long dead letters are kept.
	DeadLetterMaxAge time.Duration
	// AckWait is how long the server waits for an ack before redelivering. Long handlers
	// are covered by automatic InProgress heartbeats, so this only bounds how quickly the
	// work of a crashed process is redelivered.
	AckWait time.Duration
	// MaxDeliver is how many times a message is delivered before it is dead-lettered.
	MaxDeliver int
	// DeclareAttemptTimeout bounds each attempt of each step of Declare. Declare tries again
	// after an attempt that ran out of time, until its own context ends.
	DeclareAttemptTimeout time.Duration
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.DeadLetterMaxAge == 0 {
		c.DeadLetterMaxAge = DefaultDeadLetterMaxAge
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.DeclareAttemptTimeout == 0 {
		c.DeclareAttemptTimeout = DefaultDeclareAttemptTimeout
	}
	return c
}

// validate checks a Config that has its defaults applied.
func (c Config) validate() error {
	var errs []error
	if c.Replicas < 1 || c.Replicas > maxReplicas {
		errs = append(errs, fmt.Errorf("replicas %d outside 1..%d", c.Replicas, maxReplicas))
	}
	if c.DuplicateWindow < 0 {
		errs = append(errs, fmt.Errorf("duplicate window %s is negative", c.DuplicateWindow))
	}
	if c.DeadLetterMaxAge < c.DuplicateWindow {
		// JetStream refuses a duplicate window longer than the stream's max age.
		errs = append(errs, fmt.Errorf("dead-letter max age %s is shorter than the duplicate window %s", c.DeadLetterMaxAge, c.DuplicateWindow))
	}
	if c.AckWait < minAckWait {
		errs = append(errs, fmt.Errorf("ack wait %s is shorter than %s", c.AckWait, minAckWait))
	}
	if c.MaxDeliver < 1 {
		// Unlimited redelivery (-1) would retry a poisoned message forever instead of
		// dead-lettering it.
		errs = append(errs, fmt.Errorf("max deliver %d must be at least 1", c.MaxDeliver))
	}
	if c.DeclareAttemptTimeout < 0 {
		errs = append(errs, fmt.Errorf("declare attempt timeout %s is negative", c.DeclareAttemptTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bus config: %w", err)
	}
	return nil
}
