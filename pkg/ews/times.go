package ews

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// parseDateTime parses an xs:dateTime as Exchange writes it: UTC with "Z", sometimes with an
// offset or fractional seconds. A value without any zone is taken as UTC, which is what
// Exchange means when it omits it.
func parseDateTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("invalid xs:dateTime %q", s)
}

// formatDateTime writes an instant as Exchange expects it: UTC, second precision.
func formatDateTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

// parseDate parses an xs:date ("2025-07-02", "2025-07-02Z", "2025-07-02+02:00") to its
// calendar date; the zone suffix, if any, does not change the date.
func parseDate(s string) (*tandemv1.Date, error) {
	s = strings.TrimSpace(s)
	if len(s) < 10 {
		return nil, fmt.Errorf("invalid xs:date %q", s)
	}
	t, err := time.Parse("2006-01-02", s[:10])
	if err != nil {
		return nil, fmt.Errorf("invalid xs:date %q", s)
	}
	if rest := s[10:]; rest != "" && rest != "Z" {
		if _, err := time.Parse("-07:00", rest); err != nil {
			return nil, fmt.Errorf("invalid xs:date zone in %q", s)
		}
	}
	return dateOf(t), nil
}

// formatDate writes a date as xs:date.
func formatDate(d *tandemv1.Date) string {
	return fmt.Sprintf("%04d-%02d-%02d", d.GetYear(), d.GetMonth(), d.GetDay())
}

func dateOf(t time.Time) *tandemv1.Date {
	return &tandemv1.Date{Year: int32(t.Year()), Month: int32(t.Month()), Day: int32(t.Day())}
}

// validDate reports whether d is a real calendar date.
func validDate(d *tandemv1.Date) bool {
	if d == nil || d.Year < 1 || d.Year > 9999 || d.Month < 1 || d.Month > 12 || d.Day < 1 {
		return false
	}
	t := time.Date(int(d.Year), time.Month(d.Month), int(d.Day), 0, 0, 0, 0, time.UTC)
	return t.Day() == int(d.Day)
}

// midnight returns the first instant of d in loc.
func midnight(d *tandemv1.Date, loc *time.Location) time.Time {
	return time.Date(int(d.Year), time.Month(d.Month), int(d.Day), 0, 0, 0, 0, loc)
}

func addDays(d *tandemv1.Date, n int) *tandemv1.Date {
	return dateOf(time.Date(int(d.Year), time.Month(d.Month), int(d.Day)+n, 0, 0, 0, 0, time.UTC))
}

// birthdayNoon is the UTC time of day Tandem writes birthdays at. Exchange stores a birthday
// as an instant; 11:59 UTC falls on the same calendar day from UTC-11:59 to UTC+12, so every
// client shows the intended date (Exchange itself answers birthdays at 11:59Z).
const birthdayNoon = 11*time.Hour + 59*time.Minute

// birthdayFromEWS reads a birthday instant. Clients store the local midnight of the day (or,
// like Exchange and Tandem, 11:59 UTC); local midnight of day D anywhere from UTC−12 to UTC+12
// lies within twelve hours of midnight UTC of D, so D is the UTC date of the instant plus twelve
// hours. (Birthdays stored at midnight by clients in UTC+13/+14 read a day early; Exchange's
// own normalisation to 11:59 UTC avoids that for everything it wrote.)
func birthdayFromEWS(t time.Time) *tandemv1.Date {
	return dateOf(t.UTC().Add(12 * time.Hour))
}

// birthdayToEWS writes a birthday as 11:59 UTC of the day.
func birthdayToEWS(d *tandemv1.Date) string {
	return formatDateTime(midnight(d, time.UTC).Add(birthdayNoon))
}

// allDayDate returns the calendar date on which an all-day boundary instant falls in the
// event's time zone. Without a known zone the date is inferred: a midnight boundary lies
// between UTC−12 and UTC+14 of its date, and the nearest midnight UTC wins ties.
func allDayDate(t time.Time, zone string) *tandemv1.Date {
	if loc, ok := zoneLocation(zone); ok {
		return dateOf(t.In(loc))
	}
	return dateOf(t.UTC().Add(12 * time.Hour))
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
