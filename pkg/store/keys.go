package store

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// The key layout. Every key Tandem writes is listed here, and nowhere else.
//
// Every key starts with "tandem:" and carries a Redis Cluster hash tag, the part between
// braces, which decides the key's slot. All of one user's keys share the tag {<org>:<user>},
// so a user's lease, fence and state live in one slot and one Lua script can check the
// lease and write the state atomically, on a single Redis or a Cluster alike. Org-level keys
// share {<org>}. Ids are tokens (see ValidID), so they cannot contain the ':', '{' or '}'
// that would let one id forge another's key.
//
// Global (tag {global}):
//
//	tandem:{global}:orgs                 set     ids of the orgs (index; an id without an org is skipped)
//	tandem:{global}:wake                 channel pub/sub, not a key: "<org> <due unix ms>" per wake (wake.go)
//	tandem:{global}:tokens               hash    SHA-256 (hex) of an API token's secret → StoredToken (tokens.go)
//	tandem:{global}:tokens:id            hash    token id → SHA-256 (hex) of its secret
//	tandem:{global}:tokens:cert          hash    client certificate common name → token id (mutual TLS)
//	tandem:{global}:mailboxes            hash    lower-cased email → id of the org that syncs the mailbox:
//	                                             one org at a time (mailboxes.go)
//
// Per org (tag {<org>}):
//
//	tandem:{O}:org                       hash    "settings" → Org without secrets (protobuf);
//	                                             "secret:<field>" → sealed secret (see orgs.go)
//	tandem:{O}:configs                   hash    configuration id → SyncConfiguration (protobuf)
//	tandem:{O}:users                     hash    user id → SyncUser (protobuf)
//	tandem:{O}:users:email               hash    lower-cased email → user id
//	tandem:{O}:resets                    hash    user id → ResetStatus (enum number)
//	tandem:{O}:cursor:<name>             string  an org-level cursor (Salesforce watermark, ...)
//	tandem:{O}:errors:data               hash    "<entry>:<attr>" → one attribute of an error-report entry
//	tandem:{O}:errors:recent             zset    entry id scored by last seen (unix ms): the report, newest last
//	tandem:{O}:errors:user:<U>           zset    the same, for one user's entries
//	tandem:{O}:activity:<kind>           hash    minute (unix minutes) → records synced; "last" → unix ms of the last sync
//	tandem:{O}:schedule                  hash    "cycle" → the org's last cycle; "epoch" → when its numbering began
//	                                             (unix ms of the first claim; new after the schedule is lost);
//	                                             "next_at", "started_at" → unix ms;
//	                                             "unpublished" → a claimed cycle whose jobs are not all published,
//	                                             "publishing_until" → unix ms its publisher holds it until (outbox.go);
//	                                             "due_by" → W3C traceparents, space-separated, oldest first, at most 8,
//	                                             of the calls that made the next cycle due (DueNow under a span);
//	                                             "unpublished_due_by" → the same, of the unpublished cycle, which
//	                                             the claim moved there, for its span's links (schedule.go)
//	tandem:{O}:lease:<role>              string  "<token>:<holder id>" of the replica that watches the org for role
//	                                             ("watch-exchange", "watch-salesforce"), with the lease's TTL (watch.go)
//	tandem:{O}:fence:<role>              string  fencing counter: the last token issued for the org's role
//	tandem:{O}:watching:<role>           hash    user id → the watch lease ("<token>:<holder id>") under which the
//	                                             user's mailbox is watched (watch.go)
//	tandem:{O}:notes:<role>              hash    user id → how many changes, starts and stops of watching the
//	                                             mailbox's watchers noted (watch.go)
//	tandem:{O}:noted:<role>:<U>          list    "<note number> <items in the note> <item id> <version>" per item
//	                                             of the mailbox's item notes, the newest 2,000, for a day after the
//	                                             last (watch.go)
//	tandem:{O}:mailboxes                 set     lower-cased emails the org has claimed in tandem:{global}:mailboxes
//	                                             (a superset of its claims; see mailboxes.go)
//	tandem:{O}:changes                   channel pub/sub, not a key: "<user id>" per write of a user's status, ""
//	                                             per write of an org-level input of the org's status (changes.go)
//
// Per user (tag {<org>:<user>}):
//
//	tandem:{O:U}:lease:<role>            string  fencing token of the current holder, with the lease's TTL
//	tandem:{O:U}:fence:<role>            string  fencing counter: the last token issued for the role
//	tandem:{O:U}:cursor:<name>           string  a per-user cursor (EWS SyncState, ...)
//	tandem:{O:U}:recovery                hash    "<kind>:<side>" → the cycle the scheduler last asked
//	                                             for a full read of a side to fill a gap (recovery.go)
//
// The reconciler's ledger (package ledger), per record kind <k> ("contact", "event"):
//
//	tandem:{O:U}:mirror:<side>:<k>       hash    record id → MirrorRecord: newest observation of each record on a side
//	tandem:{O:U}:mappings:<k>            hash    sync key → Mapping: the links between records
//	tandem:{O:U}:pending:<k>             hash    "<side>:<sync key>" → PendingWrite: writes in flight
//	tandem:{O:U}:rejected:<k>            hash    "<side>:<sync key>" → RejectedWrite: writes the target refused
//	tandem:{O:U}:tombstones:<k>          set     "<side>:<id>": records never to be recreated on the other side
//	tandem:{O:U}:held:<k>                hash    hold id → Hold; "decision:<hold id>" → approve | reject
//	tandem:{O:U}:cycle:<k>               hash    cycle bookkeeping: pages received per side and cycle, readiness,
//	                                             the schedule epoch whose cycles it counts
//	tandem:{O:U}:unseen:<k>              set     ids of Exchange items Tandem wrote that no read has listed yet
//	tandem:{O:U}:dirty:<k>               set     what changed since the last plan: "<side>:<record id>", "key:<sync key>"
//
// Statuses (package status):
//
//	tandem:{O:U}:status                  hash    part ("scheduler", "exchange", "reconciler") → UserStatus;
//	                                             "kind:<RecordKind>" → KindStatus
//
// The workers (reserved names mapping, syncstate):
//
//	tandem:{O:U}:syncstate:exchange-create:<h>  string  the exchange-worker's note that it started
//	                                             the create command with hash h (24 h; see its attempts.go)
//
// Other packages build per-user keys with UserKey.Key, which accepts only the names
// registered in userNames below: a new name is added here, with a line in this layout, so
// that the whole layout stays readable in this one file.
const keyPrefix = "tandem:"

// globalTag is the hash tag of the few keys that span orgs.
const globalTag = "global"

// Names of per-org keys.
const (
	orgSettingsName   = "org"
	orgConfigsName    = "configs"
	orgUsersName      = "users"
	orgEmailIndexName = "users:email"
	orgResetsName     = "resets"
	orgCursorName     = "cursor"
	orgErrorsData     = "errors:data"
	orgErrorsRecent   = "errors:recent"
	orgErrorsUser     = "errors:user"
	orgActivityName   = "activity"
	orgScheduleName   = "schedule"
	orgChangesName    = "changes"
	orgWatchingName   = "watching"
	orgNotesName      = "notes"
	orgNotedItemsName = "noted"
)

// Names of per-user keys, the first part given to UserKey.Key.
const (
	userLeaseName  = "lease"
	userFenceName  = "fence"
	userCursorName = "cursor"
	userRecovery   = "recovery"
)

// userNames are the per-user key names in use; UserKey.Key refuses any other so that a new
// name is added here, with a line in the layout above.
var userNames = map[string]bool{
	userLeaseName:  true,
	userFenceName:  true,
	userCursorName: true,
	userRecovery:   true,
	// The reconciler's ledger and the statuses (see the layout above).
	"mirror":     true,
	"mappings":   true,
	"pending":    true,
	"rejected":   true,
	"tombstones": true,
	"held":       true,
	"cycle":      true,
	"unseen":     true,
	"dirty":      true,
	"status":     true,
	// Reserved for the workers.
	"mapping":   true,
	"syncstate": true,
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ErrInvalidID means an id or key name is not a token of 1 to 128 letters, digits, '_' or '-'.
var ErrInvalidID = errors.New("invalid id")

// ValidID reports whether s may be used as an id in keys: 1 to 128 ASCII letters, digits,
// '_' or '-', the same rule as NATS subject tokens.
func ValidID(s string) bool { return idPattern.MatchString(s) }

func checkID(what, s string) error {
	if !ValidID(s) {
		return fmt.Errorf("%w: %s %q", ErrInvalidID, what, truncate(s, 140))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// UserKey identifies one syncing user: all of the user's keys share its hash tag.
type UserKey struct {
	OrgID  string
	UserID string
}

// Validate checks both ids.
func (uk UserKey) Validate() error {
	if err := checkID("org id", uk.OrgID); err != nil {
		return err
	}
	return checkID("user id", uk.UserID)
}

// String returns "org/user", for logs and errors.
func (uk UserKey) String() string { return uk.OrgID + "/" + uk.UserID }

// tag is the content of the user's hash tag, without braces.
func (uk UserKey) tag() string { return uk.OrgID + ":" + uk.UserID }

// Key returns the per-user key tandem:{org:user}:<name>[:<part>...]. name must be one of the
// names registered in this file; every part must be a valid id.
func (uk UserKey) Key(name string, parts ...string) (string, error) {
	if err := uk.Validate(); err != nil {
		return "", err
	}
	if !userNames[name] {
		return "", fmt.Errorf("%w: unregistered per-user key name %q (add it to store/keys.go)", ErrInvalidID, name)
	}
	for _, p := range parts {
		if err := checkID("key part", p); err != nil {
			return "", err
		}
	}
	return join(uk.tag(), name, parts...), nil
}

func (uk UserKey) leaseKey(role string) string { return join(uk.tag(), userLeaseName, role) }
func (uk UserKey) fenceKey(role string) string { return join(uk.tag(), userFenceName, role) }

// An org's lease and fence keys have the names of a user's, under the org's tag, so that the
// check that keeps Commit and Apply off lease keys covers them too.
func orgLeaseKey(org, role string) string { return orgKey(org, userLeaseName, role) }
func orgFenceKey(org, role string) string { return orgKey(org, userFenceName, role) }

func join(tag, name string, parts ...string) string {
	var b strings.Builder
	b.WriteString(keyPrefix)
	b.WriteByte('{')
	b.WriteString(tag)
	b.WriteString("}:")
	b.WriteString(name)
	for _, p := range parts {
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}

// orgKey returns tandem:{org}:<name>[:<part>...]; ids must have been validated.
func orgKey(org, name string, parts ...string) string { return join(org, name, parts...) }

// ChangesChannel returns the name of the org's pub/sub channel of status changes,
// tandem:{<org>}:changes (see changes.go). It carries the org's hash tag like the org's keys,
// which PUBLISH ignores but a sharded SPUBLISH would route by.
func ChangesChannel(orgID string) (string, error) {
	if err := checkID("org id", orgID); err != nil {
		return "", err
	}
	return orgKey(orgID, orgChangesName), nil
}

func orgIndexKey() string { return join(globalTag, "orgs") }

func tokensKey() string     { return join(globalTag, "tokens") }
func tokenIDsKey() string   { return join(globalTag, "tokens", "id") }
func tokenCertsKey() string { return join(globalTag, "tokens", "cert") }

// mailboxClaimsKey is the global hash of mailbox claims; orgMailboxesKey the set of an org's
// claimed addresses, which lives in the org's slot, not the global one (see mailboxes.go).
func mailboxClaimsKey() string          { return join(globalTag, "mailboxes") }
func orgMailboxesKey(org string) string { return orgKey(org, "mailboxes") }

// hashTag returns the part of key that Redis Cluster hashes: the content of the first
// {...} if it is non-empty, as Redis defines it. ok is false for keys without a tag.
func hashTag(key string) (tag string, ok bool) {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return "", false
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return "", false
	}
	return key[open+1 : open+1+end], true
}

// KindName is the token a record kind uses in keys.
func KindName(kind tandemv1.RecordKind) string {
	switch kind {
	case tandemv1.RecordKind_RECORD_KIND_CONTACT:
		return "contact"
	case tandemv1.RecordKind_RECORD_KIND_EVENT:
		return "event"
	}
	return "unknown"
}

// SideName is the token a system uses in keys and fields.
func SideName(s tandemv1.System) string {
	if s == tandemv1.System_SYSTEM_EXCHANGE {
		return "exchange"
	}
	return "salesforce"
}
