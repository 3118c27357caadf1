package sfsim

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// modstamps queries the Contacts' ids and SystemModstamps, in SystemModstamp and Id order.
func modstamps(t *testing.T, c *client) (ids, stamps []string) {
	t.Helper()
	var res queryResult
	c.json(http.MethodGet, "queryAll?q="+url.QueryEscape("SELECT Id, SystemModstamp FROM Contact ORDER BY SystemModstamp ASC, Id ASC"), nil, http.StatusOK, &res)
	for _, r := range res.Records {
		ids = append(ids, r["Id"].(string))
		stamps = append(stamps, r["SystemModstamp"].(string))
	}
	return ids, stamps
}

func TestTransactionCommitsLate(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	early, err := e.sim.Insert("Contact", map[string]any{"LastName": "Early"}, e.userID)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	tx := e.sim.Begin()
	late, err := tx.Insert("Contact", map[string]any{"LastName": "Late"}, e.userID)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Update("Contact", early, map[string]any{"Title": "changed late"}, e.userID); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	after, err := e.sim.Insert("Contact", map[string]any{"LastName": "After"}, e.userID)
	if err != nil {
		t.Fatal(err)
	}

	// Before the commit, nobody sees the transaction's writes.
	if ids, _ := modstamps(t, c); !slices.Equal(ids, []string{early, after}) {
		t.Errorf("before commit: %v, want [early after]", ids)
	}
	if _, ok := e.sim.Get("Contact", late); ok {
		t.Error("Get sees an uncommitted record")
	}
	if got, _ := e.sim.Get("Contact", early); got["Title"] != nil {
		t.Errorf("Get sees an uncommitted change: %v", got["Title"])
	}
	// An API write to a record the transaction holds cannot lock it.
	var res []result
	c.json(http.MethodPatch, "composite/sobjects", collection(false, contactRec(map[string]any{"id": early, "Title": "api"})), http.StatusOK, &res)
	if codes(res[0]) != "UNABLE_TO_LOCK_ROW" {
		t.Errorf("API write to a held record: %+v", res[0])
	}

	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// Committed, the transaction's records carry the SystemModstamp of their writes, which they
	// share: older than the record saved meanwhile.
	ids, stamps := modstamps(t, c)
	if len(ids) != 3 || !slices.Contains(ids[:2], late) || !slices.Contains(ids[:2], early) || ids[2] != after ||
		stamps[0] != stamps[1] || stamps[1] >= stamps[2] {
		t.Errorf("after commit: %v at %v, want late and early at one stamp, then after", ids, stamps)
	}
	if got, _ := e.sim.Get("Contact", early); got["Title"] != "changed late" {
		t.Errorf("Title after commit: %v", got["Title"])
	}
	c.json(http.MethodPatch, "composite/sobjects", collection(false, contactRec(map[string]any{"id": early, "Title": "api"})), http.StatusOK, &res)
	if !res[0].Success {
		t.Errorf("API write after the commit: %+v", res[0])
	}
	if err := tx.Commit(); !errors.Is(err, ErrTransactionEnded) {
		t.Errorf("second Commit: %v", err)
	}
}

func TestTransactionRollback(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	tx := e.sim.Begin()
	if _, err := tx.Insert("Contact", map[string]any{"LastName": "Never"}, ""); err != nil {
		t.Fatal(err)
	}
	kept, err := e.sim.Insert("Contact", map[string]any{"LastName": "Kept"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Delete("Contact", kept); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	if ids, _ := modstamps(t, c); !slices.Equal(ids, []string{kept}) {
		t.Errorf("after rollback: %v, want only the record saved outside", ids)
	}
	var res []result
	c.json(http.MethodPatch, "composite/sobjects", collection(false, contactRec(map[string]any{"id": kept, "Title": "free"})), http.StatusOK, &res)
	if !res[0].Success {
		t.Errorf("the rolled back transaction still holds the record: %+v", res[0])
	}
	if _, err := tx.Insert("Contact", map[string]any{"LastName": "Too late"}, ""); !errors.Is(err, ErrTransactionEnded) {
		t.Errorf("Insert after Rollback: %v", err)
	}
}

func TestWholeSecondStamps(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.WholeSecondStamps = true })
	c := e.login()
	e.clock.Advance(250 * time.Millisecond)
	a, err := e.sim.Insert("Contact", map[string]any{"LastName": "A"}, "")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(500 * time.Millisecond)
	b, err := e.sim.Insert("Contact", map[string]any{"LastName": "B"}, "")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(500 * time.Millisecond)
	d, err := e.sim.Insert("Contact", map[string]any{"LastName": "D"}, "")
	if err != nil {
		t.Fatal(err)
	}
	ids, stamps := modstamps(t, c)
	want := []string{"2024-05-16T10:30:00.000+0000", "2024-05-16T10:30:00.000+0000", "2024-05-16T10:30:01.000+0000"}
	if !slices.Equal(ids, []string{a, b, d}) || !slices.Equal(stamps, want) {
		t.Errorf("records %v at %v, want [a b d] at %v", ids, stamps, want)
	}
	// A record saved in the watermark's second with a larger Id is found by the keyset.
	q := "SELECT Id FROM Contact WHERE SystemModstamp >= 2024-05-16T10:30:00Z AND (SystemModstamp >= 2024-05-16T10:30:01Z OR Id > '" + a + "')"
	var res queryResult
	c.json(http.MethodGet, "query?q="+url.QueryEscape(q), nil, http.StatusOK, &res)
	var got []string
	for _, r := range res.Records {
		got = append(got, r["Id"].(string))
	}
	if slices.Sort(got); !slices.Equal(got, []string{a, b, d}[1:]) {
		t.Errorf("keyset after %s: %v", a, got)
	}
}

func TestDateHeaderIsTheOrgsClock(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	e.clock.Advance(90 * time.Minute)
	resp := c.call(http.MethodGet, "limits", nil)
	got, err := http.ParseTime(resp.header.Get("Date"))
	if err != nil || !got.Equal(e.clock.Now().Truncate(time.Second)) {
		t.Errorf("Date %q (%v), want the simulator's clock %v", resp.header.Get("Date"), err, e.clock.Now())
	}
}
