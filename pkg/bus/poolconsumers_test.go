package bus_test

import (
	"testing"

	"github.com/tandem-sync/tandem/pkg/bus"
)

// TestPoolConsumersListsAndDeletesOnlyPools: PoolConsumers lists the pools' consumers with
// their role and pool, and none of the others; DeletePoolConsumer deletes one, reports a
// second delete as nothing done, and refuses a consumer that is no pool's.
func TestPoolConsumersListsAndDeletesOnlyPools(t *testing.T) {
	env := newEnv(t, bus.Config{})
	ctx := t.Context()
	spec, ok := env.bus.Topology().Consumer(bus.PoolConsumer(bus.ConsumerSalesforceApply, "big"))
	if !ok {
		t.Fatal("no spec for pool big's Salesforce apply consumer")
	}
	if _, err := env.js.CreateOrUpdateConsumer(ctx, spec.Stream, spec.Config); err != nil {
		t.Fatal(err)
	}
	cs, err := env.bus.PoolConsumers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Pool != "big" || cs[0].Role != bus.ConsumerSalesforceApply || cs[0].Stream != bus.StreamApply || !cs[0].Idle() {
		t.Fatalf("PoolConsumers = %+v, want pool big's idle Salesforce apply consumer only", cs)
	}
	for i, want := range []bool{true, false} {
		deleted, err := env.bus.DeletePoolConsumer(ctx, cs[0])
		if err != nil || deleted != want {
			t.Fatalf("delete #%d: deleted %v, %v; want %v", i+1, deleted, err, want)
		}
	}
	if cs, err := env.bus.PoolConsumers(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("after the delete, PoolConsumers = %+v, %v", cs, err)
	}
	other := bus.PoolConsumerState{Stream: bus.StreamChanges, Name: bus.ConsumerReconcilerChanges}
	if _, err := env.bus.DeletePoolConsumer(ctx, other); err == nil {
		t.Fatal("deleted the reconciler's consumer")
	}
	if _, err := env.js.Consumer(ctx, bus.StreamChanges, bus.ConsumerReconcilerChanges); err != nil {
		t.Fatalf("the reconciler's consumer: %v", err)
	}
}
