package ewssim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
)

var allEventTypes = []string{"NewMailEvent", "CreatedEvent", "DeletedEvent", "ModifiedEvent", "MovedEvent", "CopiedEvent"}

// subscribeOp builds a Subscribe for a streaming subscription to folders (t:FolderId or
// t:DistinguishedFolderId elements), or to all folders when folders is empty.
func subscribeOp(folders string, types ...string) string {
	if len(types) == 0 {
		types = allEventTypes
	}
	var b strings.Builder
	b.WriteString(`<m:Subscribe><m:StreamingSubscriptionRequest`)
	if folders == "" {
		b.WriteString(` SubscribeToAllFolders="true">`)
	} else {
		b.WriteString(`><t:FolderIds>` + folders + `</t:FolderIds>`)
	}
	b.WriteString(`<t:EventTypes>`)
	for _, t := range types {
		b.WriteString(`<t:EventType>` + t + `</t:EventType>`)
	}
	b.WriteString(`</t:EventTypes></m:StreamingSubscriptionRequest></m:Subscribe>`)
	return b.String()
}

func folderIDs(ids ...string) string {
	var b strings.Builder
	for _, id := range ids {
		if !strings.Contains(id, "=") && !strings.Contains(id, "/") {
			fmt.Fprintf(&b, `<t:DistinguishedFolderId Id="%s"/>`, id)
			continue
		}
		fmt.Fprintf(&b, `<t:FolderId Id="%s"/>`, id)
	}
	return b.String()
}

func streamingOp(minutes int, ids ...string) string {
	var b strings.Builder
	b.WriteString(`<m:GetStreamingEvents><m:SubscriptionIds>`)
	for _, id := range ids {
		b.WriteString(`<t:SubscriptionId>` + id + `</t:SubscriptionId>`)
	}
	fmt.Fprintf(&b, `</m:SubscriptionIds><m:ConnectionTimeout>%d</m:ConnectionTimeout></m:GetStreamingEvents>`, minutes)
	return b.String()
}

// subscribe makes a streaming subscription and returns its id and the affinity cookie the
// answer set, if any.
func (e *env) subscribe(o reqOpts, folders string, types ...string) (id, cookie string) {
	e.t.Helper()
	r := e.ews(subscribeOp(folders, types...), o)
	if r.status != http.StatusOK || !slices.Equal(r.codes(), []string{"NoError"}) {
		e.t.Fatalf("Subscribe: status %d codes %v: %s", r.status, r.codes(), r.body)
	}
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == affinityCookie {
			cookie = c.Value
		}
	}
	return text(r.response(), "ResponseMessages/SubscribeResponseMessage/SubscriptionId"), cookie
}

// streamMsg is one envelope of a GetStreamingEvents answer.
type streamMsg struct {
	raw []byte
	// msg is the GetStreamingEventsResponseMessage.
	msg *etree.Element
}

func (m streamMsg) class() string  { return m.msg.SelectAttrValue("ResponseClass", "") }
func (m streamMsg) code() string   { return text(m.msg, "ResponseCode") }
func (m streamMsg) status() string { return text(m.msg, "ConnectionStatus") }
func (m streamMsg) errorIDs() []string {
	var out []string
	for _, x := range m.msg.FindElements("ErrorSubscriptionIds/SubscriptionId") {
		out = append(out, x.Text())
	}
	return out
}

// event is one notification event, by local names.
type event struct {
	sub, typ         string
	id, parent       string
	oldID, oldParent string
	folder           bool
	hasUnreadEl      bool
}

func (m streamMsg) events() []event {
	var out []event
	for _, n := range m.msg.FindElements("Notifications/Notification") {
		sub := text(n, "SubscriptionId")
		for _, x := range n.ChildElements() {
			if x.Tag == "SubscriptionId" {
				continue
			}
			ev := event{sub: sub, typ: x.Tag, parent: attr(x, "ParentFolderId", "Id"), oldParent: attr(x, "OldParentFolderId", "Id")}
			if id := x.SelectElement("FolderId"); id != nil {
				ev.folder, ev.id = true, id.SelectAttrValue("Id", "")
			} else {
				ev.id = attr(x, "ItemId", "Id")
			}
			ev.oldID = attr(x, "OldItemId", "Id")
			ev.hasUnreadEl = x.SelectElement("UnreadCount") != nil
			out = append(out, ev)
		}
	}
	return out
}

// streamConn is an open GetStreamingEvents answer read envelope by envelope.
type streamConn struct {
	t      *testing.T
	status int
	msgs   chan streamMsg
	// end receives how the answer ended: nil for a clean end, else the read error.
	end    chan error
	cancel context.CancelFunc
	// folders are the folder events items has read so far.
	folders []event
}

// openStream sends a GetStreamingEvents and reads its answer in the background.
func (e *env) openStream(o reqOpts, minutes int, ids []string, headers ...string) *streamConn {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.t.Context())
	e.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.ts.URL+"/EWS/Exchange.asmx", strings.NewReader(soap(o, streamingOp(minutes, ids...))))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.SetBasicAuth(svcUser, svcPassword)
	if o.user != "" {
		req.SetBasicAuth(o.user, o.password)
	}
	req.Header.Set("X-AnchorMailbox", o.actAsOrDefault())
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatalf("GetStreamingEvents: %v", err)
	}
	sc := &streamConn{t: e.t, status: resp.StatusCode, msgs: make(chan streamMsg, 100), end: make(chan error, 1), cancel: cancel}
	name := e.t.Name()
	go func() {
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		var buf []byte
		const closing = "</s:Envelope>"
		for {
			b, err := br.ReadByte()
			if err != nil {
				if errors.Is(err, io.EOF) && len(bytes.TrimSpace(buf)) == 0 {
					err = nil
				}
				sc.end <- err
				close(sc.msgs)
				return
			}
			buf = append(buf, b)
			if !bytes.HasSuffix(buf, []byte(closing)) {
				continue
			}
			raw := bytes.Clone(buf)
			buf = buf[:0]
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(raw); err != nil {
				sc.end <- fmt.Errorf("envelope is not XML: %w: %s", err, raw)
				close(sc.msgs)
				return
			}
			responses.record(name, schemaView(doc))
			msg := doc.FindElement("//GetStreamingEventsResponseMessage")
			if msg == nil {
				msg = doc.Root()
			}
			sc.msgs <- streamMsg{raw: raw, msg: msg}
		}
	}()
	return sc
}

// schemaView is an envelope as the EWS schema expects it: with Notification in the types
// namespace, where types.xsd declares it, instead of the messages namespace Exchange (and the
// simulator) write it in.
func schemaView(doc *etree.Document) []byte {
	d := doc.Copy()
	for _, n := range d.FindElements("//Notification") {
		n.Space = "t"
	}
	b, _ := d.WriteToBytes()
	return b
}

// next returns the next envelope, failing the test if none comes within a while.
func (sc *streamConn) next() streamMsg {
	sc.t.Helper()
	select {
	case m, ok := <-sc.msgs:
		if !ok {
			sc.t.Fatalf("the stream ended (%v) where a message was expected", <-sc.end)
		}
		return m
	case <-time.After(10 * time.Second):
		sc.t.Fatal("no message on the stream")
	}
	return streamMsg{}
}

// items reads notifications until n item events came and returns them; the folder events read
// on the way are added to sc.folders.
func (sc *streamConn) items(n int) []event {
	sc.t.Helper()
	var out []event
	for len(out) < n {
		m := sc.next()
		if m.class() != "Success" {
			sc.t.Fatalf("error on the stream: %s", m.raw)
		}
		for _, ev := range m.events() {
			if ev.folder {
				sc.folders = append(sc.folders, ev)
			} else {
				out = append(out, ev)
			}
		}
	}
	return out
}

// waitEnd waits for the stream to end and returns how it ended, with the envelopes still unread.
func (sc *streamConn) waitEnd() ([]streamMsg, error) {
	sc.t.Helper()
	var rest []streamMsg
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-sc.msgs:
			if !ok {
				return rest, <-sc.end
			}
			rest = append(rest, m)
		case <-timeout:
			sc.t.Fatal("the stream did not end")
		}
	}
}

func TestStreamingUserEdits(t *testing.T) {
	e := newEnv(t)
	syncFolder := e.syncFolderID(alice)
	calendar, err := e.sim.FolderID(alice, "calendar")
	if err != nil {
		t.Fatal(err)
	}
	deleted, _ := e.sim.FolderID(alice, "deleteditems")
	sub, _ := e.subscribe(reqOpts{}, folderIDs(syncFolder, "calendar"))
	sc := e.openStream(reqOpts{}, 30, []string{sub})

	id, err := e.sim.PutContact(alice, SyncFolderName, Contact{GivenName: "Ann", Surname: "Lee"})
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.items(1); got[0].typ != "CreatedEvent" || got[0].id != id || got[0].parent != syncFolder || got[0].sub != sub {
		t.Fatalf("events after a new contact: %+v", got)
	}

	if err := e.sim.UpdateItem(alice, id, func(it *Item) { it.Contact.JobTitle = "CTO" }); err != nil {
		t.Fatal(err)
	}
	if got := sc.items(1); got[0].typ != "ModifiedEvent" || got[0].id != id {
		t.Fatalf("events after an update: %+v", got)
	}
	// The folder's counts changed with the new contact: a ModifiedEvent for the folder itself.
	if !slices.ContainsFunc(sc.folders, func(e event) bool { return e.typ == "ModifiedEvent" && e.id == syncFolder && !e.hasUnreadEl }) {
		t.Errorf("no ModifiedEvent for the folder itself: %+v", sc.folders)
	}

	// Outlook's delete moves the item to Deleted Items: a MovedEvent, with the new id.
	if err := e.sim.DeleteItem(alice, id); err != nil {
		t.Fatal(err)
	}
	got := sc.items(1)
	if got[0].typ != "MovedEvent" || got[0].oldID != id || got[0].oldParent != syncFolder || got[0].parent != deleted || got[0].id == id {
		t.Fatalf("events after a delete: %+v", got)
	}

	// A change in a folder nobody subscribed to says nothing; the calendar's next event does.
	if _, err := e.sim.PutMessage(alice, "inbox", Message{ItemBase: ItemBase{Subject: "hello"}}); err != nil {
		t.Fatal(err)
	}
	ev, err := e.sim.PutEvent(alice, CalendarItem{ItemBase: ItemBase{Subject: "Call"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.items(1); got[0].id != ev || got[0].parent != calendar {
		t.Fatalf("events after an inbox message and a calendar event: %+v", got)
	}
	// Bob's changes are not Alice's.
	if _, err := e.sim.PutEvent(bob, CalendarItem{ItemBase: ItemBase{Subject: "Bob's"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.MoveItem(alice, ev, "deleteditems"); err != nil {
		t.Fatal(err)
	}
	if got := sc.items(1); got[0].typ != "MovedEvent" || got[0].oldID != ev {
		t.Fatalf("events after bob's event and a move: %+v", got)
	}
}

func TestStreamingWritesAndEventTypes(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	// Only creations and deletions.
	r := e.ews(subscribeOp(folderIDs(folder), "CreatedEvent", "DeletedEvent"), reqOpts{})
	sub := text(r.response(), "ResponseMessages/SubscribeResponseMessage/SubscriptionId")
	if sub == "" {
		t.Fatalf("Subscribe: %s", r.body)
	}
	sc := e.openStream(reqOpts{}, 30, []string{sub})

	id, ck := createContact(t, e, folder, "sk-1")
	if got := sc.items(1); got[0].typ != "CreatedEvent" || got[0].id != id {
		t.Fatalf("events after CreateItem: %+v", got)
	}
	r = e.file("update-contact.xml", map[string]any{"Mailbox": alice, "ID": id, "ChangeKey": ck, "Conflict": "AlwaysOverwrite", "GivenName": "Zoé", "SyncKey": "sk-1"}, reqOpts{})
	if !slices.Equal(r.codes(), []string{"NoError"}) {
		t.Fatalf("UpdateItem: %s", r.body)
	}
	r = e.file("delete-item.xml", map[string]any{"Mailbox": alice, "IDs": []string{id}, "DeleteType": "HardDelete"}, reqOpts{})
	if !slices.Equal(r.codes(), []string{"NoError"}) {
		t.Fatalf("DeleteItem: %s", r.body)
	}
	// The update was not asked for: the next event is the deletion.
	if got := sc.items(1); got[0].typ != "DeletedEvent" || got[0].id != id || got[0].parent != folder {
		t.Fatalf("events after UpdateItem and DeleteItem: %+v", got)
	}
}

func TestStreamingKeepAliveAndTimeout(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.StreamingKeepAlive = 30 * time.Millisecond
		c.StreamingMinute = 300 * time.Millisecond
	})
	sub, _ := e.subscribe(reqOpts{}, folderIDs("calendar"))
	sc := e.openStream(reqOpts{}, 1, []string{sub})
	if sc.status != http.StatusOK {
		t.Fatalf("status %d", sc.status)
	}
	msgs, err := sc.waitEnd()
	if err != nil {
		t.Fatalf("the stream ended with %v", err)
	}
	if len(msgs) < 3 {
		t.Fatalf("%d messages in 300ms with keep-alives every 30ms", len(msgs))
	}
	for i, m := range msgs {
		want := "OK"
		if i == len(msgs)-1 {
			want = "Closed"
		}
		if m.class() != "Success" || m.status() != want || len(m.events()) != 0 {
			t.Fatalf("message %d: %s, want a ConnectionStatus %s", i, m.raw, want)
		}
	}
	// The subscription outlives its connection, and events that happened in between wait for
	// the next one.
	ev, err := e.sim.PutEvent(alice, CalendarItem{ItemBase: ItemBase{Subject: "While away"}})
	if err != nil {
		t.Fatal(err)
	}
	sc = e.openStream(reqOpts{}, 1, []string{sub})
	if got := sc.items(1); got[0].id != ev {
		t.Fatalf("events queued while disconnected: %+v", got)
	}
}

func TestStreamingExpiry(t *testing.T) {
	e := newEnv(t)
	sub, _ := e.subscribe(reqOpts{}, folderIDs("calendar"))
	kept, _ := e.subscribe(reqOpts{}, folderIDs("contacts"))
	e.openStream(reqOpts{}, 30, []string{kept})
	waitStreams(t, e.sim, 1)

	e.clock.Advance(subscriptionLifetime + time.Minute)
	if got := e.sim.Subscriptions(alice); !slices.Equal(got, []string{kept}) {
		t.Fatalf("live subscriptions %v, want only the connected one", got)
	}
	sc2 := e.openStream(reqOpts{}, 30, []string{sub, kept})
	msgs, err := sc2.waitEnd()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("end %v, %d messages", err, len(msgs))
	}
	m := msgs[0]
	if m.class() != "Error" || m.code() != "ErrorSubscriptionNotFound" || !slices.Equal(m.errorIDs(), []string{sub}) || m.status() != "Closed" {
		t.Fatalf("GetStreamingEvents with an expired subscription: %s", m.raw)
	}
}

func TestStreamingSubscriptionErrors(t *testing.T) {
	e := newEnv(t)
	sub, _ := e.subscribe(reqOpts{}, folderIDs("calendar"))
	bogus := newSubscriptionID(0)
	cases := []struct {
		name string
		o    reqOpts
		ids  []string
		code string
		bad  []string
	}{
		{"malformed", reqOpts{}, []string{"not-a-subscription", sub}, "ErrorInvalidSubscription", []string{"not-a-subscription"}},
		{"unknown", reqOpts{}, []string{sub, bogus}, "ErrorSubscriptionNotFound", []string{bogus}},
		{"another account", reqOpts{user: limitedUser, password: limitedPass}, []string{sub}, "ErrorSubscriptionAccessDenied", []string{sub}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := e.openStream(tc.o, 1, tc.ids).waitEnd()
			if err != nil || len(msgs) != 1 {
				t.Fatalf("end %v, %d messages", err, len(msgs))
			}
			if m := msgs[0]; m.code() != tc.code || !slices.Equal(m.errorIDs(), tc.bad) || m.status() != "Closed" {
				t.Fatalf("answer %s", m.raw)
			}
		})
	}

	t.Run("unsubscribe", func(t *testing.T) {
		unsub := `<m:Unsubscribe><m:SubscriptionId>` + sub + `</m:SubscriptionId></m:Unsubscribe>`
		if r := e.ews(unsub, reqOpts{}); !slices.Equal(r.codes(), []string{"NoError"}) {
			t.Fatalf("Unsubscribe: %s", r.body)
		}
		if r := e.ews(unsub, reqOpts{}); !slices.Equal(r.codes(), []string{"ErrorSubscriptionNotFound"}) {
			t.Fatalf("second Unsubscribe: %s", r.body)
		}
	})

	t.Run("requests", func(t *testing.T) {
		for _, tc := range []struct {
			name, op, fault, code string
		}{
			{"timeout out of range", streamingOp(31, sub), "ErrorSchemaValidation", ""},
			{"no subscription", streamingOp(1), "ErrorSchemaValidation", ""},
			{"bad folder id", subscribeOp("<t:Bogus/>"), "ErrorSchemaValidation", ""},
			{"bad event type", subscribeOp(folderIDs("calendar"), "SomethingEvent"), "ErrorSchemaValidation", ""},
			{"folders and all folders", strings.Replace(subscribeOp(folderIDs("calendar")), "<m:StreamingSubscriptionRequest>",
				`<m:StreamingSubscriptionRequest SubscribeToAllFolders="true">`, 1), "", "ErrorInvalidSubscriptionRequest"},
			{"unknown folder", subscribeOp(`<t:FolderId Id="` + encodeID(mailboxGUID(alice), objFolder, 999) + `"/>`), "", "ErrorFolderNotFound"},
			{"pull", `<m:Subscribe><m:PullSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="inbox"/></t:FolderIds>` +
				`<t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes><t:Timeout>10</t:Timeout></m:PullSubscriptionRequest></m:Subscribe>`,
				"", "ErrorInvalidSubscriptionRequest"},
		} {
			r := e.ews(tc.op, reqOpts{})
			if tc.fault != "" {
				if r.faultCode() != tc.fault {
					t.Errorf("%s: %d %s, want fault %s", tc.name, r.status, r.body, tc.fault)
				}
				continue
			}
			if !slices.Equal(r.codes(), []string{tc.code}) {
				t.Errorf("%s: codes %v, want %s: %s", tc.name, r.codes(), tc.code, r.body)
			}
		}
		var many []string
		for range maxStreamingSubscriptions + 1 {
			many = append(many, sub)
		}
		msgs, err := e.openStream(reqOpts{}, 1, many).waitEnd()
		if err != nil || len(msgs) != 1 || msgs[0].code() != "ErrorInvalidRequest" {
			t.Fatalf("201 subscriptions: %v %v", err, msgs)
		}
	})
}

func TestStreamingAffinity(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MailboxServers = 2 })
	// Find a mailbox on the other server than alice's.
	other := ""
	for i := range 50 {
		a := fmt.Sprintf("rep%d@contoso.com", i)
		if e.sim.MailboxServer(a) != e.sim.MailboxServer(alice) {
			other = a
			break
		}
	}
	if err := e.sim.AddMailbox(other); err != nil {
		t.Fatal(err)
	}
	prefer := []string{"X-PreferServerAffinity", "true"}
	aliceSub, aliceCookie := e.subscribe(reqOpts{}, folderIDs("calendar"))
	if aliceCookie != "" {
		t.Fatalf("a cookie (%q) without X-PreferServerAffinity", aliceCookie)
	}
	r := e.ews(subscribeOp(folderIDs("calendar")), reqOpts{actAs: other})
	otherSub := text(r.response(), "ResponseMessages/SubscribeResponseMessage/SubscriptionId")
	r = e.post("/EWS/Exchange.asmx", soap(reqOpts{}, subscribeOp(folderIDs("contacts"))), reqOpts{}, prefer...)
	var cookie string
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == affinityCookie {
			cookie = c.Value
		}
	}
	if !strings.HasPrefix(cookie, e.sim.MailboxServer(alice)+"~") {
		t.Fatalf("affinity cookie %q, want one naming %s", cookie, e.sim.MailboxServer(alice))
	}

	// With alice's cookie, alice's subscription is found, the other server's is not, even when
	// the anchor mailbox is on that server.
	withCookie := append([]string{"Cookie", affinityCookie + "=" + cookie}, prefer...)
	msgs := func(sc *streamConn) []streamMsg { m, _ := sc.waitEnd(); return m }
	if m := msgs(e.openStream(reqOpts{actAs: other}, 1, []string{aliceSub, otherSub}, withCookie...)); len(m) != 1 ||
		m[0].code() != "ErrorSubscriptionNotFound" || !slices.Equal(m[0].errorIDs(), []string{otherSub}) {
		t.Fatalf("mixed servers: %v", m)
	}
	// Without affinity the anchor mailbox routes.
	if m := msgs(e.openStream(reqOpts{}, 1, []string{otherSub})); len(m) != 1 || m[0].code() != "ErrorSubscriptionNotFound" {
		t.Fatalf("anchored at alice: %v", m)
	}
	sc := e.openStream(reqOpts{actAs: other}, 1, []string{otherSub})
	ev, err := e.sim.PutEvent(other, CalendarItem{ItemBase: ItemBase{Subject: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.items(1); got[0].id != ev {
		t.Fatalf("events on the other server: %+v", got)
	}
}

func TestStreamingDropsAndCuts(t *testing.T) {
	e := newEnv(t)
	sub, _ := e.subscribe(reqOpts{}, folderIDs("calendar"))
	bobSub, _ := e.subscribe(reqOpts{actAs: bob}, folderIDs("calendar"))

	sc := e.openStream(reqOpts{}, 30, []string{sub})
	waitStreams(t, e.sim, 1)
	if n := e.sim.CutStreams(); n != 1 {
		t.Fatalf("cut %d streams", n)
	}
	if _, err := sc.waitEnd(); err == nil {
		t.Fatal("a cut stream ended cleanly")
	}
	// The subscription survived the cut, and kept what happened since.
	ev, err := e.sim.PutEvent(alice, CalendarItem{ItemBase: ItemBase{Subject: "after the cut"}})
	if err != nil {
		t.Fatal(err)
	}
	sc = e.openStream(reqOpts{}, 30, []string{sub})
	if got := sc.items(1); got[0].id != ev {
		t.Fatalf("events after a cut: %+v", got)
	}

	// Dropping alice's subscriptions cuts her stream and leaves bob's alone.
	if n := e.sim.DropSubscriptions(alice); n != 1 {
		t.Fatalf("dropped %d subscriptions", n)
	}
	if _, err := sc.waitEnd(); err == nil {
		t.Fatal("the stream of a dropped subscription ended cleanly")
	}
	if got := e.sim.Subscriptions(""); !slices.Equal(got, []string{bobSub}) {
		t.Fatalf("subscriptions left %v", got)
	}
	if msgs, _ := e.openStream(reqOpts{}, 30, []string{sub}).waitEnd(); len(msgs) != 1 || msgs[0].code() != "ErrorSubscriptionNotFound" {
		t.Fatalf("reconnecting a dropped subscription: %v", msgs)
	}
}

func TestStreamingHandOverAndUnsubscribe(t *testing.T) {
	e := newEnv(t)
	a, _ := e.subscribe(reqOpts{}, folderIDs("calendar"))
	b, _ := e.subscribe(reqOpts{}, folderIDs("contacts"))
	first := e.openStream(reqOpts{}, 30, []string{a, b})
	waitStreams(t, e.sim, 1)
	// A new connection takes a over; the first keeps b.
	second := e.openStream(reqOpts{}, 30, []string{a})
	waitStreams(t, e.sim, 2)
	ev, err := e.sim.PutEvent(alice, CalendarItem{ItemBase: ItemBase{Subject: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := second.items(1); got[0].id != ev || got[0].sub != a {
		t.Fatalf("events on the new connection: %+v", got)
	}
	// Unsubscribing the first connection's last subscription closes it.
	if r := e.ews(`<m:Unsubscribe><m:SubscriptionId>`+b+`</m:SubscriptionId></m:Unsubscribe>`, reqOpts{}); !slices.Equal(r.codes(), []string{"NoError"}) {
		t.Fatalf("Unsubscribe: %s", r.body)
	}
	msgs, err := first.waitEnd()
	if err != nil || len(msgs) == 0 || msgs[len(msgs)-1].status() != "Closed" {
		t.Fatalf("first connection ended %v with %d messages", err, len(msgs))
	}
	for _, m := range msgs {
		if len(m.events()) > 0 {
			t.Fatalf("the first connection got events after the hand-over: %s", m.raw)
		}
	}
}

func TestStreamingMissedEvents(t *testing.T) {
	e := newEnv(t)
	sub, _ := e.subscribe(reqOpts{}, folderIDs("calendar"), "CreatedEvent")
	keep, _ := e.subscribe(reqOpts{}, folderIDs("contacts"))
	for i := range maxQueuedEvents + 1 {
		if _, err := e.sim.PutEvent(alice, CalendarItem{ItemBase: ItemBase{Subject: fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	sc := e.openStream(reqOpts{}, 30, []string{sub, keep})
	m := sc.next()
	if m.code() != "ErrorMissedNotificationEvents" || !slices.Equal(m.errorIDs(), []string{sub}) || m.status() != "OK" {
		t.Fatalf("after an overflow: %s", m.raw)
	}
	if got := e.sim.Subscriptions(alice); !slices.Equal(got, []string{keep}) {
		t.Fatalf("subscriptions after an overflow: %v", got)
	}
}

func TestStreamingFaults(t *testing.T) {
	e := newEnv(t)
	sub, _ := e.subscribe(reqOpts{}, folderIDs("calendar"))
	e.sim.InjectFault(Fault{Operation: "GetStreamingEvents", Kind: FaultServerBusy, BackOff: 2 * time.Second})
	r := e.ews(streamingOp(1, sub), reqOpts{})
	if r.faultCode() != "ErrorServerBusy" {
		t.Fatalf("answer %d %s", r.status, r.body)
	}
	e.sim.InjectFault(Fault{Operation: "Subscribe", Kind: FaultHTTPStatus, Status: http.StatusServiceUnavailable})
	if r := e.ews(subscribeOp(folderIDs("calendar")), reqOpts{}); r.status != http.StatusServiceUnavailable {
		t.Fatalf("Subscribe answered %d", r.status)
	}
}

// waitStreams waits until the simulator has n open streaming connections.
func waitStreams(t *testing.T, sim *Server, n int) {
	t.Helper()
	poll.Until(t, fmt.Sprintf("%d open streams", n), func() bool { return sim.Streams() == n })
}
