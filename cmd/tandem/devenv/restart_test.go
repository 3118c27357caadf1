package devenv

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/exchange"
)

// TestRestartOnTheSameRedis runs the environment twice on the same Redis and the same
// simulators, as `tandem dev --redis-url` restarted against `tandem sim` processes: the second
// start keeps the org and its configuration (no error on the configuration's name), carries on,
// and converges with every contact once on each side.
func TestRestartOnTheSameRedis(t *testing.T) {
	redis := servertest.RedisServer(t)
	seeding := Seeding{Users: 2, ContactsPerUser: 10, Seed: 5}
	sims, err := NewSimulators(seeding)
	if err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 2; run++ {
		t.Run(fmt.Sprintf("run %d", run), func(t *testing.T) {
			env, err := Start(t.Context(), Options{
				Simulators: sims, Interval: 500 * time.Millisecond,
				RedisURL: redis.URL(), Dir: t.TempDir(), Log: io.Discard, LogLevel: "warn",
			})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- env.Run(runCtx) }()
			defer func() {
				stop()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
				if err := env.Close(context.Background()); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			sum := waitSynced(t, env, 90*time.Second)
			cfgs, err := env.Platform.Store.ListConfigurations(t.Context(), env.OrgID)
			if err != nil || len(cfgs) != 1 {
				t.Fatalf("configurations after run %d: %v %v", run, cfgs, err)
			}
			want := seeding.ContactsPerUser // the contacts on both sides are linked, not duplicated
			if sum.ContactsInSync != int64(seeding.Users*want) {
				t.Errorf("%d contacts in sync, want %d", sum.ContactsInSync, seeding.Users*want)
			}
			sf := sims.Salesforce.Dump()
			for id, email := range sims.Users {
				if n := len(sims.EWS.Items(email, exchange.SyncFolderName)); n != want {
					t.Errorf("%s: %d contacts in Exchange, want %d", email, n, want)
				}
				owned := 0
				for _, c := range sf.Contacts {
					if c["OwnerId"] == id {
						owned++
					}
				}
				if owned != want {
					t.Errorf("%s: %d contacts in Salesforce, want %d", email, owned, want)
				}
			}
		})
	}
}
