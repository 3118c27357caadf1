package ews

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/tandem-sync/tandem/pkg/syncerr"
)

// ResponseError is an error Exchange reported in a well-formed answer: a response message with
// ResponseClass="Error", or a SOAP fault.
type ResponseError struct {
	// Code is the EWS response code, e.g. "ErrorItemNotFound".
	Code string
	// Message is Exchange's MessageText (or the fault string).
	Message string
	// BackOff is the BackOffMilliseconds Exchange asked for (ErrorServerBusy), zero otherwise.
	BackOff time.Duration
	// Fault is true when the error came as a SOAP fault rather than a response message.
	Fault bool
}

func (e *ResponseError) Error() string {
	if e.Message == "" {
		return "ews: " + e.Code
	}
	return "ews: " + e.Code + ": " + e.Message
}

// Is matches sentinels by response code, so errors.Is(err, ErrItemNotFound) holds for any
// ErrorItemNotFound whatever its message.
func (e *ResponseError) Is(target error) bool {
	t, ok := target.(*ResponseError)
	return ok && t.Message == "" && t.Code == e.Code
}

// Sentinels for the response codes Tandem reacts to; compare with errors.Is.
var (
	ErrInvalidSyncState     = &ResponseError{Code: "ErrorInvalidSyncStateData"}
	ErrItemNotFound         = &ResponseError{Code: "ErrorItemNotFound"}
	ErrIrresolvableConflict = &ResponseError{Code: "ErrorIrresolvableConflict"}
	ErrServerBusy           = &ResponseError{Code: "ErrorServerBusy"}
	ErrImpersonationDenied  = &ResponseError{Code: "ErrorImpersonateUserDenied"}
	ErrNonExistentMailbox   = &ResponseError{Code: "ErrorNonExistentMailbox"}
	ErrAccessDenied         = &ResponseError{Code: "ErrorAccessDenied"}
	ErrFolderExists         = &ResponseError{Code: "ErrorFolderExists"}
	ErrFolderNotFound       = &ResponseError{Code: "ErrorFolderNotFound"}
)

// HTTPError is a non-200 HTTP answer that carried no SOAP fault.
type HTTPError struct {
	// StatusCode is the HTTP status code.
	StatusCode int
	// RetryAfter is the Retry-After the server sent, zero when absent.
	RetryAfter time.Duration
	// Location is the redirect target of a 3xx answer.
	Location string
	// Snippet is the start of the body, for diagnostics.
	Snippet string
}

func (e *HTTPError) Error() string {
	msg := "ews: HTTP " + strconv.Itoa(e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		msg += " " + t
	}
	if e.Location != "" {
		msg += " to " + e.Location
	}
	if e.Snippet != "" {
		msg += ": " + e.Snippet
	}
	return msg
}

// ResponseTooLargeError says a response exceeded the configured size cap.
type ResponseTooLargeError struct {
	// Limit is the cap in bytes.
	Limit int64
}

func (e *ResponseTooLargeError) Error() string {
	return fmt.Sprintf("ews: response larger than %d bytes", e.Limit)
}

// MalformedResponseError says a response could not be read as the expected XML.
type MalformedResponseError struct {
	// Detail says what was wrong.
	Detail string
	// Err is the parser's error, if any.
	Err error
}

func (e *MalformedResponseError) Error() string {
	if e.Err != nil {
		return "ews: malformed response: " + e.Detail + ": " + e.Err.Error()
	}
	return "ews: malformed response: " + e.Detail
}

func (e *MalformedResponseError) Unwrap() error { return e.Err }

func malformed(format string, args ...any) error {
	return &MalformedResponseError{Detail: fmt.Sprintf(format, args...)}
}

// responseCodes maps EWS response codes to the catalogue. Codes not listed are classified by
// where they occur: per item as EXCHANGE_INVALID_ITEM, per request as EXCHANGE_UNAVAILABLE.
var responseCodes = map[string]syncerr.Code{
	"ErrorImpersonateUserDenied":        syncerr.ExchangeImpersonationDenied,
	"ErrorImpersonationDenied":          syncerr.ExchangeImpersonationDenied,
	"ErrorImpersonationFailed":          syncerr.ExchangeImpersonationDenied,
	"ErrorNonExistentMailbox":           syncerr.ExchangeMailboxNotFound,
	"ErrorInvalidSmtpAddress":           syncerr.ExchangeMailboxNotFound,
	"ErrorAccessDenied":                 syncerr.ExchangeAccessDenied,
	"ErrorItemNotFound":                 syncerr.ExchangeItemNotFound,
	"ErrorIrresolvableConflict":         syncerr.ExchangeConflict,
	"ErrorInvalidSyncStateData":         syncerr.ExchangeInvalidSyncState,
	"ErrorServerBusy":                   syncerr.ExchangeServerBusy,
	"ErrorBatchProcessingStopped":       syncerr.ExchangeServerBusy,
	"ErrorTooManyObjectsOpened":         syncerr.ExchangeServerBusy,
	"ErrorExceededConnectionCount":      syncerr.ExchangeServerBusy,
	"ErrorFolderNotFound":               syncerr.ExchangeFolderNotFound,
	"ErrorQuotaExceeded":                syncerr.ExchangeQuotaExceeded,
	"ErrorMailboxStoreUnavailable":      syncerr.ExchangeUnavailable,
	"ErrorMailboxMoveInProgress":        syncerr.ExchangeUnavailable,
	"ErrorInternalServerError":          syncerr.ExchangeUnavailable,
	"ErrorInternalServerTransientError": syncerr.ExchangeUnavailable,
	"ErrorConnectionFailed":             syncerr.ExchangeUnavailable,
	"ErrorTimeoutExpired":               syncerr.ExchangeTimeout,
	"ErrorInvalidServerVersion":         syncerr.ExchangeUnsupportedVersion,
	"ErrorIncorrectSchemaVersion":       syncerr.ExchangeUnsupportedVersion,
	"ErrorSchemaValidation":             syncerr.ExchangeInvalidItem,
	"ErrorInvalidRequest":               syncerr.ExchangeInvalidItem,
}

// transientCodes are response codes after which the same request may succeed.
var transientCodes = map[string]bool{
	"ErrorServerBusy":                   true,
	"ErrorBatchProcessingStopped":       true,
	"ErrorTooManyObjectsOpened":         true,
	"ErrorExceededConnectionCount":      true,
	"ErrorMailboxStoreUnavailable":      true,
	"ErrorInternalServerTransientError": true,
	"ErrorConnectionFailed":             true,
	"ErrorTimeoutExpired":               true,
}

// classify turns any failure of an EWS exchange into a *syncerr.Error. It is the only place
// that decides codes, so every error leaves the package classified exactly once.
func classify(err error) *syncerr.Error {
	if err == nil {
		return nil
	}
	var se *syncerr.Error
	if errors.As(err, &se) {
		return se
	}
	var re *ResponseError
	if errors.As(err, &re) {
		return classifyResponse(re, err, false)
	}
	wrap := func(code syncerr.Code, upstream string, delay time.Duration) *syncerr.Error {
		return &syncerr.Error{Code: code, Detail: err.Error(), Upstream: upstream, Delay: delay, Err: err}
	}
	var he *HTTPError
	if errors.As(err, &he) {
		upstream := strconv.Itoa(he.StatusCode)
		switch {
		case he.StatusCode == 401:
			return wrap(syncerr.ExchangeAuthFailed, upstream, 0)
		case he.StatusCode == 403:
			return wrap(syncerr.ExchangeAccessDenied, upstream, 0)
		case he.StatusCode == 429, he.StatusCode == 503 && he.RetryAfter > 0:
			return wrap(syncerr.ExchangeServerBusy, upstream, he.RetryAfter)
		case he.StatusCode == 400, he.StatusCode == 413:
			return wrap(syncerr.ExchangeInvalidItem, upstream, 0)
		default:
			return wrap(syncerr.ExchangeUnavailable, upstream, he.RetryAfter)
		}
	}
	var tooLarge *ResponseTooLargeError
	if errors.As(err, &tooLarge) {
		return wrap(syncerr.ExchangeResponseTooLarge, "", 0)
	}
	var bad *MalformedResponseError
	if errors.As(err, &bad) {
		return wrap(syncerr.ExchangeMalformedResponse, "", 0)
	}
	if isTLSError(err) {
		return wrap(syncerr.ExchangeTLS, "", 0)
	}
	var re2 *oauth2.RetrieveError
	if errors.As(err, &re2) {
		if re2.Response != nil && re2.Response.StatusCode >= 400 && re2.Response.StatusCode < 500 {
			return wrap(syncerr.ExchangeAuthFailed, strconv.Itoa(re2.Response.StatusCode), 0)
		}
		return wrap(syncerr.ExchangeUnavailable, "", 0)
	}
	if isTimeout(err) {
		return wrap(syncerr.ExchangeTimeout, "", 0)
	}
	return wrap(syncerr.ExchangeUnavailable, "", 0)
}

// classifyResponse classifies an EWS response code; perItem says it concerned one item of a batch.
func classifyResponse(re *ResponseError, cause error, perItem bool) *syncerr.Error {
	code, ok := responseCodes[re.Code]
	if !ok {
		code = syncerr.ExchangeUnavailable
		if perItem {
			code = syncerr.ExchangeInvalidItem
		}
	}
	var delay time.Duration
	if code == syncerr.ExchangeServerBusy {
		delay = re.BackOff
	}
	return &syncerr.Error{Code: code, Detail: cause.Error(), Upstream: re.Code, Delay: delay, Err: cause}
}

func isTLSError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		header   tls.RecordHeaderError
		alert    tls.AlertError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &header) || errors.As(err, &alert)
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// notExecuted reports whether err proves Exchange did not carry out the request, so that
// repeating it cannot apply it twice: throttling answers, and connections that never opened.
func notExecuted(err error) bool {
	var re *ResponseError
	if errors.As(err, &re) {
		return re.Code == "ErrorServerBusy" || re.Code == "ErrorTooManyObjectsOpened" || re.Code == "ErrorExceededConnectionCount"
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.StatusCode == 429 || he.StatusCode == 503
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// transient reports whether the same request may succeed later. Requests that may have been
// carried out are repeated only when they are idempotent.
func transient(err error) bool {
	if notExecuted(err) {
		return true
	}
	var re *ResponseError
	if errors.As(err, &re) {
		return transientCodes[re.Code]
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.StatusCode == 500 || he.StatusCode == 502 || he.StatusCode == 504
	}
	var bad *MalformedResponseError
	if errors.As(err, &bad) {
		// A truncated body from a dropped connection looks like malformed XML.
		return true
	}
	if isTLSError(err) {
		return false
	}
	if isTimeout(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// serverDelay is how long Exchange asked to wait before repeating a request.
func serverDelay(err error) time.Duration {
	var re *ResponseError
	if errors.As(err, &re) {
		return re.BackOff
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.RetryAfter
	}
	return 0
}
