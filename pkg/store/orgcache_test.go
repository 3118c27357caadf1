package store

import (
	"errors"
	"testing"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestOrgCacheRebuildsOnChange(t *testing.T) {
	st := newTestStore(t, servertest.Redis(t))
	ctx := t.Context()
	org := &tandemv1.Org{OrgId: "00Dorg", Name: "Acme", Exchange: &tandemv1.ExchangeConnection{ServiceAccount: "svc@acme.example", Password: "one"}}
	if _, err := st.PutOrg(ctx, org); err != nil {
		t.Fatal(err)
	}
	builds := 0
	cache := NewOrgCache(st, func(o *tandemv1.Org) (string, error) {
		builds++
		return o.GetExchange().GetPassword(), nil
	})
	for range 2 {
		v, got, err := cache.Get(ctx, "00Dorg")
		if err != nil || v != "one" || got.GetName() != "Acme" {
			t.Fatalf("Get = %q %v %v", v, got, err)
		}
	}
	if builds != 1 {
		t.Fatalf("%d builds for unchanged settings, want 1", builds)
	}
	org.Exchange.Password = "two"
	if _, err := st.PutOrg(ctx, org); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := cache.Get(ctx, "00Dorg"); v != "two" || builds != 2 {
		t.Fatalf("after a credential change: %q, %d builds", v, builds)
	}
	if _, _, err := cache.Get(ctx, "00Dnope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown org: %v", err)
	}
}
