package scheduler_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/services/scheduler"
)

// barrierPublisher holds each Exchange job until a second one has arrived (or a
// timeout), and counts the jobs that had to wait it out.
type barrierPublisher struct {
	next     scheduler.Publisher
	mu       sync.Mutex
	arrived  int
	together chan struct{} // closed once two jobs were in flight at once
	alone    int
}

func (b *barrierPublisher) Publish(ctx context.Context, subject string, msg proto.Message, msgID string) error {
	if strings.Contains(subject, ".exchange.") {
		b.mu.Lock()
		if b.arrived++; b.arrived == 2 {
			close(b.together)
		}
		b.mu.Unlock()
		select {
		case <-b.together:
		case <-time.After(2 * time.Second):
			b.mu.Lock()
			b.alone++
			b.mu.Unlock()
		}
	}
	return b.next.Publish(ctx, subject, msg, msgID)
}

// TestCycleStartsUsersSideBySide: a cycle's users are started at once, not one after the
// other, so that a large org's cycle does not wait for as many round trips as it has users.
// Each Exchange job's publish waits for another one to be under way.
func TestCycleStartsUsersSideBySide(t *testing.T) {
	e := newEnv(t, testConfig())
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true), user(user2, true))
	e.putConfig(t, orgA, contactsOnly(user1, user2))
	pub := &barrierPublisher{next: e.p.Bus, together: make(chan struct{})}
	scheduler.SetPublisher(e.sched, pub)
	e.tick(t)
	if jobs := e.newJobs(t); len(jobs) != 3 {
		t.Fatalf("%d jobs, want 2 Exchange jobs and the Salesforce job", len(jobs))
	}
	if pub.alone > 0 {
		t.Errorf("%d of the 2 users' Exchange jobs were published while no other was", pub.alone)
	}
}
