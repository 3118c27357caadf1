package bus

import (
	"errors"
	"fmt"
	"strings"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// subjectRoot is the first token of every Tandem subject.
const subjectRoot = "tandem"

// maxTokenLen bounds an id token; Salesforce ids are 18 characters, sync keys and UUIDs fit easily.
const maxTokenLen = 128

// Subject tokens naming systems.
const (
	systemTokenExchange   = "exchange"
	systemTokenSalesforce = "salesforce"
)

// ErrInvalidSubject is returned for a subject or subject token that breaks Tandem's subject
// grammar.
var ErrInvalidSubject = errors.New("bus: invalid subject")

// Kind is the kind of message a subject carries; each kind has its own stream.
type Kind int

// Kinds of subjects.
const (
	KindUnspecified Kind = iota
	// KindJob is a sync job for a worker: tandem.jobs.<org>.exchange.<pool>.<user> or
	// tandem.jobs.<org>.salesforce.<pool>.
	KindJob
	// KindChanges is a batch of changes read from one side: tandem.changes.<org>.<user>.
	KindChanges
	// KindApply is a batch of writes for one side: tandem.apply.<org>.<system>.<pool>.<user>.
	KindApply
	// KindResults is the result of a batch of writes: tandem.results.<org>.<user>.
	KindResults
	// KindDead is a dead letter: tandem.dead.<org>.
	KindDead
)

// kindTokens are the second token of a subject for each kind.
var kindTokens = [...]string{
	KindUnspecified: "",
	KindJob:         "jobs",
	KindChanges:     "changes",
	KindApply:       "apply",
	KindResults:     "results",
	KindDead:        "dead",
}

// String returns the kind's subject token, e.g. "jobs".
func (k Kind) String() string {
	if k <= KindUnspecified || int(k) >= len(kindTokens) {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindTokens[k]
}

// Subject is a subject taken apart into the ids it carries.
type Subject struct {
	// Kind says which stream the subject belongs to.
	Kind Kind
	// OrgID is the Salesforce org id; every subject has one.
	OrgID string
	// UserID is the syncing user's id; empty for per-org Salesforce jobs and dead letters.
	UserID string
	// System is the side a job reads or an apply batch writes; unspecified for other kinds.
	System tandemv1.System
	// Pool is the worker pool that consumes a job or an apply batch (the org's worker_pool);
	// empty for other kinds, which the reconciler and the status API consume whatever the pool.
	Pool string
}

// Format builds the subject back from its parts.
func (s Subject) Format() (string, error) {
	if s.Pool != "" && s.Kind != KindJob && s.Kind != KindApply {
		return "", fmt.Errorf("%w: %s subjects carry no worker pool", ErrInvalidSubject, s.Kind)
	}
	switch s.Kind {
	case KindJob:
		switch s.System {
		case tandemv1.System_SYSTEM_EXCHANGE:
			return ExchangeJobSubject(s.OrgID, s.Pool, s.UserID)
		case tandemv1.System_SYSTEM_SALESFORCE:
			if s.UserID != "" {
				return "", fmt.Errorf("%w: Salesforce jobs are per org and carry no user", ErrInvalidSubject)
			}
			return SalesforceJobSubject(s.OrgID, s.Pool)
		default:
			return "", fmt.Errorf("%w: job for system %s", ErrInvalidSubject, s.System)
		}
	case KindChanges:
		return ChangesSubject(s.OrgID, s.UserID)
	case KindApply:
		return ApplySubject(s.OrgID, s.System, s.Pool, s.UserID)
	case KindResults:
		return ResultsSubject(s.OrgID, s.UserID)
	case KindDead:
		if s.UserID != "" {
			return "", fmt.Errorf("%w: dead-letter subjects carry no user", ErrInvalidSubject)
		}
		return DeadSubject(s.OrgID)
	default:
		return "", fmt.Errorf("%w: kind %s", ErrInvalidSubject, s.Kind)
	}
}

// The worker pool comes after the system in job and apply subjects, not before the org: every
// subject keeps the org as its third token, and a pool's consumers still select their messages
// with one filter (tandem.jobs.*.exchange.<pool>.*), which no other pool's filter overlaps.

// ExchangeJobSubject is where a user's Exchange sync jobs go, for the workers of the org's
// pool: tandem.jobs.<org>.exchange.<pool>.<user>.
func ExchangeJobSubject(orgID, pool, userID string) (string, error) {
	if err := checkToken("worker pool", pool); err != nil {
		return "", err
	}
	return join(token{"org id", orgID}, token{"user id", userID}, func(org, user string) string {
		return subjectRoot + ".jobs." + org + "." + systemTokenExchange + "." + pool + "." + user
	})
}

// exchangeJobsFilter matches the Exchange job subjects of every user of the org whose jobs go to
// pool: tandem.jobs.<org>.exchange.<pool>.*.
func exchangeJobsFilter(orgID, pool string) (string, error) {
	if err := checkToken("org id", orgID); err != nil {
		return "", err
	}
	if err := checkToken("worker pool", pool); err != nil {
		return "", err
	}
	return subjectRoot + ".jobs." + orgID + "." + systemTokenExchange + "." + pool + ".*", nil
}

// SalesforceJobSubject is where an org's Salesforce sync jobs go, for the workers of the org's
// pool: tandem.jobs.<org>.salesforce.<pool>.
func SalesforceJobSubject(orgID, pool string) (string, error) {
	if err := checkToken("org id", orgID); err != nil {
		return "", err
	}
	if err := checkToken("worker pool", pool); err != nil {
		return "", err
	}
	return subjectRoot + ".jobs." + orgID + "." + systemTokenSalesforce + "." + pool, nil
}

// ChangesSubject is where a user's change batches go: tandem.changes.<org>.<user>.
func ChangesSubject(orgID, userID string) (string, error) {
	return join(token{"org id", orgID}, token{"user id", userID}, func(org, user string) string {
		return subjectRoot + ".changes." + org + "." + user
	})
}

// ApplySubject is where write batches for a user on the target system go, for the workers of
// the org's pool: tandem.apply.<org>.<exchange|salesforce>.<pool>.<user>.
func ApplySubject(orgID string, target tandemv1.System, pool, userID string) (string, error) {
	sys, err := systemToken(target)
	if err != nil {
		return "", err
	}
	if err := checkToken("worker pool", pool); err != nil {
		return "", err
	}
	return join(token{"org id", orgID}, token{"user id", userID}, func(org, user string) string {
		return subjectRoot + ".apply." + org + "." + sys + "." + pool + "." + user
	})
}

// ResultsSubject is where the results of a user's write batches go: tandem.results.<org>.<user>.
func ResultsSubject(orgID, userID string) (string, error) {
	return join(token{"org id", orgID}, token{"user id", userID}, func(org, user string) string {
		return subjectRoot + ".results." + org + "." + user
	})
}

// DeadSubject is where an org's dead letters go: tandem.dead.<org>.
func DeadSubject(orgID string) (string, error) {
	if err := checkToken("org id", orgID); err != nil {
		return "", err
	}
	return subjectRoot + ".dead." + orgID, nil
}

// ParseSubject takes a Tandem subject apart. It accepts exactly the subjects the builders
// above produce.
func ParseSubject(subject string) (Subject, error) {
	toks := strings.Split(subject, ".")
	if len(toks) < 3 || toks[0] != subjectRoot {
		return Subject{}, fmt.Errorf("%w: %q is not a tandem subject", ErrInvalidSubject, subject)
	}
	var s Subject
	// userTok is the user id token for the kinds that carry one; hasUser says whether they do.
	var userTok string
	var hasUser bool
	switch toks[1] {
	case "jobs":
		s.Kind = KindJob
		switch {
		case len(toks) == 6 && toks[3] == systemTokenExchange:
			s.System, s.Pool, userTok, hasUser = tandemv1.System_SYSTEM_EXCHANGE, toks[4], toks[5], true
		case len(toks) == 5 && toks[3] == systemTokenSalesforce:
			s.System, s.Pool = tandemv1.System_SYSTEM_SALESFORCE, toks[4]
		default:
			return Subject{}, fmt.Errorf("%w: %q is not a job subject", ErrInvalidSubject, subject)
		}
	case "changes", "results":
		s.Kind = KindChanges
		if toks[1] == "results" {
			s.Kind = KindResults
		}
		if len(toks) != 4 {
			return Subject{}, fmt.Errorf("%w: %q is not a %s subject", ErrInvalidSubject, subject, toks[1])
		}
		userTok, hasUser = toks[3], true
	case "apply":
		s.Kind = KindApply
		if len(toks) != 6 {
			return Subject{}, fmt.Errorf("%w: %q is not an apply subject", ErrInvalidSubject, subject)
		}
		switch toks[3] {
		case systemTokenExchange:
			s.System = tandemv1.System_SYSTEM_EXCHANGE
		case systemTokenSalesforce:
			s.System = tandemv1.System_SYSTEM_SALESFORCE
		default:
			return Subject{}, fmt.Errorf("%w: %q names no target system", ErrInvalidSubject, subject)
		}
		s.Pool, userTok, hasUser = toks[4], toks[5], true
	case "dead":
		s.Kind = KindDead
		if len(toks) != 3 {
			return Subject{}, fmt.Errorf("%w: %q is not a dead-letter subject", ErrInvalidSubject, subject)
		}
	default:
		return Subject{}, fmt.Errorf("%w: %q has unknown kind %q", ErrInvalidSubject, subject, toks[1])
	}
	if err := checkToken("org id", toks[2]); err != nil {
		return Subject{}, err
	}
	s.OrgID = toks[2]
	if s.Kind == KindJob || s.Kind == KindApply {
		if err := checkToken("worker pool", s.Pool); err != nil {
			return Subject{}, err
		}
	}
	if hasUser {
		if err := checkToken("user id", userTok); err != nil {
			return Subject{}, err
		}
		s.UserID = userTok
	}
	return s, nil
}

type token struct{ what, value string }

// join validates an org and a user token and builds a subject from them.
func join(org, user token, build func(org, user string) string) (string, error) {
	if err := checkToken(org.what, org.value); err != nil {
		return "", err
	}
	if err := checkToken(user.what, user.value); err != nil {
		return "", err
	}
	return build(org.value, user.value), nil
}

func systemToken(sys tandemv1.System) (string, error) {
	switch sys {
	case tandemv1.System_SYSTEM_EXCHANGE:
		return systemTokenExchange, nil
	case tandemv1.System_SYSTEM_SALESFORCE:
		return systemTokenSalesforce, nil
	default:
		return "", fmt.Errorf("%w: no subject token for system %s", ErrInvalidSubject, sys)
	}
}

// checkToken enforces ^[A-Za-z0-9_-]{1,128}$. Only ids pass: an email address, a dot (which
// would split the token in two) or a wildcard (which would widen a subscription across
// tenants) is refused.
func checkToken(what, v string) error {
	if v == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalidSubject, what)
	}
	if len(v) > maxTokenLen {
		return fmt.Errorf("%w: %s of %d bytes is longer than %d", ErrInvalidSubject, what, len(v), maxTokenLen)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '_' || c == '-' {
			continue
		}
		return fmt.Errorf("%w: %s %q has %q at offset %d; only letters, digits, '_' and '-' are allowed",
			ErrInvalidSubject, what, v, c, i)
	}
	return nil
}
