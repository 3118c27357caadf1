package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestBackoffGrowsWithinJitterBounds(t *testing.T) {
	base, limit := time.Second, 5*time.Minute
	l := &consumeLoop{opts: consumeOptions{backoffBase: base, backoffMax: limit}}
	tests := []struct {
		delivered uint64
		nominal   time.Duration
	}{
		{0, time.Second},
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{9, 256 * time.Second},
		{10, limit},
		{1000, limit},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.delivered), func(t *testing.T) {
			for range 200 {
				got := l.retryDelay(errors.New("transient"), tt.delivered)
				if got < tt.nominal/2-time.Nanosecond || got > tt.nominal {
					t.Fatalf("retryDelay(%d) = %s, want within [%s, %s]", tt.delivered, got, tt.nominal/2, tt.nominal)
				}
			}
		})
	}
}

func TestRetryDelayPrefersRetryAfter(t *testing.T) {
	l := &consumeLoop{opts: consumeOptions{backoffBase: time.Millisecond, backoffMax: time.Millisecond}}
	busy := &syncerr.Error{Code: syncerr.ExchangeServerBusy, Delay: 42 * time.Second}
	tests := []struct {
		name     string
		err      error
		min, max time.Duration
	}{
		{"retry after", busy, 42 * time.Second, 42 * time.Second},
		{"wrapped retry after", fmt.Errorf("sync folder: %w", busy), 42 * time.Second, 42 * time.Second},
		{"no delay asked", syncerr.New(syncerr.ExchangeTimeout, "slow"), 0, time.Millisecond},
		{"plain error", errors.New("boom"), 0, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := l.retryDelay(tt.err, 5); got < tt.min || got > tt.max {
				t.Fatalf("retryDelay = %s, want within [%s, %s]", got, tt.min, tt.max)
			}
		})
	}
}

func TestIsPermanent(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"plain", errors.New("x"), false},
		{"bus.Permanent", Permanent(errors.New("x")), true},
		{"wrapped bus.Permanent", fmt.Errorf("apply: %w", Permanent(errors.New("x"))), true},
		{"non-retryable catalogue code", syncerr.New(syncerr.SalesforceValidationFailed, "bad"), true},
		{"retryable catalogue code", syncerr.New(syncerr.SalesforceRowLocked, "locked"), false},
		{"outer classification wins", syncerr.Wrap(syncerr.SalesforceRowLocked, Permanent(errors.New("x"))), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsPermanent(tt.err); got != tt.want {
				t.Fatalf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if Permanent(nil) != nil {
		t.Fatal("Permanent(nil) is not nil")
	}
}

func TestHeaderCarrierIsCaseSensitive(t *testing.T) {
	h := nats.Header{}
	c := headerCarrier(h)
	c.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if _, ok := h["Traceparent"]; ok {
		t.Fatal("carrier canonicalised the key")
	}
	if got := c.Get("traceparent"); got == "" {
		t.Fatal("Get(traceparent) is empty")
	}
	if got := c.Get("Traceparent"); got != "" {
		t.Fatalf("Get(Traceparent) = %q, want empty", got)
	}
	if keys := c.Keys(); len(keys) != 1 || keys[0] != "traceparent" {
		t.Fatalf("Keys() = %v", keys)
	}
	// The W3C propagator round-trips through the carrier.
	ctx := propagation.TraceContext{}.Extract(t.Context(), c)
	out := headerCarrier(nats.Header{})
	propagation.TraceContext{}.Inject(ctx, out)
	if out.Get("traceparent") != c.Get("traceparent") {
		t.Fatalf("round trip gave %q", out.Get("traceparent"))
	}
}

func TestTermReasonIsShortSingleLine(t *testing.T) {
	got := termReason(&tandemv1.SyncError{Code: "SYNC_INTERNAL", Message: "line one\nline two\t" + strings.Repeat("é", 300)})
	if strings.ContainsAny(got, "\n\t") || len(got) > maxTermReason || !strings.HasPrefix(got, "SYNC_INTERNAL: line one line two ") {
		t.Fatalf("termReason = %q", got)
	}
	if !strings.HasSuffix(got, "é") {
		t.Fatalf("termReason cut a rune: %q", got[len(got)-4:])
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"three replicas", Config{Replicas: 3}, true},
		{"too many replicas", Config{Replicas: 7}, false},
		{"negative replicas", Config{Replicas: -1}, false},
		{"ack wait too short", Config{AckWait: 10 * time.Millisecond}, false},
		{"unlimited deliveries", Config{MaxDeliver: -1}, false},
		{"dead letters outlived by duplicate window", Config{DuplicateWindow: time.Hour, DeadLetterMaxAge: time.Minute}, false},
		{"negative duplicate window", Config{DuplicateWindow: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.withDefaults().validate()
			if (err == nil) != tt.ok {
				t.Fatalf("validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestDeclareErrorClassification(t *testing.T) {
	apiErr := func(code int, errCode jetstream.ErrorCode) error {
		return &jetstream.APIError{Code: code, ErrorCode: errCode, Description: "from the server"}
	}
	tests := []struct {
		name      string
		err       error
		transient bool
	}{
		{"attempt timed out", fmt.Errorf("no answer within 10s: %w", context.DeadlineExceeded), true},
		{"request timed out", nats.ErrTimeout, true},
		{"no responders while JetStream starts", nats.ErrNoResponders, true},
		{"JetStream not enabled yet", jetstream.ErrJetStreamNotEnabled, true},
		{"JetStream not enabled for the account yet", jetstream.ErrJetStreamNotEnabledForAccount, true},
		{"no meta leader", apiErr(503, 10008), true},
		{"insufficient resources", apiErr(503, 10023), true},
		{"peers not known yet", apiErr(400, 10005), true},
		{"cluster can not handle request", apiErr(500, 10009), true},
		{"wrapped", fmt.Errorf("declare: %w", apiErr(503, 10008)), true},
		{"connection closed", nats.ErrConnectionClosed, false},
		{"retention cannot change", apiErr(500, 10052), false},
		{"subjects overlap", apiErr(400, 10065), false},
		{"consumer cannot be updated", apiErr(500, 10012), false},
		{"name in use with another configuration", jetstream.ErrStreamNameAlreadyInUse, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := transient(tt.err); got != tt.transient {
				t.Errorf("transient(%v) = %v, want %v", tt.err, got, tt.transient)
			}
			if got := IsPermanent(classify(tt.err)); got == tt.transient {
				t.Errorf("classify(%v) permanent %v, want %v", tt.err, got, !tt.transient)
			}
		})
	}
}
