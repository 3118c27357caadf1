package ewssim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Streaming notifications: the mailbox events subscriptions receive, the subscriptions
// themselves, and the mailbox servers they live on. The operations are in ops_notify.go.
//
// As in Exchange 2013 and later, a subscription lives on one mailbox server: the one its
// Subscribe request was routed to, by the X-BackEndOverrideCookie when X-PreferServerAffinity
// is true, else by the X-AnchorMailbox. A GetStreamingEvents or Unsubscribe request routed to
// another server does not find it (ErrorSubscriptionNotFound), which is what makes clients
// group subscriptions by server. With Config.MailboxServers above 1 the mailboxes are spread
// over that many servers.

// eventKind is a notification event type.
type eventKind uint8

const (
	evCreated eventKind = iota + 1
	evModified
	evDeleted
	evMoved
	evCopied
	evNewMail
	evFreeBusyChanged
)

// eventTypes are NotificationEventTypeType's values, by kind.
var eventTypes = map[eventKind]string{
	evCopied:          "CopiedEvent",
	evCreated:         "CreatedEvent",
	evDeleted:         "DeletedEvent",
	evModified:        "ModifiedEvent",
	evMoved:           "MovedEvent",
	evNewMail:         "NewMailEvent",
	evFreeBusyChanged: "FreeBusyChangedEvent",
}

func eventKindOf(name string) (eventKind, bool) {
	for k, n := range eventTypes {
		if n == name {
			return k, true
		}
	}
	return 0, false
}

// mailEvent is something that happened to an item or folder of a mailbox.
type mailEvent struct {
	kind eventKind
	at   time.Time
	// folderEvent is true when the event is about a folder (FolderId), not an item (ItemId).
	folderEvent bool
	id, ck      string
	parent      *folder
	// oldID, oldCK and oldParent are set for moves.
	oldID, oldCK string
	oldParent    *folder
	// unread is the folder's unread count for a folder's ModifiedEvent, -1 when not reported.
	unread int
}

// about reports whether the event concerns the contents of folder f (or f itself, whose
// counts changed), which is what a subscription to f receives.
func (e *mailEvent) about(f *folder) bool {
	return e.parent == f || e.oldParent == f || (e.folderEvent && e.id == f.id)
}

// emit hands an event to the mailbox's subscriptions. The caller holds m.mu.
func (m *mailbox) emit(e mailEvent) {
	if m.hub == nil {
		return
	}
	if e.kind != evModified || !e.folderEvent {
		e.unread = -1
	}
	m.hub.publish(m, e)
}

// emitFolderModified reports that f's contents changed (its counts), as Exchange does with a
// ModifiedEvent for the folder itself.
func (m *mailbox) emitFolderModified(f *folder) {
	if m.hub == nil || f.parent == nil {
		return
	}
	unread := -1
	if el := f.elementName(); el != "ContactsFolder" && el != "CalendarFolder" {
		unread = 0
		for _, si := range f.items {
			if si.Message != nil && !si.Message.IsRead {
				unread++
			}
		}
	}
	m.hub.publish(m, mailEvent{kind: evModified, folderEvent: true, id: f.id, ck: f.changeKey, parent: f.parent, unread: unread})
}

// Limits of streaming notifications.
const (
	// maxStreamingSubscriptions is the most subscription ids one GetStreamingEvents may name.
	maxStreamingSubscriptions = 200
	// maxEventsPerNotification is the most events one Notification carries, as in Exchange.
	maxEventsPerNotification = 50
	// maxQueuedEvents is how many events a subscription keeps while no connection takes them;
	// beyond that the subscription has missed events (ErrorMissedNotificationEvents).
	maxQueuedEvents = 1000
	// subscriptionLifetime is how long a streaming subscription outlives its last connection
	// (or its creation, if it never had one).
	subscriptionLifetime = 30 * time.Minute
	// defaultKeepAlive is how often an idle streaming connection gets a ConnectionStatus OK.
	defaultKeepAlive = 30 * time.Second
)

// subscription is a streaming subscription.
type subscription struct {
	id     string
	mb     *mailbox
	owner  string // the principal that made it; only it may use it
	server int
	all    bool
	// folders are the subscribed folders (unless all).
	folders []*folder
	types   map[eventKind]bool
	queue   []mailEvent
	// missed is set when the queue overflowed; the subscription is then dropped with
	// ErrorMissedNotificationEvents.
	missed bool
	stream *stream
	// idleSince is when the subscription last had no connection.
	idleSince time.Time
}

func (sub *subscription) wants(e *mailEvent) bool {
	if !sub.types[e.kind] {
		return false
	}
	if sub.all {
		return true
	}
	return slices.ContainsFunc(sub.folders, e.about)
}

// stream is one open GetStreamingEvents connection.
type stream struct {
	subs map[string]*subscription
	// signal wakes the connection's writer: events queued, subscriptions lost, or an end.
	signal chan struct{}
	// lost are the subscriptions taken from the connection since the writer last looked, with
	// the response code to report them with.
	lost map[string]string
	// ended says the server ends the connection: "closed" with ConnectionStatus Closed, "cut"
	// by dropping it.
	ended string
}

func (st *stream) wake() {
	select {
	case st.signal <- struct{}{}:
	default:
	}
}

// notifyHub holds every streaming subscription of a server.
type notifyHub struct {
	s         *Server
	mu        sync.Mutex
	subs      map[string]*subscription
	byMailbox map[*mailbox]map[*subscription]bool
	streams   map[*stream]bool
	lastSweep time.Time
	// made counts the subscriptions ever made, by lower-cased mailbox address.
	made map[string]int
}

func newNotifyHub(s *Server) *notifyHub {
	return &notifyHub{s: s, subs: map[string]*subscription{}, byMailbox: map[*mailbox]map[*subscription]bool{}, streams: map[*stream]bool{},
		made: map[string]int{}}
}

// publish queues e for every subscription of m that wants it. The caller holds m.mu, so that
// events reach subscribers in the order they happened.
func (h *notifyHub) publish(m *mailbox, e mailEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.byMailbox[m]) == 0 {
		return
	}
	e.at = h.s.now().UTC()
	for sub := range h.byMailbox[m] {
		if !sub.wants(&e) || sub.missed {
			continue
		}
		if len(sub.queue) >= maxQueuedEvents {
			sub.missed, sub.queue = true, nil
		} else {
			sub.queue = append(sub.queue, e)
		}
		if sub.stream != nil {
			sub.stream.wake()
		}
	}
}

// add registers a new subscription.
func (h *notifyHub) add(sub *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweepLocked()
	sub.idleSince = h.s.now()
	h.subs[sub.id] = sub
	if h.byMailbox[sub.mb] == nil {
		h.byMailbox[sub.mb] = map[*subscription]bool{}
	}
	h.byMailbox[sub.mb][sub] = true
	h.made[strings.ToLower(sub.mb.address)]++
}

// removeLocked forgets a subscription; a connection carrying it reports it lost with code
// (none when code is empty) and ends once it carries nothing.
func (h *notifyHub) removeLocked(sub *subscription, code string) {
	delete(h.subs, sub.id)
	delete(h.byMailbox[sub.mb], sub)
	if len(h.byMailbox[sub.mb]) == 0 {
		delete(h.byMailbox, sub.mb)
	}
	if st := sub.stream; st != nil {
		delete(st.subs, sub.id)
		if code != "" {
			st.lost[sub.id] = code
		}
		st.wake()
		sub.stream = nil
	}
}

// sweepLocked drops subscriptions that expired, at most once a minute of the server's clock.
func (h *notifyHub) sweepLocked() {
	now := h.s.now()
	if now.Sub(h.lastSweep) < time.Minute {
		return
	}
	h.lastSweep = now
	for _, sub := range h.subs {
		if h.expiredLocked(sub, now) {
			h.removeLocked(sub, "")
		}
	}
}

func (h *notifyHub) expiredLocked(sub *subscription, now time.Time) bool {
	return sub.stream == nil && now.Sub(sub.idleSince) >= subscriptionLifetime
}

// lookupLocked finds a subscription for a request routed to server by owner, or says why not
// with a response code. An expired subscription is dropped on the way.
func (h *notifyHub) lookupLocked(id string, server int, owner string) (*subscription, string) {
	if _, err := decodeSubscriptionID(id); err != nil {
		return nil, "ErrorInvalidSubscription"
	}
	sub, ok := h.subs[id]
	if ok && h.expiredLocked(sub, h.s.now()) {
		h.removeLocked(sub, "")
		ok = false
	}
	if !ok || sub.server != server {
		return nil, "ErrorSubscriptionNotFound"
	}
	if !strings.EqualFold(sub.owner, owner) {
		return nil, "ErrorSubscriptionAccessDenied"
	}
	return sub, ""
}

// DropSubscriptions forgets the streaming subscriptions of mailbox (of every mailbox when it is
// empty), as a restarted mailbox server does, and cuts the connections that carried them
// without a last message. It returns how many subscriptions it dropped. Clients learn of it
// when they reconnect: GetStreamingEvents answers ErrorSubscriptionNotFound.
func (s *Server) DropSubscriptions(mailbox string) int {
	h := s.notify
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, sub := range h.subs {
		if mailbox != "" && !strings.EqualFold(sub.mb.address, mailbox) {
			continue
		}
		if st := sub.stream; st != nil {
			st.ended = "cut"
		}
		h.removeLocked(sub, "")
		n++
	}
	return n
}

// CutStreams drops every open GetStreamingEvents connection without a last message, as a
// network failure would; the subscriptions stay and keep their events for the next connection.
// It returns how many connections it cut.
func (s *Server) CutStreams() int {
	return s.notify.endStreams("cut")
}

// closeStreams ends every open GetStreamingEvents connection with ConnectionStatus Closed (the
// server is shutting down).
func (s *Server) closeStreams() { s.notify.endStreams("closed") }

func (h *notifyHub) endStreams(how string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	for st := range h.streams {
		st.ended = how
		st.wake()
	}
	return len(h.streams)
}

// Subscriptions returns the ids of the live streaming subscriptions of mailbox (of every
// mailbox when it is empty), sorted.
func (s *Server) Subscriptions(mailbox string) []string {
	h := s.notify
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for id, sub := range h.subs {
		if (mailbox == "" || strings.EqualFold(sub.mb.address, mailbox)) && !h.expiredLocked(sub, s.now()) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// SubscriptionsMade returns how many streaming subscriptions were ever made to mailbox's
// folders (every mailbox's when it is empty), ended ones included: a duplicate that came and
// went still counts.
func (s *Server) SubscriptionsMade(mailbox string) int {
	h := s.notify
	h.mu.Lock()
	defer h.mu.Unlock()
	if mailbox != "" {
		return h.made[strings.ToLower(mailbox)]
	}
	n := 0
	for _, c := range h.made {
		n += c
	}
	return n
}

// Streams returns how many GetStreamingEvents connections are open.
func (s *Server) Streams() int {
	h := s.notify
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.streams)
}

// Mailbox servers.

// mailboxServers is how many servers the mailboxes are spread over.
func (s *Server) mailboxServers() int { return max(s.cfg.MailboxServers, 1) }

// serverName is the host name of mailbox server i.
func serverName(i int) string { return fmt.Sprintf("SIMMBX%02d.ewssim.local", i+1) }

// serverOf is the mailbox server that holds address's mailbox.
func (s *Server) serverOf(address string) int {
	h := fnv.New32a()
	h.Write([]byte(strings.ToLower(address)))
	return int(h.Sum32() % uint32(s.mailboxServers()))
}

// MailboxServer returns the host name of the mailbox server holding address's mailbox.
func (s *Server) MailboxServer(address string) string { return serverName(s.serverOf(address)) }

// backendCookie is the X-BackEndOverrideCookie value naming server i: its name and a number,
// as Exchange Online writes it.
func backendCookie(i int) string {
	h := fnv.New32a()
	h.Write([]byte(serverName(i)))
	return serverName(i) + "~" + strconv.FormatUint(uint64(h.Sum32()), 10)
}

func (s *Server) serverOfCookie(v string) (int, bool) {
	for i := range s.mailboxServers() {
		if v == backendCookie(i) {
			return i, true
		}
	}
	return 0, false
}

// Subscription ids.

// errMalformedSubscription is an id this server did not make.
var errMalformedSubscription = errors.New("malformed subscription id")

// newSubscriptionID builds an id as Exchange does: the length of the server's name, the name,
// then 16 random bytes.
func newSubscriptionID(server int) string {
	name := serverName(server)
	b := make([]byte, 0, 2+len(name)+4+16)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		panic(fmt.Sprintf("ewssim: read random bytes: %v", err))
	}
	b = append(b, r[:]...)
	return base64.StdEncoding.EncodeToString(b)
}

// decodeSubscriptionID returns the server name an id was made on.
func decodeSubscriptionID(id string) (string, error) {
	if len(id) > 256 {
		return "", errMalformedSubscription
	}
	b, err := base64.StdEncoding.DecodeString(id)
	if err != nil || len(b) < 2 {
		return "", errMalformedSubscription
	}
	n := int(binary.LittleEndian.Uint16(b))
	if len(b) != 2+n+4+16 || binary.LittleEndian.Uint32(b[2+n:]) != 16 {
		return "", errMalformedSubscription
	}
	return string(b[2 : 2+n]), nil
}

// snapshotLocked takes what a connection's writer has to send: the notifications queued for
// its subscriptions (by subscription id, in the order of ids), the subscriptions it lost (by
// code) and how the server ends it.
func (h *notifyHub) snapshotLocked(st *stream) (notes map[string][]mailEvent, lost map[string][]string, ended string) {
	if st.ended == "cut" {
		// Nothing is taken from the queues: the subscriptions keep it for the next connection.
		return nil, nil, st.ended
	}
	notes = map[string][]mailEvent{}
	for id, sub := range st.subs {
		if sub.missed {
			h.removeLocked(sub, "ErrorMissedNotificationEvents")
			continue
		}
		if len(sub.queue) > 0 {
			notes[id] = sub.queue
			sub.queue = nil
		}
	}
	lost = map[string][]string{}
	for _, id := range slices.Sorted(maps.Keys(st.lost)) {
		lost[st.lost[id]] = append(lost[st.lost[id]], id)
	}
	clear(st.lost)
	return notes, lost, st.ended
}
