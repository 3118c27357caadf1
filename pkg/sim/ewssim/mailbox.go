package ewssim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Errors returned by the Go API.
var (
	// ErrNoMailbox means the address has no mailbox.
	ErrNoMailbox = errors.New("ewssim: no such mailbox")
	// ErrMailboxExists means AddMailbox was called twice for one address.
	ErrMailboxExists = errors.New("ewssim: mailbox already exists")
	// ErrFolderNotFound means no folder matched the given name or id.
	ErrFolderNotFound = errors.New("ewssim: folder not found")
	// ErrItemNotFound means no item has the given id in the mailbox.
	ErrItemNotFound = errors.New("ewssim: item not found")
	// ErrInvalidItem means an item given to the Go API is not one Exchange would store.
	ErrInvalidItem = errors.New("ewssim: invalid item")
)

// SyncFolderName is the contacts folder Tandem syncs; Seed fills it.
const SyncFolderName = "Salesforce_Sync"

// changeOp is one kind of change-log entry.
type changeOp uint8

const (
	opCreate changeOp = iota + 1
	opUpdate
	opDelete
	opReadFlag
)

type logEntry struct {
	itemID string
	op     changeOp
}

type folder struct {
	id            string
	num           uint64
	changeKey     string
	parent        *folder
	children      []*folder
	displayName   string
	class         string
	distinguished string
	items         map[string]*storedItem
	// log records every change to the folder's contents; SyncFolderItems states are positions
	// in it.
	log []logEntry
}

// elementName is the folder element EWS uses for the folder's class.
func (f *folder) elementName() string {
	switch {
	case f.class == "IPF.Contact" || strings.HasPrefix(f.class, "IPF.Contact."):
		return "ContactsFolder"
	case f.class == "IPF.Appointment" || strings.HasPrefix(f.class, "IPF.Appointment."):
		return "CalendarFolder"
	case f.class == "IPF.Task" || strings.HasPrefix(f.class, "IPF.Task."):
		return "TasksFolder"
	}
	return "Folder"
}

func (f *folder) holds(k itemKind) bool {
	switch k {
	case kindContact:
		return f.elementName() == "ContactsFolder"
	case kindCalendar:
		return f.elementName() == "CalendarFolder"
	}
	return true
}

type storedItem struct {
	Item
	seq    uint64
	folder *folder
}

type mailbox struct {
	mu          sync.Mutex
	address     string
	displayName string
	guid        guid
	guidText    string
	nextObj     uint64
	change      uint64
	folders     map[string]*folder
	byNum       map[uint64]*folder
	dist        map[string]*folder
	items       map[string]*storedItem
	root        *folder
	// hub receives the mailbox's events for streaming subscriptions (notify.go); nil means
	// nobody can subscribe (a scratch mailbox).
	hub *notifyHub
}

// defaultFolders are created in every mailbox under msgfolderroot.
var defaultFolders = []struct{ name, class, dist string }{
	{"Calendar", "IPF.Appointment", "calendar"},
	{"Contacts", "IPF.Contact", "contacts"},
	{"Deleted Items", "IPF.Note", "deleteditems"},
	{"Drafts", "IPF.Note", "drafts"},
	{"Inbox", "IPF.Note", "inbox"},
	{"Journal", "IPF.Journal", "journal"},
	{"Junk Email", "IPF.Note", "junkemail"},
	{"Notes", "IPF.StickyNote", "notes"},
	{"Outbox", "IPF.Note", "outbox"},
	{"Sent Items", "IPF.Note", "sentitems"},
	{"Tasks", "IPF.Task", "tasks"},
}

func newMailbox(address string) *mailbox {
	m := &mailbox{
		address:     address,
		displayName: displayNameFromAddress(address),
		guid:        mailboxGUID(address),
		folders:     map[string]*folder{},
		byNum:       map[uint64]*folder{},
		dist:        map[string]*folder{},
		items:       map[string]*storedItem{},
	}
	m.guidText = m.guid.String()
	m.root = m.newFolder(nil, "", "", "root")
	top := m.newFolder(m.root, "Top of Information Store", "IPF.Note", "msgfolderroot")
	for _, d := range defaultFolders {
		m.newFolder(top, d.name, d.class, d.dist)
	}
	// Outlook keeps a hidden contacts folder of recent recipients under Contacts; having it there
	// makes clients look their folder up by name instead of taking the first child.
	m.newFolder(m.dist["contacts"], "Recipient Cache", "IPF.Contact.RecipientCache", "recipientcache")
	return m
}

// displayNameFromAddress turns "alice.smith@contoso.com" into "Alice Smith".
func displayNameFromAddress(address string) string {
	local, _, _ := strings.Cut(address, "@")
	parts := strings.FieldsFunc(local, func(r rune) bool { return r == '.' || r == '_' || r == '-' })
	for i, p := range parts {
		r := []rune(p)
		r[0] = unicode.ToUpper(r[0])
		parts[i] = string(r)
	}
	if len(parts) == 0 {
		return address
	}
	return strings.Join(parts, " ")
}

func (m *mailbox) nextChange() uint64 {
	m.change++
	return m.change
}

func (m *mailbox) newFolder(parent *folder, name, class, dist string) *folder {
	m.nextObj++
	f := &folder{
		id:            encodeID(m.guid, objFolder, m.nextObj),
		num:           m.nextObj,
		changeKey:     encodeChangeKey(0x01, m.guid, m.nextChange()),
		parent:        parent,
		displayName:   name,
		class:         class,
		distinguished: dist,
		items:         map[string]*storedItem{},
	}
	if parent != nil {
		parent.children = append(parent.children, f)
	}
	m.folders[f.id] = f
	m.byNum[f.num] = f
	if dist != "" {
		m.dist[dist] = f
	}
	if parent != nil {
		m.emit(mailEvent{kind: evCreated, folderEvent: true, id: f.id, ck: f.changeKey, parent: parent})
	}
	return f
}

// childByName finds a direct child folder by display name, case-insensitively as Exchange does.
func (f *folder) childByName(name string) *folder {
	for _, c := range f.children {
		if strings.EqualFold(c.displayName, name) {
			return c
		}
	}
	return nil
}

// findFolder resolves a folder reference given to the Go API: a distinguished folder name
// ("contacts"), a folder id, or a display name (looked up under Contacts and Calendar first,
// then anywhere).
func (m *mailbox) findFolder(ref string) (*folder, error) {
	if f, ok := m.dist[strings.ToLower(ref)]; ok {
		return f, nil
	}
	if f, ok := m.folders[ref]; ok {
		return f, nil
	}
	for _, parent := range []string{"contacts", "calendar", "msgfolderroot"} {
		if f := m.dist[parent].childByName(ref); f != nil {
			return f, nil
		}
	}
	var found *folder
	m.walk(m.root, func(f *folder) {
		if found == nil && strings.EqualFold(f.displayName, ref) {
			found = f
		}
	})
	if found == nil {
		return nil, fmt.Errorf("%w: %q in %s", ErrFolderNotFound, ref, m.address)
	}
	return found, nil
}

// walk visits f's descendants depth-first, parents before children.
func (m *mailbox) walk(f *folder, visit func(*folder)) {
	for _, c := range f.children {
		visit(c)
		m.walk(c, visit)
	}
}

// insert stores a new item in f, assigning its id and change key, and logs its creation.
func (m *mailbox) insert(f *folder, it Item, now time.Time) *storedItem {
	si := m.link(f, it, now)
	m.emit(mailEvent{kind: evCreated, id: si.ItemID, ck: si.ChangeKey, parent: f})
	if si.Message != nil && f == m.dist["inbox"] {
		m.emit(mailEvent{kind: evNewMail, id: si.ItemID, ck: si.ChangeKey, parent: f})
	}
	m.emitFolderModified(f)
	return si
}

// link is insert without the notification events.
func (m *mailbox) link(f *folder, it Item, now time.Time) *storedItem {
	m.nextObj++
	it.ItemID = encodeID(m.guid, objItem, m.nextObj)
	it.ChangeKey = encodeChangeKey(it.kind().changeKeyPrefix(), m.guid, m.nextChange())
	it.FolderID = f.id
	if it.Created.IsZero() {
		it.Created = now
	}
	it.LastModified = now
	si := &storedItem{Item: it, seq: m.nextObj, folder: f}
	m.items[it.ItemID] = si
	f.items[it.ItemID] = si
	f.log = append(f.log, logEntry{itemID: it.ItemID, op: opCreate})
	return si
}

// touch records a modification of si: new change key and time, and a log entry. readOnly is
// true when only the read flag changed, which SyncFolderItems reports as ReadFlagChange.
func (m *mailbox) touch(si *storedItem, now time.Time, readFlagOnly bool) {
	si.ChangeKey = encodeChangeKey(si.kind().changeKeyPrefix(), m.guid, m.nextChange())
	si.LastModified = now
	op := opUpdate
	if readFlagOnly {
		op = opReadFlag
	}
	si.folder.log = append(si.folder.log, logEntry{itemID: si.ItemID, op: op})
	m.emit(mailEvent{kind: evModified, id: si.ItemID, ck: si.ChangeKey, parent: si.folder})
}

// remove deletes si for good and logs the deletion.
func (m *mailbox) remove(si *storedItem) {
	m.unlink(si)
	m.emit(mailEvent{kind: evDeleted, id: si.ItemID, ck: si.ChangeKey, parent: si.folder})
	m.emitFolderModified(si.folder)
}

// unlink is remove without the notification events.
func (m *mailbox) unlink(si *storedItem) {
	delete(m.items, si.ItemID)
	delete(si.folder.items, si.ItemID)
	si.folder.log = append(si.folder.log, logEntry{itemID: si.ItemID, op: opDelete})
}

// move moves si to f. As in Exchange the item gets a new id: the source folder logs a deletion
// and the target a creation, and subscribers to either folder see one MovedEvent.
func (m *mailbox) move(si *storedItem, f *folder, now time.Time) *storedItem {
	m.unlink(si)
	moved := m.link(f, si.Item, now)
	m.emit(mailEvent{kind: evMoved, id: moved.ItemID, ck: moved.ChangeKey, parent: f,
		oldID: si.ItemID, oldCK: si.ChangeKey, oldParent: si.folder})
	m.emitFolderModified(si.folder)
	m.emitFolderModified(f)
	return moved
}

// lookupItem resolves an ItemId from a request: malformed ids and ids of other mailboxes are
// told apart from unknown ones, as Exchange does.
func (m *mailbox) lookupItem(id string) (*storedItem, *ewsError) {
	mb, obj, _, err := decodeID(id)
	if err != nil || obj != objItem {
		return nil, errIDMalformed()
	}
	si, ok := m.items[id]
	if !ok || mb != m.guidText {
		return nil, errItemNotFound()
	}
	return si, nil
}

// lookupFolder resolves a FolderId from a request.
func (m *mailbox) lookupFolder(id string) (*folder, *ewsError) {
	mb, obj, _, err := decodeID(id)
	if err != nil || obj != objFolder {
		return nil, errIDMalformed()
	}
	f, ok := m.folders[id]
	if !ok || mb != m.guidText {
		return nil, errFolderNotFound()
	}
	return f, nil
}

// sortedItems returns the folder's items in creation order.
func (f *folder) sortedItems() []*storedItem {
	out := make([]*storedItem, 0, len(f.items))
	for _, si := range f.items {
		out = append(out, si)
	}
	slices.SortFunc(out, func(a, b *storedItem) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return out
}

// normalize fills in what Exchange computes when an item is saved, and checks what it refuses.
// fromEWS is true for items created through CreateItem, whose attendee responses a client
// cannot choose.
func (m *mailbox) normalize(it *Item, now time.Time, fromEWS bool) *ewsError {
	b := it.Base()
	if b.ItemClass == "" {
		b.ItemClass = it.kind().defaultClass()
	}
	if b.Body != "" && b.BodyType == "" {
		b.BodyType = "Text"
	}
	switch {
	case it.Contact != nil:
		c := it.Contact
		if c.DisplayName == "" {
			c.DisplayName = strings.Join(nonEmpty(c.GivenName, c.MiddleName, c.Surname), " ")
			if c.DisplayName == "" {
				c.DisplayName = c.CompanyName
			}
		}
		if c.Subject == "" {
			c.Subject = c.DisplayName
		}
		for i := range c.EmailAddresses {
			if c.EmailAddresses[i].Name == "" {
				c.EmailAddresses[i].Name = c.EmailAddresses[i].Address
			}
		}
		if !c.Birthday.IsZero() {
			c.Birthday = birthdayInstant(c.Birthday)
		}
	case it.CalendarItem != nil:
		c := it.CalendarItem
		if c.UID == "" {
			c.UID = newUID(m.guid, m.change+1, now)
		}
		if c.Organizer == nil {
			c.Organizer = &Recipient{Name: m.displayName, Address: m.address}
		}
		if c.Start.IsZero() {
			c.Start = now.UTC().Truncate(30 * time.Minute).Add(30 * time.Minute)
		}
		if c.End.IsZero() {
			c.End = c.Start.Add(30 * time.Minute)
		}
		c.Start, c.End = c.Start.UTC().Truncate(time.Second), c.End.UTC().Truncate(time.Second)
		if c.End.Before(c.Start) {
			return &ewsError{code: "ErrorCalendarEndDateIsEarlierThanStartDate", text: "EndDate is earlier than StartDate"}
		}
		if c.StartTimeZone == "" {
			c.StartTimeZone = "UTC"
		}
		if c.EndTimeZone == "" {
			c.EndTimeZone = c.StartTimeZone
		}
		if fromEWS {
			for _, list := range [][]Attendee{c.RequiredAttendees, c.OptionalAttendees, c.Resources} {
				for i := range list {
					list[i].ResponseType = "Unknown"
					list[i].LastResponseTime = time.Time{}
				}
			}
		}
		if c.Recurrence != nil {
			if err := checkRecurrence(c.Recurrence); err != nil {
				return err
			}
		}
	}
	return nil
}

func nonEmpty(s ...string) []string {
	return slices.DeleteFunc(s, func(x string) bool { return x == "" })
}

// birthdayInstant keeps only the date of t (as written, in t's own offset) and returns it at
// 11:59 UTC, which is how Exchange Online hands birthdays back.
func birthdayInstant(t time.Time) time.Time {
	y, mo, d := t.Date()
	return time.Date(y, mo, d, 11, 59, 0, 0, time.UTC)
}

// newUID builds an Outlook-style global object id: the fixed Outlook class id, a zero
// instance date, the creation time as a FILETIME, eight reserved bytes, the length 16 and 16
// bytes unique to this mailbox and change.
func newUID(g guid, change uint64, created time.Time) string {
	// FILETIME counts 100 ns intervals since 1601-01-01.
	const filetimeOffset = 116444736000000000
	ft := uint64(created.UnixNano()/100) + filetimeOffset
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], ft)
	unique := sha256.Sum256(fmt.Appendf(nil, "%x/%d", g[:], change))
	return strings.ToUpper("040000008200E00074C5B7101A82E008" + "00000000" + hex.EncodeToString(b[:]) +
		"0000000000000000" + "10000000" + hex.EncodeToString(unique[:16]))
}

func checkRecurrence(r *Recurrence) *ewsError {
	bad := func(format string, a ...any) *ewsError {
		return &ewsError{code: "ErrorCalendarInvalidRecurrence", text: fmt.Sprintf(format, a...)}
	}
	switch r.Pattern {
	case "Daily", "Weekly", "AbsoluteMonthly", "RelativeMonthly":
		if r.Interval < 1 || r.Interval > 999 {
			return bad("Interval %d is out of range", r.Interval)
		}
	case "AbsoluteYearly", "RelativeYearly":
	default:
		return bad("unknown recurrence pattern %q", r.Pattern)
	}
	switch r.Pattern {
	case "Weekly":
		if len(r.DaysOfWeek) == 0 {
			return &ewsError{code: "ErrorCalendarInvalidDayForWeeklyRecurrence", text: "Weekly recurrence needs DaysOfWeek"}
		}
		for _, d := range r.DaysOfWeek {
			if !slices.Contains(daysOfWeek[:7], d) {
				return &ewsError{code: "ErrorCalendarInvalidDayForWeeklyRecurrence", text: fmt.Sprintf("%q is not valid in a weekly recurrence", d)}
			}
		}
	case "AbsoluteMonthly", "AbsoluteYearly":
		if r.DayOfMonth < 1 || r.DayOfMonth > 31 {
			return bad("DayOfMonth %d is out of range", r.DayOfMonth)
		}
	case "RelativeMonthly", "RelativeYearly":
		if len(r.DaysOfWeek) != 1 || !slices.Contains(daysOfWeek, r.DaysOfWeek[0]) || !slices.Contains(dayOfWeekIndexes, r.DayOfWeekIndex) {
			return bad("relative recurrence needs one day of week and an index")
		}
	}
	if (r.Pattern == "AbsoluteYearly" || r.Pattern == "RelativeYearly") && !slices.Contains(monthNames, r.Month) {
		return bad("yearly recurrence needs a month")
	}
	start, err := parseDate(r.StartDate)
	if err != nil {
		return bad("StartDate %q is not a date", r.StartDate)
	}
	switch r.Range {
	case "NoEnd":
	case "EndDate":
		end, err := parseDate(r.EndDate)
		if err != nil {
			return bad("EndDate %q is not a date", r.EndDate)
		}
		if end.Before(start) {
			return bad("EndDate is before StartDate")
		}
	case "Numbered":
		if r.NumberOfOccurrences < 1 || r.NumberOfOccurrences > 999 {
			return bad("NumberOfOccurrences %d is out of range", r.NumberOfOccurrences)
		}
	default:
		return bad("unknown recurrence range %q", r.Range)
	}
	return nil
}
