//go:build !unix

package bench

// processCPU is zero where the platform does not say how much CPU time the process used.
func processCPU() float64 { return 0 }
