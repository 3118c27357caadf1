package bench

import "testing"

func TestRedisCPU(t *testing.T) {
	for _, tc := range []struct {
		name, info string
		want       float64
		ok         bool
	}{
		{"both", "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9.0\r\n", 3.75, true},
		{"one missing", "# CPU\r\nused_cpu_sys:1.5\r\n", 0, false},
		{"not a number", "used_cpu_sys:x\r\nused_cpu_user:1\r\n", 0, false},
		{"empty", "", 0, false},
	} {
		got, ok := redisCPU(tc.info)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("%s: %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
