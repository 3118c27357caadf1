// Package localredis runs a private Redis for `tandem dev` and for tests: a redis-server
// process on a free loopback port with its own data directory, or, where no redis-server
// binary is installed and the caller allows it, an in-process miniredis.
//
// It never touches a Redis on the standard port: every server it starts listens on a port
// the kernel picked as free, and it checks that the server answering there is the process it
// started.
package localredis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// ErrNoRedisServer means no redis-server binary was found and the embedded fallback was not
// allowed.
var ErrNoRedisServer = errors.New("localredis: no redis-server binary found")

// Defaults for Options fields left zero.
const (
	DefaultStartTimeout = 15 * time.Second
	DefaultStopTimeout  = 10 * time.Second
	// portAttempts bounds the retries when another process takes the chosen port between
	// our probe and redis-server's bind.
	portAttempts = 5
	// logTailLines is how many lines of redis-server output an error message quotes.
	logTailLines = 20
)

// Options configure Start.
type Options struct {
	// Dir is the data directory (AOF files). Empty means a temporary directory that Close
	// removes.
	Dir string
	// Logger receives redis-server's output at debug level and lifecycle events; nil
	// discards them.
	Logger *slog.Logger
	// RedisServerPath is the redis-server binary; empty means look it up on PATH.
	RedisServerPath string
	// AllowEmbedded starts an in-process miniredis when no redis-server binary is found.
	AllowEmbedded bool
	// AppendOnly turns on the append-only file, so that data survives a restart on the same
	// Dir, as in production.
	AppendOnly bool
	// Args are further redis-server options, appended after the ones Start sets (a later
	// option wins), for tests that need a server in another mode: "--cluster-enabled",
	// "yes", or "--replicaof", "127.0.0.1", "6380". They must not change --port, --bind or
	// --dir, which Start relies on. The embedded fallback ignores them.
	Args []string
	// StartTimeout bounds the wait for the server to answer PING; 0 means
	// DefaultStartTimeout. The context given to Start can cut it shorter.
	StartTimeout time.Duration
	// StopTimeout is how long Close waits after SIGTERM before it sends SIGKILL; 0 means
	// DefaultStopTimeout.
	StopTimeout time.Duration
}

// Server is a running private Redis.
type Server struct {
	addr   string
	logger *slog.Logger

	// Exactly one of proc and mini is set.
	proc *process
	mini *miniredis.Miniredis

	removeDir string
	closeOnce sync.Once
	closeErr  error
	// closing is set once Close began: an exit after it is the one asked for.
	closing atomic.Bool
}

// Start starts a Redis and waits until it answers PING.
func Start(ctx context.Context, opts Options) (*Server, error) {
	return start(ctx, opts, freePort)
}

// start is Start with the port picker as a parameter, so that tests can hand out a port
// that is taken.
func start(ctx context.Context, opts Options, pickPort func() (int, error)) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	bin := opts.RedisServerPath
	if bin == "" {
		path, err := exec.LookPath("redis-server")
		if err != nil {
			if !opts.AllowEmbedded {
				return nil, fmt.Errorf("%w on PATH (install redis-server, or allow the embedded fallback)", ErrNoRedisServer)
			}
			return startEmbedded(logger)
		}
		bin = path
	} else if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoRedisServer, bin, err)
	}

	dir, removeDir := opts.Dir, ""
	if dir == "" {
		tmp, err := os.MkdirTemp("", "tandem-redis-")
		if err != nil {
			return nil, fmt.Errorf("localredis: create data directory: %w", err)
		}
		dir, removeDir = tmp, tmp
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("localredis: create data directory %s: %w", dir, err)
	}

	startTimeout := opts.StartTimeout
	if startTimeout <= 0 {
		startTimeout = DefaultStartTimeout
	}
	stopTimeout := opts.StopTimeout
	if stopTimeout <= 0 {
		stopTimeout = DefaultStopTimeout
	}

	var lastErr error
	for attempt := 1; attempt <= portAttempts; attempt++ {
		port, err := pickPort()
		if err != nil {
			lastErr = err
			break
		}
		proc, err := startProcess(ctx, bin, dir, port, opts.AppendOnly, opts.Args, startTimeout, stopTimeout, logger)
		if err == nil {
			logger.InfoContext(ctx, "redis-server started", "addr", proc.addr, "dir", dir, "pid", proc.cmd.Process.Pid)
			s := &Server{addr: proc.addr, logger: logger, proc: proc, removeDir: removeDir}
			go s.reportExit()
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) || ctx.Err() != nil {
			break
		}
		logger.DebugContext(ctx, "redis-server port taken, retrying", "port", port, "attempt", attempt)
	}
	if removeDir != "" {
		_ = os.RemoveAll(removeDir)
	}
	return nil, lastErr
}

// StartEmbedded starts the in-process miniredis whether or not redis-server is installed,
// so that tests can check what runs on the fallback. Only Options.Logger is used.
func StartEmbedded(opts Options) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return startEmbedded(logger)
}

func startEmbedded(logger *slog.Logger) (*Server, error) {
	m := miniredis.NewMiniRedis()
	// miniredis only ages keys when told to; ClockTTL makes leases and other TTLs expire in
	// real time, as they do in redis-server.
	m.ClockTTL(true)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("localredis: start embedded miniredis: %w", err)
	}
	logger.Warn("redis-server not found; using the embedded miniredis (in memory, nothing persists)", "addr", m.Addr())
	return &Server{addr: m.Addr(), logger: logger, mini: m}, nil
}

// reportExit logs an exit of redis-server that Close did not ask for, with the server's last
// output: otherwise the server's clients would only see their connections refused, with
// nothing to say why.
func (s *Server) reportExit() {
	<-s.proc.exited
	<-s.proc.output.done
	if s.closing.Load() {
		return
	}
	s.logger.Error("redis-server exited unexpectedly", "addr", s.addr, "error", s.proc.waitErr, "output", s.proc.output.String())
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.addr }

// URL returns the redis:// URL of the server's database 0.
func (s *Server) URL() string { return "redis://" + s.addr + "/0" }

// Embedded reports whether the server is the in-process miniredis rather than redis-server.
func (s *Server) Embedded() bool { return s.mini != nil }

// Close stops the server: SIGTERM, then SIGKILL if it has not exited after the stop timeout.
// It removes the data directory if Start created it. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.mini != nil {
			s.mini.Close()
			return
		}
		s.closing.Store(true)
		s.closeErr = s.proc.stop()
		s.logger.Info("redis-server stopped", "addr", s.addr)
		if s.removeDir != "" {
			if err := os.RemoveAll(s.removeDir); err != nil && s.closeErr == nil {
				s.closeErr = fmt.Errorf("localredis: remove data directory: %w", err)
			}
		}
	})
	return s.closeErr
}

// freePort asks the kernel for a free loopback port. Another process may take it before
// redis-server binds it; Start detects that and retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localredis: find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("localredis: find a free port: %w", err)
	}
	return port, nil
}

var errPortTaken = errors.New("port already in use")

// process is a redis-server child process.
type process struct {
	cmd         *exec.Cmd
	addr        string
	exited      chan struct{} // closed when Wait returns
	waitErr     error         // valid after exited is closed
	output      *tail
	stopTimeout time.Duration
}

func startProcess(ctx context.Context, bin, dir string, port int, appendOnly bool, extra []string, startTimeout, stopTimeout time.Duration, logger *slog.Logger) (*process, error) {
	aof := "no"
	if appendOnly {
		aof = "yes"
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", aof,
		"--daemonize", "no",
		"--logfile", "",
	}
	// Not exec.CommandContext: ctx bounds the start, not the server's life.
	cmd := exec.Command(bin, append(args, extra...)...)
	// redis-server may leave a forked AOF-rewrite child holding the output pipe; do not let
	// it keep Wait from returning.
	cmd.WaitDelay = 2 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &process{cmd: cmd, addr: addr, exited: make(chan struct{}), output: newTail(logTailLines), stopTimeout: stopTimeout}
	go p.output.consume(pr, logger.With("redis_addr", addr))
	if err := cmd.Start(); err != nil {
		_ = pw.Close()
		return nil, fmt.Errorf("localredis: start %s: %w", bin, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		_ = pw.Close()
		close(p.exited)
	}()

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := p.waitReady(ctx); err != nil {
		_ = p.stop()
		<-p.output.done
		if strings.Contains(p.output.String(), "Address already in use") {
			return nil, fmt.Errorf("localredis: %s: %w", addr, errPortTaken)
		}
		return nil, fmt.Errorf("localredis: redis-server on %s: %w; output:\n%s", addr, err, p.output.String())
	}
	return p, nil
}

// waitReady polls until the server answers PING and INFO shows it is our process, so that a
// server another process started on the same port is never mistaken for ours.
func (p *process) waitReady(ctx context.Context) error {
	client := redis.NewClient(&redis.Options{
		Addr:        p.addr,
		MaxRetries:  -1,
		DialTimeout: time.Second,
		// Short, so that a probe stuck on a foreign listener does not hide our process's exit.
		ReadTimeout:     500 * time.Millisecond,
		WriteTimeout:    500 * time.Millisecond,
		DisableIdentity: true,
		Protocol:        2,
	})
	defer client.Close()
	wantPID := strconv.Itoa(p.cmd.Process.Pid)
	ticker := time.NewTicker(25 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("exited before it was ready: %w", p.waitErr)
		default:
		}
		info, err := client.Info(ctx, "server").Result()
		if err == nil {
			if pid := infoField(info, "process_id"); pid != wantPID {
				// Someone else's server answers on our port: ours cannot have bound it.
				return fmt.Errorf("%w: process %s answers there", errPortTaken, pid)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last error: %w)", ctx.Err(), err)
		case <-p.exited:
			return fmt.Errorf("exited before it was ready: %w", p.waitErr)
		case <-ticker.C:
		}
	}
}

func infoField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// stop sends SIGTERM, waits up to stopTimeout, then kills.
func (p *process) stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("localredis: signal redis-server: %w", err)
	}
	timer := time.NewTimer(p.stopTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
		return nil
	case <-timer.C:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("localredis: kill redis-server: %w", err)
	}
	<-p.exited
	return fmt.Errorf("localredis: redis-server did not stop within %s and was killed", p.stopTimeout)
}

// tail forwards a process's output to a logger and keeps the last lines for error messages.
type tail struct {
	mu    sync.Mutex
	lines []string
	max   int
	done  chan struct{}
}

func newTail(limit int) *tail { return &tail{max: limit, done: make(chan struct{})} }

func (t *tail) consume(r io.Reader, logger *slog.Logger) {
	defer close(t.done)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		logger.Debug("redis-server", "line", line)
		t.mu.Lock()
		t.lines = append(t.lines, line)
		if len(t.lines) > t.max {
			t.lines = t.lines[len(t.lines)-t.max:]
		}
		t.mu.Unlock()
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
