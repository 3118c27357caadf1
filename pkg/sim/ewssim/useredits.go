package ewssim

import (
	"fmt"
	"reflect"
)

// This file is the Go API that acts as the mailbox owner would in Outlook: its changes show up
// in SyncFolderItems like any other change.

// lockedMailbox returns the mailbox with its lock held; the caller unlocks it.
func (s *Server) lockedMailbox(address string) (*mailbox, error) {
	mb, ok := s.mailbox(address)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoMailbox, address)
	}
	mb.mu.Lock()
	return mb, nil
}

// PutContact creates a contact in folder, which is a distinguished folder name ("contacts"), a
// folder id or a folder's display name ("Salesforce_Sync"). It returns the new item's id.
func (s *Server) PutContact(address, folder string, c Contact) (string, error) {
	c = c.clone()
	return s.put(address, folder, Item{Contact: &c})
}

// PutEvent creates a calendar item in the mailbox's calendar and returns its id.
func (s *Server) PutEvent(address string, e CalendarItem) (string, error) {
	e = e.clone()
	return s.put(address, "calendar", Item{CalendarItem: &e})
}

// PutMessage creates a message in folder (e.g. "inbox") and returns its id.
func (s *Server) PutMessage(address, folder string, m Message) (string, error) {
	m.ItemBase = m.ItemBase.clone()
	return s.put(address, folder, Item{Message: &m})
}

func (s *Server) put(address, folderRef string, it Item) (string, error) {
	mb, err := s.lockedMailbox(address)
	if err != nil {
		return "", err
	}
	defer mb.mu.Unlock()
	f, err := mb.findFolder(folderRef)
	if err != nil {
		return "", err
	}
	if !f.holds(it.kind()) {
		return "", fmt.Errorf("%w: a %s can't be stored in folder %q (%s)", ErrInvalidItem, it.kind().element(), f.displayName, f.class)
	}
	now := s.now()
	mb.fillOccurrenceIDs(&it)
	if e := mb.normalize(&it, now, false); e != nil {
		return "", fmt.Errorf("%w: %s", ErrInvalidItem, e.Error())
	}
	return mb.insert(f, it, now).ItemID, nil
}

// fillOccurrenceIDs gives modified occurrences without an id one, as Exchange would.
func (m *mailbox) fillOccurrenceIDs(it *Item) {
	if it.CalendarItem == nil {
		return
	}
	for i := range it.CalendarItem.ModifiedOccurrences {
		if it.CalendarItem.ModifiedOccurrences[i].ItemID == "" {
			m.nextObj++
			it.CalendarItem.ModifiedOccurrences[i].ItemID = encodeID(m.guid, objItem, m.nextObj)
		}
	}
}

// UpdateItem changes an item as its owner would: mutate receives a copy of the item and may
// change its content; the id, change key and folder cannot be changed this way (use MoveItem).
// The item gets a new change key and the change is logged for SyncFolderItems.
func (s *Server) UpdateItem(address, itemID string, mutate func(*Item)) error {
	mb, err := s.lockedMailbox(address)
	if err != nil {
		return err
	}
	defer mb.mu.Unlock()
	si, ok := mb.items[itemID]
	if !ok {
		return fmt.Errorf("%w: %s in %s", ErrItemNotFound, itemID, address)
	}
	work := si.Item.Clone()
	mutate(&work)
	if work.kind() != si.kind() || work.Base() == nil {
		return fmt.Errorf("%w: an update can't change the item's kind", ErrInvalidItem)
	}
	work.ItemID, work.ChangeKey, work.FolderID = si.ItemID, si.ChangeKey, si.FolderID
	work.Created = si.Created
	now := s.now()
	mb.fillOccurrenceIDs(&work)
	if e := mb.normalize(&work, now, false); e != nil {
		return fmt.Errorf("%w: %s", ErrInvalidItem, e.Error())
	}
	// Marking a message read or unread and nothing else is a ReadFlagChange in SyncFolderItems.
	readFlagOnly := false
	if si.Message != nil && work.Message != nil && si.Message.IsRead != work.Message.IsRead {
		probe := *work.Message
		probe.IsRead = si.Message.IsRead
		readFlagOnly = reflect.DeepEqual(probe, *si.Message)
	}
	si.Item = work
	mb.touch(si, now, readFlagOnly)
	return nil
}

// DeleteItem deletes an item as Outlook does: it moves to Deleted Items, or is removed for good
// when it already is there.
func (s *Server) DeleteItem(address, itemID string) error {
	mb, err := s.lockedMailbox(address)
	if err != nil {
		return err
	}
	defer mb.mu.Unlock()
	si, ok := mb.items[itemID]
	if !ok {
		return fmt.Errorf("%w: %s in %s", ErrItemNotFound, itemID, address)
	}
	deleted := mb.dist["deleteditems"]
	if si.folder == deleted {
		mb.remove(si)
		return nil
	}
	mb.move(si, deleted, s.now())
	return nil
}

// MoveItem moves an item to another folder (a distinguished name, folder id or display name).
// As in Exchange, the item gets a new id, which Items on the target folder shows.
func (s *Server) MoveItem(address, itemID, toFolder string) error {
	mb, err := s.lockedMailbox(address)
	if err != nil {
		return err
	}
	defer mb.mu.Unlock()
	si, ok := mb.items[itemID]
	if !ok {
		return fmt.Errorf("%w: %s in %s", ErrItemNotFound, itemID, address)
	}
	f, err := mb.findFolder(toFolder)
	if err != nil {
		return err
	}
	if f == si.folder {
		return nil
	}
	mb.move(si, f, s.now())
	return nil
}

// Items returns copies of the items in folder (a distinguished name, folder id or display
// name), oldest first; nil when the mailbox or the folder does not exist.
func (s *Server) Items(address, folder string) []Item {
	mb, err := s.lockedMailbox(address)
	if err != nil {
		return nil
	}
	defer mb.mu.Unlock()
	f, err := mb.findFolder(folder)
	if err != nil {
		return nil
	}
	out := make([]Item, 0, len(f.items))
	for _, si := range f.sortedItems() {
		out = append(out, si.Item.Clone())
	}
	return out
}

// FolderID returns the id of a folder (a distinguished name or display name), for tests that
// build requests by hand.
func (s *Server) FolderID(address, folder string) (string, error) {
	mb, err := s.lockedMailbox(address)
	if err != nil {
		return "", err
	}
	defer mb.mu.Unlock()
	f, err := mb.findFolder(folder)
	if err != nil {
		return "", err
	}
	return f.id, nil
}

// CreateFolder creates a folder under parent (a distinguished name, folder id or display name)
// as the user would in Outlook, and returns its id. class defaults to the parent's class.
func (s *Server) CreateFolder(address, parent, name, class string) (string, error) {
	mb, err := s.lockedMailbox(address)
	if err != nil {
		return "", err
	}
	defer mb.mu.Unlock()
	p, err := mb.findFolder(parent)
	if err != nil {
		return "", err
	}
	if p.childByName(name) != nil {
		return "", fmt.Errorf("ewssim: folder %q already exists under %q", name, p.displayName)
	}
	if class == "" {
		class = p.class
	}
	return mb.newFolder(p, name, class, "").id, nil
}
