package exchangeworker

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	rep1 = "005rep1"
	rep2 = "005rep2"
)

// newFakeEnv is a worker with a fake connector, an org and two users in the directory.
func newFakeEnv(t *testing.T) (*env, *fakeConnector) {
	t.Helper()
	fc := newFakeConnector()
	e := newEnv(t, testConfig(), func(*platform.Platform) ConnectorFactory { return fc.factory })
	e.putOrg(&tandemv1.Org{OrgId: testOrg, Name: "Acme", Enabled: true})
	e.putUsers(
		&tandemv1.SyncUser{UserId: rep1, Email: "rep1@acme.example", Active: true},
		&tandemv1.SyncUser{UserId: rep2, Email: "rep2@acme.example", Active: true},
	)
	return e, fc
}

// pageWant is what one published page must say.
type pageWant struct {
	kind     tandemv1.RecordKind
	page     uint32
	ids      []string
	last     bool
	count    uint32
	full     bool
	previous uint64
	readAt   time.Time
}

func checkPages(t *testing.T, got []*tandemv1.ChangeBatch, subjects []string, userID string, cycle uint64, want []pageWant) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("published %d pages, want %d: %v", len(got), len(want), got)
	}
	subject, err := bus.ChangesSubject(testOrg, userID)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range got {
		w := want[i]
		if subjects[i] != subject {
			t.Errorf("page %d on %s, want %s", i, subjects[i], subject)
		}
		var ids []string
		for _, c := range b.GetChanges() {
			ids = append(ids, c.GetRecord().GetId())
		}
		if b.GetOrgId() != testOrg || b.GetUserId() != userID || b.GetSource() != tandemv1.System_SYSTEM_EXCHANGE ||
			b.GetKind() != w.kind || b.GetCycle() != cycle || b.GetPage() != w.page || !slices.Equal(ids, w.ids) ||
			b.GetLast() != w.last || b.GetPageCount() != w.count || b.GetFullSnapshot() != w.full ||
			b.GetPreviousCycle() != w.previous || b.GetError() != nil {
			t.Errorf("page %d: got org %s user %s source %s kind %s cycle %d page %d ids %v last %v count %d full %v previous %d\nwant org %s user %s source EXCHANGE kind %s cycle %d page %d ids %v last %v count %d full %v previous %d",
				i, b.GetOrgId(), b.GetUserId(), b.GetSource(), b.GetKind(), b.GetCycle(), b.GetPage(), ids, b.GetLast(), b.GetPageCount(), b.GetFullSnapshot(), b.GetPreviousCycle(),
				testOrg, userID, w.kind, cycle, w.page, w.ids, w.last, w.count, w.full, w.previous)
		}
		if b.GetReadAt() == nil || !b.GetReadAt().AsTime().Equal(w.readAt) {
			t.Errorf("page %d read_at %v, want %v", i, b.GetReadAt().AsTime(), w.readAt)
		}
	}
}

func ids(prefix string, n int) []string {
	var out []string
	for _, c := range upserts(prefix, n) {
		out = append(out, c.GetRecord().GetId())
	}
	return out
}

// TestReadPublishesPagesThenStoresTheCursor runs a user's reads through consecutive cycles; each
// step depends on the cursor the previous one stored.
func TestReadPublishesPagesThenStoresTheCursor(t *testing.T) {
	e, fc := newFakeEnv(t)
	fc.script(func(f *fakeConnector) { f.beforePage = func(i int) { e.clock.Advance(time.Second) } })
	for _, step := range []struct {
		name string
		job  *tandemv1.SyncJob
		// read answers a read of a kind from a cursor: the pages, and the cursor it expects.
		read       map[tandemv1.RecordKind]func(cursor string) []exchange.Page
		wantCursor map[tandemv1.RecordKind]string // the cursor each read must start from
		want       func(t0 time.Time) []pageWant
		stored     map[tandemv1.RecordKind]cursor
	}{
		{
			name: "a first read is full and numbers its pages",
			job:  &tandemv1.SyncJob{Cycle: 5, Kinds: []tandemv1.RecordKind{contact}},
			read: map[tandemv1.RecordKind]func(string) []exchange.Page{contact: func(string) []exchange.Page {
				return []exchange.Page{
					{Changes: upserts("p0", 2), Cursor: "s1", Full: true},
					{Changes: upserts("p1", 1), Cursor: "s2", Full: true},
					{Changes: upserts("p2", 3), Cursor: "s3", Full: true, Last: true},
				}
			}},
			wantCursor: map[tandemv1.RecordKind]string{contact: ""},
			want: func(t0 time.Time) []pageWant {
				return []pageWant{
					{kind: contact, page: 0, ids: ids("p0", 2), full: true, readAt: t0},
					{kind: contact, page: 1, ids: ids("p1", 1), full: true, readAt: t0.Add(time.Second)},
					{kind: contact, page: 2, ids: ids("p2", 3), full: true, last: true, count: 3, readAt: t0.Add(2 * time.Second)},
				}
			},
			stored: map[tandemv1.RecordKind]cursor{contact: {Value: "s3", Cycle: 5}},
		},
		{
			name: "an incremental read continues from the earlier cycle",
			job:  &tandemv1.SyncJob{Cycle: 6, Kinds: []tandemv1.RecordKind{contact}},
			read: map[tandemv1.RecordKind]func(string) []exchange.Page{contact: func(string) []exchange.Page {
				return []exchange.Page{{Changes: upserts("i", 1), Cursor: "s4", Last: true}}
			}},
			wantCursor: map[tandemv1.RecordKind]string{contact: "s3"},
			want: func(t0 time.Time) []pageWant {
				return []pageWant{{kind: contact, ids: ids("i", 1), last: true, count: 1, previous: 5, readAt: t0}}
			},
			stored: map[tandemv1.RecordKind]cursor{contact: {Value: "s4", Cycle: 6}},
		},
		{
			name:       "a read that reports no page still reports the cycle",
			job:        &tandemv1.SyncJob{Cycle: 7, Kinds: []tandemv1.RecordKind{contact}},
			read:       map[tandemv1.RecordKind]func(string) []exchange.Page{contact: func(string) []exchange.Page { return nil }},
			wantCursor: map[tandemv1.RecordKind]string{contact: "s4"},
			want: func(t0 time.Time) []pageWant {
				return []pageWant{{kind: contact, last: true, count: 1, previous: 6, readAt: t0}}
			},
			stored: map[tandemv1.RecordKind]cursor{contact: {Value: "s4", Cycle: 7}},
		},
		{
			name: "full_resync ignores the stored cursor",
			job:  &tandemv1.SyncJob{Cycle: 9, Kinds: []tandemv1.RecordKind{contact}, FullResync: true},
			read: map[tandemv1.RecordKind]func(string) []exchange.Page{contact: func(string) []exchange.Page {
				return []exchange.Page{{Changes: upserts("f", 2), Cursor: "f1", Full: true, Last: true}}
			}},
			wantCursor: map[tandemv1.RecordKind]string{contact: ""},
			want: func(t0 time.Time) []pageWant {
				return []pageWant{{kind: contact, ids: ids("f", 2), last: true, count: 1, full: true, readAt: t0}}
			},
			stored: map[tandemv1.RecordKind]cursor{contact: {Value: "f1", Cycle: 9}},
		},
		{
			name: "a read the connector restarted from scratch continues from no cycle",
			job:  &tandemv1.SyncJob{Cycle: 10, Kinds: []tandemv1.RecordKind{contact}},
			read: map[tandemv1.RecordKind]func(string) []exchange.Page{contact: func(string) []exchange.Page {
				return []exchange.Page{{Changes: upserts("r", 1), Cursor: "r1", Full: true, Last: true}}
			}},
			wantCursor: map[tandemv1.RecordKind]string{contact: "f1"},
			want: func(t0 time.Time) []pageWant {
				return []pageWant{{kind: contact, ids: ids("r", 1), last: true, count: 1, full: true, readAt: t0}}
			},
			stored: map[tandemv1.RecordKind]cursor{contact: {Value: "r1", Cycle: 10}},
		},
		{
			name: "each kind has its own cursor and pages",
			job:  &tandemv1.SyncJob{Cycle: 11, Kinds: []tandemv1.RecordKind{contact, event}},
			read: map[tandemv1.RecordKind]func(string) []exchange.Page{
				contact: func(string) []exchange.Page {
					return []exchange.Page{{Changes: upserts("c", 1), Cursor: "r2", Last: true}}
				},
				event: func(string) []exchange.Page {
					return []exchange.Page{
						{Changes: upserts("e0", 1), Cursor: "e1", Full: true},
						{Changes: upserts("e1", 1), Cursor: "e2", Full: true, Last: true},
					}
				},
			},
			wantCursor: map[tandemv1.RecordKind]string{contact: "r1", event: ""},
			want: func(t0 time.Time) []pageWant {
				return []pageWant{
					{kind: contact, ids: ids("c", 1), last: true, count: 1, previous: 10, readAt: t0},
					{kind: event, page: 0, ids: ids("e0", 1), full: true, readAt: t0.Add(time.Second)},
					{kind: event, page: 1, ids: ids("e1", 1), full: true, last: true, count: 2, readAt: t0.Add(2 * time.Second)},
				}
			},
			stored: map[tandemv1.RecordKind]cursor{contact: {Value: "r2", Cycle: 11}, event: {Value: "e2", Cycle: 11}},
		},
	} {
		t.Run(step.name, func(t *testing.T) {
			var seen []string
			fc.script(func(f *fakeConnector) {
				f.pages = func(kind tandemv1.RecordKind, cur string) ([]exchange.Page, error) {
					seen = append(seen, kind.String()+"@"+cur)
					if want := step.wantCursor[kind]; cur != want {
						t.Errorf("%s read from cursor %q, want %q", kind, cur, want)
					}
					return step.read[kind](cur), nil
				}
			})
			job := proto.Clone(step.job).(*tandemv1.SyncJob)
			job.OrgId, job.UserId, job.System = testOrg, rep1, tandemv1.System_SYSTEM_EXCHANGE
			t0 := e.clock.Now()
			if err := e.w.handleJob(t.Context(), jobMessage(t, job)); err != nil {
				t.Fatalf("handleJob: %v", err)
			}
			if len(seen) != len(job.GetKinds()) {
				t.Errorf("reads %v, want one per kind", seen)
			}
			got, subjects := e.changes()
			checkPages(t, got, subjects, rep1, job.GetCycle(), step.want(t0))
			for kind, want := range step.stored {
				// The cursor also says when the read's last page was read.
				for _, p := range step.want(t0) {
					if p.kind == kind && p.last {
						want.ReadAt = p.readAt.UnixMilli()
					}
				}
				c, ok := e.storedCursor(rep1, kind)
				if !ok || c != want {
					t.Errorf("stored %s cursor %+v (%v), want %+v", kind, c, ok, want)
				}
			}
		})
	}

	// The reads were good: the user's Exchange status says so, for the kinds of the last job.
	want := &tandemv1.UserStatus{
		Email: "rep1@acme.example", MailboxVersionSupported: passed, RecognizedByServiceAccount: passed,
		ExchangeVersion: "15.2.1748.10 V2017_07_11",
		Kinds: []*tandemv1.KindStatus{
			{Kind: contact, FolderFound: passed, AddressesLinked: passed},
			{Kind: event, FolderFound: passed, AddressesLinked: passed},
		},
	}
	if diff := cmp.Diff(want, e.exchangeStatus(rep1), protocmp.Transform()); diff != "" {
		t.Errorf("exchange status (-want +got):\n%s", diff)
	}
	if mbs := fc.mailboxes; len(mbs) == 0 || mbs[0] != (exchange.Mailbox{OrgID: testOrg, UserID: rep1, Address: "rep1@acme.example"}) {
		t.Errorf("the connector was asked for mailbox %+v", mbs)
	}
	if entries := e.errorReport(rep1); len(entries) != 0 {
		t.Errorf("error report after good reads: %v", entries)
	}
}

// TestCursorAdvancesOnlyOncePublished checks that a read whose pages are not all durably
// published leaves the stored cursor where it was, so the next attempt reads them again.
func TestCursorAdvancesOnlyOncePublished(t *testing.T) {
	ctx := t.Context()
	e, fc := newFakeEnv(t)
	fc.script(func(f *fakeConnector) {
		f.pages = func(_ tandemv1.RecordKind, cur string) ([]exchange.Page, error) {
			return []exchange.Page{{Changes: upserts("a", 1), Cursor: "s1", Full: true, Last: true}}, nil
		}
	})
	job := &tandemv1.SyncJob{OrgId: testOrg, UserId: rep1, System: tandemv1.System_SYSTEM_EXCHANGE, Cycle: 1, Kinds: []tandemv1.RecordKind{contact}}
	if err := e.w.handleJob(ctx, jobMessage(t, job)); err != nil {
		t.Fatal(err)
	}
	e.changes()
	start, _ := e.storedCursor(rep1, contact)
	if start.Value != "s1" || start.Cycle != 1 {
		t.Fatalf("cursor %+v after the first read", start)
	}

	// The changes stream stops taking the workers' subjects: publishing fails. (A stream that
	// is merely missing is recreated by the publish.) Declare puts the topology back.
	refuseChanges := func() {
		st, err := e.p.JetStream.Stream(ctx, bus.StreamChanges)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		cfg.Subjects = []string{"elsewhere.>"}
		if _, err := e.p.JetStream.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		script func(f *fakeConnector)
		// unavailable makes the changes stream refuse the pages before the job runs.
		unavailable bool
	}{
		{
			name:        "the only page cannot be published",
			unavailable: true,
			script: func(f *fakeConnector) {
				f.beforePage = nil
				f.pages = func(tandemv1.RecordKind, string) ([]exchange.Page, error) {
					return []exchange.Page{{Changes: upserts("b", 1), Cursor: "s2", Last: true}}, nil
				}
			},
		},
		{
			name: "a later page cannot be published",
			script: func(f *fakeConnector) {
				f.beforePage = func(i int) {
					if i == 1 {
						refuseChanges()
					}
				}
				f.pages = func(tandemv1.RecordKind, string) ([]exchange.Page, error) {
					return []exchange.Page{
						{Changes: upserts("b", 1), Cursor: "s2"},
						{Changes: upserts("c", 1), Cursor: "s3", Last: true},
					}, nil
				}
			},
		},
		{
			name: "the read fails after a page was published",
			script: func(f *fakeConnector) {
				f.beforePage = nil
				f.pages = func(tandemv1.RecordKind, string) ([]exchange.Page, error) {
					return []exchange.Page{{Changes: upserts("b", 1), Cursor: "s2"}},
						&syncerr.Error{Code: syncerr.ExchangeTimeout, Detail: "SyncFolderItems timed out"}
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A read at another time publishes other pages (JetStream would drop a page
			// identical to an earlier case's as a duplicate).
			e.clock.Advance(time.Minute)
			fc.script(tc.script)
			if tc.unavailable {
				refuseChanges()
			}
			job := proto.Clone(job).(*tandemv1.SyncJob)
			job.Cycle = 2
			err := e.w.handleJob(ctx, jobMessage(t, job))
			if err == nil || bus.IsPermanent(err) {
				t.Fatalf("handleJob = %v, want an error the bus retries", err)
			}
			if c, _ := e.storedCursor(rep1, contact); c != start {
				t.Fatalf("cursor %+v after a failed read, want %+v", c, start)
			}
			// Once the stream is back, the retried job publishes from the same cursor and
			// only then advances it.
			if err := e.p.Bus.Declare(ctx); err != nil {
				t.Fatal(err)
			}
			e.read = map[string]uint64{}
			e.changes() // skip what the failed attempt published before the stream refused
			fc.script(func(f *fakeConnector) {
				f.beforePage = nil
				f.pages = func(_ tandemv1.RecordKind, cur string) ([]exchange.Page, error) {
					if cur != start.Value {
						t.Errorf("retry read from %q, want %q", cur, start.Value)
					}
					return []exchange.Page{{Changes: upserts("b", 1), Cursor: "s2", Last: true}}, nil
				}
			})
			if err := e.w.handleJob(ctx, jobMessage(t, job)); err != nil {
				t.Fatal(err)
			}
			got, _ := e.changes()
			if len(got) != 1 || !got[0].GetLast() || got[0].GetPreviousCycle() != 1 {
				t.Fatalf("retried read published %v", got)
			}
			if c, _ := e.storedCursor(rep1, contact); c != (cursor{Value: "s2", Cycle: 2, ReadAt: e.clock.Now().UnixMilli()}) {
				t.Fatalf("cursor after the retry %+v", c)
			}
			// Put the cursor back for the next case.
			if err := e.w.putCursor(ctx, exchange.Mailbox{OrgID: testOrg, UserID: rep1}, contact, start); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestUnreadableCursorReadsInFull(t *testing.T) {
	e, fc := newFakeEnv(t)
	if err := e.st.PutCursor(t.Context(), cursorKey(exchange.Mailbox{OrgID: testOrg, UserID: rep1}, contact), "not json"); err != nil {
		t.Fatal(err)
	}
	fc.script(func(f *fakeConnector) {
		f.pages = func(tandemv1.RecordKind, string) ([]exchange.Page, error) {
			return []exchange.Page{{Cursor: "s1", Full: true, Last: true}}, nil
		}
	})
	job := &tandemv1.SyncJob{OrgId: testOrg, UserId: rep1, Cycle: 4, Kinds: []tandemv1.RecordKind{contact}}
	if err := e.w.handleJob(t.Context(), jobMessage(t, job)); err != nil {
		t.Fatal(err)
	}
	if got := fc.cursorsOf(contact); !slices.Equal(got, []string{""}) {
		t.Errorf("read from %q, want a full read", got)
	}
	if c, _ := e.storedCursor(rep1, contact); c != (cursor{Value: "s1", Cycle: 4, ReadAt: e.clock.Now().UnixMilli()}) {
		t.Errorf("cursor %+v", c)
	}
}

func TestReadFailures(t *testing.T) {
	kinds := []tandemv1.RecordKind{contact, event}
	failedKinds := func(set func(*tandemv1.KindStatus)) []*tandemv1.KindStatus {
		var out []*tandemv1.KindStatus
		for _, k := range kinds {
			ks := &tandemv1.KindStatus{Kind: k}
			set(ks)
			out = append(out, ks)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		// setup breaks something; the user read is rep1.
		setup     func(e *env, fc *fakeConnector)
		code      syncerr.Code
		retryable bool
		delay     time.Duration
		// status is the expected exchange status part, before the failure bookkeeping.
		status *tandemv1.UserStatus
		// connector says whether the connector was asked for the mailbox.
		connector bool
	}{
		{
			name: "impersonation denied",
			setup: func(_ *env, fc *fakeConnector) {
				fc.prepareErr = syncerr.New(syncerr.ExchangeImpersonationDenied, "ErrorImpersonateUserDenied")
			},
			code: syncerr.ExchangeImpersonationDenied, connector: true,
			status: &tandemv1.UserStatus{RecognizedByServiceAccount: failed},
		},
		{
			name:  "credentials rejected",
			setup: func(_ *env, fc *fakeConnector) { fc.prepareErr = syncerr.New(syncerr.ExchangeAuthFailed, "401") },
			code:  syncerr.ExchangeAuthFailed, connector: true,
			status: &tandemv1.UserStatus{RecognizedByServiceAccount: failed},
		},
		{
			name: "unsupported Exchange version",
			setup: func(_ *env, fc *fakeConnector) {
				fc.prepareErr = syncerr.New(syncerr.ExchangeUnsupportedVersion, "Exchange 2010")
			},
			code: syncerr.ExchangeUnsupportedVersion, connector: true,
			status: &tandemv1.UserStatus{MailboxVersionSupported: failed},
		},
		{
			name: "no mailbox",
			setup: func(_ *env, fc *fakeConnector) {
				fc.prepareErr = syncerr.New(syncerr.ExchangeMailboxNotFound, "ErrorNonExistentMailbox")
			},
			code: syncerr.ExchangeMailboxNotFound, connector: true,
			status: &tandemv1.UserStatus{Kinds: failedKinds(func(ks *tandemv1.KindStatus) { ks.AddressesLinked = failed })},
		},
		{
			name: "sync folder missing",
			setup: func(_ *env, fc *fakeConnector) {
				fc.prepareErr = syncerr.New(syncerr.ExchangeFolderNotFound, "cannot create")
			},
			code: syncerr.ExchangeFolderNotFound, retryable: true, connector: true,
			status: &tandemv1.UserStatus{Kinds: failedKinds(func(ks *tandemv1.KindStatus) { ks.FolderFound = failed })},
		},
		{
			name: "throttled",
			setup: func(_ *env, fc *fakeConnector) {
				fc.prepareErr = &syncerr.Error{Code: syncerr.ExchangeServerBusy, Detail: "ErrorServerBusy", Delay: 90 * time.Second}
			},
			code: syncerr.ExchangeServerBusy, retryable: true, delay: 90 * time.Second, connector: true,
			status: &tandemv1.UserStatus{},
		},
		{
			name: "read fails",
			setup: func(_ *env, fc *fakeConnector) {
				fc.pages = func(tandemv1.RecordKind, string) ([]exchange.Page, error) {
					return nil, syncerr.New(syncerr.ExchangeMalformedResponse, "truncated XML")
				}
			},
			code: syncerr.ExchangeMalformedResponse, retryable: true, connector: true,
			status: &tandemv1.UserStatus{},
		},
		{
			name: "user not in the directory",
			setup: func(e *env, _ *fakeConnector) {
				e.putUsers(&tandemv1.SyncUser{UserId: rep2, Email: "rep2@acme.example"})
			},
			code:   syncerr.SyncUserNotInDirectory,
			status: &tandemv1.UserStatus{Kinds: failedKinds(func(ks *tandemv1.KindStatus) { ks.AddressesLinked = failed })},
		},
		{
			name:   "user without an email",
			setup:  func(e *env, _ *fakeConnector) { e.putUsers(&tandemv1.SyncUser{UserId: rep1, Active: true}) },
			code:   syncerr.SyncAddressNotLinked,
			status: &tandemv1.UserStatus{Kinds: failedKinds(func(ks *tandemv1.KindStatus) { ks.AddressesLinked = failed })},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, fc := newFakeEnv(t)
			fc.script(func(f *fakeConnector) { tc.setup(e, f) })
			job := &tandemv1.SyncJob{OrgId: testOrg, UserId: rep1, System: tandemv1.System_SYSTEM_EXCHANGE, Cycle: 3, Kinds: kinds}
			err := e.w.handleJob(t.Context(), jobMessage(t, job))
			if tc.retryable {
				var se *syncerr.Error
				if !errors.As(err, &se) || se.Code != tc.code || bus.IsPermanent(err) {
					t.Fatalf("handleJob = %v, want a %s error the bus retries", err, tc.code)
				}
				if se.RetryAfter() != tc.delay {
					t.Errorf("retry after %s, want %s", se.RetryAfter(), tc.delay)
				}
			} else if err != nil {
				t.Fatalf("handleJob = %v, want nil (acked: the next cycles retry after the back-off)", err)
			}
			if got := len(fc.mailboxes) > 0; got != tc.connector {
				t.Errorf("connector asked: %v, want %v", got, tc.connector)
			}

			want := proto.Clone(tc.status).(*tandemv1.UserStatus)
			want.ConsecutiveFailures = 1
			if !tc.retryable {
				want.PermanentFailures = 1 // counts towards suspension; retryable failures never do
			}
			want.NextSyncAt = timestamppb.New(e.clock.Now().Add(time.Minute))
			got := e.exchangeStatus(rep1)
			if got.GetLastError().GetCode() != string(tc.code) || got.GetLastError().GetSuggestion() == "" {
				t.Errorf("last error %v, want %s with a suggestion", got.GetLastError(), tc.code)
			}
			want.LastError, got.LastError = nil, nil
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("exchange status (-want +got):\n%s", diff)
			}

			entries := e.errorReport(rep1)
			var gotKinds []tandemv1.RecordKind
			for _, en := range entries {
				if en.GetError().GetCode() != string(tc.code) || en.GetUserId() != rep1 {
					t.Errorf("error report entry %v, want %s for %s", en, tc.code, rep1)
				}
				gotKinds = append(gotKinds, en.GetKind())
			}
			slices.Sort(gotKinds)
			if !slices.Equal(gotKinds, kinds) {
				t.Errorf("error report has entries for %v, want one per kind %v", gotKinds, kinds)
			}
			if pages, _ := e.changes(); len(pages) != 0 {
				t.Errorf("a failed read published %v", pages)
			}
			for _, k := range kinds {
				if _, ok := e.storedCursor(rep1, k); ok {
					t.Errorf("a failed read stored a %s cursor", k)
				}
			}
		})
	}
}

func TestFailingUserBacksOffThenRecovers(t *testing.T) {
	e, fc := newFakeEnv(t)
	ctx := t.Context()
	job := &tandemv1.SyncJob{OrgId: testOrg, UserId: rep1, Cycle: 1, Kinds: []tandemv1.RecordKind{contact}}
	fc.script(func(f *fakeConnector) {
		f.pages = func(tandemv1.RecordKind, string) ([]exchange.Page, error) {
			return []exchange.Page{{Cursor: "s", Full: true, Last: true}}, nil
		}
	})
	if err := e.w.handleJob(ctx, jobMessage(t, job)); err != nil {
		t.Fatal(err)
	}
	fc.script(func(f *fakeConnector) {
		f.prepareErr = syncerr.New(syncerr.ExchangeImpersonationDenied, "denied")
	})
	// The back-off doubles from --backoff-base and stops at --backoff-max (1m and 10m here).
	for i, backoff := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute} {
		e.clock.Advance(time.Hour)
		if err := e.w.handleJob(ctx, jobMessage(t, job)); err != nil {
			t.Fatal(err)
		}
		got := e.exchangeStatus(rep1)
		if got.GetConsecutiveFailures() != int32(i+1) || !got.GetNextSyncAt().AsTime().Equal(e.clock.Now().Add(backoff)) {
			t.Errorf("failure %d: consecutive failures %d, next sync %v; want %d, %v",
				i+1, got.GetConsecutiveFailures(), got.GetNextSyncAt().AsTime(), i+1, e.clock.Now().Add(backoff))
		}
		// What the good read found is kept; only what failed changes.
		if got.GetEmail() != "rep1@acme.example" || got.GetExchangeVersion() == "" || got.GetRecognizedByServiceAccount() != failed {
			t.Errorf("failure %d: status %v", i+1, got)
		}
	}
	entries := e.errorReport(rep1)
	if len(entries) != 1 || entries[0].GetOccurrences() != 6 {
		t.Errorf("error report %v, want one entry seen 6 times", entries)
	}

	fc.script(func(f *fakeConnector) { f.prepareErr = nil })
	if err := e.w.handleJob(ctx, jobMessage(t, job)); err != nil {
		t.Fatal(err)
	}
	got := e.exchangeStatus(rep1)
	if got.GetConsecutiveFailures() != 0 || got.GetNextSyncAt() != nil || got.GetLastError() != nil || got.GetRecognizedByServiceAccount() != passed {
		t.Errorf("status after a good read %v, want the failures cleared", got)
	}
}

// newSuspendingEnv is newFakeEnv with suspension after suspendAfter permanent failures and a
// probe a day. The worker's clock is moved past the org's last change (the store stamps it with
// the real time): a suspension older than that change would count as lifted.
func newSuspendingEnv(t *testing.T, suspendAfter int) (*env, *fakeConnector) {
	t.Helper()
	fc := newFakeConnector()
	cfg := testConfig()
	cfg.SuspendAfter, cfg.SuspendedProbe = suspendAfter, 24*time.Hour
	e := newEnv(t, cfg, func(*platform.Platform) ConnectorFactory { return fc.factory })
	e.putOrg(&tandemv1.Org{OrgId: testOrg, Name: "Acme", Enabled: true})
	e.putUsers(&tandemv1.SyncUser{UserId: rep1, Email: "rep1@acme.example", Active: true})
	e.clock.Advance(max(0, time.Since(e.clock.Now())) + time.Minute)
	return e, fc
}

func TestPermanentFailuresSuspendTheUser(t *testing.T) {
	e, fc := newSuspendingEnv(t, 3)
	ctx := t.Context()
	job := &tandemv1.SyncJob{OrgId: testOrg, UserId: rep1, Cycle: 1, Kinds: []tandemv1.RecordKind{contact}}
	read := func(step string) *tandemv1.UserStatus {
		t.Helper()
		if err := e.w.handleJob(ctx, jobMessage(t, job)); err != nil {
			t.Fatalf("%s: handleJob = %v, want nil (a permanent failure is acked)", step, err)
		}
		return e.exchangeStatus(rep1)
	}
	fc.script(func(f *fakeConnector) {
		f.prepareErr = syncerr.New(syncerr.ExchangeMailboxNotFound, "ErrorNonExistentMailbox")
	})
	for i, backoff := range []time.Duration{time.Minute, 2 * time.Minute} {
		e.clock.Advance(time.Hour)
		got := read(fmt.Sprintf("failure %d", i+1))
		if got.GetSuspended() || got.GetSuspendedAt() != nil || got.GetPermanentFailures() != int32(i+1) ||
			!got.GetNextSyncAt().AsTime().Equal(e.clock.Now().Add(backoff)) {
			t.Errorf("failure %d: status %v, want backed off %s, not suspended, %d permanent failures", i+1, got, backoff, i+1)
		}
	}

	e.clock.Advance(time.Hour)
	suspendedAt := e.clock.Now()
	got := read("failure 3")
	if !got.GetSuspended() || !got.GetSuspendedAt().AsTime().Equal(suspendedAt) || got.GetPermanentFailures() != 3 ||
		got.GetLastError().GetCode() != string(syncerr.ExchangeMailboxNotFound) {
		t.Fatalf("after the third permanent failure: status %v, want suspended at %v with the failure as last error", got, suspendedAt)
	}
	if !got.GetNextSyncAt().AsTime().Equal(suspendedAt.Add(24 * time.Hour)) {
		t.Errorf("next sync %v, want the probe a day later", got.GetNextSyncAt().AsTime())
	}

	// A probe that fails leaves the user suspended since the same time, and waits for the next one.
	e.clock.Advance(24 * time.Hour)
	got = read("failed probe")
	if !got.GetSuspended() || !got.GetSuspendedAt().AsTime().Equal(suspendedAt) || !got.GetNextSyncAt().AsTime().Equal(e.clock.Now().Add(24*time.Hour)) {
		t.Errorf("after a failed probe: status %v, want still suspended since %v, next probe a day later", got, suspendedAt)
	}

	// An admin resumes the user: the next permanent failure suspends it again at once.
	uk := store.UserKey{OrgID: testOrg, UserID: rep1}
	if err := status.New(e.st).Resume(ctx, uk, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	got = read("failure after a resume")
	if !got.GetSuspended() || !got.GetSuspendedAt().AsTime().Equal(e.clock.Now()) {
		t.Errorf("after a resume and a permanent failure: status %v, want suspended again at %v", got, e.clock.Now())
	}

	// A probe that succeeds ends the suspension and every count.
	fc.script(func(f *fakeConnector) { f.prepareErr = nil })
	e.clock.Advance(24 * time.Hour)
	got = read("good probe")
	if got.GetSuspended() || got.GetSuspendedAt() != nil || got.GetPermanentFailures() != 0 || got.GetConsecutiveFailures() != 0 ||
		got.GetNextSyncAt() != nil || got.GetLastError() != nil {
		t.Errorf("after a good read: status %v, want the suspension and failures cleared", got)
	}
}

func TestRetryableFailuresNeverSuspend(t *testing.T) {
	e, fc := newSuspendingEnv(t, 2)
	ctx := t.Context()
	job := &tandemv1.SyncJob{OrgId: testOrg, UserId: rep1, Cycle: 1, Kinds: []tandemv1.RecordKind{contact}}
	fail := func(err error) *tandemv1.UserStatus {
		t.Helper()
		fc.script(func(f *fakeConnector) { f.prepareErr = err })
		e.clock.Advance(2 * time.Hour)
		_ = e.w.handleJob(ctx, jobMessage(t, job)) // the retryable ones go back to the bus
		return e.exchangeStatus(rep1)
	}
	throttled := &syncerr.Error{Code: syncerr.ExchangeServerBusy, Detail: "ErrorServerBusy"}
	timeout := syncerr.New(syncerr.ExchangeTimeout, "slow")
	folder := syncerr.New(syncerr.ExchangeFolderNotFound, "cannot create")
	for i, err := range []error{throttled, timeout, folder, throttled, timeout, folder} {
		got := fail(err)
		if got.GetSuspended() || got.GetPermanentFailures() != 0 || got.GetConsecutiveFailures() != int32(i+1) {
			t.Fatalf("retryable failure %d (%v): status %v, want backed off, not suspended, no permanent failure", i+1, err, got)
		}
	}
	// Retryable failures between permanent ones neither count nor end the run.
	denied := syncerr.New(syncerr.ExchangeImpersonationDenied, "ErrorImpersonateUserDenied")
	if got := fail(denied); got.GetSuspended() || got.GetPermanentFailures() != 1 {
		t.Fatalf("one permanent failure: status %v, want not suspended yet", got)
	}
	if got := fail(throttled); got.GetSuspended() || got.GetPermanentFailures() != 1 {
		t.Fatalf("throttled after a permanent failure: status %v, want one permanent failure, not suspended", got)
	}
	if got := fail(denied); !got.GetSuspended() || got.GetPermanentFailures() != 2 {
		t.Fatalf("second permanent failure: status %v, want suspended", got)
	}
}

func TestSuspensionOff(t *testing.T) {
	e, fc := newSuspendingEnv(t, 0)
	job := &tandemv1.SyncJob{OrgId: testOrg, UserId: rep1, Cycle: 1, Kinds: []tandemv1.RecordKind{contact}}
	fc.script(func(f *fakeConnector) { f.prepareErr = syncerr.New(syncerr.ExchangeMailboxNotFound, "gone") })
	for i := range 10 {
		e.clock.Advance(2 * time.Hour)
		if err := e.w.handleJob(t.Context(), jobMessage(t, job)); err != nil {
			t.Fatal(err)
		}
		if got := e.exchangeStatus(rep1); got.GetSuspended() || got.GetPermanentFailures() != int32(i+1) {
			t.Fatalf("failure %d with --suspend-after=0: status %v, want counted but never suspended", i+1, got)
		}
	}
}

func TestApplyRunsOnlyCommandsInFlight(t *testing.T) {
	e, fc := newFakeEnv(t)
	ctx := t.Context()
	create := func(id, key string) *tandemv1.WriteCommand {
		return &tandemv1.WriteCommand{CommandId: id, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key, Record: upserts(key, 1)[0].GetRecord()}
	}
	exchangeSide := tandemv1.System_SYSTEM_EXCHANGE
	e.putInFlight(rep1, contact, exchangeSide, create("cmd1", "sk1"), create("cmd2-new", "sk2"), create("cmd5", "sk5"))
	// The same pair's write towards Salesforce is not a write to Exchange.
	e.putInFlight(rep1, contact, tandemv1.System_SYSTEM_SALESFORCE, create("cmd4", "sk4"))
	batch := &tandemv1.WriteBatch{
		BatchId: "batch-1", OrgId: testOrg, UserId: rep1, Target: exchangeSide, Kind: contact, Cycle: 12,
		Commands: []*tandemv1.WriteCommand{
			create("cmd1", "sk1"),     // in flight
			create("cmd2-old", "sk2"), // superseded by a newer command for the pair
			create("cmd3", "sk3"),     // answered already
			create("cmd4", "sk4"),     // in flight, but towards the other side
			create("cmd5", "sk5"),     // in flight
		},
	}
	if err := e.w.handleApply(ctx, platformtest.ApplyMessage(t, batch, 1)); err != nil {
		t.Fatal(err)
	}
	if got := fc.appliedIDs(); !slices.Equal(got, []string{"cmd1", "cmd5"}) {
		t.Errorf("applied %v, want [cmd1 cmd5]", got)
	}
	results, subjects := e.results()
	if len(results) != 1 {
		t.Fatalf("published %d result batches, want 1", len(results))
	}
	subject, _ := bus.ResultsSubject(testOrg, rep1)
	rb := results[0]
	if subjects[0] != subject || rb.GetBatchId() != "batch-1" || rb.GetOrgId() != testOrg || rb.GetUserId() != rep1 ||
		rb.GetTarget() != exchangeSide || rb.GetKind() != contact || rb.GetCycle() != 12 {
		t.Errorf("results on %s: %v", subjects[0], rb)
	}
	if !rb.GetCompletedAt().AsTime().Equal(e.clock.Now()) {
		t.Errorf("completed_at %v, want %v", rb.GetCompletedAt().AsTime(), e.clock.Now())
	}
	var resultIDs []string
	for _, r := range rb.GetResults() {
		resultIDs = append(resultIDs, r.GetCommandId())
		if !r.GetOk() || r.GetRecord().GetId() == "" {
			t.Errorf("result %v", r)
		}
	}
	if !slices.Equal(resultIDs, []string{"cmd1", "cmd5"}) {
		t.Errorf("results for %v, want [cmd1 cmd5]", resultIDs)
	}

	t.Run("a batch with nothing in flight does nothing", func(t *testing.T) {
		stale := proto.Clone(batch).(*tandemv1.WriteBatch)
		stale.BatchId = "batch-0"
		stale.Commands = stale.Commands[1:4]
		if err := e.w.handleApply(ctx, platformtest.ApplyMessage(t, stale, 2)); err != nil {
			t.Fatal(err)
		}
		if got := fc.appliedIDs(); len(got) != 2 {
			t.Errorf("applied %v after a stale batch", got)
		}
		if results, _ := e.results(); len(results) != 0 {
			t.Errorf("a stale batch published %v", results)
		}
	})
}

// TestApplyTellsTheConnectorWhatToLookUp checks which creates the connector is told an item may
// carry the sync key of already (and so looks up): none of a first delivery of new pairs' creates,
// all of a redelivery, retries, a create carried out before that comes back in another batch
// delivered once (as when the reconciler sends its writes in flight again), and a create that
// re-creates the Exchange item of a pair that had one.
func TestApplyTellsTheConnectorWhatToLookUp(t *testing.T) {
	e, fc := newFakeEnv(t)
	ctx := t.Context()
	create := func(id, key string) *tandemv1.WriteCommand {
		return &tandemv1.WriteCommand{CommandId: id, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key, Record: upserts(key, 1)[0].GetRecord()}
	}
	retry := create("cmd-r", "skr")
	retry.Retry = true
	cmds := []*tandemv1.WriteCommand{create("cmd-a", "ska"), create("cmd-b", "skb"), retry, create("cmd-c", "skc"), create("cmd-p", "skp")}
	e.putInFlight(rep1, contact, tandemv1.System_SYSTEM_EXCHANGE, cmds...)
	// The pair of skp had an Exchange item (deleted since); skc's pair never had one.
	e.putLedger(rep1, contact, nil,
		&tandemv1.Mapping{SyncKey: "skp", Kind: contact, ExchangeId: "AAMk-deleted", SalesforceId: "003p"},
		&tandemv1.Mapping{SyncKey: "skc", Kind: contact, SalesforceId: "003c"})
	batch := func(id string, delivered uint64, cmds ...*tandemv1.WriteCommand) {
		t.Helper()
		b := &tandemv1.WriteBatch{BatchId: id, OrgId: testOrg, UserId: rep1, Target: tandemv1.System_SYSTEM_EXCHANGE, Kind: contact, Cycle: 3, Commands: cmds}
		fc.script(func(f *fakeConnector) { f.repeats = nil })
		if err := e.w.handleApply(ctx, platformtest.ApplyMessage(t, b, delivered)); err != nil {
			t.Fatal(err)
		}
	}
	lookedUp := func() []string {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		return slices.Clone(fc.repeats)
	}

	batch("first", 1, cmds[0], cmds[2])
	if got := lookedUp(); !slices.Equal(got, []string{"cmd-r"}) {
		t.Errorf("first delivery: looked up %v, want only the retry [cmd-r]", got)
	}
	batch("redelivered", 2, cmds[1])
	if got := lookedUp(); !slices.Equal(got, []string{"cmd-b"}) {
		t.Errorf("redelivery: looked up %v, want [cmd-b]", got)
	}
	// cmd-a again, in a batch composed differently and delivered once; cmd-c is new, cmd-p
	// re-creates its pair's item.
	batch("sent-again", 1, cmds[0], cmds[3], cmds[4])
	if got := lookedUp(); !slices.Equal(got, []string{"cmd-a", "cmd-p"}) {
		t.Errorf("a create sent again and one re-creating a pair's item: looked up %v, want [cmd-a cmd-p]", got)
	}
}

func TestApplyFailures(t *testing.T) {
	cmd := &tandemv1.WriteCommand{CommandId: "cmd1", Op: tandemv1.WriteOp_WRITE_OP_DELETE, SyncKey: "sk1", TargetId: "AAMk1"}
	for _, tc := range []struct {
		name      string
		setup     func(e *env, fc *fakeConnector)
		code      syncerr.Code
		retryable bool
	}{
		{
			name: "mailbox unreachable",
			setup: func(_ *env, fc *fakeConnector) {
				fc.applyErr = syncerr.New(syncerr.ExchangeMailboxNotFound, "ErrorNonExistentMailbox")
			},
			code: syncerr.ExchangeMailboxNotFound,
		},
		{
			name: "impersonation denied",
			setup: func(_ *env, fc *fakeConnector) {
				fc.applyErr = syncerr.New(syncerr.ExchangeImpersonationDenied, "denied")
			},
			code: syncerr.ExchangeImpersonationDenied,
		},
		{
			name: "user left the directory",
			setup: func(e *env, _ *fakeConnector) {
				e.putUsers(&tandemv1.SyncUser{UserId: rep2, Email: "rep2@acme.example"})
			},
			code: syncerr.SyncUserNotInDirectory,
		},
		{
			name: "throttled",
			setup: func(_ *env, fc *fakeConnector) {
				fc.applyErr = &syncerr.Error{Code: syncerr.ExchangeServerBusy, Delay: time.Minute}
			},
			code: syncerr.ExchangeServerBusy, retryable: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, fc := newFakeEnv(t)
			e.putInFlight(rep1, contact, tandemv1.System_SYSTEM_EXCHANGE, cmd)
			fc.script(func(f *fakeConnector) { tc.setup(e, f) })
			batch := &tandemv1.WriteBatch{BatchId: "b1", OrgId: testOrg, UserId: rep1, Target: tandemv1.System_SYSTEM_EXCHANGE, Kind: contact, Commands: []*tandemv1.WriteCommand{cmd}}
			err := e.w.handleApply(t.Context(), platformtest.ApplyMessage(t, batch, 1))
			entries := e.errorReport(rep1)
			if tc.retryable {
				if syncerr.As(err).Code != tc.code || bus.IsPermanent(err) {
					t.Fatalf("handleApply = %v, want a %s error the bus retries", err, tc.code)
				}
				if len(entries) != 0 {
					t.Errorf("a retried batch was reported: %v", entries)
				}
			} else {
				if err != nil {
					t.Fatalf("handleApply = %v, want nil (acked and reported)", err)
				}
				if len(entries) != 1 || entries[0].GetError().GetCode() != string(tc.code) || entries[0].GetKind() != contact {
					t.Errorf("error report %v, want one %s entry", entries, tc.code)
				}
			}
			if results, _ := e.results(); len(results) != 0 {
				t.Errorf("a batch not carried out published results %v", results)
			}
		})
	}
}

func TestConnectorRebuiltWhenTheOrgChanges(t *testing.T) {
	e, fc := newFakeEnv(t)
	ctx := t.Context()
	job := &tandemv1.SyncJob{OrgId: testOrg, UserId: rep1, Cycle: 1, Kinds: []tandemv1.RecordKind{contact}}
	for range 2 {
		if err := e.w.handleJob(ctx, jobMessage(t, job)); err != nil {
			t.Fatal(err)
		}
	}
	if n := fc.buildCount(); n != 1 {
		t.Fatalf("connector built %d times for an unchanged org, want 1", n)
	}
	e.putOrg(&tandemv1.Org{OrgId: testOrg, Name: "Acme (renamed)", Enabled: true})
	if err := e.w.handleJob(ctx, jobMessage(t, job)); err != nil {
		t.Fatal(err)
	}
	if n := fc.buildCount(); n != 2 {
		t.Fatalf("connector built %d times after the org changed, want 2", n)
	}
}

func TestMissingExchangeConnection(t *testing.T) {
	e := newEnv(t, testConfig(), func(p *platform.Platform) ConnectorFactory { return EWSConnectors(p, true) })
	e.putOrg(&tandemv1.Org{OrgId: testOrg, Enabled: true})
	e.putUsers(&tandemv1.SyncUser{UserId: rep1, Email: "rep1@acme.example"})
	job := &tandemv1.SyncJob{OrgId: testOrg, UserId: rep1, Cycle: 1, Kinds: []tandemv1.RecordKind{contact}}
	if err := e.w.handleJob(t.Context(), jobMessage(t, job)); err != nil {
		t.Fatalf("handleJob = %v, want nil: a missing connection is reported, not retried", err)
	}
	if got := e.exchangeStatus(rep1).GetLastError().GetCode(); got != string(syncerr.ExchangeConfigurationMissing) {
		t.Errorf("last error %s, want %s", got, syncerr.ExchangeConfigurationMissing)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"valid", func(*Config) {}, true},
		{"no job concurrency", func(c *Config) { c.JobConcurrency = 0 }, false},
		{"no apply concurrency", func(c *Config) { c.ApplyConcurrency = 0 }, false},
		{"no back-off", func(c *Config) { c.BackoffBase = 0 }, false},
		{"back-off above its maximum", func(c *Config) { c.BackoffBase = time.Hour; c.BackoffMax = time.Minute }, false},
		{"suspension", func(c *Config) { c.SuspendAfter = 5; c.SuspendedProbe = 24 * time.Hour }, true},
		{"negative suspend-after", func(c *Config) { c.SuspendAfter = -1 }, false},
		{"suspension without probes", func(c *Config) { c.SuspendAfter = 5; c.SuspendedProbe = 0 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.change(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestComponentsOverTheBus runs the worker's consumers against JetStream: jobs and write
// batches published on the bus are carried out and acked; a failure Tandem retries stays on the
// bus for redelivery; a failure it reports is acked.
func TestComponentsOverTheBus(t *testing.T) {
	e, fc := newFakeEnv(t)
	ctx := t.Context()
	fc.script(func(f *fakeConnector) {
		f.pages = func(tandemv1.RecordKind, string) ([]exchange.Page, error) {
			return []exchange.Page{{Changes: upserts("x", 2), Cursor: "s1", Full: true, Last: true}}, nil
		}
	})
	e.p.Run(t, "exchange-worker", e.w.Components()...)

	publishJob := func(userID string, cycle uint64) {
		t.Helper()
		job := &tandemv1.SyncJob{OrgId: testOrg, UserId: userID, System: tandemv1.System_SYSTEM_EXCHANGE, Cycle: cycle, Kinds: []tandemv1.RecordKind{contact}}
		subject, _ := bus.ExchangeJobSubject(testOrg, store.DefaultWorkerPool, userID)
		if err := e.p.Bus.Publish(ctx, subject, job, bus.MsgID(subject, fmt.Sprint(cycle))); err != nil {
			t.Fatal(err)
		}
	}

	publishJob(rep1, 1)
	var pages []*tandemv1.ChangeBatch
	poll.Until(t, "the job's pages", func() bool {
		got, _ := e.changes()
		pages = append(pages, got...)
		return len(pages) > 0 && pages[len(pages)-1].GetLast()
	})
	poll.Until(t, "the job to be acked", func() bool { return e.streamMsgs(bus.StreamJobs) == 0 })
	if len(pages) != 1 || len(pages[0].GetChanges()) != 2 || !pages[0].GetFullSnapshot() {
		t.Errorf("pages %v", pages)
	}

	cmd := &tandemv1.WriteCommand{CommandId: "cmd1", Op: tandemv1.WriteOp_WRITE_OP_DELETE, SyncKey: "sk1", TargetId: "AAMk1"}
	e.putInFlight(rep1, contact, tandemv1.System_SYSTEM_EXCHANGE, cmd)
	batch := &tandemv1.WriteBatch{BatchId: "b1", OrgId: testOrg, UserId: rep1, Target: tandemv1.System_SYSTEM_EXCHANGE, Kind: contact, Commands: []*tandemv1.WriteCommand{cmd}}
	applySubject, _ := bus.ApplySubject(testOrg, tandemv1.System_SYSTEM_EXCHANGE, store.DefaultWorkerPool, rep1)
	if err := e.p.Bus.Publish(ctx, applySubject, batch, "b1"); err != nil {
		t.Fatal(err)
	}
	var results []*tandemv1.WriteResultBatch
	poll.Until(t, "the batch's results", func() bool {
		got, _ := e.results()
		results = append(results, got...)
		return len(results) > 0
	})
	poll.Until(t, "the batch to be acked", func() bool { return e.streamMsgs(bus.StreamApply) == 0 })
	if len(results[0].GetResults()) != 1 || results[0].GetResults()[0].GetCommandId() != "cmd1" {
		t.Errorf("results %v", results)
	}

	// A retryable failure goes back to the bus (here after the hour Exchange asked for).
	fc.script(func(f *fakeConnector) {
		f.prepareErr = &syncerr.Error{Code: syncerr.ExchangeServerBusy, Delay: time.Hour}
	})
	publishJob(rep1, 2)
	poll.Until(t, "the throttled read to be recorded", func() bool { return e.exchangeStatus(rep1).GetConsecutiveFailures() == 1 })
	// A permanent one is reported and acked.
	fc.script(func(f *fakeConnector) {
		f.prepareErr = syncerr.New(syncerr.ExchangeImpersonationDenied, "denied")
	})
	publishJob(rep2, 2)
	poll.Until(t, "the denied read to be recorded", func() bool { return e.exchangeStatus(rep2).GetConsecutiveFailures() == 1 })
	poll.Until(t, "the denied job to be acked", func() bool { return e.streamMsgs(bus.StreamJobs) == 1 })
	if n := e.streamMsgs(bus.StreamDead); n != 0 {
		t.Errorf("%d dead letters; neither failure should be dead-lettered", n)
	}
	consumer, err := e.p.JetStream.Consumer(ctx, bus.StreamJobs, bus.PoolConsumer(bus.ConsumerExchangeJobs, store.DefaultWorkerPool))
	if err != nil {
		t.Fatal(err)
	}
	info, err := consumer.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 1 {
		t.Errorf("%d jobs awaiting redelivery, want the throttled one", info.NumAckPending)
	}
}

// TestQuietMailboxIsNotRead: a mailbox watched without a break and noted unchanged since its
// last read, or changed only in items at versions the reconciler holds (the echo of Tandem's
// writes), is not read again: the job reports, for its cycle, a read that found nothing,
// continuing from the last and dated as its last page. It is read whenever a note says it may
// have changed, its watcher's lease is gone, its poll interval has passed, the job has no poll
// interval, or the job asks for a full read.
func TestQuietMailboxIsNotRead(t *testing.T) {
	ctx := t.Context()
	e, fc := newFakeEnv(t)
	fc.script(func(f *fakeConnector) {
		f.pages = func(_ tandemv1.RecordKind, cur string) ([]exchange.Page, error) {
			return []exchange.Page{{Cursor: cur + "+", Full: cur == "", Last: true}}, nil
		}
	})
	lease, err := e.st.AcquireWatchLease(ctx, testOrg, watchRole, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	note := func(ev store.WatchEvent, items ...store.WatchedItem) {
		t.Helper()
		if err := e.st.NoteWatches(ctx, lease, []store.WatchNote{{UserID: rep1, Event: ev, Items: items}}); err != nil {
			t.Fatal(err)
		}
	}
	note(store.WatchStarted)
	cycle := uint64(0)
	// run runs the next cycle's job and reports whether it read the mailbox.
	run := func(poll time.Duration, full bool) bool {
		t.Helper()
		cycle++
		e.clock.Advance(time.Second)
		reads := len(fc.cursorsOf(contact))
		before, _ := e.storedCursor(rep1, contact)
		job := &tandemv1.SyncJob{OrgId: testOrg, UserId: rep1, System: tandemv1.System_SYSTEM_EXCHANGE, Cycle: cycle,
			Kinds: []tandemv1.RecordKind{contact}, FullResync: full}
		if poll > 0 {
			job.PollInterval = durationpb.New(poll)
		}
		if err := e.w.handleJob(ctx, jobMessage(t, job)); err != nil {
			t.Fatal(err)
		}
		read := len(fc.cursorsOf(contact)) > reads
		got, _ := e.changes()
		if len(got) != 1 || !got[0].GetLast() || len(got[0].GetChanges()) != 0 || got[0].GetCycle() != cycle {
			t.Fatalf("cycle %d published %v, want one empty last page", cycle, got)
		}
		after, _ := e.storedCursor(rep1, contact)
		if after.Cycle != cycle {
			t.Errorf("cycle %d left the cursor at cycle %d", cycle, after.Cycle)
		}
		if !read {
			// What the last read found, told again.
			if got[0].GetPreviousCycle() != before.Cycle || got[0].GetFullSnapshot() || got[0].GetReadAt().AsTime().UnixMilli() != before.ReadAt {
				t.Errorf("unread cycle %d published %v, want it to continue from cycle %d read at %d", cycle, got[0], before.Cycle, before.ReadAt)
			}
			// The cursor keeps the last read's, but for its cycle and the mark it was found
			// to say nothing new.
			mark, err := e.st.MailboxWatchMark(ctx, store.UserKey{OrgID: testOrg, UserID: rep1}, watchRole)
			if err != nil {
				t.Fatal(err)
			}
			if after.Value != before.Value || after.ReadAt != before.ReadAt || after.Watch != mark {
				t.Errorf("unread cycle %d stored cursor %+v, want %+v but for its cycle and mark %+v", cycle, after, before, mark)
			}
		}
		return read
	}
	steps := []struct {
		name   string
		before func()
		poll   time.Duration
		full   bool
		read   bool
	}{
		{name: "a first read", poll: time.Hour, read: true},
		{name: "quiet", poll: time.Hour, read: false},
		{name: "still quiet", poll: time.Hour, read: false},
		{name: "without a poll interval", read: true},
		{name: "quiet again", poll: time.Hour, read: false},
		{name: "a full read", poll: time.Hour, full: true, read: true},
		{name: "changed", before: func() { note(store.WatchChanged) }, poll: time.Hour, read: true},
		{name: "quiet after the change was read", poll: time.Hour, read: false},
		{name: "the poll interval passed", before: func() { e.clock.Advance(time.Hour) }, poll: time.Hour, read: true},
		{name: "watched again after a break", before: func() { note(store.WatchStopped); note(store.WatchStarted) }, poll: time.Hour, read: true},
		{name: "quiet after the break was read", poll: time.Hour, read: false},
		{name: "unwatched", before: func() { note(store.WatchStopped) }, poll: time.Hour, read: true},
		{name: "still unwatched", poll: time.Hour, read: true},
		{name: "watched", before: func() { note(store.WatchStarted) }, poll: time.Hour, read: true},
		{name: "quiet once watched", poll: time.Hour, read: false},
		// The echo of Tandem's own writes, at versions the reconciler holds, needs no read;
		// an item at a version it does not hold does.
		{name: "echoes", before: func() {
			e.putLedger(rep1, contact, []*tandemv1.MirrorRecord{mirrorAt("AAMk-x", "ck2"), mirrorAt("AAMk-y", "ck1")})
			note(store.WatchItems, store.WatchedItem{ID: "AAMk-x", Version: "ck1"})
			note(store.WatchItems, store.WatchedItem{ID: "AAMk-x", Version: "ck2"}, store.WatchedItem{ID: "AAMk-y", Version: "ck1"})
		}, poll: time.Hour, read: false},
		{name: "quiet after echoes", poll: time.Hour, read: false},
		{name: "the echo of a write whose result is still on its way", before: func() {
			batch := &tandemv1.WriteBatch{OrgId: testOrg, UserId: rep1, Kind: contact, BatchId: "b1", Target: tandemv1.System_SYSTEM_EXCHANGE}
			cmd := &tandemv1.WriteCommand{CommandId: "c1", Op: tandemv1.WriteOp_WRITE_OP_UPDATE, SyncKey: "k1", TargetId: "AAMk-k1"}
			if _, err := e.w.apply(ctx, batch, []*tandemv1.WriteCommand{cmd}, false); err != nil {
				t.Fatal(err)
			}
			// The fake connector leaves the item AAMk-<sync key> at ck-1.
			note(store.WatchItems, store.WatchedItem{ID: "AAMk-k1", Version: "ck-1"})
		}, poll: time.Hour, read: false},
		{name: "an item at an unknown version", before: func() {
			note(store.WatchItems, store.WatchedItem{ID: "AAMk-y", Version: "ck1"})
			note(store.WatchItems, store.WatchedItem{ID: "AAMk-z", Version: "ck1"})
		}, poll: time.Hour, read: true},
		{name: "an echo and a change", before: func() {
			note(store.WatchItems, store.WatchedItem{ID: "AAMk-y", Version: "ck1"})
			note(store.WatchChanged)
		}, poll: time.Hour, read: true},
		{name: "too many echoes to look at", before: func() {
			for range maxEchoNotes + 1 {
				note(store.WatchItems, store.WatchedItem{ID: "AAMk-y", Version: "ck1"})
			}
		}, poll: time.Hour, read: true},
		{name: "the watcher's lease gone", before: func() {
			if err := lease.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}, poll: time.Hour, read: true},
	}
	reader := sdkmetric.NewManualReader()
	met, err := newMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	e.w.met = met
	wantReads := map[bool]int64{}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		if got := run(s.poll, s.full); got != s.read {
			t.Errorf("%s: read %v, want %v", s.name, got, s.read)
		}
		wantReads[s.read]++
	}
	// tandem.exchange.mailbox_reads counts every job's read of the kind, made or not, and why.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	gotReads, reasons := map[bool]int64{}, map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "tandem.exchange.mailbox_reads" {
				for _, dp := range sum.DataPoints {
					made, _ := dp.Attributes.Value("read")
					why, _ := dp.Attributes.Value("reason")
					gotReads[made.AsBool()] += dp.Value
					reasons[why.AsString()] += dp.Value
				}
			}
		}
	}
	if gotReads[true] != wantReads[true] || gotReads[false] != wantReads[false] {
		t.Errorf("mailbox_reads %v, want %v", gotReads, wantReads)
	}
	for _, why := range []string{readFull, readEveryCycle, readPollDue, readUnwatched, readManyNotes, readChanged, skipUnchanged, skipOwnWrites} {
		if reasons[why] == 0 {
			t.Errorf("no read counted for reason %q: %v", why, reasons)
		}
	}
	// Another user's mailbox is another mark.
	if m, err := e.st.MailboxWatchMark(ctx, store.UserKey{OrgID: testOrg, UserID: rep2}, watchRole); err != nil || m.Watched() {
		t.Errorf("rep2's mark %+v, %v", m, err)
	}
}

// mirrorAt is an Exchange contact the reconciler holds at version.
func mirrorAt(id, version string) *tandemv1.MirrorRecord {
	return &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: id, Version: version,
		Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: id}}}}
}
