package seal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverShowsItsValue(t *testing.T) {
	const value = "hunter2-very-secret"
	s := Secret(value)
	type config struct {
		User     string
		Password Secret
	}
	c := config{User: "svc", Password: s}

	var logged bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logged, nil))
	logger.Info("connecting", "password", s, "config", c)
	var textLogged bytes.Buffer
	slog.New(slog.NewTextHandler(&textLogged, nil)).Info("connecting", "password", s)

	jsonBytes, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}

	outputs := map[string]string{
		"%v":         fmt.Sprintf("%v", s),
		"%s":         fmt.Sprintf("[%s]", s),
		"%q":         fmt.Sprintf("%q", s),
		"%x":         fmt.Sprintf("%x", s),
		"%#v":        fmt.Sprintf("%#v", s),
		"struct %+v": fmt.Sprintf("%+v", c),
		"struct %#v": fmt.Sprintf("%#v", c),
		"Sprint":     fmt.Sprint(s),
		"slog json":  logged.String(),
		"slog text":  textLogged.String(),
		"json":       string(jsonBytes),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(out, value) {
				t.Fatalf("output shows the secret: %s", out)
			}
			if name != "%x" && !strings.Contains(out, Redacted) {
				t.Fatalf("output does not say %s: %s", Redacted, out)
			}
		})
	}
	if s.Reveal() != value {
		t.Fatalf("Reveal = %q", s.Reveal())
	}
	if s.IsZero() || !Secret("").IsZero() {
		t.Fatal("IsZero is wrong")
	}
}
