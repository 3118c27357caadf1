package salesforce

import (
	"errors"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/syncerr"
)

func TestParseLimitInfo(t *testing.T) {
	tests := []struct {
		in        string
		used, max int64
		wantErr   bool
	}{
		{"api-usage=18/5000", 18, 5000, false},
		{"api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)", 25, 5000, false},
		{"api-usage=110018/100000; api-bursts=1/750", 110018, 100000, false},
		{"per-app-api-usage=17/250(appName=x), api-usage=3/15000", 3, 15000, false},
		{" API-USAGE = 7 / 9 ", 7, 9, false},
		{"", 0, 0, true},
		{"per-app-api-usage=17/250", 0, 0, true},
		{"api-usage=18", 0, 0, true},
		{"api-usage=x/5000", 0, 0, true},
		{"api-usage=18/0", 0, 0, true},
		{"api-usage=-1/10", 0, 0, true},
	}
	for _, tt := range tests {
		used, allocation, err := ParseLimitInfo(tt.in)
		if (err != nil) != tt.wantErr || used != tt.used || allocation != tt.max {
			t.Errorf("ParseLimitInfo(%q) = %d, %d, %v; want %d, %d, error %t", tt.in, used, allocation, err, tt.used, tt.max, tt.wantErr)
		}
	}
}

func TestBudgetReserve(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		used, max int64
		percent   int64
		wantCode  syncerr.Code // of the call after the observation; "" = admitted
	}{
		{"far below reserve", 100, 1000, 20, ""},
		{"just below reserve", 799, 1000, 20, ""},
		{"at reserve", 800, 1000, 20, syncerr.SalesforceBudgetReserved},
		{"over allocation", 1200, 1000, 20, syncerr.SalesforceBudgetReserved},
		{"other reserve", 949, 1000, 5, ""},
		{"at other reserve", 950, 1000, 5, syncerr.SalesforceBudgetReserved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &budget{reservePercent: tt.percent, limitBackoff: time.Hour, recheck: 10 * time.Minute}
			b.observe(t0, tt.used, tt.max)
			err := b.admit(t0.Add(time.Second))
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("admit: %v", err)
				}
				return
			}
			var se *syncerr.Error
			if !errors.As(err, &se) || se.Code != tt.wantCode {
				t.Fatalf("admit = %v, want %s", err, tt.wantCode)
			}
			if se.Delay <= 0 || se.Delay > 10*time.Minute {
				t.Errorf("Delay = %s, want within the recheck period", se.Delay)
			}
			if u := b.usage(t0.Add(time.Second)); u.BackedOffUntil.IsZero() || u.Reserve != tt.max*tt.percent/100 {
				t.Errorf("usage = %+v", u)
			}
		})
	}
}

func TestBudgetProbesAfterRecheck(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	b := &budget{reservePercent: 20, limitBackoff: time.Hour, recheck: 10 * time.Minute}
	b.observe(t0, 900, 1000)
	if err := b.admit(t0.Add(9 * time.Minute)); err == nil {
		t.Fatal("admitted inside the reserve before the recheck")
	}
	if err := b.admit(t0.Add(10 * time.Minute)); err != nil {
		t.Fatalf("the probe after the recheck period was refused: %v", err)
	}
	if err := b.admit(t0.Add(10*time.Minute + time.Second)); err == nil {
		t.Fatal("a second call went out before the probe's answer")
	}
	b.observe(t0.Add(10*time.Minute+2*time.Second), 500, 1000) // the window rolled
	if err := b.admit(t0.Add(10*time.Minute + 3*time.Second)); err != nil {
		t.Fatalf("refused after usage dropped: %v", err)
	}
}

func TestBudgetRequestLimitBackoff(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	b := &budget{reservePercent: 20, limitBackoff: time.Hour, limitProbe: time.Minute, recheck: 10 * time.Minute}
	b.observe(t0, 15001, 15000) // the 403 reports the allocation used up: inside the reserve
	until := b.limitExceeded(t0)
	if !until.Equal(t0.Add(time.Minute)) {
		t.Fatalf("until = %s, want a first pause of a minute", until)
	}
	err := b.admit(t0.Add(30 * time.Second))
	var se *syncerr.Error
	if !errors.As(err, &se) || se.Code != syncerr.SalesforceRequestLimit || se.Delay != 30*time.Second || se.Permanent() {
		t.Fatalf("admit = %#v", err)
	}
	if u := b.usage(t0.Add(30 * time.Second)); !u.BackedOffUntil.Equal(until) {
		t.Errorf("BackedOffUntil = %s, want %s", u.BackedOffUntil, until)
	}
	if err := b.admit(t0.Add(time.Minute)); err != nil {
		t.Errorf("the probe after the pause was refused: %v", err)
	}
	// While the limit persists the pause doubles, up to the cap.
	now := t0.Add(time.Minute)
	for i, w := range []time.Duration{2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour} {
		if got := b.limitExceeded(now).Sub(now); got != w {
			t.Fatalf("pause %d = %s, want %s", i+2, got, w)
		}
		now = now.Add(w)
	}
	// A successful call starts the next pause short again.
	b.succeeded()
	if got := b.limitExceeded(now).Sub(now); got != time.Minute {
		t.Errorf("pause after a success = %s, want a minute", got)
	}
}

func TestCallWindowRolls(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 0, 0, 30, 0, time.UTC)
	var w callWindow
	for i := range 3 {
		w.add(t0.Add(time.Duration(i) * time.Hour))
	}
	tests := []struct {
		at   time.Duration
		want int64
	}{
		{0, 1}, {2 * time.Hour, 3}, {24*time.Hour - time.Minute, 3}, {24 * time.Hour, 2}, {26 * time.Hour, 0},
	}
	for _, tt := range tests {
		if got := w.total(t0.Add(tt.at)); got != tt.want {
			t.Errorf("total at +%s = %d, want %d", tt.at, got, tt.want)
		}
	}
	var zero callWindow
	zero.add(time.Time{}) // clocks before 1970 must not panic
	if zero.total(time.Time{}) != 1 {
		t.Error("zero-time call not counted")
	}
}
