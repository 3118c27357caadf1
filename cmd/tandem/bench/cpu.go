package bench

import (
	"bufio"
	"context"
	"runtime/metrics"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// cpuUse is the CPU time used so far: the process's (processCPU; zero where the platform does
// not say), the Go runtime's estimates of its garbage collector's and of all its work, and
// Redis's (redisOK false when Redis does not answer INFO cpu, as the in-memory stand-in).
type cpuUse struct {
	process, goGC, goBusy, redis float64
	redisOK                      bool
}

func readCPU(ctx context.Context, rdb redis.UniversalClient) cpuUse {
	s := []metrics.Sample{
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/cpu/classes/total:cpu-seconds"},
		{Name: "/cpu/classes/idle:cpu-seconds"},
	}
	metrics.Read(s)
	u := cpuUse{process: processCPU()}
	if s[0].Value.Kind() == metrics.KindFloat64 && s[1].Value.Kind() == metrics.KindFloat64 && s[2].Value.Kind() == metrics.KindFloat64 {
		u.goGC, u.goBusy = s[0].Value.Float64(), s[1].Value.Float64()-s[2].Value.Float64()
	}
	if info, err := rdb.Info(ctx, "cpu").Result(); err == nil {
		u.redis, u.redisOK = redisCPU(info)
	}
	return u
}

// redisCPU is the CPU time Redis reports in INFO cpu: its main process's user and system time.
func redisCPU(info string) (float64, bool) {
	var total float64
	found := 0
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || (name != "used_cpu_sys" && name != "used_cpu_user") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, false
		}
		total += v
		found++
	}
	return total, found == 2
}

// cpuBetween fills r's CPU fields with what was used from a to b.
func cpuBetween(r *Result, a, b cpuUse) {
	r.CPUSeconds = b.process - a.process
	if busy := b.goBusy - a.goBusy; busy > 0 {
		r.GCCPUShare = (b.goGC - a.goGC) / busy
	}
	if a.redisOK && b.redisOK {
		r.RedisCPUSeconds = b.redis - a.redis
	}
}
