package ewssim

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// The streaming notification operations: Subscribe (streaming subscriptions only),
// GetStreamingEvents and Unsubscribe. They are served apart from the other operations because
// they depend on the HTTP exchange itself: affinity headers and cookies route them to a mailbox
// server, and GetStreamingEvents answers with a stream. Injected faults apply to them as to any
// operation, except the AfterWork kinds (use DropSubscriptions and CutStreams instead).

// affinityCookie is the cookie Exchange routes notification requests by.
const affinityCookie = "X-BackEndOverrideCookie"

// serveNotification serves the operation if it is a notification operation; false means it is
// not one.
func (s *Server) serveNotification(w http.ResponseWriter, r *http.Request, call *ewsCall) bool {
	switch call.req.opName {
	case "Subscribe":
		s.opSubscribe(w, r, call)
	case "Unsubscribe":
		s.opUnsubscribe(w, r, call)
	case "GetStreamingEvents":
		s.opGetStreamingEvents(w, r, call)
	default:
		return false
	}
	return true
}

// routedServer is the mailbox server a notification request reaches: the one named by the
// affinity cookie when X-PreferServerAffinity is true, else the X-AnchorMailbox's, else the
// mailbox acted on's. byCookie says the cookie decided.
func (s *Server) routedServer(r *http.Request, call *ewsCall) (server int, byCookie bool) {
	if strings.EqualFold(strings.TrimSpace(r.Header.Get("X-PreferServerAffinity")), "true") {
		if c, err := r.Cookie(affinityCookie); err == nil {
			if i, ok := s.serverOfCookie(c.Value); ok {
				return i, true
			}
		}
	}
	if a := strings.TrimSpace(r.Header.Get("X-AnchorMailbox")); a != "" {
		if _, ok := s.mailbox(a); ok {
			return s.serverOf(a), false
		}
	}
	return s.serverOf(call.mb.address), false
}

func (s *Server) opSubscribe(w http.ResponseWriter, r *http.Request, call *ewsCall) {
	kinds, f := kids(call.req.op, nsMessages)
	if f == nil && len(kinds) != 1 {
		f = schemaFault("Subscribe must contain one subscription request, found %d", len(kinds))
	}
	if f != nil {
		s.writeFault(w, r, "Subscribe", f)
		return
	}
	resp := newResponse(s.version, "Subscribe")
	switch req := kinds[0]; req.Tag {
	case "PullSubscriptionRequest", "PushSubscriptionRequest":
		resp.message(&ewsError{code: "ErrorInvalidSubscriptionRequest", text: "The Exchange simulator supports streaming subscriptions only."})
	case "StreamingSubscriptionRequest":
		sub, ferr, f := s.parseStreamingSubscription(call, req)
		if f != nil {
			s.writeFault(w, r, "Subscribe", f)
			return
		}
		if ferr != nil {
			resp.message(ferr)
			break
		}
		server, byCookie := s.routedServer(r, call)
		sub.server, sub.id = server, newSubscriptionID(server)
		s.notify.add(sub)
		resp.message(nil).CreateElement("m:SubscriptionId").SetText(sub.id)
		if !byCookie && strings.EqualFold(strings.TrimSpace(r.Header.Get("X-PreferServerAffinity")), "true") {
			// The cookie that routes the group's later requests to this server, as Exchange
			// hands it out when asked for affinity without one.
			//nolint:gosec // the attributes Exchange sets on this cookie, no SameSite: a client's routing, not a browser's session
			http.SetCookie(w, &http.Cookie{Name: affinityCookie, Value: backendCookie(server), Path: "/", Secure: true, HttpOnly: true})
		}
	default:
		s.writeFault(w, r, "Subscribe", schemaFault("the element %s is not expected in Subscribe", req.FullTag()))
		return
	}
	writeXML(w, http.StatusOK, resp.doc)
}

// parseStreamingSubscription reads a StreamingSubscriptionRequest.
func (s *Server) parseStreamingSubscription(call *ewsCall, req *etree.Element) (*subscription, *ewsError, *soapFault) {
	all := false
	if a := req.SelectAttr("SubscribeToAllFolders"); a != nil {
		v, ok := parseBool(a.Value)
		if !ok {
			return nil, nil, schemaFault("the value %q of SubscribeToAllFolders is not a boolean", a.Value)
		}
		all = v
	}
	seq, f := sequence(req, nsTypes, []string{"FolderIds", "EventTypes"}, "EventTypes")
	if f != nil {
		return nil, nil, f
	}
	sub := &subscription{mb: call.mb, owner: call.who.name, all: all, types: map[eventKind]bool{}}
	types, f := kids(seq["EventTypes"], nsTypes)
	if f != nil {
		return nil, nil, f
	}
	if len(types) == 0 {
		return nil, nil, schemaFault("EventTypes must contain at least one EventType")
	}
	for _, t := range types {
		k, ok := eventKindOf(strings.TrimSpace(t.Text()))
		if t.Tag != "EventType" || !ok {
			return nil, nil, enumFault(t.Text(), "NotificationEventTypeType")
		}
		sub.types[k] = true
	}
	ids := seq["FolderIds"]
	if all == (ids != nil) {
		return nil, &ewsError{code: "ErrorInvalidSubscriptionRequest",
			text: "A subscription names its folders or sets SubscribeToAllFolders, not both and not neither."}, nil
	}
	if ids == nil {
		return sub, nil, nil
	}
	refs := ids.ChildElements()
	if len(refs) == 0 {
		return nil, nil, schemaFault("FolderIds must contain at least one folder id")
	}
	call.mb.mu.Lock()
	defer call.mb.mu.Unlock()
	for _, ref := range refs {
		fo, ferr, f := s.folderRef(call, ref)
		if f != nil || ferr != nil {
			return nil, ferr, f
		}
		if !slices.Contains(sub.folders, fo) {
			sub.folders = append(sub.folders, fo)
		}
	}
	return sub, nil, nil
}

func (s *Server) opUnsubscribe(w http.ResponseWriter, r *http.Request, call *ewsCall) {
	seq, f := sequence(call.req.op, nsMessages, []string{"SubscriptionId"}, "SubscriptionId")
	if f != nil {
		s.writeFault(w, r, "Unsubscribe", f)
		return
	}
	server, _ := s.routedServer(r, call)
	h := s.notify
	h.mu.Lock()
	sub, code := h.lookupLocked(strings.TrimSpace(seq["SubscriptionId"].Text()), server, call.who.name)
	if sub != nil {
		h.removeLocked(sub, "")
	}
	h.mu.Unlock()
	resp := newResponse(s.version, "Unsubscribe")
	if code != "" {
		resp.message(subscriptionError(code))
	} else {
		resp.message(nil)
	}
	writeXML(w, http.StatusOK, resp.doc)
}

// subscriptionError is the response message error for a subscription a request cannot use.
func subscriptionError(code string) *ewsError {
	text := map[string]string{
		"ErrorInvalidSubscription":      "The subscription is invalid.",
		"ErrorSubscriptionNotFound":     "The specified subscription was not found.",
		"ErrorSubscriptionAccessDenied": "A subscription can only be used by the account that created it.",
		"ErrorMissedNotificationEvents": "The subscription missed events and was dropped. Create a new one.",
	}[code]
	return &ewsError{code: code, text: text}
}

func (s *Server) opGetStreamingEvents(w http.ResponseWriter, r *http.Request, call *ewsCall) {
	seq, f := sequence(call.req.op, nsMessages, []string{"SubscriptionIds", "ConnectionTimeout"}, "SubscriptionIds", "ConnectionTimeout")
	var idEls []*etree.Element
	if f == nil {
		idEls, f = kids(seq["SubscriptionIds"], nsTypes)
	}
	if f == nil && len(idEls) == 0 {
		f = schemaFault("SubscriptionIds must contain at least one SubscriptionId")
	}
	var minutes int
	if f == nil {
		var err error
		minutes, err = strconv.Atoi(strings.TrimSpace(seq["ConnectionTimeout"].Text()))
		if err != nil || minutes < 1 || minutes > 30 {
			// StreamingSubscriptionConnectionTimeoutType is xs:int restricted to 1..30.
			f = schemaFault("the value %q of ConnectionTimeout is not valid (1..30)", seq["ConnectionTimeout"].Text())
		}
	}
	if f != nil {
		s.writeFault(w, r, "GetStreamingEvents", f)
		return
	}
	var ids []string
	for _, e := range idEls {
		if e.Tag != "SubscriptionId" {
			s.writeFault(w, r, "GetStreamingEvents", schemaFault("the element %s is not expected in SubscriptionIds", e.FullTag()))
			return
		}
		ids = append(ids, strings.TrimSpace(e.Text()))
	}
	if len(ids) > maxStreamingSubscriptions {
		resp := newResponse(s.version, "GetStreamingEvents")
		m := resp.message(&ewsError{code: "ErrorInvalidRequest",
			text: "The request is invalid: one connection carries at most " + strconv.Itoa(maxStreamingSubscriptions) + " subscriptions."})
		m.CreateElement("m:ConnectionStatus").SetText("Closed")
		writeXML(w, http.StatusOK, resp.doc)
		return
	}

	server, _ := s.routedServer(r, call)
	st, badCode, bad := s.openStream(ids, server, call.who.name)
	if st == nil {
		writeXML(w, http.StatusOK, s.streamError(badCode, bad, "Closed"))
		return
	}
	s.stream(w, r, st, time.Duration(minutes)*s.streamingMinute())
}

func (s *Server) streamingMinute() time.Duration {
	if s.cfg.StreamingMinute > 0 {
		return s.cfg.StreamingMinute
	}
	return time.Minute
}

func (s *Server) keepAlive() time.Duration {
	if s.cfg.StreamingKeepAlive > 0 {
		return s.cfg.StreamingKeepAlive
	}
	return defaultKeepAlive
}

// openStream attaches the subscriptions to a new connection, taking them from any connection
// that carried them. When one cannot be used, it returns no stream but the response code of the
// first such subscription and every one of them: the request fails as a whole.
func (s *Server) openStream(ids []string, server int, owner string) (st *stream, code string, bad []string) {
	h := s.notify
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweepLocked()
	subs := make([]*subscription, 0, len(ids))
	for _, id := range ids {
		sub, c := h.lookupLocked(id, server, owner)
		if c != "" {
			if code == "" {
				code = c
			}
			bad = append(bad, id)
			continue
		}
		subs = append(subs, sub)
	}
	if len(bad) > 0 {
		return nil, code, bad
	}
	st = &stream{subs: map[string]*subscription{}, signal: make(chan struct{}, 1), lost: map[string]string{}}
	for _, sub := range subs {
		if old := sub.stream; old != nil && old != st {
			delete(old.subs, sub.id)
			old.wake()
		}
		sub.stream = st
		st.subs[sub.id] = sub
	}
	h.streams[st] = true
	st.wake() // events queued while no connection took them
	return st, "", nil
}

// detach ends a connection: its subscriptions wait for the next one.
func (h *notifyHub) detach(st *stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.s.now()
	for _, sub := range st.subs {
		if sub.stream == st {
			sub.stream, sub.idleSince = nil, now
		}
	}
	delete(h.streams, st)
}

// stream serves an open GetStreamingEvents connection until its timeout, the client leaving or
// the server ending it: one SOAP envelope per message, flushed as it is written, in one chunked
// HTTP response.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, st *stream, timeout time.Duration) {
	h := s.notify
	defer h.detach(st)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	// The headers go out at once: the client learns the connection is open before anything
	// happens.
	if err := rc.Flush(); err != nil {
		return
	}
	send := func(doc *etree.Document) bool {
		b, err := doc.WriteToBytes()
		if err == nil {
			_, err = w.Write(b)
		}
		if err == nil {
			err = rc.Flush()
		}
		return err == nil
	}
	s.log.DebugContext(r.Context(), "ewssim: streaming connection opened", "timeout", timeout)
	keepAlive := time.NewTicker(s.keepAlive())
	defer keepAlive.Stop()
	end := time.NewTimer(timeout)
	defer end.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			send(s.streamStatus("Closed"))
			return
		case <-keepAlive.C:
			if !send(s.streamStatus("OK")) {
				return
			}
		case <-st.signal:
			h.mu.Lock()
			notes, lost, ended := h.snapshotLocked(st)
			remaining := len(st.subs)
			h.mu.Unlock()
			if ended == "cut" {
				panic(http.ErrAbortHandler)
			}
			if len(notes) > 0 {
				s.counts.add(StreamingNotificationsCount)
				if !send(s.notifications(notes)) {
					return
				}
			}
			for _, code := range sortedKeys(lost) {
				status := "OK"
				if remaining == 0 {
					status = "Closed"
				}
				if !send(s.streamError(code, lost[code], status)) || status == "Closed" {
					return
				}
			}
			if ended == "closed" || remaining == 0 {
				send(s.streamStatus("Closed"))
				return
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// streamStatus is a message of a streaming connection that only says how the connection is.
func (s *Server) streamStatus(status string) *etree.Document {
	resp := newResponse(s.version, "GetStreamingEvents")
	resp.message(nil).CreateElement("m:ConnectionStatus").SetText(status)
	return resp.doc
}

// streamError reports subscriptions a connection cannot carry.
func (s *Server) streamError(code string, ids []string, status string) *etree.Document {
	resp := newResponse(s.version, "GetStreamingEvents")
	m := resp.message(subscriptionError(code))
	list := m.CreateElement("m:ErrorSubscriptionIds")
	for _, id := range ids {
		list.CreateElement("t:SubscriptionId").SetText(id)
	}
	m.CreateElement("m:ConnectionStatus").SetText(status)
	return resp.doc
}

// notifications renders queued events, at most maxEventsPerNotification per Notification.
//
// Exchange writes Notification in the messages namespace, although types.xsd declares it in
// the types namespace (the EWS Managed API reads m:Notification, and Microsoft's examples show
// it); the simulator writes what Exchange writes.
func (s *Server) notifications(notes map[string][]mailEvent) *etree.Document {
	resp := newResponse(s.version, "GetStreamingEvents")
	list := resp.message(nil).CreateElement("m:Notifications")
	for _, id := range sortedKeys(notes) {
		for chunk := range slices.Chunk(notes[id], maxEventsPerNotification) {
			n := list.CreateElement("m:Notification")
			n.CreateElement("t:SubscriptionId").SetText(id)
			for _, e := range chunk {
				writeEvent(n, &e)
			}
		}
	}
	return resp.doc
}

// idElement adds an item or folder id element (Id and ChangeKey attributes) to parent.
func idElement(parent *etree.Element, tag, id, changeKey string) {
	el := parent.CreateElement(tag)
	el.CreateAttr("Id", id)
	el.CreateAttr("ChangeKey", changeKey)
}

func writeEvent(parent *etree.Element, e *mailEvent) {
	el := parent.CreateElement("t:" + eventTypes[e.kind])
	el.CreateElement("t:TimeStamp").SetText(e.at.Format("2006-01-02T15:04:05Z"))
	idTag := "t:ItemId"
	if e.folderEvent {
		idTag = "t:FolderId"
	}
	idElement(el, idTag, e.id, e.ck)
	idElement(el, "t:ParentFolderId", e.parent.id, e.parent.changeKey)
	switch {
	case e.kind == evMoved || e.kind == evCopied:
		oldTag := "t:OldItemId"
		if e.folderEvent {
			oldTag = "t:OldFolderId"
		}
		idElement(el, oldTag, e.oldID, e.oldCK)
		idElement(el, "t:OldParentFolderId", e.oldParent.id, e.oldParent.changeKey)
	case e.kind == evModified && e.unread >= 0:
		el.CreateElement("t:UnreadCount").SetText(strconv.Itoa(e.unread))
	}
}
