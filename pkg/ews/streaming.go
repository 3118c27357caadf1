package ews

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/tandem-sync/tandem/pkg/telemetry"
)

// Streaming notifications: Subscribe (streaming subscriptions), GetStreamingEvents and
// Unsubscribe.
//
// Exchange keeps a subscription on one mailbox server, and the client keeps its requests
// there (Microsoft's "Maintain affinity between a group of subscriptions and the Mailbox
// server"): a Subscribe sent with X-AnchorMailbox and X-PreferServerAffinity: true is answered
// with an X-BackEndOverrideCookie naming the server it went to; requests that carry that cookie
// with X-PreferServerAffinity: true reach the same server whatever their X-AnchorMailbox. One
// GetStreamingEvents carries at most 200 subscriptions of one server. Affinity says how a
// request is routed.

// EventType is a notification event type (NotificationEventTypeType, plus StatusEvent, which
// Exchange sends unasked).
type EventType string

// Event types.
const (
	EventNewMail         EventType = "NewMailEvent"
	EventCreated         EventType = "CreatedEvent"
	EventDeleted         EventType = "DeletedEvent"
	EventModified        EventType = "ModifiedEvent"
	EventMoved           EventType = "MovedEvent"
	EventCopied          EventType = "CopiedEvent"
	EventFreeBusyChanged EventType = "FreeBusyChangedEvent"
	EventStatus          EventType = "StatusEvent"
)

// ChangeEvents are the event types that tell that a folder's items changed.
var ChangeEvents = []EventType{EventNewMail, EventCreated, EventDeleted, EventModified, EventMoved, EventCopied}

// Limits of streaming notifications.
const (
	// MaxStreamingSubscriptions is the most subscriptions one GetStreamingEvents may carry.
	MaxStreamingSubscriptions = 200
	// MaxConnectionTimeout is the longest a GetStreamingEvents connection stays open.
	MaxConnectionTimeout = 30 * time.Minute
	// DefaultStreamIdleTimeout is how long a streaming connection may send nothing at all (not
	// even a keep-alive) before the client gives it up.
	DefaultStreamIdleTimeout = 2 * time.Minute
)

// affinityCookie is the cookie that routes notification requests.
const affinityCookie = "X-BackEndOverrideCookie"

// Sentinels for the subscription response codes; compare with errors.Is.
var (
	// ErrSubscriptionNotFound: the subscription expired, its server restarted, or the request
	// reached another server.
	ErrSubscriptionNotFound = &ResponseError{Code: "ErrorSubscriptionNotFound"}
	// ErrInvalidSubscription: the id is not one Exchange made.
	ErrInvalidSubscription = &ResponseError{Code: "ErrorInvalidSubscription"}
	// ErrMissedNotificationEvents: the subscription fell behind and was dropped.
	ErrMissedNotificationEvents = &ResponseError{Code: "ErrorMissedNotificationEvents"}
	// ErrStreamIdle: a streaming connection sent nothing for longer than its idle timeout.
	ErrStreamIdle = errors.New("ews: streaming connection idle")
	// ErrStreamEnded: a streaming connection ended without ConnectionStatus Closed.
	ErrStreamEnded = errors.New("ews: streaming connection ended without being closed")
)

// Affinity routes a notification request to the mailbox server of a group of subscriptions.
type Affinity struct {
	// Anchor is the X-AnchorMailbox: the group's first mailbox. Empty means the request's
	// own mailbox.
	Anchor string
	// Cookie is the X-BackEndOverrideCookie of the group's server; empty before the group's
	// first subscription, whose answer sets it.
	Cookie string
}

// apply sets the affinity headers of a request.
func (a Affinity) apply(h http.Header) {
	if a.Anchor != "" {
		h.Set("X-AnchorMailbox", a.Anchor)
	}
	h.Set("X-PreferServerAffinity", "true")
	if a.Cookie != "" && validCookieValue(a.Cookie) {
		h.Add("Cookie", affinityCookie+"="+a.Cookie)
	}
}

// validCookieValue reports whether v may be sent as a cookie's value as it is (RFC 6265
// cookie-octets): a value that may not is not sent, and the request is routed by its anchor.
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}

// cookieOf returns the affinity cookie an answer set, or "".
func cookieOf(h http.Header) string {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == affinityCookie {
			return c.Value
		}
	}
	return ""
}

// Subscription is a streaming subscription Exchange made.
type Subscription struct {
	// ID is the SubscriptionId.
	ID string
	// Cookie is the affinity cookie the answer set: the mailbox server the subscription lives
	// on. Empty when the request already carried one (or the server hands none out).
	Cookie string
}

// Subscribe makes a streaming subscription to folders of t's mailbox for events, routed by
// aff. It is not repeated after an ambiguous failure: a second subscription would live on
// unused until it expires.
func (cl *Client) Subscribe(ctx context.Context, t Target, folders []FolderID, events []EventType, aff Affinity) (Subscription, error) {
	if len(folders) == 0 || len(events) == 0 {
		return Subscription{}, classify(fmt.Errorf("Subscribe for %s: %w", t.Address, errors.New("no folders or no event types")))
	}
	op := newOp("Subscribe")
	req := add(op, "m:StreamingSubscriptionRequest")
	ids := add(req, "t:FolderIds")
	for _, f := range folders {
		f.write(ids)
	}
	types := add(req, "t:EventTypes")
	for _, e := range events {
		addText(types, "t:EventType", string(e))
	}
	var cookie string
	env, err := cl.do(ctx, call{op: "Subscribe", target: t, body: op,
		header: aff.apply, answered: func(h http.Header) { cookie = cookieOf(h) }})
	if err != nil {
		return Subscription{}, err
	}
	m, err := single(env, "Subscribe")
	if err != nil {
		return Subscription{}, classify(fmt.Errorf("Subscribe for %s: %w", t.Address, err))
	}
	id := strings.TrimSpace(childText(m, nsMessages, "SubscriptionId"))
	if id == "" {
		return Subscription{}, classify(fmt.Errorf("Subscribe for %s: %w", t.Address, malformed("SubscribeResponseMessage without a SubscriptionId")))
	}
	return Subscription{ID: id, Cookie: cookie}, nil
}

// Unsubscribe ends a subscription. A subscription Exchange no longer knows is gone already:
// that is a success.
func (cl *Client) Unsubscribe(ctx context.Context, t Target, id string, aff Affinity) error {
	op := newOp("Unsubscribe")
	addText(op, "m:SubscriptionId", id)
	env, err := cl.do(ctx, call{op: "Unsubscribe", target: t, body: op, idempotent: true, header: aff.apply})
	if err != nil {
		return err
	}
	if _, err := single(env, "Unsubscribe"); err != nil && !errors.Is(err, ErrSubscriptionNotFound) {
		return classify(fmt.Errorf("Unsubscribe for %s: %w", t.Address, err))
	}
	return nil
}

// StreamRequest is a GetStreamingEvents to send.
type StreamRequest struct {
	// SubscriptionIDs are the subscriptions to carry, at most MaxStreamingSubscriptions, all
	// on the server Affinity routes to.
	SubscriptionIDs []string
	// Timeout is how long the connection stays open, in whole minutes (rounded up) from one to
	// 30; zero means MaxConnectionTimeout.
	Timeout time.Duration
	// Affinity routes the request; its Anchor is also the mailbox impersonated (so that the
	// connection counts against that mailbox's budget, not the service account's).
	Affinity Affinity
	// IdleTimeout is how long the connection may send nothing before it is given up; zero
	// means DefaultStreamIdleTimeout.
	IdleTimeout time.Duration
}

// StreamMessage is one message of a streaming connection.
type StreamMessage struct {
	// Notifications are the events reported, per subscription.
	Notifications []Notification
	// Status is the ConnectionStatus: "OK" (a keep-alive), "Closed", or "" when the message
	// says nothing about the connection.
	Status string
	// Err, when set, names subscriptions the connection no longer carries (ErrorSubscriptionIds)
	// while it stays open for the others.
	Err *SubscriptionError
}

// Notification is the events of one subscription.
type Notification struct {
	SubscriptionID string
	Events         []Event
}

// Event is one notification event.
type Event struct {
	Type EventType
	// Time is the event's TimeStamp (zero for a StatusEvent).
	Time time.Time
	// Watermark is the event's watermark, when Exchange sent one.
	Watermark string
	// ItemID is set for an event about an item, FolderID for one about a folder.
	ItemID   ItemID
	FolderID FolderID
	// ParentFolderID is the folder holding the item or folder.
	ParentFolderID FolderID
	// OldItemID, OldFolderID and OldParentFolderID are set for moves and copies.
	OldItemID         ItemID
	OldFolderID       FolderID
	OldParentFolderID FolderID
}

// SubscriptionError is an error Exchange reported for some subscriptions of a streaming
// request (ErrorSubscriptionIds). It unwraps to the ResponseError, so errors.Is matches the
// sentinels.
type SubscriptionError struct {
	*ResponseError
	// SubscriptionIDs are the subscriptions concerned; empty when the error is about the
	// request as a whole.
	SubscriptionIDs []string
}

func (e *SubscriptionError) Error() string {
	if len(e.SubscriptionIDs) == 0 {
		return e.ResponseError.Error()
	}
	return fmt.Sprintf("%s (%d subscriptions)", e.ResponseError.Error(), len(e.SubscriptionIDs))
}

func (e *SubscriptionError) Unwrap() error { return e.ResponseError }

// GetStreamingEvents opens a streaming connection and calls handle with each message as it
// arrives, until the server closes the connection (nil), handle returns an error (returned as
// it is), ctx ends, or the connection fails. Failures come back classified: a request refused
// for some of its subscriptions unwraps to a *SubscriptionError naming them (ErrorSubscriptionNotFound
// for an expired one); a connection that stops without ConnectionStatus Closed to ErrStreamEnded;
// one that sends nothing for IdleTimeout to ErrStreamIdle. Nothing is retried here: the caller
// decides when to connect again. Messages that report subscriptions lost while the connection
// goes on reach handle with Err set. The connection takes none of the mailbox's concurrency
// slots (Config.MaxConcurrencyPerMailbox): Exchange counts open streaming connections apart,
// per impersonated mailbox (HangingConnectionLimit).
func (cl *Client) GetStreamingEvents(ctx context.Context, t Target, req StreamRequest, handle func(StreamMessage) error) error {
	if n := len(req.SubscriptionIDs); n == 0 || n > MaxStreamingSubscriptions {
		return classify(fmt.Errorf("GetStreamingEvents for %s: %w", t.Address,
			fmt.Errorf("%d subscriptions, want 1 to %d", n, MaxStreamingSubscriptions)))
	}
	minutes := int((req.Timeout + time.Minute - 1) / time.Minute)
	if req.Timeout == 0 {
		minutes = int(MaxConnectionTimeout / time.Minute)
	}
	minutes = min(max(minutes, 1), int(MaxConnectionTimeout/time.Minute))
	idle := req.IdleTimeout
	if idle <= 0 {
		idle = DefaultStreamIdleTimeout
	}
	if t.URL == "" {
		return classify(fmt.Errorf("GetStreamingEvents: no EWS URL for %s", t.Address))
	}
	if req.Affinity.Anchor != "" {
		t.Address = req.Affinity.Anchor
	}
	op := newOp("GetStreamingEvents")
	ids := add(op, "m:SubscriptionIds")
	for _, id := range req.SubscriptionIDs {
		addText(ids, "t:SubscriptionId", id)
	}
	addText(op, "m:ConnectionTimeout", strconv.Itoa(minutes))
	payload, err := buildEnvelope(cl.cfg.ServerVersion, t.Address, op)
	if err != nil {
		return fmt.Errorf("GetStreamingEvents: build request: %w", err)
	}
	err = cl.stream(ctx, t, req.Affinity, payload, idle, time.Duration(minutes)*time.Minute, handle)
	if err == nil || ctx.Err() != nil {
		return err
	}
	var handlerErr *handlerError
	if errors.As(err, &handlerErr) {
		return handlerErr.err
	}
	return classify(fmt.Errorf("GetStreamingEvents for %s: %w", t.Address, err))
}

// handlerError carries the handler's own error out of stream unclassified.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// stream performs the HTTP exchange of a GetStreamingEvents. It fetches a new token once when
// the server refuses the cached one, as send does.
func (cl *Client) stream(ctx context.Context, t Target, aff Affinity, payload []byte, idle, timeout time.Duration, handle func(StreamMessage) error) error {
	for reauthorized := false; ; reauthorized = true {
		err := cl.streamOnce(ctx, t, aff, payload, idle, timeout, handle)
		var he *HTTPError
		if err != nil && ctx.Err() == nil && !reauthorized && errors.As(err, &he) && he.StatusCode == http.StatusUnauthorized {
			if inv, ok := cl.cfg.Credentials.(invalidator); ok {
				inv.invalidate()
				continue
			}
		}
		return err
	}
}

func (cl *Client) streamOnce(ctx context.Context, t Target, aff Affinity, payload []byte, idle, timeout time.Duration, handle func(StreamMessage) error) error {
	// The connection lives as long as the server keeps it, plus a margin for its last message;
	// the idle timer ends it sooner when nothing at all comes.
	sctx, cancel := context.WithTimeoutCause(telemetry.WithHTTPOperation(ctx, "ews GetStreamingEvents"), timeout+idle, ErrStreamIdle)
	defer cancel()
	sctx, cancelIdle := context.WithCancelCause(sctx)
	defer cancelIdle(nil)
	req, err := http.NewRequestWithContext(sctx, http.MethodPost, t.URL, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("Accept", "text/xml")
	req.Header.Set("SOAPAction", `"`+nsMessages+`/GetStreamingEvents"`)
	req.Header.Set("User-Agent", cl.cfg.UserAgent)
	req.Header.Set("client-request-id", requestID())
	req.Header.Set("return-client-request-id", "true")
	req.Header.Set("X-AnchorMailbox", t.Address)
	aff.apply(req.Header)
	if err := cl.cfg.Credentials.Authorize(sctx, req); err != nil {
		return fmt.Errorf("authorize: %w", err)
	}
	idleTimer := time.AfterFunc(idle, func() { cancelIdle(ErrStreamIdle) })
	defer idleTimer.Stop()
	resp, err := cl.http.Do(req)
	if err != nil {
		return streamFailure(sctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, err := readLimited(resp.Body, resp.ContentLength, cl.cfg.MaxResponseBytes)
		if err != nil {
			return streamFailure(sctx, err)
		}
		if looksLikeXML(resp.Header, data) {
			if env, ferr := parseEnvelope(data); ferr != nil {
				var re *ResponseError
				if errors.As(ferr, &re) {
					cl.noteVersion(t.URL, env)
					return ferr
				}
			}
		}
		return httpError(resp, data)
	}
	err = readStream(resp.Body, cl.cfg.MaxResponseBytes, func(env *envelope) {
		idleTimer.Reset(idle)
		cl.noteVersion(t.URL, env)
	}, handle)
	if err != nil {
		return streamFailure(sctx, err)
	}
	return nil
}

// readStream reads a streaming response body message by message, calling seen with each
// envelope that arrives (before it is interpreted) and handle with each message worth handling.
// It returns nil when the server closed the connection, and the cause otherwise (see
// GetStreamingEvents); handle's errors come back in a *handlerError.
func readStream(body io.Reader, maxEnvelope int64, seen func(*envelope), handle func(StreamMessage) error) error {
	sc := newEnvelopeScanner(body, maxEnvelope)
	for {
		data, err := sc.next()
		if errors.Is(err, io.EOF) {
			return ErrStreamEnded
		}
		if err != nil {
			return err
		}
		env, err := parseEnvelope(data)
		seen(env)
		if err != nil {
			return err
		}
		msg, err := parseStreamMessage(env)
		if err != nil {
			return err
		}
		if msg.Err != nil && msg.Status == "Closed" {
			// The server ends the connection over these subscriptions: the request's outcome.
			return msg.Err
		}
		if len(msg.Notifications) > 0 || msg.Err != nil || msg.Status != "" {
			if err := handle(msg); err != nil {
				return &handlerError{err}
			}
		}
		if msg.Status == "Closed" {
			return nil
		}
	}
}

// noteVersion records the server version an answer reported.
func (cl *Client) noteVersion(url string, env *envelope) {
	if env == nil || env.version == (ServerVersion{}) {
		return
	}
	cl.mu.Lock()
	cl.versions[url] = env.version
	cl.mu.Unlock()
}

// streamFailure names why a streaming exchange failed: the idle timer's cause when it fired.
func streamFailure(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, ErrStreamIdle) {
		return fmt.Errorf("%w: %w", ErrStreamIdle, err)
	}
	return err
}

// parseStreamMessage reads one GetStreamingEvents response envelope.
func parseStreamMessage(env *envelope) (StreamMessage, error) {
	msgs, err := responseMessages(env, "GetStreamingEvents")
	if err != nil {
		return StreamMessage{}, err
	}
	if len(msgs) == 0 {
		return StreamMessage{}, malformed("GetStreamingEventsResponse without a response message")
	}
	var out StreamMessage
	for _, m := range msgs {
		if s := strings.TrimSpace(childText(m.el, nsMessages, "ConnectionStatus")); s != "" {
			if s != "OK" && s != "Closed" {
				return StreamMessage{}, malformed("ConnectionStatus %q", s)
			}
			out.Status = s
		}
		var ids []string
		for _, id := range children(child(m.el, nsMessages, "ErrorSubscriptionIds"), nsTypes, "SubscriptionId") {
			ids = append(ids, strings.TrimSpace(id.Text()))
		}
		if m.err != nil {
			if len(ids) == 0 {
				// About the request as a whole: nothing else in it counts.
				return StreamMessage{}, m.err
			}
			if out.Err == nil {
				out.Err = &SubscriptionError{ResponseError: m.err}
			}
			out.Err.SubscriptionIDs = append(out.Err.SubscriptionIDs, ids...)
		}
		for _, n := range child(m.el, nsMessages, "Notifications").NotNil().ChildElements() {
			// types.xsd puts Notification in the types namespace; Exchange writes it in the
			// messages namespace (as Microsoft's examples and the EWS Managed API have it).
			if n.Tag != "Notification" || (n.NamespaceURI() != nsMessages && n.NamespaceURI() != nsTypes) {
				continue
			}
			note, err := parseNotification(n)
			if err != nil {
				return StreamMessage{}, err
			}
			out.Notifications = append(out.Notifications, note)
		}
	}
	return out, nil
}

func parseNotification(n *etree.Element) (Notification, error) {
	note := Notification{SubscriptionID: strings.TrimSpace(childText(n, nsTypes, "SubscriptionId"))}
	if note.SubscriptionID == "" {
		return Notification{}, malformed("Notification without a SubscriptionId")
	}
	for _, e := range n.ChildElements() {
		if e.NamespaceURI() != nsTypes || !strings.HasSuffix(e.Tag, "Event") {
			// SubscriptionId, PreviousWatermark, MoreEvents.
			continue
		}
		ev := Event{Type: EventType(e.Tag), Watermark: strings.TrimSpace(childText(e, nsTypes, "Watermark"))}
		if ts := childText(e, nsTypes, "TimeStamp"); ts != "" {
			// A notification is a hint to sync; an odd timestamp does not make it worthless.
			ev.Time, _ = parseDateTime(ts)
		}
		ev.ItemID = itemIDOf(child(e, nsTypes, "ItemId"))
		ev.FolderID = folderIDOf(child(e, nsTypes, "FolderId"))
		ev.ParentFolderID = folderIDOf(child(e, nsTypes, "ParentFolderId"))
		ev.OldItemID = itemIDOf(child(e, nsTypes, "OldItemId"))
		ev.OldFolderID = folderIDOf(child(e, nsTypes, "OldFolderId"))
		ev.OldParentFolderID = folderIDOf(child(e, nsTypes, "OldParentFolderId"))
		note.Events = append(note.Events, ev)
	}
	return note, nil
}

func itemIDOf(e *etree.Element) ItemID {
	if e == nil {
		return ItemID{}
	}
	return ItemID{ID: e.SelectAttrValue("Id", ""), ChangeKey: e.SelectAttrValue("ChangeKey", "")}
}

func folderIDOf(e *etree.Element) FolderID {
	if e == nil {
		return FolderID{}
	}
	return FolderID{ID: e.SelectAttrValue("Id", ""), ChangeKey: e.SelectAttrValue("ChangeKey", "")}
}

// envelopeScanner cuts a streaming response into its SOAP envelopes, each one complete
// document, as they arrive. It looks only at the element structure (an encoding/xml token
// stream); each envelope is then parsed in full by parseEnvelope, with its checks.
type envelopeScanner struct {
	r   *recordingReader
	dec *xml.Decoder
}

func newEnvelopeScanner(body io.Reader, maxEnvelope int64) *envelopeScanner {
	r := &recordingReader{br: bufio.NewReader(body), max: maxEnvelope}
	dec := xml.NewDecoder(r)
	dec.CharsetReader = refuseEncoding
	return &envelopeScanner{r: r, dec: dec}
}

// next returns the next envelope's bytes, or io.EOF when the stream ended between envelopes.
// An envelope cut short is io.ErrUnexpectedEOF.
func (s *envelopeScanner) next() ([]byte, error) {
	depth := 0
	start := int64(-1)
	for {
		before := s.dec.InputOffset()
		tok, err := s.dec.RawToken()
		if err != nil {
			// What the connection did decides, when it failed; else the decoder found the
			// stream is not XML.
			switch cause := s.r.err; {
			case cause == nil:
				return nil, &MalformedResponseError{Detail: "streaming response", Err: err}
			case errors.Is(cause, io.EOF) && depth == 0:
				return nil, io.EOF
			case errors.Is(cause, io.EOF):
				return nil, io.ErrUnexpectedEOF
			default:
				return nil, cause
			}
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if tok.Name.Local != "Envelope" {
					return nil, malformed("streaming response holds %s, not a SOAP envelope", tok.Name.Local)
				}
				start = before
				s.r.begin(start)
			}
			depth++
			if depth > maxXMLDepth {
				return nil, &MalformedResponseError{Detail: "nesting", Err: ErrTooDeep}
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				return s.r.take(start, s.dec.InputOffset()), nil
			}
		case xml.Directive:
			return nil, &MalformedResponseError{Detail: "a <!...> directive in the stream", Err: ErrDocumentType}
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(tok)) > 0 {
				return nil, malformed("text between envelopes")
			}
		}
	}
}

// recordingReader is the scanner's byte source: it keeps the bytes of the envelope being read
// (from begin) so that the scanner can hand them out, and refuses to read an envelope larger
// than max.
type recordingReader struct {
	br  *bufio.Reader
	max int64
	// buf holds the bytes read from offset base on.
	buf  []byte
	base int64
	// off is the offset of the next byte; limit is where reading stops (0: no envelope yet,
	// checked from the last envelope's end).
	off   int64
	limit int64
	// err is the error reading stopped at (the connection's, or a too large envelope).
	err error
}

func (r *recordingReader) ReadByte() (byte, error) {
	limit := r.limit
	if limit == 0 {
		limit = r.base + r.max
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.off >= limit {
		r.err = &ResponseTooLargeError{Limit: r.max}
		return 0, r.err
	}
	b, err := r.br.ReadByte()
	if err != nil {
		r.err = err
		return 0, err
	}
	r.buf = append(r.buf, b)
	r.off++
	return b, nil
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		b, err := r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		p[n] = b
		n++
		if r.br.Buffered() == 0 {
			break
		}
	}
	return n, nil
}

// begin marks the start of an envelope at offset start: what came before is dropped.
func (r *recordingReader) begin(start int64) {
	r.buf = append(r.buf[:0], r.buf[start-r.base:]...)
	r.base = start
	r.limit = start + r.max
}

// take returns the bytes from start to end and forgets them.
func (r *recordingReader) take(start, end int64) []byte {
	out := bytes.Clone(r.buf[start-r.base : end-r.base])
	r.buf = append(r.buf[:0], r.buf[end-r.base:]...)
	r.base = end
	r.limit = 0
	return out
}
