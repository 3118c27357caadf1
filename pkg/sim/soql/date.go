package soql

import (
	"fmt"
	"time"
)

// Date is a calendar day without a time or zone, the value of a Salesforce date field.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateOf returns the day of t in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{Year: y, Month: m, Day: d}
}

func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, int(d.Month), d.Day) }

// In returns midnight at the start of d in loc.
func (d Date) In(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
}

// AddDays returns the day n days after d (before, for negative n).
func (d Date) AddDays(n int) Date {
	return DateOf(time.Date(d.Year, d.Month, d.Day+n, 0, 0, 0, 0, time.UTC))
}

// Compare returns -1, 0 or +1 as d is before, equal to or after o.
func (d Date) Compare(o Date) int {
	switch {
	case d.Year != o.Year:
		return cmpInt(d.Year, o.Year)
	case d.Month != o.Month:
		return cmpInt(int(d.Month), int(o.Month))
	default:
		return cmpInt(d.Day, o.Day)
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// dateLiteral describes a relative date literal: the half-open range of days [from, to) it
// covers, given today and the first day of the current week.
type dateLiteral struct {
	takesN bool
	span   func(today, weekStart Date, n int) (from, to Date)
}

func monthStart(d Date, plusMonths int) Date {
	return DateOf(time.Date(d.Year, d.Month+time.Month(plusMonths), 1, 0, 0, 0, 0, time.UTC))
}

func yearStart(d Date, plusYears int) Date {
	return Date{Year: d.Year + plusYears, Month: time.January, Day: 1}
}

// dateLiterals follow Salesforce's definitions. LAST_N_DAYS:n covers today and the n days
// before it (Salesforce's behaviour, which its documentation words ambiguously); NEXT_N_DAYS:n
// starts tomorrow and does not include today.
var dateLiterals = map[string]dateLiteral{
	"YESTERDAY": {span: func(t, _ Date, _ int) (Date, Date) { return t.AddDays(-1), t }},
	"TODAY":     {span: func(t, _ Date, _ int) (Date, Date) { return t, t.AddDays(1) }},
	"TOMORROW":  {span: func(t, _ Date, _ int) (Date, Date) { return t.AddDays(1), t.AddDays(2) }},
	"LAST_WEEK": {span: func(_, w Date, _ int) (Date, Date) { return w.AddDays(-7), w }},
	"THIS_WEEK": {span: func(_, w Date, _ int) (Date, Date) { return w, w.AddDays(7) }},
	"NEXT_WEEK": {span: func(_, w Date, _ int) (Date, Date) { return w.AddDays(7), w.AddDays(14) }},
	"LAST_MONTH": {span: func(t, _ Date, _ int) (Date, Date) {
		return monthStart(t, -1), monthStart(t, 0)
	}},
	"THIS_MONTH": {span: func(t, _ Date, _ int) (Date, Date) {
		return monthStart(t, 0), monthStart(t, 1)
	}},
	"NEXT_MONTH": {span: func(t, _ Date, _ int) (Date, Date) {
		return monthStart(t, 1), monthStart(t, 2)
	}},
	"LAST_90_DAYS": {span: func(t, _ Date, _ int) (Date, Date) { return t.AddDays(-90), t.AddDays(1) }},
	"NEXT_90_DAYS": {span: func(t, _ Date, _ int) (Date, Date) { return t.AddDays(1), t.AddDays(91) }},
	"THIS_YEAR":    {span: func(t, _ Date, _ int) (Date, Date) { return yearStart(t, 0), yearStart(t, 1) }},
	"LAST_YEAR":    {span: func(t, _ Date, _ int) (Date, Date) { return yearStart(t, -1), yearStart(t, 0) }},
	"NEXT_YEAR":    {span: func(t, _ Date, _ int) (Date, Date) { return yearStart(t, 1), yearStart(t, 2) }},
	"LAST_N_DAYS": {takesN: true, span: func(t, _ Date, n int) (Date, Date) {
		return t.AddDays(-n), t.AddDays(1)
	}},
	"NEXT_N_DAYS": {takesN: true, span: func(t, _ Date, n int) (Date, Date) {
		return t.AddDays(1), t.AddDays(1 + n)
	}},
	"N_DAYS_AGO": {takesN: true, span: func(t, _ Date, n int) (Date, Date) {
		return t.AddDays(-n), t.AddDays(-n + 1)
	}},
	"LAST_N_WEEKS": {takesN: true, span: func(_, w Date, n int) (Date, Date) {
		return w.AddDays(-7 * n), w
	}},
	"NEXT_N_WEEKS": {takesN: true, span: func(_, w Date, n int) (Date, Date) {
		return w.AddDays(7), w.AddDays(7 + 7*n)
	}},
	"LAST_N_MONTHS": {takesN: true, span: func(t, _ Date, n int) (Date, Date) {
		return monthStart(t, -n), monthStart(t, 0)
	}},
	"NEXT_N_MONTHS": {takesN: true, span: func(t, _ Date, n int) (Date, Date) {
		return monthStart(t, 1), monthStart(t, 1+n)
	}},
	"LAST_N_YEARS": {takesN: true, span: func(t, _ Date, n int) (Date, Date) {
		return yearStart(t, -n), yearStart(t, 0)
	}},
	"NEXT_N_YEARS": {takesN: true, span: func(t, _ Date, n int) (Date, Date) {
		return yearStart(t, 1), yearStart(t, 1+n)
	}},
}

// Env is what evaluating relative date literals needs: the current time and the time zone
// of the running user (days start at midnight there). The zero Env means now, in UTC, with
// weeks starting on Sunday.
type Env struct {
	Now       time.Time
	Location  *time.Location
	WeekStart time.Weekday
}

func (e Env) normalized() Env {
	if e.Now.IsZero() {
		e.Now = time.Now()
	}
	if e.Location == nil {
		e.Location = time.UTC
	}
	return e
}

// span is a resolved date literal: [fromDate, toDate) as days and [from, to) as instants.
type span struct {
	fromDate, toDate Date
	from, to         time.Time
}

func (e Env) resolve(lit DateLiteral) (span, error) {
	spec, ok := dateLiterals[lit.Name]
	if !ok {
		return span{}, fmt.Errorf("unknown date literal %s", lit.Name)
	}
	today := DateOf(e.Now.In(e.Location))
	back := (int(today.In(time.UTC).Weekday()) - int(e.WeekStart) + 7) % 7
	from, to := spec.span(today, today.AddDays(-back), lit.N)
	return span{fromDate: from, toDate: to, from: from.In(e.Location), to: to.In(e.Location)}, nil
}
