package salesforce

import (
	"slices"
	"testing"
	"time"
)

// TestAccountCache checks the account cache alone: answers, found or not, serve their subject
// for the ttl; expired answers are dropped once per ttl; forget drops answers at once; a ttl of
// 0 keeps nothing.
func TestAccountCache(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	a := newAccountCache(time.Minute)
	a.put("rep", []string{"Acme", "Nowhere"}, accountsByName{"Acme": {"001A"}}, t0)
	if ids, ok := a.get("rep", "Acme", t0.Add(59*time.Second)); !ok || !slices.Equal(ids, []string{"001A"}) {
		t.Errorf("Acme within the ttl: %v, %v", ids, ok)
	}
	if ids, ok := a.get("rep", "Nowhere", t0); !ok || ids != nil {
		t.Errorf("a company without an Account is an answer too: %v, %v", ids, ok)
	}
	if _, ok := a.get("other", "Acme", t0); ok {
		t.Error("another subject's answer served")
	}
	if _, ok := a.get("rep", "Acme", t0.Add(time.Minute)); ok {
		t.Error("an expired answer served")
	}
	a.put("rep", []string{"Later"}, nil, t0.Add(30*time.Second))
	if len(a.entries) != 3 {
		t.Errorf("%d answers within the ttl of the last pruning, want 3", len(a.entries))
	}
	a.put("rep", []string{"Last"}, nil, t0.Add(61*time.Second))
	if len(a.entries) != 2 {
		t.Errorf("after the ttl, %d answers kept, want the 2 not expired", len(a.entries))
	}
	a.forget("rep", []string{"Later"})
	if _, ok := a.get("rep", "Later", t0.Add(61*time.Second)); ok {
		t.Error("a forgotten answer served")
	}

	off := newAccountCache(0)
	off.put("rep", []string{"Acme"}, accountsByName{"Acme": {"001A"}}, t0)
	if _, ok := off.get("rep", "Acme", t0); ok || len(off.entries) != 0 {
		t.Error("a ttl of 0 keeps answers")
	}
}
