//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// takeTerminal makes tandem dev the terminal's foreground process group when it shares one with
// the program that started it (make, go run): Ctrl-C then reaches tandem dev alone, which stops
// cleanly and exits 0, and `make run` ends with that status instead of make's own interrupt. It
// returns the function that gives the terminal back. Without a terminal, or when a shell
// started tandem dev in a group of its own, it does nothing.
func takeTerminal() (restore func()) {
	noop := func() {}
	fd := int(os.Stdin.Fd())
	foreground, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || unix.Getpid() == unix.Getpgrp() || foreground != unix.Getpgrp() {
		return noop
	}
	if err := unix.Setpgid(0, 0); err != nil {
		return noop
	}
	// A process group that is not in the foreground is stopped by SIGTTOU when it sets the
	// foreground group; it is ignored while doing so.
	setForeground := func(pgrp int) error {
		signal.Ignore(syscall.SIGTTOU)
		defer signal.Reset(syscall.SIGTTOU)
		return unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, pgrp)
	}
	if err := setForeground(unix.Getpgrp()); err != nil {
		return noop
	}
	return func() { _ = setForeground(foreground) }
}
