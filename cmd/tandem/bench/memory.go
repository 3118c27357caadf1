package bench

import (
	"bufio"
	"cmp"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// heapMetric is the memory held by heap objects, live or not yet swept.
const heapMetric = "/memory/classes/heap/objects:bytes"

// memorySampler keeps the Go heap's peak, sampled every 100 ms, and what of the heap near
// that peak Tandem's own services hold (see attributeHeap).
type memorySampler struct {
	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
	peak     uint64
	// attributedAt is the heap size at the last attribution; services is the largest heap
	// Tandem's services held at any attribution.
	attributedAt uint64
	lastAttrib   time.Time
	services     heapShares
}

// The heap is attributed again when it has grown by reattribute since the last attribution, or
// reattributeEvery has passed (the services' share may peak while the whole heap does not):
// reading the heap profile walks every sampled allocation's stack, too costly to do every
// 100 ms in the process being measured.
const (
	reattribute      = 1.1
	reattributeEvery = 5 * time.Second
)

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
	if s[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	heap := s[0].Value.Uint64()
	m.peak = max(m.peak, heap)
	if float64(heap) >= reattribute*float64(m.attributedAt) || time.Since(m.lastAttrib) >= reattributeEvery {
		m.attributedAt, m.lastAttrib = heap, time.Now()
		if shares := attributeHeap(); shares.Services > m.services.Services {
			m.services = shares
		}
	}
}

// heapShares is the Go heap in use, in bytes, by who allocated it.
type heapShares struct {
	// Simulators are the Exchange and Salesforce simulators with their data; NATS is the
	// embedded nats-server; Harness is the bench and the dev environment's judge. None of them
	// runs in a deployment's Tandem processes.
	Simulators, NATS, Harness uint64
	// Services is everything else: Tandem's five services and the libraries they use.
	Services uint64
	// Sites split Services by the Tandem function nearest the allocation (see siteOf).
	Sites map[string]uint64
}

// HeapSite is a share of the services' heap and the Tandem function whose calls allocated it.
type HeapSite struct {
	Site string  `json:"site"`
	MiB  float64 `json:"mib"`
}

// topSites are the n largest sites of shares, largest first.
func topSites(shares heapShares, n int) []HeapSite {
	out := make([]HeapSite, 0, len(shares.Sites))
	for site, b := range shares.Sites {
		out = append(out, HeapSite{Site: site, MiB: math.Round(mib(b)*10) / 10})
	}
	slices.SortFunc(out, func(a, b HeapSite) int {
		if c := cmp.Compare(b.MiB, a.MiB); c != 0 {
			return c
		}
		return strings.Compare(a.Site, b.Site)
	})
	return out[:min(n, len(out))]
}

// siteOf names where an allocation of the services comes from: the innermost frame in Tandem's
// own code (without the module path), or the innermost frame outside the runtime when no
// Tandem frame is on the stack.
func siteOf(functions []string) string {
	const module = "github.com/tandem-sync/tandem/"
	fallback := ""
	for _, f := range functions {
		if name, ok := strings.CutPrefix(f, module); ok {
			return name
		}
		if fallback == "" && !strings.HasPrefix(f, "runtime.") {
			fallback = f
		}
	}
	if fallback == "" {
		return "runtime"
	}
	return fallback
}

// attributeHeap splits the heap in use, as of the last garbage collection, by whose code
// allocated it, from the runtime's sampled heap profile (scaled as runtime/pprof scales it).
// An allocation whose stack passes through a simulator, nats-server or the harness is theirs;
// the rest is the services'. It is an estimate: a buffer the HTTP server allocates for a
// simulator's connection, with no simulator frame on its stack, counts as the services'.
func attributeHeap() heapShares {
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, false)
	for {
		recs = make([]runtime.MemProfileRecord, n+50)
		var ok bool
		if n, ok = runtime.MemProfile(recs, false); ok {
			recs = recs[:n]
			break
		}
	}
	rate := float64(runtime.MemProfileRate)
	var out heapShares
	for i := range recs {
		r := &recs[i]
		inUse := r.InUseBytes()
		if inUse <= 0 {
			continue
		}
		bytes := float64(inUse)
		if objects := r.InUseObjects(); rate > 1 && objects > 0 {
			avg := bytes / float64(objects)
			bytes /= 1 - math.Exp(-avg/rate)
		}
		functions := stackFunctions(r.Stack())
		switch owner(functions) {
		case ownerSimulators:
			out.Simulators += uint64(bytes)
		case ownerNATS:
			out.NATS += uint64(bytes)
		case ownerHarness:
			out.Harness += uint64(bytes)
		default:
			out.Services += uint64(bytes)
			if out.Sites == nil {
				out.Sites = map[string]uint64{}
			}
			out.Sites[siteOf(functions)] += uint64(bytes)
		}
	}
	return out
}

type heapOwner int

const (
	ownerServices heapOwner = iota
	ownerSimulators
	ownerNATS
	ownerHarness
)

// stackFunctions are the functions of a stack, from the allocation outwards.
func stackFunctions(stack []uintptr) []string {
	var out []string
	frames := runtime.CallersFrames(stack)
	for {
		f, more := frames.Next()
		out = append(out, f.Function)
		if !more {
			return out
		}
	}
}

// owner names whose code an allocation with these functions on its stack belongs to: the first
// function, from the allocation outwards, in a simulator, nats-server or the harness decides.
func owner(functions []string) heapOwner {
	for _, f := range functions {
		if o := ownerOf(f); o != ownerServices {
			return o
		}
	}
	return ownerServices
}

// ownerOf classifies one function by its package path.
func ownerOf(function string) heapOwner {
	switch {
	case strings.HasPrefix(function, "github.com/tandem-sync/tandem/pkg/sim/"):
		return ownerSimulators
	case strings.HasPrefix(function, "github.com/nats-io/nats-server/"):
		return ownerNATS
	case strings.HasPrefix(function, "github.com/tandem-sync/tandem/cmd/tandem/bench."),
		strings.HasPrefix(function, "github.com/tandem-sync/tandem/cmd/tandem/devenv."):
		return ownerHarness
	}
	return ownerServices
}

// stop ends the sampling and returns the process's peak RSS, the heap's peak and the largest
// heap Tandem's services held, in MiB.
func (m *memorySampler) stop() (rssMiB, heapMiB, servicesHeapMiB float64) {
	m.stopOnce.Do(func() { close(m.quit) })
	<-m.done
	m.sample()
	kb, _ := peakRSSKiB()
	return mib(kb * 1024), mib(m.peak), mib(m.services.Services)
}

// servicesSites are the largest shares of the services' heap at its peak, by site.
func (m *memorySampler) servicesSites(n int) []HeapSite { return topSites(m.services, n) }

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
