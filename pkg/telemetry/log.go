package telemetry

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Attribute keys used in every log line, span and metric that concerns an org or a user.
const (
	KeyOrg   = "org"
	KeyUser  = "user"
	KeyKind  = "kind"
	KeyCycle = "cycle"
)

// Org returns the log attribute for an org id.
func Org(id string) slog.Attr { return slog.String(KeyOrg, id) }

// User returns the log attribute for a user id.
func User(id string) slog.Attr { return slog.String(KeyUser, id) }

type scopeKey struct{}

type scope struct{ org, user string }

// WithScope returns ctx carrying the org and user the work is for; log lines written with that
// context carry them without every call site repeating them.
func WithScope(ctx context.Context, org, user string) context.Context {
	return context.WithValue(ctx, scopeKey{}, scope{org: org, user: user})
}

// ScopeFrom returns the org and user carried by ctx.
func ScopeFrom(ctx context.Context) (org, user string) {
	s, _ := ctx.Value(scopeKey{}).(scope)
	return s.org, s.user
}

// ParseLevel parses "debug", "info", "warn" or "error" (case-insensitive); anything else is info.
func ParseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// NewLogger returns a JSON logger writing to w that adds, from each call's context, the org and
// user (WithScope) and the trace and span ids of the active span, and tags every line with the
// service name.
func NewLogger(w io.Writer, level slog.Leveler, service string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(contextHandler{h}).With(slog.String("service", service))
}

// contextHandler enriches records with what the context carries.
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if org, user := ScopeFrom(ctx); org != "" || user != "" {
		if org != "" {
			r.AddAttrs(Org(org))
		}
		if user != "" {
			r.AddAttrs(User(user))
		}
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
