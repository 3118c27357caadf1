package api_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/api"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	tstatus "github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// quiet is how long a watch is given to send what it must not: several times its gap between
// reads (250 ms), which is plenty to read one user's or a small org's status.
const quiet = time.Second

// watched receives a watch stream's messages in the background, so that a test can wait for
// the next one with a deadline, or make sure none comes for a while.
type watched[T any] struct {
	msgs chan *T
	err  chan error // the stream's end
}

// watch receives stream's messages until it ends; the stream's context ends with the test.
func watch[T any](stream grpc.ServerStreamingClient[T]) *watched[T] {
	w := &watched[T]{msgs: make(chan *T, 1000), err: make(chan error, 1)}
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				w.err <- err
				return
			}
			w.msgs <- m
		}
	}()
	return w
}

// next returns the next message, failing the test if none comes within 10 s.
func (w *watched[T]) next(t *testing.T) *T {
	t.Helper()
	select {
	case m := <-w.msgs:
		return m
	case err := <-w.err:
		t.Fatalf("the watch ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	return nil
}

// none fails the test if a message comes within d.
func (w *watched[T]) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-w.msgs:
		t.Fatalf("unexpected message %v", m)
	case err := <-w.err:
		t.Fatalf("the watch ended: %v", err)
	case <-time.After(d):
	}
}

// ended returns the error the stream ended with, failing the test if it goes on.
func (w *watched[T]) ended(t *testing.T) error {
	t.Helper()
	for {
		select {
		case <-w.msgs:
		case err := <-w.err:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("the watch did not end within 10s")
		}
	}
}

// newWatchEnv is an env with the test org and three users: rep1, rep2 and rep3@acme.example.
func newWatchEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, envOptions{})
	if _, err := e.st.PutOrg(t.Context(), orgWithSecrets()); err != nil {
		t.Fatal(err)
	}
	e.putUsers(t, activeUser(user1, "rep1@acme.example"), activeUser(user2, "rep2@acme.example"), activeUser(user3, "rep3@acme.example"))
	return e
}

func (e *env) put(t *testing.T, userID string, part tstatus.Part, us *tandemv1.UserStatus) {
	t.Helper()
	if err := e.status.Put(t.Context(), store.UserKey{OrgID: testOrg, UserID: userID}, part, us); err != nil {
		t.Fatal(err)
	}
}

// userStatusNow is the user's status as GetUserStatus answers it.
func (e *env) userStatusNow(t *testing.T, userID string) *tandemv1.UserStatus {
	t.Helper()
	resp, err := e.statusC.GetUserStatus(t.Context(), &tandemv1.GetUserStatusRequest{OrgId: testOrg, UserId: userID})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetStatus()
}

// subscribers counts the subscriptions to the test org's changes channel.
func subscribers(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	ch, err := store.ChangesChannel(testOrg)
	if err != nil {
		t.Fatal(err)
	}
	n, err := rdb.PubSubNumSub(t.Context(), ch).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n[ch]
}

func wantStatus(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func TestWatchUserStatusOfOneUser(t *testing.T) {
	e := newWatchEnv(t)
	e.put(t, user1, tstatus.PartScheduler, &tandemv1.UserStatus{AssignedToActiveConfiguration: passed})
	stream, err := e.statusC.WatchUserStatus(t.Context(), &tandemv1.WatchUserStatusRequest{OrgId: testOrg, Email: "rep1@acme.example"})
	if err != nil {
		t.Fatal(err)
	}
	w := watch(stream)

	first := w.next(t).GetStatus()
	wantStatus(t, "the first message", first, e.userStatusNow(t, user1))
	if first.GetUserId() != user1 || first.GetEmail() != "rep1@acme.example" || first.GetAssignedToActiveConfiguration() != passed {
		t.Fatalf("the first message is %v, want rep1's current status", first)
	}

	// Another user's change, and the same status written again, send nothing.
	e.put(t, user2, tstatus.PartExchange, &tandemv1.UserStatus{RecognizedByServiceAccount: passed})
	e.put(t, user1, tstatus.PartScheduler, &tandemv1.UserStatus{AssignedToActiveConfiguration: passed})
	w.none(t, quiet)

	// The user's own change is sent, and is the next message.
	e.put(t, user1, tstatus.PartExchange, &tandemv1.UserStatus{RecognizedByServiceAccount: failed})
	got := w.next(t).GetStatus()
	wantStatus(t, "after the user's change", got, e.userStatusNow(t, user1))
	if got.GetRecognizedByServiceAccount() != failed {
		t.Fatalf("after the change: %v", got)
	}

	// Watched by id, and with a kind status (PutKind) changing.
	byID, err := e.statusC.WatchUserStatus(t.Context(), &tandemv1.WatchUserStatusRequest{OrgId: testOrg, UserId: user2})
	if err != nil {
		t.Fatal(err)
	}
	w2 := watch(byID)
	if got := w2.next(t).GetStatus(); got.GetUserId() != user2 || got.GetRecognizedByServiceAccount() != passed {
		t.Fatalf("the first message of user2's watch is %v", got)
	}
	ks := &tandemv1.KindStatus{Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT, AddressesLinked: passed}
	if err := e.status.PutKind(t.Context(), store.UserKey{OrgID: testOrg, UserID: user2}, ks); err != nil {
		t.Fatal(err)
	}
	if got := w2.next(t).GetStatus(); len(got.GetKinds()) != 1 || got.GetKinds()[0].GetAddressesLinked() != passed {
		t.Fatalf("after PutKind: %v", got)
	}
	w.none(t, 0) // user1's watch heard of user2's change, and sent nothing
}

func TestWatchUserStatusOfEveryUser(t *testing.T) {
	e := newWatchEnv(t)
	e.put(t, user1, tstatus.PartScheduler, &tandemv1.UserStatus{AssignedToActiveConfiguration: passed})
	e.put(t, user2, tstatus.PartExchange, &tandemv1.UserStatus{RecognizedByServiceAccount: failed})
	stream, err := e.statusC.WatchUserStatus(t.Context(), &tandemv1.WatchUserStatusRequest{OrgId: testOrg})
	if err != nil {
		t.Fatal(err)
	}
	w := watch(stream)

	// Every user's status at first, in the order of their ids.
	for _, id := range []string{user1, user2, user3} {
		wantStatus(t, "the first status of "+id, w.next(t).GetStatus(), e.userStatusNow(t, id))
	}
	w.none(t, quiet)

	// Then each changed user's; an unchanged status written again is not sent.
	e.put(t, user1, tstatus.PartScheduler, &tandemv1.UserStatus{AssignedToActiveConfiguration: passed})
	e.put(t, user3, tstatus.PartScheduler, &tandemv1.UserStatus{AssignedToActiveConfiguration: failed})
	wantStatus(t, "after user3's change", w.next(t).GetStatus(), e.userStatusNow(t, user3))
	w.none(t, quiet)

	// A burst over two users sends each once, with its last status.
	for _, r := range []tandemv1.CheckResult{passed, failed, passed} {
		e.put(t, user2, tstatus.PartExchange, &tandemv1.UserStatus{RecognizedByServiceAccount: r})
		e.put(t, user1, tstatus.PartExchange, &tandemv1.UserStatus{RecognizedByServiceAccount: r})
	}
	got := map[string]*tandemv1.UserStatus{}
	for range 2 {
		us := w.next(t).GetStatus()
		got[us.GetUserId()] = us
	}
	for _, id := range []string{user1, user2} {
		wantStatus(t, "after the burst, "+id, got[id], e.userStatusNow(t, id))
	}
}

func TestWatchOrgStatus(t *testing.T) {
	e := newWatchEnv(t)
	ctx := t.Context()
	for _, id := range []string{user1, user2} {
		e.put(t, id, tstatus.PartScheduler, &tandemv1.UserStatus{AssignedToActiveConfiguration: passed})
	}
	orgStatusNow := func() *tandemv1.OrgStatus {
		resp, err := e.statusC.GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: testOrg})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	_, viewer := e.tokenFor(t, tandemv1.Role_ROLE_VIEWER, testOrg)
	stream, err := tandemv1.NewStatusServiceClient(e.dial(t, viewer)).WatchOrgStatus(ctx, &tandemv1.WatchOrgStatusRequest{OrgId: testOrg})
	if err != nil {
		t.Fatal(err)
	}
	w := watch(stream)
	first := w.next(t).GetStatus()
	wantStatus(t, "the first message", first, orgStatusNow())
	if first.GetUsersExpected() != 2 || first.GetUsersLinked() != 0 || first.GetUsersSuspended() != 0 {
		t.Fatalf("the first message is %v", first)
	}

	// A user's status that leaves the org's unchanged sends nothing.
	e.put(t, user3, tstatus.PartExchange, &tandemv1.UserStatus{RecognizedByServiceAccount: failed})
	w.none(t, quiet)

	uk1 := store.UserKey{OrgID: testOrg, UserID: user1}
	for _, step := range []struct {
		name  string
		write func() error
		check func(*tandemv1.OrgStatus) bool
	}{
		{"a user linked", func() error {
			return e.status.PutKind(ctx, uk1, &tandemv1.KindStatus{Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT, AddressesLinked: passed})
		}, func(s *tandemv1.OrgStatus) bool { return s.GetUsersLinked() == 1 }},
		{"a user suspended", func() error {
			return e.status.Put(ctx, store.UserKey{OrgID: testOrg, UserID: user2}, tstatus.PartExchange,
				&tandemv1.UserStatus{Suspended: true, SuspendedAt: timestamppb.New(time.Now().Add(time.Minute))})
		}, func(s *tandemv1.OrgStatus) bool { return s.GetUsersSuspended() == 1 }},
		{"records synced", func() error {
			return e.st.AddActivity(ctx, testOrg, store.KindName(tandemv1.RecordKind_RECORD_KIND_CONTACT), 7, time.Now())
		}, func(s *tandemv1.OrgStatus) bool { return s.GetActivity()[0].GetSyncedLast_60Minutes() == 7 }},
		{"Salesforce API usage", func() error {
			return e.status.PutSalesforceUsage(ctx, testOrg, &tandemv1.SalesforceApiUsage{Used: 120, DailyMax: 15000})
		}, func(s *tandemv1.OrgStatus) bool { return s.GetSalesforceApi().GetUsed() == 120 }},
	} {
		if err := step.write(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got := w.next(t).GetStatus()
		wantStatus(t, "after "+step.name, got, orgStatusNow())
		if !step.check(got) {
			t.Fatalf("after %s: %v", step.name, got)
		}
	}
}

func TestWatchEndsWithTheCall(t *testing.T) {
	e := newWatchEnv(t)
	for name, open := range map[string]func(ctx context.Context) (func() error, error){
		"org": func(ctx context.Context) (func() error, error) {
			s, err := e.statusC.WatchOrgStatus(ctx, &tandemv1.WatchOrgStatusRequest{OrgId: testOrg})
			return func() error { _, err := s.Recv(); return err }, err
		},
		"one user": func(ctx context.Context) (func() error, error) {
			s, err := e.statusC.WatchUserStatus(ctx, &tandemv1.WatchUserStatusRequest{OrgId: testOrg, UserId: user1})
			return func() error { _, err := s.Recv(); return err }, err
		},
		"every user": func(ctx context.Context) (func() error, error) {
			s, err := e.statusC.WatchUserStatus(ctx, &tandemv1.WatchUserStatusRequest{OrgId: testOrg})
			return func() error { _, err := s.Recv(); return err }, err
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			recv, err := open(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := recv(); err != nil {
				t.Fatal(err)
			}
			if n := subscribers(t, e.rdb); n != 1 {
				t.Fatalf("%d subscriptions to the org's changes while watching, want 1", n)
			}
			cancel()
			// The handler returned, and its subscription with it.
			poll.Until(t, "the watch's subscription to end", func() bool { return subscribers(t, e.rdb) == 0 })
		})
	}
}

// TestWatchEndsWhenTheServerStops: a graceful stop gives in-flight calls its timeout, then
// stops the server; an open watch then ends at once.
func TestWatchEndsWhenTheServerStops(t *testing.T) {
	e := newWatchEnv(t)
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	api.New(e.st, e.syncer, nil, nil).Register(srv)
	const timeout = 200 * time.Millisecond
	comp := lifecycle.GRPCServer("grpc", srv, lis, timeout)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- comp.Run(ctx) }()

	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := tandemv1.NewStatusServiceClient(conn).WatchOrgStatus(t.Context(), &tandemv1.WatchOrgStatusRequest{OrgId: testOrg})
	if err != nil {
		t.Fatal(err)
	}
	w := watch(stream)
	w.next(t)

	stopped := time.Now()
	stop()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop with a watch open")
	}
	if took := time.Since(stopped); took > timeout+5*time.Second {
		t.Fatalf("the server took %s to stop", took)
	}
	if err := w.ended(t); status.Code(err) != codes.Unavailable && status.Code(err) != codes.Canceled {
		t.Fatalf("the watch ended with %v", err)
	}
	poll.Until(t, "the watch's subscription to end", func() bool { return subscribers(t, e.rdb) == 0 })
}

func TestWatchErrors(t *testing.T) {
	e := newWatchEnv(t)
	_, foreign := e.tokenFor(t, tandemv1.Role_ROLE_VIEWER, otherOrg)
	foreignC := tandemv1.NewStatusServiceClient(e.dial(t, foreign))
	for _, tc := range []struct {
		name string
		c    tandemv1.StatusServiceClient
		org  *tandemv1.WatchOrgStatusRequest
		user *tandemv1.WatchUserStatusRequest
		want codes.Code
	}{
		{name: "unknown email", c: e.statusC, user: &tandemv1.WatchUserStatusRequest{OrgId: testOrg, Email: "nobody@acme.example"}, want: codes.NotFound},
		{name: "unknown user id", c: e.statusC, user: &tandemv1.WatchUserStatusRequest{OrgId: testOrg, UserId: "005user00000404"}, want: codes.NotFound},
		{name: "every user of an unknown org", c: e.statusC, user: &tandemv1.WatchUserStatusRequest{OrgId: missingOrg}, want: codes.NotFound},
		{name: "unknown org", c: e.statusC, org: &tandemv1.WatchOrgStatusRequest{OrgId: missingOrg}, want: codes.NotFound},
		{name: "no org", c: e.statusC, org: &tandemv1.WatchOrgStatusRequest{}, want: codes.InvalidArgument},
		{name: "org of another token", c: foreignC, org: &tandemv1.WatchOrgStatusRequest{OrgId: testOrg}, want: codes.PermissionDenied},
		{name: "user of another token's org", c: foreignC, user: &tandemv1.WatchUserStatusRequest{OrgId: testOrg, UserId: user1}, want: codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.org != nil {
				var s grpc.ServerStreamingClient[tandemv1.WatchOrgStatusResponse]
				if s, err = tc.c.WatchOrgStatus(t.Context(), tc.org); err == nil {
					err = watch(s).ended(t)
				}
			} else {
				var s grpc.ServerStreamingClient[tandemv1.WatchUserStatusResponse]
				if s, err = tc.c.WatchUserStatus(t.Context(), tc.user); err == nil {
					err = watch(s).ended(t)
				}
			}
			if errors.Is(err, io.EOF) {
				t.Fatal("the watch ended without an error")
			}
			wantCode(t, err, tc.want)
		})
	}
	poll.Until(t, "no subscription left behind", func() bool { return subscribers(t, e.rdb) == 0 })
}

// TestWatchReadsEverythingAfterALostSubscription: announcements made while a watch's
// subscription is down are lost; the watch reads everything again once it is back, without
// waiting for its fallback.
func TestWatchReadsEverythingAfterALostSubscription(t *testing.T) {
	e := newWatchEnv(t)
	ctx := t.Context()
	stream, err := e.statusC.WatchUserStatus(ctx, &tandemv1.WatchUserStatusRequest{OrgId: testOrg})
	if err != nil {
		t.Fatal(err)
	}
	w := watch(stream)
	for range 3 {
		w.next(t)
	}
	// A write nobody announced, as if its announcement had been lost.
	key, err := store.UserKey{OrgID: testOrg, UserID: user2}.Key("status")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := proto.Marshal(&tandemv1.UserStatus{AssignedToActiveConfiguration: passed})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.HSet(ctx, key, string(tstatus.PartScheduler), raw).Err(); err != nil {
		t.Fatal(err)
	}
	w.none(t, quiet)
	if err := e.rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "after the subscription came back", w.next(t).GetStatus(), e.userStatusNow(t, user2))
}
