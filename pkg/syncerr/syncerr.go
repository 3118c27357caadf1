// Package syncerr is Tandem's catalogue of sync errors: every problem an admin can see in a
// status or in the sync error report has a stable code, a summary, a suggestion saying what to
// do about it, and whether Tandem retries it by itself.
//
// Adapters (the EWS and Salesforce connectors) classify upstream failures into these codes once,
// at their edge; everything downstream (the bus's ack policy, statuses, the error report, the
// gRPC API) works with *Error and never re-parses upstream messages.
package syncerr

import (
	"errors"
	"fmt"
	"time"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Code is a stable catalogue code. Codes are part of the public API: never rename one.
type Code string

// Scope says what an error stops: one record, one user's sync, or the whole org's.
type Scope int

// Scopes of errors.
const (
	ScopeRecord Scope = iota + 1
	ScopeUser
	ScopeOrg
)

// Entry is one line of the catalogue.
type Entry struct {
	Code       Code
	System     tandemv1.System
	Scope      Scope
	Retryable  bool
	Summary    string
	Suggestion string
}

// Exchange errors.
const (
	ExchangeAuthFailed           Code = "EXCHANGE_AUTH_FAILED"
	ExchangeImpersonationDenied  Code = "EXCHANGE_IMPERSONATION_DENIED"
	ExchangeMailboxNotFound      Code = "EXCHANGE_MAILBOX_NOT_FOUND"
	ExchangeAccessDenied         Code = "EXCHANGE_ACCESS_DENIED"
	ExchangeItemNotFound         Code = "EXCHANGE_ITEM_NOT_FOUND"
	ExchangeConflict             Code = "EXCHANGE_CONFLICT"
	ExchangeServerBusy           Code = "EXCHANGE_SERVER_BUSY"
	ExchangeUnavailable          Code = "EXCHANGE_UNAVAILABLE"
	ExchangeTimeout              Code = "EXCHANGE_TIMEOUT"
	ExchangeTLS                  Code = "EXCHANGE_TLS"
	ExchangeAutodiscoverFailed   Code = "EXCHANGE_AUTODISCOVER_FAILED"
	ExchangeUnsupportedVersion   Code = "EXCHANGE_UNSUPPORTED_VERSION"
	ExchangeFolderNotFound       Code = "EXCHANGE_FOLDER_NOT_FOUND"
	ExchangeMalformedResponse    Code = "EXCHANGE_MALFORMED_RESPONSE"
	ExchangeResponseTooLarge     Code = "EXCHANGE_RESPONSE_TOO_LARGE"
	ExchangeInvalidItem          Code = "EXCHANGE_INVALID_ITEM"
	ExchangeQuotaExceeded        Code = "EXCHANGE_QUOTA_EXCEEDED"
	ExchangeInvalidSyncState     Code = "EXCHANGE_INVALID_SYNC_STATE"
	ExchangeConfigurationMissing Code = "EXCHANGE_CONFIGURATION_MISSING"
)

// Salesforce errors.
const (
	SalesforceAuthFailed         Code = "SALESFORCE_AUTH_FAILED"
	SalesforceRequestLimit       Code = "SALESFORCE_REQUEST_LIMIT_EXCEEDED"
	SalesforceBudgetReserved     Code = "SALESFORCE_API_BUDGET_RESERVED"
	SalesforceDuplicatesFound    Code = "SALESFORCE_DUPLICATES_DETECTED"
	SalesforceValidationFailed   Code = "SALESFORCE_VALIDATION_FAILED"
	SalesforceStringTooLong      Code = "SALESFORCE_STRING_TOO_LONG"
	SalesforceEntityDeleted      Code = "SALESFORCE_ENTITY_DELETED"
	SalesforceInvalidReference   Code = "SALESFORCE_INVALID_REFERENCE"
	SalesforceRowLocked          Code = "SALESFORCE_ROW_LOCKED"
	SalesforceConflict           Code = "SALESFORCE_CONFLICT"
	SalesforceInsufficientAccess Code = "SALESFORCE_INSUFFICIENT_ACCESS"
	SalesforceFieldMissing       Code = "SALESFORCE_FIELD_MISSING"
	SalesforceNotFound           Code = "SALESFORCE_NOT_FOUND"
	SalesforceUnavailable        Code = "SALESFORCE_UNAVAILABLE"
	SalesforceTimeout            Code = "SALESFORCE_TIMEOUT"
	SalesforceMalformedResponse  Code = "SALESFORCE_MALFORMED_RESPONSE"
	SalesforceUserInactive       Code = "SALESFORCE_USER_INACTIVE"
	SalesforceConfigMissing      Code = "SALESFORCE_CONFIGURATION_MISSING"
	SalesforceRejected           Code = "SALESFORCE_REJECTED"
	SalesforceResponseTooLarge   Code = "SALESFORCE_RESPONSE_TOO_LARGE"
	SalesforceAccountNotSet      Code = "SALESFORCE_ACCOUNT_NOT_SET"
)

// Sync engine errors.
const (
	SyncMassDeleteHeld     Code = "SYNC_MASS_DELETE_HELD"
	SyncSideLooksEmpty     Code = "SYNC_SIDE_LOOKS_EMPTY"
	SyncConflict           Code = "SYNC_CONFLICT"
	SyncRecordLimit        Code = "SYNC_RECORD_LIMIT_EXCEEDED"
	SyncNotConfigured      Code = "SYNC_NOT_CONFIGURED"
	SyncAddressNotLinked   Code = "SYNC_ADDRESS_NOT_LINKED"
	SyncMalformedMessage   Code = "SYNC_MALFORMED_MESSAGE"
	SyncDeadLetter         Code = "SYNC_GAVE_UP"
	SyncInternal           Code = "SYNC_INTERNAL"
	SyncLeaseLost          Code = "SYNC_LEASE_LOST"
	SyncWriteRejected      Code = "SYNC_WRITE_REJECTED"
	SyncFieldTruncated     Code = "SYNC_FIELD_TRUNCATED"
	SyncMalformedRecord    Code = "SYNC_MALFORMED_RECORD"
	SyncUserNotInDirectory Code = "SYNC_USER_NOT_IN_DIRECTORY"
	SyncAmbiguousMatch     Code = "SYNC_AMBIGUOUS_MATCH"
	SyncMailboxClaimed     Code = "SYNC_MAILBOX_SYNCED_BY_ANOTHER_ORG"
)

const (
	ex = tandemv1.System_SYSTEM_EXCHANGE
	sf = tandemv1.System_SYSTEM_SALESFORCE
	no = tandemv1.System_SYSTEM_UNSPECIFIED
)

// entries is the catalogue. It is data: read-only, and the single source of suggestion texts.
var entries = []Entry{
	{ExchangeAuthFailed, ex, ScopeOrg, false,
		"Exchange rejected the service account's credentials.",
		"Check the service account name (user@domain or domain\\user) and password, or the OAuth app's client secret, and save them again in the org's Exchange connection. Then run the connection test."},
	{ExchangeImpersonationDenied, ex, ScopeUser, false,
		"The service account is not allowed to impersonate this user's mailbox.",
		"Give the service account the ApplicationImpersonation role for this mailbox: check that the management scope's recipient filter includes the user, wait a few minutes for Exchange to apply it, then run the connection test for this user."},
	{ExchangeMailboxNotFound, ex, ScopeUser, false,
		"Exchange has no mailbox for the user's email address.",
		"Compare the user's Salesforce email with the mailbox's primary SMTP address in Exchange. If the reps' domain differs from the service account's, add it to the org's additional domains. Then reset sync for the user."},
	{ExchangeAccessDenied, ex, ScopeUser, false,
		"Exchange denied access to the user's folder or item.",
		"Check the service account's rights on the user's mailbox (ApplicationImpersonation or full_access_as_app) and that no mailbox policy blocks EWS for it."},
	{ExchangeItemNotFound, ex, ScopeRecord, true,
		"The Exchange item no longer exists.",
		"Nothing to do: Tandem treats the item as deleted and relinks the record on the next cycle."},
	{ExchangeConflict, ex, ScopeRecord, true,
		"The Exchange item changed while Tandem was updating it.",
		"Nothing to do: Tandem reads the item again and resolves the change on the next cycle."},
	{ExchangeServerBusy, ex, ScopeUser, true,
		"Exchange is throttling requests.",
		"Nothing to do: Tandem backs off as long as Exchange asks. If it persists, review the throttling policy applied to the service account."},
	{ExchangeUnavailable, ex, ScopeOrg, true,
		"Exchange did not answer or answered with a server error.",
		"Tandem retries. If it persists, check that EWS is reachable over HTTPS from Tandem and run Microsoft's Remote Connectivity Analyzer."},
	{ExchangeTimeout, ex, ScopeUser, true,
		"An Exchange request timed out.",
		"Tandem retries. If it persists, check the network path to the EWS endpoint and the server's load."},
	{ExchangeTLS, ex, ScopeOrg, false,
		"Tandem could not establish a trusted TLS connection to Exchange.",
		"Install a certificate on the EWS and Autodiscover endpoints that is signed by a public certificate authority, valid for the host name, and served with TLS 1.2 or later."},
	{ExchangeAutodiscoverFailed, ex, ScopeUser, true,
		"Autodiscover did not return an EWS URL for the user.",
		"Check that Autodiscover is enabled and reachable over HTTPS for the user's domain, or set the EWS URL in the org's Exchange connection."},
	{ExchangeUnsupportedVersion, ex, ScopeUser, false,
		"The user's mailbox is on a version of Exchange that Tandem does not support.",
		"Move the mailbox to Exchange Server 2016, 2019, Subscription Edition or Exchange Online."},
	{ExchangeFolderNotFound, ex, ScopeUser, true,
		"Tandem could not find or create the sync folder in the user's mailbox.",
		"Create the Salesforce_Sync folder under the user's Contacts folder (for contacts), or check that the user's Calendar folder exists (for events)."},
	{ExchangeMalformedResponse, ex, ScopeUser, true,
		"Exchange sent a response Tandem could not read.",
		"Tandem retries. If it persists, check for a proxy or load balancer rewriting EWS responses."},
	{ExchangeResponseTooLarge, ex, ScopeUser, false,
		"An Exchange response exceeded Tandem's size limit.",
		"Check the user's items for unusually large bodies or attachments in synced folders."},
	{ExchangeInvalidItem, ex, ScopeRecord, false,
		"Exchange rejected the item Tandem tried to write.",
		"Review the record's values in Salesforce (for example an invalid email address or a value too long for Exchange) and correct them."},
	{ExchangeQuotaExceeded, ex, ScopeUser, false,
		"The user's mailbox is over its storage quota.",
		"Free space in the user's mailbox or raise its quota."},
	{ExchangeInvalidSyncState, ex, ScopeUser, true,
		"Exchange no longer accepts the stored sync state.",
		"Nothing to do: Tandem runs a full resync that keeps the existing links, so nothing is duplicated."},
	{ExchangeConfigurationMissing, ex, ScopeOrg, false,
		"The org has no Exchange connection.",
		"Provide the Exchange service account or OAuth app for the org, then run the connection test."},

	{SalesforceAuthFailed, sf, ScopeOrg, false,
		"Salesforce rejected Tandem's connected app or user authorization.",
		"Check the connected app's consumer key and certificate, that the app is pre-authorized for the users' profiles, and the org's My Domain URL. Then run the connection test."},
	{SalesforceRequestLimit, sf, ScopeOrg, true,
		"The org has used its daily Salesforce API allocation.",
		"Tandem pauses the org until the allocation frees up. To sync sooner, raise the org's API allocation or reduce other integrations' use."},
	{SalesforceBudgetReserved, sf, ScopeOrg, true,
		"Tandem reached the share of the daily Salesforce API allocation it may use.",
		"Tandem resumes as the 24-hour window rolls. To let it use more, lower the org's daily API reserve."},
	{SalesforceDuplicatesFound, sf, ScopeRecord, false,
		"A Salesforce duplicate rule blocked the record.",
		"Merge the duplicate records in Salesforce, or allow the integration user to save duplicates in the duplicate rule."},
	{SalesforceValidationFailed, sf, ScopeRecord, false,
		"A Salesforce validation rule rejected the record.",
		"Correct the record's values so they pass the org's validation rules, or exempt the integration from the rule."},
	{SalesforceStringTooLong, sf, ScopeRecord, false,
		"A value was longer than the Salesforce field allows and was truncated.",
		"Shorten the value in Exchange if the full text matters; the truncated value is what Salesforce holds."},
	{SalesforceEntityDeleted, sf, ScopeRecord, false,
		"The Salesforce record was deleted.",
		"Nothing to do: Tandem treats the record as deleted. Restore it from the Recycle Bin if the deletion was a mistake."},
	{SalesforceInvalidReference, sf, ScopeRecord, false,
		"The record refers to a Salesforce record that does not exist or the user cannot see.",
		"Check the record's owner and related records (Account, Who, What) and the user's sharing access to them."},
	{SalesforceRowLocked, sf, ScopeRecord, true,
		"Salesforce could not lock the record because another process was updating it.",
		"Nothing to do: Tandem retries. If it persists, look for long-running automation on the object."},
	{SalesforceConflict, sf, ScopeRecord, true,
		"The Salesforce record changed since Tandem read it, just before Tandem would have updated it.",
		"Nothing to do: Tandem reads the record again and resolves the change on the next cycle."},
	{SalesforceInsufficientAccess, sf, ScopeRecord, false,
		"The user lacks permission for the Salesforce record or field.",
		"Give the user's profile or permission set access to the object and its fields, and check sharing on the record. When Tandem writes every rep's records as the integration user (the org's write_as, INTEGRATION_USER by default), that user needs \"Modify All\" on Contact and Event (or \"Modify All Data\"); otherwise set write_as to REP so that each rep writes their own records."},
	{SalesforceFieldMissing, sf, ScopeOrg, false,
		"A field Tandem needs is missing in Salesforce.",
		"Install Tandem's fields: the external id field Tandem_Sync_Key__c on Contact and Event, visible to the integration user."},
	{SalesforceNotFound, sf, ScopeRecord, true,
		"The Salesforce record was not found.",
		"Nothing to do: Tandem treats the record as deleted and relinks it on the next cycle."},
	{SalesforceUnavailable, sf, ScopeOrg, true,
		"Salesforce did not answer or answered with a server error.",
		"Tandem retries with backoff. Check trust.salesforce.com for incidents if it persists."},
	{SalesforceTimeout, sf, ScopeOrg, true,
		"A Salesforce request timed out.",
		"Tandem retries. If it persists, check the org for heavy automation on Contact and Event."},
	{SalesforceMalformedResponse, sf, ScopeOrg, true,
		"Salesforce sent a response Tandem could not read.",
		"Tandem retries. If it persists, check for a proxy rewriting responses."},
	{SalesforceUserInactive, sf, ScopeUser, false,
		"The Salesforce user is inactive.",
		"Reactivate the user or remove them from the sync configuration."},
	{SalesforceConfigMissing, sf, ScopeOrg, false,
		"The org has no Salesforce connection.",
		"Provide the org's My Domain URL and connected app, then run the connection test."},
	{SalesforceRejected, sf, ScopeRecord, false,
		"Salesforce rejected the record.",
		"Read the message for the field and rule involved and correct the record in Salesforce or Exchange."},
	{SalesforceResponseTooLarge, sf, ScopeOrg, false,
		"A Salesforce response exceeded Tandem's size limit.",
		"Check for a proxy returning something other than the Salesforce API, or for records with unusually large text fields in the synced objects."},
	{SalesforceAccountNotSet, sf, ScopeRecord, false,
		"The company set in Exchange could not be set as the contact's Account in Salesforce; the contact's other fields were saved.",
		"Tandem links a contact only to an existing Account whose name is exactly the Exchange company and that the user can see; it never creates, renames or removes Accounts. Create or share the Account (or correct the company in Exchange), then edit the company in Exchange again, or set the Account in Salesforce."},

	{SyncMassDeleteHeld, no, ScopeUser, false,
		"A cycle would have deleted more than the allowed share of the user's synced records; the deletes are held.",
		"Check whether the user really removed these records. Approve the held deletes to carry them out, or reject them to keep (and restore) the records."},
	{SyncSideLooksEmpty, no, ScopeUser, false,
		"One side suddenly reported no records for a user who had synced records; Tandem treats this as a fault and deletes nothing.",
		"Check the user's Salesforce_Sync folder and Salesforce records. If the records are really gone, approve the held deletes; otherwise reset sync for the user."},
	{SyncConflict, no, ScopeRecord, false,
		"The record changed on both sides since the last sync; the configuration's conflict policy decided it.",
		"Nothing to do unless the kept version is wrong; then correct the record on the side that should win."},
	{SyncRecordLimit, no, ScopeUser, false,
		"The user has more records than a configuration allows; records past the limit do not sync.",
		"Reduce the user's records in sync (for example with contact filters) or raise the configuration's record limit."},
	{SyncNotConfigured, no, ScopeUser, false,
		"The user is not assigned to an active sync configuration.",
		"Assign the user, or a profile the user has, to an active sync configuration."},
	{SyncAddressNotLinked, no, ScopeUser, false,
		"The user's Salesforce email does not match an Exchange mailbox.",
		"Make the user's Salesforce email the mailbox's primary SMTP address, or add the mailbox's domain to the org's additional domains, then reset sync for the user."},
	{SyncMalformedMessage, no, ScopeUser, false,
		"Tandem received a message it could not decode.",
		"This is a bug or a version mismatch between Tandem services: check that every service runs the same release."},
	{SyncDeadLetter, no, ScopeUser, false,
		"Tandem gave up on a piece of work after repeated failures.",
		"Read the error for the cause. After fixing it, the next cycle picks the work up again."},
	{SyncInternal, no, ScopeUser, true,
		"Tandem hit an internal error.",
		"Tandem retries. If it persists, collect the logs for this org and user and report it."},
	{SyncLeaseLost, no, ScopeUser, true,
		"Another Tandem process took over the user's sync while this one was working.",
		"Nothing to do: the work is retried by the process that holds the user's lease."},
	{SyncWriteRejected, no, ScopeRecord, false,
		"A write was rejected and will not be retried until the record changes.",
		"Read the error for the cause and correct the record."},
	{SyncFieldTruncated, no, ScopeRecord, false,
		"A value was too long for the target field and was truncated.",
		"Shorten the value at its source if the full text matters."},
	{SyncMalformedRecord, no, ScopeRecord, false,
		"A record could not be read or mapped.",
		"Open the record on its side and check for invalid values (dates, email addresses, very long text)."},
	{SyncUserNotInDirectory, no, ScopeUser, false,
		"The user is not in the org's Salesforce user directory.",
		"Check that the user exists and is active in Salesforce; the directory refreshes every cycle."},
	{SyncAmbiguousMatch, no, ScopeRecord, false,
		"Several contacts on the other side have the same name (and company) and none can be told apart by email; Tandem links none of them and creates none of them, rather than merge different people or duplicate one.",
		"Give the contacts their email addresses (or distinct names) on either side; the next cycle links or creates them."},
	{SyncMailboxClaimed, no, ScopeUser, false,
		"The user's mailbox is already synced by another Salesforce org; this org reads and writes nothing for the user, so that the two orgs' contacts and events do not mix.",
		"Sync the mailbox from one org only: stop syncing the user in the other org (the one the message names), or remove the user from this org's sync configuration. Once the other org no longer syncs the mailbox, this org takes it over on its next cycle."},
}

// Lookup returns the catalogue entry for code.
func Lookup(code Code) (Entry, bool) {
	for _, e := range entries {
		if e.Code == code {
			return e, true
		}
	}
	return Entry{}, false
}

// Catalogue returns a copy of every entry, in catalogue order.
func Catalogue() []Entry {
	return append([]Entry(nil), entries...)
}

// Error is a classified sync error. It wraps the underlying cause for errors.Is/As and
// carries what the catalogue needs to explain it.
type Error struct {
	// Code is the catalogue code.
	Code Code
	// Detail says what happened, including upstream messages.
	Detail string
	// Upstream is the code the upstream system gave (EWS ResponseCode, Salesforce errorCode, HTTP status).
	Upstream string
	// RecordID is the record concerned, if any.
	RecordID string
	// Field is the canonical field concerned, if any.
	Field string
	// Delay is how long the upstream asked Tandem to wait before retrying (Retry-After,
	// BackOffMilliseconds); zero when it said nothing.
	Delay time.Duration
	// Err is the cause.
	Err error
}

// New returns an *Error with code and a formatted detail.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with code wrapping err; the detail is err's text.
func Wrap(code Code, err error) *Error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Detail: err.Error(), Err: err}
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Detail
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether Tandem retries the error by itself.
func (e *Error) Retryable() bool {
	entry, ok := Lookup(e.Code)
	return !ok || entry.Retryable
}

// Permanent reports whether retrying cannot help; the bus terminates such messages.
func (e *Error) Permanent() bool { return !e.Retryable() }

// RetryAfter is the delay the upstream asked for, used by the bus's redelivery backoff.
func (e *Error) RetryAfter() time.Duration { return e.Delay }

// Proto returns the error as the API shows it, with the catalogue's suggestion.
func (e *Error) Proto() *tandemv1.SyncError {
	entry, ok := Lookup(e.Code)
	if !ok {
		entry, _ = Lookup(SyncInternal)
	}
	msg := e.Detail
	if msg == "" {
		msg = entry.Summary
	}
	return &tandemv1.SyncError{
		Code:         string(e.Code),
		Message:      msg,
		Suggestion:   entry.Suggestion,
		Retryable:    entry.Retryable,
		System:       entry.System,
		RecordId:     e.RecordID,
		Field:        e.Field,
		UpstreamCode: e.Upstream,
	}
}

// As returns the *Error in err's chain, or one with code SyncInternal wrapping err.
func As(err error) *Error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	return &Error{Code: SyncInternal, Detail: err.Error(), Err: err}
}

// ToProto classifies err for the API: the catalogue entry of the *Error in its chain, or SyncInternal.
func ToProto(err error) *tandemv1.SyncError {
	if err == nil {
		return nil
	}
	return As(err).Proto()
}

// ScopeOf returns the scope of code, ScopeUser when the code is unknown.
func ScopeOf(code Code) Scope {
	if e, ok := Lookup(code); ok {
		return e.Scope
	}
	return ScopeUser
}

// LeavesFieldUnwritten reports whether a warning with code, attached to a successful write,
// means the write left the warning's field as the target held it before (rather than setting
// it to the value sent). The reconciler then keeps the target's previous value of that field as
// its base, so the two sides' differing values are recognised as agreed on and the write is not
// planned again every cycle.
func LeavesFieldUnwritten(code Code) bool {
	return code == SalesforceAccountNotSet
}
