package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/access"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	tstatus "github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	watchOrg  = "00Dorg000000001"
	watchUser = "005user00000001"
)

// sentStream is a server stream that hands what the handler sends to the test.
type sentStream[T any] struct {
	grpc.ServerStream
	ctx  context.Context
	sent chan *T
}

func (s *sentStream[T]) Context() context.Context { return s.ctx }

func (s *sentStream[T]) Send(m *T) error {
	select {
	case s.sent <- m:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// userWatch is one watch of watchUser, run in the background.
type userWatch struct {
	stream *sentStream[tandemv1.WatchUserStatusResponse]
	cancel context.CancelFunc
	done   chan struct{} // closed when the handler returned, with err
	err    error
}

func startUserWatch(t *testing.T, s *Server, cfg watchConfig) *userWatch {
	t.Helper()
	return startUserWatchAs(t, s, cfg, nil)
}

// startUserWatchAs is startUserWatch for a call the Guard authenticated as caller (nil: none).
func startUserWatchAs(t *testing.T, s *Server, cfg watchConfig, caller *access.Caller) *userWatch {
	t.Helper()
	ctx := t.Context()
	if caller != nil {
		ctx = access.WithCaller(ctx, caller)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &userWatch{stream: &sentStream[tandemv1.WatchUserStatusResponse]{ctx: ctx, sent: make(chan *tandemv1.WatchUserStatusResponse, 100)}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		w.err = s.watchUserStatus(&tandemv1.WatchUserStatusRequest{OrgId: watchOrg, UserId: watchUser}, w.stream, cfg)
	}()
	t.Cleanup(func() {
		cancel()
		<-w.done
	})
	return w
}

func (w *userWatch) next(t *testing.T) *tandemv1.UserStatus {
	t.Helper()
	select {
	case m := <-w.stream.sent:
		return m.GetStatus()
	case <-w.done:
		t.Fatalf("the watch ended: %v", w.err)
	case <-time.After(10 * time.Second):
		t.Fatal("nothing sent within 10s")
	}
	return nil
}

func (w *userWatch) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-w.stream.sent:
		t.Fatalf("unexpected message %v", m)
	case <-w.done:
		t.Fatalf("the watch ended: %v", w.err)
	case <-time.After(d):
	}
}

// newWatchServer is a Server on a new Redis whose directory holds watchUser.
func newWatchServer(t *testing.T) (*Server, *store.Store) {
	t.Helper()
	st := store.New(servertest.Redis(t), nil)
	if err := st.PutUsers(t.Context(), watchOrg, []*tandemv1.SyncUser{{UserId: watchUser, Email: "rep@acme.example", Active: true}}); err != nil {
		t.Fatal(err)
	}
	return New(st, nil, nil, nil), st
}

func TestWatchesAreBounded(t *testing.T) {
	s, _ := newWatchServer(t)
	cfg := watchConfig{gap: watchGap, fallback: time.Hour, slots: make(chan struct{}, 1)}
	first := startUserWatch(t, s, cfg)
	first.next(t)

	stream := &sentStream[tandemv1.WatchUserStatusResponse]{ctx: t.Context(), sent: make(chan *tandemv1.WatchUserStatusResponse, 1)}
	err := s.watchUserStatus(&tandemv1.WatchUserStatusRequest{OrgId: watchOrg, UserId: watchUser}, stream, cfg)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a watch beyond the bound: %v, want ResourceExhausted", err)
	}

	// A watch that ends gives its slot back.
	first.cancel()
	select {
	case <-first.done:
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled watch did not return")
	}
	if status.Code(first.err) != codes.Canceled {
		t.Fatalf("a cancelled watch ended with %v", first.err)
	}
	startUserWatch(t, s, cfg).next(t)
}

// TestWatchesArePerTokenBounded: one token may keep cfg.perToken watches open; another token
// is not held back by it, and a watch that ends gives the token's slot back.
func TestWatchesArePerTokenBounded(t *testing.T) {
	s, _ := newWatchServer(t)
	cfg := watchConfig{gap: watchGap, fallback: time.Hour, slots: make(chan struct{}, 10), perToken: 1}
	watchAs := func(tokenID string) *userWatch {
		return startUserWatchAs(t, s, cfg, &access.Caller{TokenID: tokenID, Name: "dashboard-" + tokenID})
	}
	first := watchAs("a")
	first.next(t)

	second := watchAs("a")
	select {
	case <-second.done:
		if status.Code(second.err) != codes.ResourceExhausted || !strings.Contains(second.err.Error(), "dashboard-a") {
			t.Fatalf("a token's second watch: %v, want ResourceExhausted naming the token", second.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a token's second watch was not refused")
	}

	watchAs("b").next(t)

	first.cancel()
	<-first.done
	if status.Code(first.err) != codes.Canceled {
		t.Fatalf("a cancelled watch ended with %v", first.err)
	}
	watchAs("a").next(t)
}

// TestWatchReadsAgainOnItsFallback: what is written without an announcement (here the user
// directory) is sent after the fallback interval.
func TestWatchReadsAgainOnItsFallback(t *testing.T) {
	s, st := newWatchServer(t)
	w := startUserWatch(t, s, watchConfig{gap: 10 * time.Millisecond, fallback: 100 * time.Millisecond, slots: make(chan struct{}, 1)})
	if got := w.next(t); got.GetEmail() != "rep@acme.example" {
		t.Fatalf("the first status: %v", got)
	}
	if err := st.PutUsers(t.Context(), watchOrg, []*tandemv1.SyncUser{{UserId: watchUser, Email: "renamed@acme.example", Active: true}}); err != nil {
		t.Fatal(err)
	}
	if got := w.next(t); got.GetEmail() != "renamed@acme.example" {
		t.Fatalf("after the fallback: %v", got)
	}
}

// TestWatchCoalescesBursts: a burst of writes within the gap is read once, after it: the watch
// sends the last status, none of those in between.
func TestWatchCoalescesBursts(t *testing.T) {
	s, st := newWatchServer(t)
	const gap = 500 * time.Millisecond
	w := startUserWatch(t, s, watchConfig{gap: gap, fallback: time.Hour, slots: make(chan struct{}, 1)})
	w.next(t)

	stat := tstatus.New(st)
	uk := store.UserKey{OrgID: watchOrg, UserID: watchUser}
	var last *tandemv1.UserStatus
	for i := range 20 {
		last = &tandemv1.UserStatus{LastCycle: uint64(i + 1)}
		if err := stat.Put(t.Context(), uk, tstatus.PartScheduler, last); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.next(t); got.GetLastCycle() != last.GetLastCycle() {
		t.Fatalf("after a burst the watch sent %v, want only the last status (cycle %d)", got, last.GetLastCycle())
	}
	w.none(t, 2*gap)

	// The same status written again is not sent.
	if err := stat.Put(t.Context(), uk, tstatus.PartScheduler, proto.Clone(last).(*tandemv1.UserStatus)); err != nil {
		t.Fatal(err)
	}
	w.none(t, 2*gap)
}

func TestStopWatchesEndsOpenWatchesAndRefusesNew(t *testing.T) {
	s, _ := newWatchServer(t)
	cfg := watchConfig{gap: watchGap, fallback: time.Hour, slots: make(chan struct{}, 2)}
	open := startUserWatch(t, s, cfg)
	open.next(t) // the current status: the watch is open
	s.StopWatches()
	select {
	case <-open.done:
	case <-time.After(10 * time.Second):
		t.Fatal("an open watch did not end after StopWatches")
	}
	if status.Code(open.err) != codes.Unavailable {
		t.Fatalf("an open watch after StopWatches: %v, want UNAVAILABLE", open.err)
	}
	stream := &sentStream[tandemv1.WatchUserStatusResponse]{ctx: t.Context(), sent: make(chan *tandemv1.WatchUserStatusResponse, 1)}
	if err := s.watchUserStatus(&tandemv1.WatchUserStatusRequest{OrgId: watchOrg, UserId: watchUser}, stream, cfg); status.Code(err) != codes.Unavailable {
		t.Fatalf("a new watch after StopWatches: %v, want UNAVAILABLE", err)
	}
}

// TestWatchSeesAnnouncedOrgInputsAtOnce: a reset mark is announced, so a watch of one user reads
// again without waiting for its fallback.
func TestWatchSeesAnnouncedOrgInputsAtOnce(t *testing.T) {
	s, st := newWatchServer(t)
	w := startUserWatch(t, s, watchConfig{gap: 10 * time.Millisecond, fallback: time.Hour, slots: make(chan struct{}, 1)})
	w.next(t)
	if err := st.MarkReset(t.Context(), store.UserKey{OrgID: watchOrg, UserID: watchUser}); err != nil {
		t.Fatal(err)
	}
	if got := w.next(t).GetResetStatus(); got != tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET {
		t.Fatalf("after MarkReset the watch sent reset status %s", got)
	}
}
