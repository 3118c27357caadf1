package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// proc is one OS process that chaos starts, kills and starts again: a service replica,
// nats-server or redis-server. Its output goes to a log file of its own, appended across
// restarts, so a failing run can be read afterwards.
type proc struct {
	name string
	bin  string
	args []string
	env  []string
	log  string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	starts  int
	crashes int // exits chaos did not cause
	killing bool
}

// start starts the process; it is an error to start one that runs.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is already running", p.name)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the log of %s: %w", p.name, err)
	}
	// The process lives until chaos kills it, not until a request's context ends.
	cmd := exec.Command(p.bin, p.args...) //nolint:gosec // chaos runs binaries it built itself
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.exited, p.killing = cmd, make(chan struct{}), false
	p.starts++
	exited := p.exited
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		p.mu.Lock()
		if !p.killing {
			p.crashes++
		}
		p.cmd = nil
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

// running reports whether the process runs.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// signal sends sig and waits up to wait for the process to exit, then kills it.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	if cmd == nil {
		p.mu.Unlock()
		return
	}
	p.killing = true
	p.mu.Unlock()
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-exited:
		return
	case <-time.After(wait):
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
}

// kill ends the process at once, as a node failure or an OOM kill would.
func (p *proc) kill() { p.signal(syscall.SIGKILL, 0) }

// stop asks the process to stop and gives it grace to do so.
func (p *proc) stop(grace time.Duration) { p.signal(syscall.SIGTERM, grace) }

// freePort returns a loopback port nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until something accepts connections on addr.
func waitListening(ctx context.Context, addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %s: %w", addr, within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// build compiles what chaos runs into dir: the five services from the source tree at root and
// nats-server from the module graph (the version Tandem's tests embed).
func build(ctx context.Context, root, dir string) (map[string]string, error) {
	bins := map[string]string{}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, errors.New("chaos builds the services with the go command, which is not on PATH")
	}
	type target struct{ name, pkg, moduleDir string }
	targets := []target{{"nats-server", "github.com/nats-io/nats-server/v2", filepath.Join(root, "pkg")}}
	for _, s := range Services {
		targets = append(targets, target{s, "./cmd/" + s, filepath.Join(root, "services", s)})
	}
	for _, t := range targets {
		out := filepath.Join(dir, t.name)
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, t.pkg) //nolint:gosec // building Tandem's own packages
		cmd.Dir = t.moduleDir
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %w\n%s", t.name, err, msg)
		}
		bins[t.name] = out
	}
	return bins, nil
}
