package ews

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/syncerr"
)

const testCookie = "MBX01.contoso.com~1941996295"

func streamMsg(inner string) string { return opResponse("GetStreamingEvents", inner) }

func streamStatus(status string) string {
	return streamMsg(okMessage("GetStreamingEvents", `<m:ConnectionStatus>`+status+`</m:ConnectionStatus>`))
}

// streamNotes is a notification message; ns is the namespace prefix of Notification ("m" as
// Exchange writes it, "t" as types.xsd has it).
func streamNotes(ns, sub, events string) string {
	return streamMsg(okMessage("GetStreamingEvents", `<m:Notifications><`+ns+`:Notification><t:SubscriptionId>`+sub+`</t:SubscriptionId>`+
		events+`</`+ns+`:Notification></m:Notifications>`))
}

func streamError(code, status string, ids ...string) string {
	var list string
	if len(ids) > 0 {
		list = `<m:ErrorSubscriptionIds>`
		for _, id := range ids {
			list += `<t:SubscriptionId>` + id + `</t:SubscriptionId>`
		}
		list += `</m:ErrorSubscriptionIds>`
	}
	return streamMsg(`<m:GetStreamingEventsResponseMessage ResponseClass="Error"><m:MessageText>no</m:MessageText><m:ResponseCode>` + code +
		`</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>` + list + `<m:ConnectionStatus>` + status + `</m:ConnectionStatus></m:GetStreamingEventsResponseMessage>`)
}

const createdEvent = `<t:CreatedEvent><t:TimeStamp>2026-03-10T09:30:00Z</t:TimeStamp><t:ItemId Id="item-1" ChangeKey="ck-1"/>` +
	`<t:ParentFolderId Id="folder-1" ChangeKey="fck"/></t:CreatedEvent>`

const movedEvent = `<t:MovedEvent><t:TimeStamp>2026-03-10T09:31:00Z</t:TimeStamp><t:ItemId Id="item-2" ChangeKey="ck-2"/>` +
	`<t:ParentFolderId Id="deleted" ChangeKey="fck"/><t:OldItemId Id="item-1" ChangeKey="ck-1"/><t:OldParentFolderId Id="folder-1" ChangeKey="fck"/></t:MovedEvent>`

const folderModified = `<t:ModifiedEvent><t:TimeStamp>2026-03-10T09:31:00Z</t:TimeStamp><t:FolderId Id="folder-1" ChangeKey="fck"/>` +
	`<t:ParentFolderId Id="contacts" ChangeKey="fck"/><t:UnreadCount>0</t:UnreadCount></t:ModifiedEvent>`

// streamServer answers each GetStreamingEvents with write, which writes and flushes as it
// likes; other operations get answering's answers, Subscribe with an affinity cookie.
func streamServer(t *testing.T, write func(w http.ResponseWriter, flush func(), req capturedRequest)) *fakeServer {
	t.Helper()
	return newFakeServer(t, func(w http.ResponseWriter, req capturedRequest, n int) {
		switch req.op {
		case "GetStreamingEvents":
			w.Header().Set("Content-Type", "text/xml; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			rc := http.NewResponseController(w)
			flush := func() { _ = rc.Flush() }
			flush()
			write(w, flush, req)
		case "Subscribe":
			if req.header.Get("Cookie") == "" {
				http.SetCookie(w, &http.Cookie{Name: affinityCookie, Value: testCookie, Path: "/", Secure: true, HttpOnly: true})
			}
			respond(w, http.StatusOK, opResponse("Subscribe", okMessage("Subscribe", `<m:SubscriptionId>sub-`+req.header.Get("X-AnchorMailbox")+`</m:SubscriptionId>`)))
		case "Unsubscribe":
			respond(w, http.StatusOK, opResponse("Unsubscribe", okMessage("Unsubscribe", "")))
		default:
			answering(w, req, n)
		}
	})
}

// collect runs GetStreamingEvents and returns the messages it handled and its outcome.
func collect(t *testing.T, cl *Client, target Target, req StreamRequest) ([]StreamMessage, error) {
	t.Helper()
	var got []StreamMessage
	err := cl.GetStreamingEvents(t.Context(), target, req, func(m StreamMessage) error {
		got = append(got, m)
		return nil
	})
	return got, err
}

// TestGoldenStreamingRequests checks the notification requests against testdata/requests and
// Microsoft's schema, and their affinity headers.
func TestGoldenStreamingRequests(t *testing.T) {
	srv := streamServer(t, func(w http.ResponseWriter, flush func(), _ capturedRequest) {
		_, _ = io.WriteString(w, streamStatus("Closed"))
	})
	cl := newTestClient(t)
	target := Target{URL: srv.URL + "/EWS/Exchange.asmx", Address: testMailbox}
	folders := []FolderID{{ID: "AAMkSyncFolder="}, CalendarFolder}
	cases := []struct {
		name   string
		run    func(ctx context.Context) error
		anchor string
		cookie bool
	}{
		{"Subscribe-streaming", func(ctx context.Context) error {
			s, err := cl.Subscribe(ctx, target, folders, ChangeEvents, Affinity{Anchor: testMailbox})
			if err == nil && (s.ID != "sub-"+testMailbox || s.Cookie != testCookie) {
				t.Errorf("subscription %+v, want id and cookie", s)
			}
			return err
		}, testMailbox, false},
		{"Subscribe-streaming-grouped", func(ctx context.Context) error {
			s, err := cl.Subscribe(ctx, target, folders, ChangeEvents, Affinity{Anchor: "aaron@contoso.com", Cookie: testCookie})
			if err == nil && s.Cookie != "" {
				t.Errorf("a cookie %q for a request that had one", s.Cookie)
			}
			return err
		}, "aaron@contoso.com", true},
		{"Unsubscribe", func(ctx context.Context) error {
			return cl.Unsubscribe(ctx, target, "sub-1", Affinity{Anchor: "aaron@contoso.com", Cookie: testCookie})
		}, "aaron@contoso.com", true},
		{"GetStreamingEvents", func(ctx context.Context) error {
			return cl.GetStreamingEvents(ctx, target, StreamRequest{SubscriptionIDs: []string{"sub-1", "sub-2"}, Timeout: 10 * time.Minute,
				Affinity: Affinity{Anchor: "aaron@contoso.com", Cookie: testCookie}}, func(StreamMessage) error { return nil })
		}, "aaron@contoso.com", true},
	}
	docs := map[string][]byte{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(srv.captured())
			if err := tc.run(t.Context()); err != nil {
				t.Fatalf("request failed: %v", err)
			}
			reqs := srv.captured()[before:]
			if len(reqs) != 1 {
				t.Fatalf("sent %d requests, want 1", len(reqs))
			}
			h := reqs[0].header
			if h.Get("X-AnchorMailbox") != tc.anchor || h.Get("X-PreferServerAffinity") != "true" {
				t.Errorf("X-AnchorMailbox %q, X-PreferServerAffinity %q; want %q, true", h.Get("X-AnchorMailbox"), h.Get("X-PreferServerAffinity"), tc.anchor)
			}
			if got, want := h.Get("Cookie"), affinityCookie+"="+testCookie; (got == want) != tc.cookie {
				t.Errorf("Cookie %q (cookie expected: %v)", got, tc.cookie)
			}
			docs[tc.name] = reqs[0].body
			checkGolden(t, tc.name, reqs[0].body)
		})
	}
	t.Run("schema", func(t *testing.T) { validateRequests(t, docs) })
}

func TestStreamingReadsIncrementally(t *testing.T) {
	second := make(chan struct{})
	srv := streamServer(t, func(w http.ResponseWriter, flush func(), _ capturedRequest) {
		// The first message goes out in small pieces, without an XML declaration; the rest only
		// once the client has handled it.
		first := strings.TrimPrefix(streamNotes("m", "sub-1", createdEvent), `<?xml version="1.0" encoding="utf-8"?>`)
		for chunk := range slices.Chunk([]byte(first), 7) {
			_, _ = w.Write(chunk)
			flush()
		}
		<-second
		_, _ = io.WriteString(w, "\r\n"+streamStatus("OK")+streamNotes("t", "sub-2", movedEvent+folderModified)+streamStatus("Closed"))
		flush()
	})
	cl := newTestClient(t)
	var got []StreamMessage
	err := cl.GetStreamingEvents(t.Context(), Target{URL: srv.URL, Address: testMailbox}, StreamRequest{SubscriptionIDs: []string{"sub-1", "sub-2"}},
		func(m StreamMessage) error {
			if len(got) == 0 {
				close(second)
			}
			got = append(got, m)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d messages, want 4: %+v", len(got), got)
	}
	created := Event{Type: EventCreated, Time: time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC), ItemID: ItemID{"item-1", "ck-1"}, ParentFolderID: FolderID{ID: "folder-1", ChangeKey: "fck"}}
	if n := got[0].Notifications; len(n) != 1 || n[0].SubscriptionID != "sub-1" || len(n[0].Events) != 1 || n[0].Events[0] != created {
		t.Errorf("first message %+v", got[0])
	}
	if got[1].Status != "OK" || len(got[1].Notifications) != 0 {
		t.Errorf("keep-alive %+v", got[1])
	}
	n := got[2].Notifications
	if len(n) != 1 || n[0].SubscriptionID != "sub-2" || len(n[0].Events) != 2 {
		t.Fatalf("third message %+v", got[2])
	}
	moved, folder := n[0].Events[0], n[0].Events[1]
	if moved.Type != EventMoved || moved.ItemID.ID != "item-2" || moved.OldItemID.ID != "item-1" || moved.OldParentFolderID.ID != "folder-1" || moved.ParentFolderID.ID != "deleted" {
		t.Errorf("moved event %+v", moved)
	}
	if folder.Type != EventModified || folder.FolderID.ID != "folder-1" || folder.ItemID != (ItemID{}) {
		t.Errorf("folder event %+v", folder)
	}
	if got[3].Status != "Closed" {
		t.Errorf("last message %+v", got[3])
	}
}

func TestStreamingFailures(t *testing.T) {
	cases := []struct {
		name  string
		write func(w http.ResponseWriter, flush func(), req capturedRequest)
		req   StreamRequest
		check func(t *testing.T, msgs []StreamMessage, err error)
	}{
		{"subscriptions refused", func(w http.ResponseWriter, flush func(), _ capturedRequest) {
			_, _ = io.WriteString(w, streamError("ErrorSubscriptionNotFound", "Closed", "sub-2"))
		}, StreamRequest{}, func(t *testing.T, msgs []StreamMessage, err error) {
			var se *SubscriptionError
			if !errors.As(err, &se) || !slices.Equal(se.SubscriptionIDs, []string{"sub-2"}) || !errors.Is(err, ErrSubscriptionNotFound) || len(msgs) != 0 {
				t.Fatalf("err %v msgs %v", err, msgs)
			}
			if c := syncerr.As(err); c.Upstream != "ErrorSubscriptionNotFound" {
				t.Errorf("classified as %+v", c)
			}
		}},
		{"one subscription lost on the way", func(w http.ResponseWriter, flush func(), _ capturedRequest) {
			_, _ = io.WriteString(w, streamError("ErrorMissedNotificationEvents", "OK", "sub-1")+streamStatus("Closed"))
		}, StreamRequest{}, func(t *testing.T, msgs []StreamMessage, err error) {
			if err != nil || len(msgs) != 2 || msgs[0].Err == nil || !errors.Is(msgs[0].Err, ErrMissedNotificationEvents) ||
				!slices.Equal(msgs[0].Err.SubscriptionIDs, []string{"sub-1"}) {
				t.Fatalf("err %v msgs %+v", err, msgs)
			}
		}},
		{"request refused as a whole", func(w http.ResponseWriter, flush func(), _ capturedRequest) {
			_, _ = io.WriteString(w, streamError("ErrorInvalidRequest", "Closed"))
		}, StreamRequest{}, func(t *testing.T, _ []StreamMessage, err error) {
			var re *ResponseError
			if !errors.As(err, &re) || re.Code != "ErrorInvalidRequest" {
				t.Fatalf("err %v", err)
			}
		}},
		{"cut in the middle of a message", func(w http.ResponseWriter, flush func(), _ capturedRequest) {
			msg := streamStatus("OK")
			_, _ = io.WriteString(w, msg+msg[:len(msg)/2])
			flush()
			panic(http.ErrAbortHandler)
		}, StreamRequest{}, func(t *testing.T, msgs []StreamMessage, err error) {
			if len(msgs) != 1 || !errors.Is(err, io.ErrUnexpectedEOF) || syncerr.As(err).Code != syncerr.ExchangeUnavailable {
				t.Fatalf("err %v msgs %d", err, len(msgs))
			}
		}},
		{"ended without Closed", func(w http.ResponseWriter, flush func(), _ capturedRequest) {
			_, _ = io.WriteString(w, streamStatus("OK"))
		}, StreamRequest{}, func(t *testing.T, msgs []StreamMessage, err error) {
			if len(msgs) != 1 || !errors.Is(err, ErrStreamEnded) {
				t.Fatalf("err %v msgs %d", err, len(msgs))
			}
		}},
		{"silent", func(w http.ResponseWriter, flush func(), req capturedRequest) {
			_, _ = io.WriteString(w, streamStatus("OK"))
			flush()
			<-req.ctx.Done() // the server hangs until the client's idle timer ends the exchange
		}, StreamRequest{IdleTimeout: 200 * time.Millisecond}, func(t *testing.T, msgs []StreamMessage, err error) {
			if len(msgs) != 1 || !errors.Is(err, ErrStreamIdle) || syncerr.As(err).Code != syncerr.ExchangeUnavailable {
				t.Fatalf("err %v msgs %d", err, len(msgs))
			}
		}},
		{"not XML", func(w http.ResponseWriter, flush func(), _ capturedRequest) {
			_, _ = io.WriteString(w, "<html>oops</html>")
		}, StreamRequest{}, func(t *testing.T, _ []StreamMessage, err error) {
			if syncerr.As(err).Code != syncerr.ExchangeMalformedResponse {
				t.Fatalf("err %v", err)
			}
		}},
		{"document type", func(w http.ResponseWriter, flush func(), _ capturedRequest) {
			_, _ = io.WriteString(w, `<!DOCTYPE x [<!ENTITY a "b">]>`+streamStatus("Closed"))
		}, StreamRequest{}, func(t *testing.T, _ []StreamMessage, err error) {
			if !errors.Is(err, ErrDocumentType) {
				t.Fatalf("err %v", err)
			}
		}},
		{"message too large", func(w http.ResponseWriter, flush func(), _ capturedRequest) {
			_, _ = io.WriteString(w, streamNotes("m", "sub-1", strings.Repeat(createdEvent, 100)))
		}, StreamRequest{}, func(t *testing.T, _ []StreamMessage, err error) {
			var tooLarge *ResponseTooLargeError
			if !errors.As(err, &tooLarge) {
				t.Fatalf("err %v", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := streamServer(t, tc.write)
			cl := newTestClient(t, func(c *Config) { c.MaxResponseBytes = 8 << 10 })
			req := tc.req
			req.SubscriptionIDs = []string{"sub-1", "sub-2"}
			msgs, err := collect(t, cl, Target{URL: srv.URL, Address: testMailbox}, req)
			tc.check(t, msgs, err)
		})
	}

	t.Run("throttled", func(t *testing.T) {
		srv := newFakeServer(t, func(w http.ResponseWriter, _ capturedRequest, _ int) {
			respond(w, http.StatusInternalServerError, faultResponse("ErrorServerBusy", "busy", 3000))
		})
		_, err := collect(t, newTestClient(t), Target{URL: srv.URL, Address: testMailbox}, StreamRequest{SubscriptionIDs: []string{"sub-1"}})
		if se := syncerr.As(err); se.Code != syncerr.ExchangeServerBusy || se.Delay != 3*time.Second {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("handler error", func(t *testing.T) {
		srv := streamServer(t, func(w http.ResponseWriter, flush func(), _ capturedRequest) {
			_, _ = io.WriteString(w, streamStatus("OK")+streamStatus("Closed"))
		})
		stop := errors.New("stop")
		err := newTestClient(t).GetStreamingEvents(t.Context(), Target{URL: srv.URL, Address: testMailbox},
			StreamRequest{SubscriptionIDs: []string{"sub-1"}}, func(StreamMessage) error { return stop })
		if err != stop { //nolint:errorlint // the handler's error comes back as it is
			t.Fatalf("err %v", err)
		}
	})
	t.Run("too many subscriptions", func(t *testing.T) {
		ids := make([]string, MaxStreamingSubscriptions+1)
		if _, err := collect(t, newTestClient(t), Target{URL: "http://127.0.0.1:1", Address: testMailbox}, StreamRequest{SubscriptionIDs: ids}); err == nil {
			t.Fatal("201 subscriptions accepted")
		}
	})
}

// TestStreamingAgainstSimulator subscribes, streams and unsubscribes against the simulator
// with two mailbox servers: each subscription lives on its mailbox's server, and a connection
// carrying a group's subscriptions reaches them through the group's cookie.
func TestStreamingAgainstSimulator(t *testing.T) {
	env := newSimEnv(t, ewssim.Config{MailboxServers: 2, StreamingKeepAlive: 50 * time.Millisecond})
	const alice = "alice@contoso.com"
	if err := env.sim.AddMailbox(alice); err != nil {
		t.Fatal(err)
	}
	// A second mailbox on alice's server, and one on the other.
	var sameServer, otherServer string
	for i := 0; sameServer == "" || otherServer == ""; i++ {
		a := "rep" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + "@contoso.com"
		switch {
		case env.sim.MailboxServer(a) == env.sim.MailboxServer(alice) && sameServer == "":
			sameServer = a
		case env.sim.MailboxServer(a) != env.sim.MailboxServer(alice) && otherServer == "":
			otherServer = a
		}
	}
	for _, a := range []string{sameServer, otherServer} {
		if err := env.sim.AddMailbox(a); err != nil {
			t.Fatal(err)
		}
	}
	cl := newTestClient(t, func(c *Config) {
		c.HTTPClient = env.srv.Client()
		c.Credentials = &BasicAuth{Username: simAccount, Password: simPassword}
	})
	url := env.srv.URL + "/EWS/Exchange.asmx"
	target := func(a string) Target { return Target{URL: url, Address: a} }
	subscribe := func(a string) Subscription {
		t.Helper()
		s, err := cl.Subscribe(t.Context(), target(a), []FolderID{CalendarFolder}, ChangeEvents, Affinity{Anchor: a})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	aliceSub, sameSub, otherSub := subscribe(alice), subscribe(sameServer), subscribe(otherServer)
	if aliceSub.Cookie == "" || aliceSub.Cookie != sameSub.Cookie || aliceSub.Cookie == otherSub.Cookie {
		t.Fatalf("cookies %q %q %q: want the same for one server, another for the other", aliceSub.Cookie, sameSub.Cookie, otherSub.Cookie)
	}

	// The group of alice's server on one connection, anchored at its first mailbox.
	anchor := min(alice, sameServer)
	aff := Affinity{Anchor: anchor, Cookie: aliceSub.Cookie}
	events := make(chan Notification, 10)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- cl.GetStreamingEvents(ctx, target(anchor), StreamRequest{SubscriptionIDs: []string{aliceSub.ID, sameSub.ID}, Affinity: aff},
			func(m StreamMessage) error {
				for _, n := range m.Notifications {
					events <- n
				}
				return nil
			})
	}()
	poll.Until(t, "the connection open", func() bool { return env.sim.Streams() == 1 })
	id, err := env.sim.PutEvent(sameServer, ewssim.CalendarItem{ItemBase: ewssim.ItemBase{Subject: "Call"}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-events:
		if n.SubscriptionID != sameSub.ID || !slices.ContainsFunc(n.Events, func(e Event) bool { return e.Type == EventCreated && e.ItemID.ID == id }) {
			t.Fatalf("notification %+v", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("ended with %v, want the context's end", err)
	}

	// The other server's subscription is not found through this group's cookie.
	_, err = collect(t, cl, target(anchor), StreamRequest{SubscriptionIDs: []string{aliceSub.ID, otherSub.ID}, Affinity: aff})
	var se *SubscriptionError
	if !errors.As(err, &se) || !errors.Is(err, ErrSubscriptionNotFound) || !slices.Equal(se.SubscriptionIDs, []string{otherSub.ID}) {
		t.Fatalf("mixed servers: %v", err)
	}

	// Unsubscribing twice is fine; the subscription is gone.
	for range 2 {
		if err := cl.Unsubscribe(t.Context(), target(sameServer), sameSub.ID, aff); err != nil {
			t.Fatal(err)
		}
	}
	if got := env.sim.Subscriptions(sameServer); len(got) != 0 {
		t.Fatalf("subscriptions left: %v", got)
	}
	if n := env.sim.Counts()["MissingAnchorMailbox"]; n != 0 {
		t.Errorf("%d requests without X-AnchorMailbox", n)
	}
}
