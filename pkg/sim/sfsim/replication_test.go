package sfsim

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

type updatedResult struct {
	IDs               []string `json:"ids"`
	LatestDateCovered string   `json:"latestDateCovered"`
}

type deletedResult struct {
	DeletedRecords []struct {
		ID          string `json:"id"`
		DeletedDate string `json:"deletedDate"`
	} `json:"deletedRecords"`
	EarliestDateAvailable string `json:"earliestDateAvailable"`
	LatestDateCovered     string `json:"latestDateCovered"`
}

func window(start, end time.Time) string {
	return "?start=" + url.QueryEscape(start.Format(time.RFC3339)) + "&end=" + url.QueryEscape(end.Format(time.RFC3339))
}

func TestGetUpdatedAndDeleted(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	t0 := e.clock.Now() // 10:30:00
	a, _ := e.sim.Insert("Contact", map[string]any{"LastName": "A"}, "")
	e.clock.Advance(10 * time.Minute) // 10:40
	b, _ := e.sim.Insert("Contact", map[string]any{"LastName": "B"}, "")
	e.clock.Advance(10 * time.Minute) // 10:50
	if err := e.sim.Update("Contact", a, map[string]any{"Title": "x"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Delete("Contact", b); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10*time.Minute + 30*time.Second) // 11:00:30

	t.Run("updated window", func(t *testing.T) {
		var res updatedResult
		// [10:35, 10:45): only b's creation, but b is deleted now, so nothing.
		c.json(http.MethodGet, "sobjects/Contact/updated/"+window(t0.Add(5*time.Minute), t0.Add(15*time.Minute)), nil, http.StatusOK, &res)
		if len(res.IDs) != 0 || res.LatestDateCovered != "2024-05-16T10:45:00.000+0000" {
			t.Errorf("%+v", res)
		}
		// [10:30:59 → 10:30, 11:00:30 → 11:00): a (updated at 10:50).
		c.json(http.MethodGet, "sobjects/Contact/updated"+window(t0.Add(59*time.Second), e.clock.Now()), nil, http.StatusOK, &res)
		if !slices.Equal(res.IDs, []string{a}) || res.LatestDateCovered != "2024-05-16T11:00:00.000+0000" {
			t.Errorf("%+v", res)
		}
		// An end in the future is cut to now.
		c.json(http.MethodGet, "sobjects/Contact/updated/"+window(t0, e.clock.Now().Add(time.Hour)), nil, http.StatusOK, &res)
		if res.LatestDateCovered != "2024-05-16T11:00:00.000+0000" {
			t.Errorf("latestDateCovered %s", res.LatestDateCovered)
		}
		var recorded, sim updatedResult
		strictDecode(t, recording(t, "get_updated_success_response.json"), &recorded)
		strictDecode(t, c.call(http.MethodGet, "sobjects/Contact/updated/"+window(t0, e.clock.Now()), nil).body, &sim)
		for _, id := range recorded.IDs {
			if !ValidID(id) {
				t.Errorf("recorded id %s fails the simulator's checksum", id)
			}
		}
	})

	t.Run("deleted window", func(t *testing.T) {
		var res deletedResult
		c.json(http.MethodGet, "sobjects/Contact/deleted/"+window(t0, e.clock.Now()), nil, http.StatusOK, &res)
		if len(res.DeletedRecords) != 1 || res.DeletedRecords[0].ID != b || !sfDateTime.MatchString(res.DeletedRecords[0].DeletedDate) {
			t.Errorf("%+v", res)
		}
		var recorded deletedResult
		strictDecode(t, recording(t, "get_deleted_success_response.json"), &recorded)
		strictDecode(t, c.call(http.MethodGet, "sobjects/Contact/deleted/"+window(t0, e.clock.Now()), nil).body, &res)
		if recorded.EarliestDateAvailable == "" || res.EarliestDateAvailable == "" || !sfDateTime.MatchString(res.LatestDateCovered) {
			t.Errorf("shape: %+v", res)
		}
	})

	t.Run("invalid windows", func(t *testing.T) {
		now := e.clock.Now()
		tests := []struct {
			name string
			path string
			code string
		}{
			{"start after end", "sobjects/Contact/updated/" + window(now, now.Add(-time.Hour)), "INVALID_REPLICATION_DATE"},
			{"within one minute", "sobjects/Contact/updated/" + window(now.Add(-20*time.Second), now), "INVALID_REPLICATION_DATE"},
			{"updated beyond 30 days", "sobjects/Contact/updated/" + window(now.Add(-31*24*time.Hour), now), "INVALID_REPLICATION_DATE"},
			{"deleted beyond 15 days", "sobjects/Contact/deleted/" + window(now.Add(-16*24*time.Hour), now), "INVALID_REPLICATION_DATE"},
			{"unencoded plus sign", "sobjects/Contact/updated/?start=2024-05-16T09:00:00+00:00&end=2024-05-16T10:00:00+00:00", "INVALID_REPLICATION_DATE"},
			{"missing end", "sobjects/Contact/updated/?start=" + url.QueryEscape(now.Format(time.RFC3339)), "MISSING_ARGUMENT"},
		}
		for _, tt := range tests {
			r := c.call(http.MethodGet, tt.path, nil)
			if r.status != http.StatusBadRequest || decodeErrors(t, r.body)[0].ErrorCode != tt.code {
				t.Errorf("%s: %d %s", tt.name, r.status, r.body)
			}
		}
		// 29 days back is fine for getUpdated.
		if r := c.call(http.MethodGet, "sobjects/Contact/updated/"+window(now.Add(-29*24*time.Hour), now), nil); r.status != http.StatusOK {
			t.Errorf("29 days: %d %s", r.status, r.body)
		}
	})

	t.Run("purged records leave getDeleted", func(t *testing.T) {
		e.clock.Advance(15*24*time.Hour + time.Hour)
		c := e.login()
		now := e.clock.Now()
		var res deletedResult
		c.json(http.MethodGet, "sobjects/Contact/deleted/"+window(now.Add(-14*24*time.Hour), now), nil, http.StatusOK, &res)
		if len(res.DeletedRecords) != 0 {
			t.Errorf("%+v", res)
		}
		if res.EarliestDateAvailable != "2024-05-16T10:50:00.000+0000" {
			t.Errorf("earliestDateAvailable %s, want the purged deletion's minute", res.EarliestDateAvailable)
		}
	})
}

// TestGetUpdatedCoversUntilTheOpenTransaction: while a long transaction is open, getUpdated's
// latestDateCovered stays at the transaction's start, since what the transaction writes
// commits later with stamps from then on; once it ends, the answer covers up to its end again.
func TestGetUpdatedCoversUntilTheOpenTransaction(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	t0 := e.clock.Now() // 10:30:00
	e.clock.Advance(2*time.Minute + 10*time.Second)
	tx := e.sim.Begin() // 10:32:10
	late, err := tx.Insert("Contact", map[string]any{"LastName": "Late"}, "")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(5 * time.Minute) // 10:37:10
	var res updatedResult
	c.json(http.MethodGet, "sobjects/Contact/updated/"+window(t0, e.clock.Now()), nil, http.StatusOK, &res)
	if len(res.IDs) != 0 || res.LatestDateCovered != "2024-05-16T10:32:10.000+0000" {
		t.Errorf("while the transaction is open: %+v, want no id and the transaction's start", res)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	c.json(http.MethodGet, "sobjects/Contact/updated/"+window(t0, e.clock.Now()), nil, http.StatusOK, &res)
	if !slices.Equal(res.IDs, []string{late}) || res.LatestDateCovered != "2024-05-16T10:37:00.000+0000" {
		t.Errorf("after the commit: %+v, want %s and the end of the window", res, late)
	}
	tx = e.sim.Begin()
	tx.Rollback()
	c.json(http.MethodGet, "sobjects/Contact/updated/"+window(t0, e.clock.Now()), nil, http.StatusOK, &res)
	if res.LatestDateCovered != "2024-05-16T10:37:00.000+0000" {
		t.Errorf("after a rollback: latestDateCovered %s, want the end of the window", res.LatestDateCovered)
	}
}
