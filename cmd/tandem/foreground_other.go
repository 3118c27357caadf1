//go:build !unix

package main

// takeTerminal does nothing where there are no Unix process groups.
func takeTerminal() (restore func()) { return func() {} }
