package salesforceworker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/salesforce"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// recordingPublisher records the pages published per subject. Each publish waits until
// together publishes have been under way at once (or a second has passed), and fails for the
// subjects in failOn.
type recordingPublisher struct {
	together int
	failOn   map[string]bool

	mu       sync.Mutex
	inFlight int
	most     int
	pages    map[string][]*tandemv1.ChangeBatch
}

func newRecordingPublisher(together int) *recordingPublisher {
	return &recordingPublisher{together: together, failOn: map[string]bool{},
		pages: map[string][]*tandemv1.ChangeBatch{}}
}

func (r *recordingPublisher) MaxPayload() int { return 1 << 20 }

func (r *recordingPublisher) Publish(_ context.Context, subject string, msg proto.Message, _ string) error {
	r.mu.Lock()
	r.inFlight++
	r.most = max(r.most, r.inFlight)
	r.mu.Unlock()
	deadline := time.Now().Add(time.Second)
	for !r.enough() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight--
	if r.failOn[subject] {
		return fmt.Errorf("publish on %s: %w", subject, errBrokerDown)
	}
	r.pages[subject] = append(r.pages[subject], proto.Clone(msg).(*tandemv1.ChangeBatch))
	return nil
}

var errBrokerDown = errors.New("broker down")

// enough reports whether together publishes have been under way at once.
func (r *recordingPublisher) enough() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.most >= r.together
}

func pagesAudience(users ...string) []salesforce.Audience {
	var out []salesforce.Audience
	for _, u := range users {
		out = append(out, salesforce.Audience{User: user(u)})
	}
	return out
}

// TestPagesOfUsersArePublishedTogetherInOrder: the pages of different users go out at once,
// while each user's pages keep the order the poll emitted them in.
func TestPagesOfUsersArePublishedTogetherInOrder(t *testing.T) {
	ctx := t.Context()
	pub := newRecordingPublisher(3)
	up := newUserPages(ctx, pub, job(4, []tandemv1.RecordKind{contact}, []string{u1, u2, u3}, nil), contact, 3)
	if err := up.begin(pagesAudience(u1, u2, u3), time.Now()); err != nil {
		t.Fatal(err)
	}
	for page := range 4 {
		for _, u := range []string{u1, u2, u3} {
			if err := up.emit(ctx, u, upserts(fmt.Sprintf("%s-%d-", u, page), 1), false); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, u := range []string{u1, u2, u3} {
		if err := up.finish(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := up.wait(); err != nil {
		t.Fatal(err)
	}
	if pub.most < 3 {
		t.Errorf("at most %d pages published at once, want 3 (one per user)", pub.most)
	}
	for _, u := range []string{u1, u2, u3} {
		var got []string
		for _, b := range pub.pages[subjectOf(t, u)] {
			id := "last"
			if !b.GetLast() {
				id = b.GetChanges()[0].GetRecord().GetId()
			}
			got = append(got, fmt.Sprintf("%d:%s", b.GetPage(), id))
		}
		var want []string
		for page := range 4 {
			want = append(want, fmt.Sprintf("%d:%s", page, upserts(fmt.Sprintf("%s-%d-", u, page), 1)[0].GetRecord().GetId()))
		}
		want = append(want, "4:last")
		if !slices.Equal(got, want) {
			t.Errorf("pages of %s: %v, want %v", u, got, want)
		}
	}
}

// TestAFailedPublishFailsThePoll: once a page could not be published, the user's later pages
// are not, and emit, finish and wait report the failure.
func TestAFailedPublishFailsThePoll(t *testing.T) {
	ctx := t.Context()
	pub := newRecordingPublisher(0)
	pub.failOn[subjectOf(t, u2)] = true
	up := newUserPages(ctx, pub, job(4, []tandemv1.RecordKind{contact}, []string{u1, u2}, nil), contact, 3)
	if err := up.begin(pagesAudience(u1, u2), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := up.emit(ctx, u1, upserts("a", 1), false); err != nil {
		t.Fatal(err)
	}
	if err := up.emit(ctx, u2, upserts("b", 1), false); err != nil {
		t.Fatal(err)
	}
	if err := up.wait(); !errors.Is(err, errBrokerDown) {
		t.Fatalf("wait: %v, want the publish's failure", err)
	}
	if err := up.emit(ctx, u2, upserts("c", 1), false); !errors.Is(err, errBrokerDown) {
		t.Errorf("emit after a failure: %v, want the publish's failure", err)
	}
	if err := up.finish(ctx, u1); !errors.Is(err, errBrokerDown) {
		t.Errorf("finish after a failure: %v, want the publish's failure", err)
	}
	if err := up.wait(); !errors.Is(err, errBrokerDown) {
		t.Errorf("wait: %v, want the publish's failure", err)
	}
	if n := len(pub.pages[subjectOf(t, u2)]); n != 0 {
		t.Errorf("%d pages of the failing user stored, want 0", n)
	}
}

func subjectOf(t *testing.T, userID string) string {
	t.Helper()
	subject, err := bus.ChangesSubject(testOrg, userID)
	if err != nil {
		t.Fatal(err)
	}
	return subject
}
