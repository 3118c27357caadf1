package bench

import (
	"bufio"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// heapMetric is the memory held by heap objects, live or not yet swept.
const heapMetric = "/memory/classes/heap/objects:bytes"

// memorySampler keeps the Go heap's peak, sampled every 100 ms.
type memorySampler struct {
	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
	peak     uint64
}

func startMemorySampler() *memorySampler {
	m := &memorySampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			m.sample()
			select {
			case <-m.quit:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *memorySampler) sample() {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		m.peak = max(m.peak, s[0].Value.Uint64())
	}
}

// stop ends the sampling and returns the process's peak RSS and the heap's peak, in MiB.
func (m *memorySampler) stop() (rssMiB, heapMiB float64) {
	m.stopOnce.Do(func() { close(m.quit) })
	<-m.done
	m.sample()
	kb, _ := peakRSSKiB()
	return mib(kb * 1024), mib(m.peak)
}

func mib(b uint64) float64 {
	return float64(b*10/(1<<20)) / 10
}

// peakRSSKiB reads the process's peak resident set size (VmHWM) from /proc/self/status; ok is
// false where there is no such file.
func peakRSSKiB() (kib uint64, ok bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, found := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !found {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return n, err == nil
	}
	return 0, false
}
