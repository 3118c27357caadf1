package salesforce

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandem-sync/tandem/pkg/syncerr"
)

// LimitInfoHeader is the response header in which Salesforce reports the org's API usage.
const LimitInfoHeader = "Sforce-Limit-Info"

// errNoAPIUsage is returned by ParseLimitInfo when the header has no api-usage item.
var errNoAPIUsage = errors.New("no api-usage in " + LimitInfoHeader)

// ParseLimitInfo reads the org's daily API usage from a Sforce-Limit-Info header value such as
// "api-usage=18/5000" or "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-app)".
// used may exceed allocation when the org bursts over its allocation.
func ParseLimitInfo(v string) (used, allocation int64, err error) {
	for item := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ';' || r == ',' }) {
		name, value, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "api-usage") {
			continue
		}
		u, m, ok := strings.Cut(strings.TrimSpace(value), "/")
		if !ok {
			return 0, 0, fmt.Errorf("%s %q: want used/allocation", LimitInfoHeader, v)
		}
		used, err = strconv.ParseInt(strings.TrimSpace(u), 10, 64)
		if err != nil || used < 0 {
			return 0, 0, fmt.Errorf("%s %q: bad used count", LimitInfoHeader, v)
		}
		allocation, err = strconv.ParseInt(strings.TrimSpace(m), 10, 64)
		if err != nil || allocation <= 0 {
			return 0, 0, fmt.Errorf("%s %q: bad maximum", LimitInfoHeader, v)
		}
		return used, allocation, nil
	}
	return 0, 0, errNoAPIUsage
}

// Usage is an org's daily Salesforce API budget as the connector tracks it.
type Usage struct {
	// DailyMax is the org's daily allocation, from the last Sforce-Limit-Info (0 until one was seen).
	DailyMax int64
	// Used is the org's use in the rolling 24 hours by everyone, from the last header plus the
	// calls this connector started since.
	Used int64
	// Reserve is how many calls of the allocation Tandem leaves for everything else.
	Reserve int64
	// TandemCalls is how many REST calls this connector made in the last 24 hours.
	TandemCalls int64
	// BackedOffUntil is set while the connector refuses calls: after REQUEST_LIMIT_EXCEEDED, or
	// while the org's use is inside the reserve.
	BackedOffUntil time.Time
}

// budget tracks one org's API allocation and decides whether a call may start.
type budget struct {
	reservePercent int64
	limitBackoff   time.Duration // longest pause after REQUEST_LIMIT_EXCEEDED
	limitProbe     time.Duration // first pause after REQUEST_LIMIT_EXCEEDED; doubles while it persists
	recheck        time.Duration // pause inside the reserve before a probe call may go

	mu            sync.Mutex
	max, used     int64
	limitedUntil  time.Time // REQUEST_LIMIT_EXCEEDED
	limitStreak   int       // REQUEST_LIMIT_EXCEEDED answers since the last successful call
	reservedUntil time.Time // inside the reserve
	calls         callWindow
}

func (b *budget) reserveLocked() int64 { return b.max * b.reservePercent / 100 }

func (b *budget) insideReserveLocked() bool {
	return b.max > 0 && b.used >= b.max-b.reserveLocked()
}

// admit is asked before every REST call. It refuses while the org is backed off, and while
// the org's use is inside the reserve — except for one probe call per recheck period, since
// only a response tells whether the rolling 24-hour window has freed calls up.
func (b *budget) admit(now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.limitedUntil) {
		return &syncerr.Error{
			Code:     syncerr.SalesforceRequestLimit,
			Detail:   fmt.Sprintf("the org exceeded its daily API requests; paused until %s", b.limitedUntil.UTC().Format(time.RFC3339)),
			Upstream: "REQUEST_LIMIT_EXCEEDED",
			Delay:    b.limitedUntil.Sub(now),
		}
	}
	if b.insideReserveLocked() {
		if now.Before(b.reservedUntil) {
			return &syncerr.Error{
				Code: syncerr.SalesforceBudgetReserved,
				Detail: fmt.Sprintf("the org used %d of %d daily API requests; Tandem leaves the last %d (%d%%) for other use",
					b.used, b.max, b.reserveLocked(), b.reservePercent),
				Delay: b.reservedUntil.Sub(now),
			}
		}
		b.reservedUntil = now.Add(b.recheck)
	}
	b.used++ // counted until the response reports the real figure
	b.calls.add(now)
	return nil
}

// observe records the usage a response reported.
func (b *budget) observe(now time.Time, used, allocation int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used, b.max = used, allocation
	if b.insideReserveLocked() && !now.Before(b.reservedUntil) {
		b.reservedUntil = now.Add(b.recheck)
	}
}

// limitExceeded pauses the org after Salesforce answered REQUEST_LIMIT_EXCEEDED and returns
// until when. The first pause is short (limitProbe) and doubles while the answer persists, up to
// limitBackoff: the org's rolling 24-hour window frees calls up continuously, so only a call can
// tell when there is room again, and a limit that has passed (another integration's burst) must
// not stop the org for an hour. The call that ends the pause is let through even inside the
// reserve: it is the probe.
func (b *budget) limitExceeded(now time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	pause := b.limitBackoff
	if b.limitProbe > 0 && b.limitStreak < 30 {
		pause = min(b.limitProbe<<b.limitStreak, b.limitBackoff)
	}
	b.limitStreak++
	if until := now.Add(pause); until.After(b.limitedUntil) {
		b.limitedUntil = until
	}
	b.reservedUntil = b.limitedUntil
	return b.limitedUntil
}

// succeeded records a successful call: the next REQUEST_LIMIT_EXCEEDED starts a short pause again.
func (b *budget) succeeded() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limitStreak = 0
}

func (b *budget) usage(now time.Time) Usage {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := Usage{DailyMax: b.max, Used: b.used, Reserve: b.reserveLocked(), TandemCalls: b.calls.total(now)}
	if now.Before(b.limitedUntil) {
		u.BackedOffUntil = b.limitedUntil
	}
	if b.insideReserveLocked() && b.reservedUntil.After(u.BackedOffUntil) && now.Before(b.reservedUntil) {
		u.BackedOffUntil = b.reservedUntil
	}
	return u
}

// callWindow counts calls in a rolling 24 hours with one bucket per minute.
type callWindow struct {
	buckets [windowMinutes]struct{ minute, count int64 }
}

const windowMinutes = 24 * 60

func (w *callWindow) add(now time.Time) {
	m := now.Unix() / 60
	b := &w.buckets[(m%windowMinutes+windowMinutes)%windowMinutes] // clocks before 1970 give negative minutes
	if b.minute != m {
		b.minute, b.count = m, 0
	}
	b.count++
}

func (w *callWindow) total(now time.Time) int64 {
	m := now.Unix() / 60
	var n int64
	for _, b := range w.buckets {
		if b.count > 0 && b.minute > m-windowMinutes && b.minute <= m {
			n += b.count
		}
	}
	return n
}
