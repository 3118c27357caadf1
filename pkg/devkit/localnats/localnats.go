// Package localnats runs an embedded nats-server with JetStream inside the current process.
//
// `tandem dev` uses it so that a newcomer's first run needs no NATS installation, and tests use
// it (through package servertest) so that they exercise the real server, on a free port with
// their own store directory. Production runs a NATS cluster instead; nothing else in Tandem
// knows whether the server it talks to is embedded.
package localnats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Defaults applied by Start.
const (
	DefaultHost         = "127.0.0.1"
	DefaultReadyTimeout = 10 * time.Second
)

// maxPayloadLimit is nats-server's hard ceiling for max_payload (64 MiB).
const maxPayloadLimit = 64 << 20

// Options configures an embedded server.
type Options struct {
	// Host is the interface to listen on; empty means 127.0.0.1, so a dev server is not
	// reachable from the network by accident.
	Host string
	// Port is the client port. 0 and -1 both pick a free port: the zero value must never
	// land on the standard 4222, where a developer's own NATS may be running.
	Port int
	// StoreDir is where JetStream keeps its files. Required.
	StoreDir string
	// MaxPayload is the largest message the server accepts, in bytes; 0 keeps the server's
	// default (1 MiB).
	MaxPayload int32
	// Logger receives the server's log lines; nil discards them.
	Logger *slog.Logger
	// ReadyTimeout bounds how long Start waits for the server to accept connections; 0 means
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration
}

// Server is a running embedded nats-server.
type Server struct {
	ns       *server.Server
	shutdown sync.Once
}

// ErrNoStoreDir is returned by Start when Options.StoreDir is empty.
var ErrNoStoreDir = errors.New("localnats: StoreDir is required for JetStream")

// Start starts a server with JetStream enabled and returns once it accepts connections.
func Start(opts Options) (*Server, error) {
	if opts.StoreDir == "" {
		return nil, ErrNoStoreDir
	}
	if opts.MaxPayload < 0 || opts.MaxPayload > maxPayloadLimit {
		return nil, fmt.Errorf("localnats: MaxPayload %d outside 0..%d", opts.MaxPayload, maxPayloadLimit)
	}
	if opts.Port < -1 || opts.Port > 65535 {
		return nil, fmt.Errorf("localnats: invalid port %d", opts.Port)
	}
	host := opts.Host
	if host == "" {
		host = DefaultHost
	}
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	readyTimeout := opts.ReadyTimeout
	if readyTimeout <= 0 {
		readyTimeout = DefaultReadyTimeout
	}

	sopts := &server.Options{
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		MaxPayload: opts.MaxPayload,
		// The embedding process owns signal handling (tandem dev shuts everything down in
		// order on SIGTERM); the server must not react to signals by itself.
		NoSigs: true,
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("localnats: configure server: %w", err)
	}
	logger := &serverLogger{log: opts.Logger}
	// The server's own loggers exit the process on Fatalf; ours records the failure so that
	// Start can report it as an error instead.
	ns.SetLoggerV2(logger, opts.Logger != nil && opts.Logger.Enabled(context.Background(), slog.LevelDebug), false, false)

	// Start returns once the client listener is open, or early after a fatal error such as
	// an unusable store directory; waiting for readiness then would only burn the timeout.
	ns.Start()
	if fatal := logger.fatalError(); fatal != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("localnats: start server: %w", fatal)
	}
	if !ns.ReadyForConnections(readyTimeout) || !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("localnats: server with JetStream not ready after %s", readyTimeout)
	}
	return &Server{ns: ns}, nil
}

// ClientURL is the URL clients connect to, e.g. nats://127.0.0.1:41234.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Shutdown stops the server and waits until it has stopped, so that its store directory can
// be removed afterwards. It is safe to call more than once.
func (s *Server) Shutdown() {
	s.shutdown.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	})
}

// serverLogger adapts nats-server's printf-style Logger to slog.
type serverLogger struct {
	log *slog.Logger

	mu    sync.Mutex
	fatal error
}

func (l *serverLogger) fatalError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

func (l *serverLogger) emit(level slog.Level, format string, v ...any) {
	if l.log == nil {
		return
	}
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, fmt.Sprintf(format, v...), slog.String("component", "nats-server"))
}

func (l *serverLogger) Noticef(format string, v ...any) { l.emit(slog.LevelInfo, format, v...) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v...) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v...) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v...) }

// Tracef is protocol tracing, far too verbose even for debug logs; it is never enabled.
func (l *serverLogger) Tracef(string, ...any) {}

func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.fatal == nil {
		l.fatal = errors.New(msg)
	}
	l.mu.Unlock()
	l.emit(slog.LevelError, "%s", msg)
}
