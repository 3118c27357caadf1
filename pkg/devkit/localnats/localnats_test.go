package localnats_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tandem-sync/tandem/pkg/devkit/localnats"
)

func TestStartServesJetStream(t *testing.T) {
	srv, err := localnats.Start(localnats.Options{Port: -1, StoreDir: t.TempDir(), MaxPayload: 256 << 10})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	if !strings.HasPrefix(srv.ClientURL(), "nats://127.0.0.1:") || strings.HasSuffix(srv.ClientURL(), ":4222") {
		t.Fatalf("ClientURL = %s, want a free port on 127.0.0.1", srv.ClientURL())
	}

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	if got := nc.MaxPayload(); got != 256<<10 {
		t.Errorf("MaxPayload = %d, want %d", got, 256<<10)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	ack, err := js.Publish(t.Context(), "t.1", []byte("x"))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if ack.Sequence != 1 {
		t.Errorf("sequence = %d, want 1", ack.Sequence)
	}

	srv.Shutdown()
	srv.Shutdown() // idempotent
}

func TestStartRejectsBadOptions(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts localnats.Options
		is   error
	}{
		{name: "no store dir", opts: localnats.Options{Port: -1}, is: localnats.ErrNoStoreDir},
		{name: "negative max payload", opts: localnats.Options{Port: -1, StoreDir: t.TempDir(), MaxPayload: -1}},
		{name: "bad port", opts: localnats.Options{Port: 70000, StoreDir: t.TempDir()}},
		{name: "store dir is a file", opts: localnats.Options{Port: -1, StoreDir: notADir}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := localnats.Start(tt.opts)
			if err == nil {
				srv.Shutdown()
				t.Fatalf("Start succeeded, want an error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want %v", err, tt.is)
			}
		})
	}
}
