package localredis

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
)

func requireRedisServer(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed (CI installs it): ", err)
	}
}

func client(t *testing.T, s *Server) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", s.URL(), err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestStartRedisServer(t *testing.T) {
	requireRedisServer(t)
	tests := []struct {
		name       string
		appendOnly bool
	}{
		{"appendonly no", false},
		{"appendonly yes", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Start(t.Context(), Options{Dir: dir, AppendOnly: tc.appendOnly})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			if s.Embedded() {
				t.Fatal("Embedded() = true for redis-server")
			}
			host, port, err := net.SplitHostPort(s.Addr())
			if err != nil || host != "127.0.0.1" || port == "6379" {
				t.Fatalf("Addr() = %q: want 127.0.0.1 on a non-standard port", s.Addr())
			}
			if want := "redis://" + s.Addr() + "/0"; s.URL() != want {
				t.Fatalf("URL() = %q, want %q", s.URL(), want)
			}
			c := client(t, s)
			if err := c.Set(t.Context(), "k", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			cfg, err := c.ConfigGet(t.Context(), "appendonly").Result()
			if err != nil {
				t.Fatal(err)
			}
			want := map[bool]string{true: "yes", false: "no"}[tc.appendOnly]
			if cfg["appendonly"] != want {
				t.Fatalf("appendonly = %q, want %q", cfg["appendonly"], want)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
				_ = conn.Close()
				t.Fatal("the server still accepts connections after Close")
			}
			if _, err := os.Stat(dir); err != nil {
				t.Fatalf("Close removed the caller's data directory: %v", err)
			}
		})
	}
}

func TestAppendOnlyDataSurvivesRestart(t *testing.T) {
	requireRedisServer(t)
	dir := t.TempDir()
	first, err := Start(t.Context(), Options{Dir: dir, AppendOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := client(t, first).Set(t.Context(), "durable", "yes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second, err := Start(t.Context(), Options{Dir: dir, AppendOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Close() })
	got, err := client(t, second).Get(t.Context(), "durable").Result()
	if err != nil || got != "yes" {
		t.Fatalf("after restart Get = %q, %v; want yes", got, err)
	}
}

func TestTemporaryDirIsRemoved(t *testing.T) {
	requireRedisServer(t)
	s, err := Start(t.Context(), Options{AppendOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.removeDir
	if dir == "" {
		t.Fatal("no temporary directory was created")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary directory still exists: %v", err)
	}
}

func TestStartRetriesWhenThePortIsTaken(t *testing.T) {
	requireRedisServer(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port

	picks := 0
	pick := func() (int, error) {
		picks++
		if picks == 1 {
			return takenPort, nil
		}
		return freePort()
	}
	s, err := start(t.Context(), Options{Dir: t.TempDir()}, pick)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if picks != 2 {
		t.Fatalf("picked %d ports, want 2", picks)
	}
	if strings.HasSuffix(s.Addr(), ":"+strconv.Itoa(takenPort)) {
		t.Fatalf("started on the taken port %s", s.Addr())
	}
	if err := client(t, s).Ping(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestStartFailures(t *testing.T) {
	tests := []struct {
		name    string
		opts    func(t *testing.T) Options
		wantErr error
	}{
		{
			name: "binary missing",
			opts: func(t *testing.T) Options {
				return Options{RedisServerPath: filepath.Join(t.TempDir(), "redis-server"), AllowEmbedded: true}
			},
			wantErr: ErrNoRedisServer,
		},
		{
			name: "not on PATH and no fallback",
			opts: func(t *testing.T) Options {
				t.Setenv("PATH", t.TempDir())
				return Options{}
			},
			wantErr: ErrNoRedisServer,
		},
		{
			name: "binary exits at once",
			opts: func(t *testing.T) Options {
				bin := filepath.Join(t.TempDir(), "fake-redis")
				if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'fatal: bad config' >&2\nexit 1\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				return Options{RedisServerPath: bin}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Start(t.Context(), tc.opts(t))
			if err == nil {
				_ = s.Close()
				t.Fatal("Start succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Start error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestStartHonoursContext(t *testing.T) {
	// A "server" that never answers: Start must give up when the context ends and kill it.
	bin := filepath.Join(t.TempDir(), "silent-redis")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := Start(ctx, Options{RedisServerPath: bin, StopTimeout: time.Second})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start error = %v, want deadline exceeded", err)
	}
}

func TestEmbeddedFallback(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	s, err := Start(t.Context(), Options{AllowEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if !s.Embedded() {
		t.Fatal("Embedded() = false")
	}
	c := client(t, s)
	ctx := t.Context()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// TTLs must run in real time, or leases would never expire in `tandem dev`.
	if err := c.Set(ctx, "short", "v", 50*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := c.Exists(ctx, "short").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a key with a 50ms TTL did not expire within 5s")
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer is a log sink safe for the server's goroutines and the test's reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestUnexpectedExitIsLogged: a redis-server that dies under its clients (killed, crashed) is
// reported as an error with its last output; one that Close stops is not.
func TestUnexpectedExitIsLogged(t *testing.T) {
	requireRedisServer(t)
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s, err := Start(t.Context(), Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.proc.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the exit to be logged", func() bool { return strings.Contains(logs.String(), "redis-server exited unexpectedly") })

	var quiet lockedBuffer
	s2, err := Start(t.Context(), Options{Logger: slog.New(slog.NewTextHandler(&quiet, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	<-s2.proc.output.done
	if strings.Contains(quiet.String(), "unexpectedly") {
		t.Fatalf("a stop Close asked for was reported: %s", quiet.String())
	}
}
