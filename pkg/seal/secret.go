package seal

import (
	"log/slog"
)

// Redacted is what a Secret shows instead of its value.
const Redacted = "REDACTED"

// Secret is a string that never shows its value when printed, logged or marshalled: fmt
// (%v, %s, %q, %x, %#v, ...), log/slog, encoding/json and text encoders all see "REDACTED".
// Code that needs the value asks for it explicitly with Reveal, which makes every use
// easy to find.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty, which is not itself secret.
func (s Secret) IsZero() bool { return s == "" }

// String implements fmt.Stringer.
func (Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer, used by %#v.
func (Secret) GoString() string { return Redacted }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler, for YAML, XML and other text encoders.
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
