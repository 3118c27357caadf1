package syncerr_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// declaredCodes returns the value of every constant of type Code declared in the package's
// source, so that a code added without a catalogue entry is caught.
func declaredCodes(t *testing.T) map[syncerr.Code]string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "syncerr.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[syncerr.Code]string{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("constant %s is not a string literal", name.Name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				if prev, dup := codes[syncerr.Code(v)]; dup {
					t.Errorf("constants %s and %s share the code %q", prev, name.Name, v)
				}
				codes[syncerr.Code(v)] = name.Name
			}
		}
	}
	if len(codes) == 0 {
		t.Fatal("found no Code constants in syncerr.go")
	}
	return codes
}

func TestCatalogueHasExactlyOneEntryPerCode(t *testing.T) {
	declared := declaredCodes(t)
	seen := map[syncerr.Code]int{}
	for _, e := range syncerr.Catalogue() {
		seen[e.Code]++
		if _, ok := declared[e.Code]; !ok {
			t.Errorf("catalogue entry %q has no Code constant", e.Code)
		}
	}
	for code, name := range declared {
		if n := seen[code]; n != 1 {
			t.Errorf("%s (%q) has %d catalogue entries, want 1", name, code, n)
		}
		if _, ok := syncerr.Lookup(code); !ok {
			t.Errorf("Lookup(%s) found nothing", name)
		}
	}
}

func TestCatalogueEntriesAreComplete(t *testing.T) {
	for _, e := range syncerr.Catalogue() {
		t.Run(string(e.Code), func(t *testing.T) {
			if strings.TrimSpace(e.Summary) == "" {
				t.Error("empty summary")
			}
			if strings.TrimSpace(e.Suggestion) == "" {
				t.Error("empty suggestion")
			}
			for what, text := range map[string]string{"summary": e.Summary, "suggestion": e.Suggestion} {
				if !strings.HasSuffix(text, ".") {
					t.Errorf("%s %q does not end with a full stop", what, text)
				}
			}
			if e.Scope < syncerr.ScopeRecord || e.Scope > syncerr.ScopeOrg {
				t.Errorf("scope %d is not a Scope", e.Scope)
			}
			if syncerr.ScopeOf(e.Code) != e.Scope {
				t.Errorf("ScopeOf = %d, want %d", syncerr.ScopeOf(e.Code), e.Scope)
			}
			// The prefix of a code names the system it comes from.
			var want tandemv1.System
			switch {
			case strings.HasPrefix(string(e.Code), "EXCHANGE_"):
				want = tandemv1.System_SYSTEM_EXCHANGE
			case strings.HasPrefix(string(e.Code), "SALESFORCE_"):
				want = tandemv1.System_SYSTEM_SALESFORCE
			case strings.HasPrefix(string(e.Code), "SYNC_"):
				want = tandemv1.System_SYSTEM_UNSPECIFIED
			default:
				t.Fatalf("code without a system prefix")
			}
			if e.System != want {
				t.Errorf("system %s, want %s", e.System, want)
			}
		})
	}
}

// retryableCodes are the codes the catalogue documents as retried by Tandem itself: transient
// upstream conditions (throttling, outages, timeouts, unreadable responses, locks, conflicts),
// records gone since they were read, and Tandem's own transient failures.
var retryableCodes = map[syncerr.Code]bool{
	syncerr.ExchangeItemNotFound:        true,
	syncerr.ExchangeConflict:            true,
	syncerr.ExchangeServerBusy:          true,
	syncerr.ExchangeUnavailable:         true,
	syncerr.ExchangeTimeout:             true,
	syncerr.ExchangeAutodiscoverFailed:  true,
	syncerr.ExchangeFolderNotFound:      true,
	syncerr.ExchangeMalformedResponse:   true,
	syncerr.ExchangeInvalidSyncState:    true,
	syncerr.SalesforceRequestLimit:      true,
	syncerr.SalesforceBudgetReserved:    true,
	syncerr.SalesforceRowLocked:         true,
	syncerr.SalesforceConflict:          true,
	syncerr.SalesforceNotFound:          true,
	syncerr.SalesforceUnavailable:       true,
	syncerr.SalesforceTimeout:           true,
	syncerr.SalesforceMalformedResponse: true,
	syncerr.SyncInternal:                true,
	syncerr.SyncLeaseLost:               true,
}

func TestRetryableFlags(t *testing.T) {
	for _, e := range syncerr.Catalogue() {
		if e.Retryable != retryableCodes[e.Code] {
			t.Errorf("%s: retryable %v, want %v", e.Code, e.Retryable, retryableCodes[e.Code])
		}
		// A suggestion that promises a retry must belong to a retryable code.
		if strings.Contains(e.Suggestion, "Tandem retries") && !e.Retryable {
			t.Errorf("%s: the suggestion says Tandem retries, but the code is not retryable", e.Code)
		}
		err := &syncerr.Error{Code: e.Code}
		if err.Retryable() != e.Retryable || err.Permanent() == e.Retryable {
			t.Errorf("%s: Retryable() %v, Permanent() %v, want %v/%v", e.Code, err.Retryable(), err.Permanent(), e.Retryable, !e.Retryable)
		}
	}
	for code := range retryableCodes {
		if _, ok := syncerr.Lookup(code); !ok {
			t.Errorf("retryable code %s is not in the catalogue", code)
		}
	}
}

func TestCatalogueIsACopy(t *testing.T) {
	c := syncerr.Catalogue()
	c[0].Suggestion = "changed"
	if syncerr.Catalogue()[0].Suggestion == "changed" {
		t.Fatal("Catalogue returned the catalogue itself, not a copy")
	}
}

func TestUnknownCode(t *testing.T) {
	const code = syncerr.Code("NOT_A_CODE")
	if _, ok := syncerr.Lookup(code); ok {
		t.Fatal("Lookup found an unknown code")
	}
	if got := syncerr.ScopeOf(code); got != syncerr.ScopeUser {
		t.Errorf("ScopeOf unknown code = %d, want ScopeUser", got)
	}
	// Tandem cannot know whether an unclassified error is permanent: it retries it.
	e := &syncerr.Error{Code: code, Detail: "something"}
	if !e.Retryable() || e.Permanent() {
		t.Error("an unknown code is not retryable")
	}
	internal, _ := syncerr.Lookup(syncerr.SyncInternal)
	p := e.Proto()
	if p.GetCode() != string(code) || p.GetSuggestion() != internal.Suggestion || !p.GetRetryable() || p.GetMessage() != "something" {
		t.Errorf("Proto of an unknown code = %v", p)
	}
}

func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *syncerr.Error
		want string
	}{
		{"code only", &syncerr.Error{Code: syncerr.ExchangeTimeout}, "EXCHANGE_TIMEOUT"},
		{"with detail", &syncerr.Error{Code: syncerr.ExchangeTimeout, Detail: "SyncFolderItems after 100s"}, "EXCHANGE_TIMEOUT: SyncFolderItems after 100s"},
		{"New formats", syncerr.New(syncerr.SyncAddressNotLinked, "user %s has no email (%d)", "005x", 3), "SYNC_ADDRESS_NOT_LINKED: user 005x has no email (3)"},
		{"Wrap uses the cause's text", syncerr.Wrap(syncerr.SalesforceUnavailable, errors.New("503 from /query")), "SALESFORCE_UNAVAILABLE: 503 from /query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWrapAndUnwrap(t *testing.T) {
	if syncerr.Wrap(syncerr.SyncInternal, nil) != nil {
		t.Fatal("Wrap(code, nil) is not nil")
	}
	cause := io.ErrUnexpectedEOF
	e := syncerr.Wrap(syncerr.ExchangeMalformedResponse, cause)
	if e.Unwrap() != cause { //nolint:errorlint // Unwrap must return the cause itself
		t.Fatalf("Unwrap = %v, want the cause", e.Unwrap())
	}
	if !errors.Is(e, io.ErrUnexpectedEOF) {
		t.Error("errors.Is does not reach the cause")
	}
	if syncerr.New(syncerr.SyncInternal, "x").Unwrap() != nil {
		t.Error("an error made with New has a cause")
	}
	wrapped := fmt.Errorf("read page 3: %w", e)
	if !errors.Is(wrapped, io.ErrUnexpectedEOF) {
		t.Error("errors.Is does not reach the cause through a wrapping error")
	}
}

func TestRetryAfter(t *testing.T) {
	e := &syncerr.Error{Code: syncerr.ExchangeServerBusy, Delay: 1500 * time.Millisecond}
	if got := e.RetryAfter(); got != 1500*time.Millisecond {
		t.Errorf("RetryAfter = %s", got)
	}
	if got := syncerr.New(syncerr.ExchangeServerBusy, "busy").RetryAfter(); got != 0 {
		t.Errorf("RetryAfter without a delay = %s", got)
	}
	// The bus finds the delay through wrapping, with the interface it declares.
	var ra interface{ RetryAfter() time.Duration }
	if !errors.As(fmt.Errorf("job: %w", e), &ra) || ra.RetryAfter() != e.Delay {
		t.Error("RetryAfter is not found through wrapping")
	}
	var p interface{ Permanent() bool }
	if !errors.As(errors.Join(errors.New("other"), e), &p) || p.Permanent() {
		t.Error("Permanent is not found through errors.Join, or is wrong")
	}
}

func TestAs(t *testing.T) {
	se := &syncerr.Error{Code: syncerr.SalesforceRowLocked, Detail: "locked", RecordID: "003x"}
	outer := syncerr.Wrap(syncerr.SyncLeaseLost, fmt.Errorf("x: %w", se))
	for _, tc := range []struct {
		name string
		err  error
		// want is the *Error As must return; nil means a new SYNC_INTERNAL error wrapping err.
		want *syncerr.Error
	}{
		{"itself", se, se},
		{"wrapped", fmt.Errorf("apply: %w", se), se},
		{"wrapped twice", fmt.Errorf("batch: %w", fmt.Errorf("apply: %w", se)), se},
		{"joined", errors.Join(errors.New("first"), se), se},
		{"the outermost classification wins", outer, outer},
		{"plain", errors.New("boom"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := syncerr.As(tc.err)
			if tc.want != nil {
				if got != tc.want {
					t.Errorf("As = %v, want %v", got, tc.want)
				}
				return
			}
			if got.Code != syncerr.SyncInternal || got.Detail != tc.err.Error() || got.Unwrap() != tc.err { //nolint:errorlint // Unwrap must return the cause itself
				t.Errorf("As(plain) = %+v, want SYNC_INTERNAL wrapping it", got)
			}
		})
	}
	if syncerr.As(nil) != nil {
		t.Error("As(nil) is not nil")
	}
}

func TestToProto(t *testing.T) {
	if syncerr.ToProto(nil) != nil {
		t.Fatal("ToProto(nil) is not nil")
	}
	busy, _ := syncerr.Lookup(syncerr.ExchangeServerBusy)
	internal, _ := syncerr.Lookup(syncerr.SyncInternal)
	truncated, _ := syncerr.Lookup(syncerr.SalesforceStringTooLong)
	for _, tc := range []struct {
		name string
		err  error
		want *tandemv1.SyncError
	}{
		{
			name: "all fields",
			err: fmt.Errorf("write: %w", &syncerr.Error{
				Code: syncerr.SalesforceStringTooLong, Detail: "Title: 300 > 128", Upstream: "STRING_TOO_LONG",
				RecordID: "003x", Field: "job_title", Delay: time.Second, Err: errors.New("cause"),
			}),
			want: &tandemv1.SyncError{
				Code: string(syncerr.SalesforceStringTooLong), Message: "Title: 300 > 128", Suggestion: truncated.Suggestion,
				Retryable: false, System: tandemv1.System_SYSTEM_SALESFORCE, RecordId: "003x", Field: "job_title",
				UpstreamCode: "STRING_TOO_LONG",
			},
		},
		{
			name: "no detail: the summary is the message",
			err:  &syncerr.Error{Code: syncerr.ExchangeServerBusy},
			want: &tandemv1.SyncError{
				Code: string(syncerr.ExchangeServerBusy), Message: busy.Summary, Suggestion: busy.Suggestion,
				Retryable: true, System: tandemv1.System_SYSTEM_EXCHANGE,
			},
		},
		{
			name: "unclassified",
			err:  errors.New("redis: connection refused"),
			want: &tandemv1.SyncError{
				Code: string(syncerr.SyncInternal), Message: "redis: connection refused", Suggestion: internal.Suggestion,
				Retryable: true, System: tandemv1.System_SYSTEM_UNSPECIFIED,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := syncerr.ToProto(tc.err); !proto.Equal(got, tc.want) {
				t.Errorf("ToProto = %v\nwant %v", got, tc.want)
			}
		})
	}
}
