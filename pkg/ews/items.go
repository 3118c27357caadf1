package ews

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Batch sizes. EWS sets no limit on the items of one GetItem, CreateItem, UpdateItem or
// DeleteItem (NonEmptyArrayOf... types are unbounded), only on what a request may cost: its size
// (Exchange's maxRequestLength; the simulator takes 16 MiB), the size of the answer (the client
// reads at most Config.MaxResponseBytes) and the time and throttling budget it uses. So each
// operation takes as many items as its callers ever have at once, within those:
//
//   - GetItem reads the items of one SyncFolderItems page (MaxSyncChanges) in one request. A
//     read answer is the large one (a contact's notes may hold 32 KB, an event's body more), so
//     an answer over MaxResponseBytes is asked for again in halves.
//   - CreateItem, UpdateItem and DeleteItem carry one write batch of the reconciler in one
//     request: at most 200 commands and 512 KiB of them, a request of a few megabytes at most.
//   - FindItem looks sync keys up in MaxBatch-key chunks: the keys make one restriction (an Or
//     of IsEqualTo), which Exchange evaluates as a search and limits in complexity. Only creates
//     that may repeat an earlier attempt are looked up.
//
// When Exchange stops a batch partway (throttling), the items it did not process come back with
// ErrorBatchProcessingStopped and fail alone, to be tried again.
const (
	// MaxBatch is the most sync keys of one FindItem lookup.
	MaxBatch = 100
	// MaxGetBatch is the most items of one GetItem request.
	MaxGetBatch = MaxSyncChanges
	// MaxWriteBatch is the most items of one CreateItem, UpdateItem or DeleteItem request.
	MaxWriteBatch = 200
)

// MaxSyncChanges is the most changes one SyncFolderItems call may ask for (the schema's limit,
// MaxSyncChangesReturnedType: 1 to 512).
const MaxSyncChanges = 512

// ItemID identifies an item and, with ChangeKey, one version of it.
type ItemID struct {
	ID        string
	ChangeKey string
}

func (id ItemID) write(parent *etree.Element, withChangeKey bool) {
	e := add(parent, "t:ItemId")
	e.CreateAttr("Id", id.ID)
	if withChangeKey && id.ChangeKey != "" {
		e.CreateAttr("ChangeKey", id.ChangeKey)
	}
}

func parseItemID(e *etree.Element) (ItemID, bool) {
	id := child(e, nsTypes, "ItemId")
	if id == nil || id.SelectAttrValue("Id", "") == "" {
		return ItemID{}, false
	}
	return ItemID{ID: id.SelectAttrValue("Id", ""), ChangeKey: id.SelectAttrValue("ChangeKey", "")}, true
}

// Item is an item as read from Exchange.
type Item struct {
	ID ItemID
	// ParentFolderID is the folder holding the item, when read.
	ParentFolderID string
	// Class is the item class, e.g. IPM.Contact, when read.
	Class string
	// Kind is the record kind of contacts and calendar items; unspecified for anything else
	// (distribution lists, messages), which Tandem does not sync.
	Kind tandemv1.RecordKind
	// SyncKey is Tandem's sync key, empty for items Tandem never tagged.
	SyncKey string
	// Created is DateTimeCreated, when read.
	Created time.Time
	// Record is the canonical record of contacts and calendar items, nil otherwise.
	Record *tandemv1.Record
}

// parseItem maps an item element (t:Contact, t:CalendarItem, ...) to an Item.
func parseItem(e *etree.Element) (*Item, error) {
	id, ok := parseItemID(e)
	if !ok {
		return nil, malformed("%s without an ItemId", e.Tag)
	}
	it := &Item{ID: id, Class: childText(e, nsTypes, "ItemClass"), SyncKey: syncKeyOf(e)}
	if p := child(e, nsTypes, "ParentFolderId"); p != nil {
		it.ParentFolderID = p.SelectAttrValue("Id", "")
	}
	if c := childText(e, nsTypes, "DateTimeCreated"); c != "" {
		it.Created, _ = parseDateTime(c)
	}
	rec := &tandemv1.Record{Id: id.ID, Version: id.ChangeKey, SyncKey: it.SyncKey}
	if lm := childText(e, nsTypes, "LastModifiedTime"); lm != "" {
		if t, err := parseDateTime(lm); err == nil {
			rec.ModifiedAt = timestamp(t)
		}
	}
	switch {
	case is(e, nsTypes, "Contact"):
		it.Kind = tandemv1.RecordKind_RECORD_KIND_CONTACT
		rec.Body = &tandemv1.Record_Contact{Contact: contactFromXML(e)}
		it.Record = rec
	case is(e, nsTypes, "CalendarItem"):
		it.Kind = tandemv1.RecordKind_RECORD_KIND_EVENT
		rec.Body = &tandemv1.Record_Event{Event: eventFromXML(e)}
		it.Record = rec
	}
	return it, nil
}

// ItemResult is the outcome of one item of a batch operation.
type ItemResult struct {
	// Item is what Exchange returned: the whole item for GetItem, only its id for writes.
	Item *Item
	// Err is the item's classified error (*syncerr.Error), nil on success.
	Err error
}

func itemError(op string, id string, re *ResponseError) error {
	cause := fmt.Errorf("%s item %s: %w", op, id, re)
	se := classifyResponse(re, cause, true)
	se.RecordID = id
	return se
}

// ChangeKind is the kind of a SyncFolderItems change.
type ChangeKind int

// Change kinds.
const (
	ChangeCreate ChangeKind = iota + 1
	ChangeUpdate
	ChangeDelete
	ChangeReadFlag
)

// SyncChange is one change SyncFolderItems reported.
type SyncChange struct {
	Kind ChangeKind
	ID   ItemID
	// ItemElement is the item's element name for creates and updates ("Contact", "CalendarItem",
	// "DistributionList", ...), empty for deletes.
	ItemElement string
	// ItemClass is the item class, when reported.
	ItemClass string
}

// SyncResult is one page of SyncFolderItems.
type SyncResult struct {
	SyncState string
	// Last is IncludesLastItemInRange: the folder has no further changes after this page.
	Last    bool
	Changes []SyncChange
}

// SyncFolderItems reads up to maxChanges changes of folder after syncState (empty: from the
// beginning, listing every item as a create).
func (cl *Client) SyncFolderItems(ctx context.Context, t Target, folder FolderID, syncState string, maxChanges int) (*SyncResult, error) {
	if maxChanges <= 0 || maxChanges > MaxSyncChanges {
		maxChanges = MaxSyncChanges
	}
	body := newOp("SyncFolderItems")
	itemShape(body, false, []string{"item:ItemClass"}, false)
	folder.write(add(body, "m:SyncFolderId"))
	if syncState != "" {
		addText(body, "m:SyncState", syncState)
	}
	addText(body, "m:MaxChangesReturned", strconv.Itoa(maxChanges))
	env, err := cl.do(ctx, call{op: "SyncFolderItems", target: t, body: body, idempotent: true})
	if err != nil {
		return nil, err
	}
	res, err := parseSyncFolderItems(env)
	if err != nil {
		return nil, classify(fmt.Errorf("SyncFolderItems %s for %s: %w", folder, t.Address, err))
	}
	return res, nil
}

func parseSyncFolderItems(env *envelope) (*SyncResult, error) {
	el, err := single(env, "SyncFolderItems")
	if err != nil {
		return nil, err
	}
	res := &SyncResult{
		SyncState: childText(el, nsMessages, "SyncState"),
		Last:      childText(el, nsMessages, "IncludesLastItemInRange") == "true",
	}
	if res.SyncState == "" {
		return nil, malformed("SyncFolderItems response without a SyncState")
	}
	for _, ch := range child(el, nsMessages, "Changes").NotNil().ChildElements() {
		var sc SyncChange
		switch {
		case is(ch, nsTypes, "Create"):
			sc.Kind = ChangeCreate
		case is(ch, nsTypes, "Update"):
			sc.Kind = ChangeUpdate
		case is(ch, nsTypes, "Delete"):
			sc.Kind = ChangeDelete
		case is(ch, nsTypes, "ReadFlagChange"):
			sc.Kind = ChangeReadFlag
		default:
			return nil, malformed("unknown SyncFolderItems change %s", ch.Tag)
		}
		holder := ch
		if sc.Kind == ChangeCreate || sc.Kind == ChangeUpdate {
			holder = firstChild(ch)
			if holder == nil {
				return nil, malformed("%s change without an item", ch.Tag)
			}
			sc.ItemElement = holder.Tag
			sc.ItemClass = childText(holder, nsTypes, "ItemClass")
		}
		id, ok := parseItemID(holder)
		if !ok {
			return nil, malformed("%s change without an ItemId", ch.Tag)
		}
		sc.ID = id
		res.Changes = append(res.Changes, sc)
	}
	return res, nil
}

// GetItems reads items of kind with every property Tandem maps; one result per id, in order.
func (cl *Client) GetItems(ctx context.Context, t Target, kind tandemv1.RecordKind, ids []ItemID) ([]ItemResult, error) {
	props := contactProperties
	if kind == tandemv1.RecordKind_RECORD_KIND_EVENT {
		props = eventProperties
	}
	out := make([]ItemResult, 0, len(ids))
	for chunk := range slices.Chunk(ids, MaxGetBatch) {
		res, err := cl.getItems(ctx, t, props, chunk)
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
	}
	return out, nil
}

// getItems reads ids in one GetItem, or, when the answer would be larger than the client
// takes, in halves.
func (cl *Client) getItems(ctx context.Context, t Target, props []string, ids []ItemID) ([]ItemResult, error) {
	body := newOp("GetItem")
	itemShape(body, true, props, true)
	list := add(body, "m:ItemIds")
	for _, id := range ids {
		id.write(list, false)
	}
	env, err := cl.do(ctx, call{op: "GetItem", target: t, body: body, idempotent: true})
	if err != nil {
		var se *syncerr.Error
		if len(ids) > 1 && errors.As(err, &se) && se.Code == syncerr.ExchangeResponseTooLarge {
			half := len(ids) / 2
			first, err := cl.getItems(ctx, t, props, ids[:half])
			if err != nil {
				return nil, err
			}
			rest, err := cl.getItems(ctx, t, props, ids[half:])
			if err != nil {
				return nil, err
			}
			return append(first, rest...), nil
		}
		return nil, err
	}
	res, err := parseItemMessages(env, "GetItem", len(ids), func(i int) string { return ids[i].ID })
	if err != nil {
		return nil, classify(fmt.Errorf("GetItem for %s: %w", t.Address, err))
	}
	return res, nil
}

// parseItemMessages reads a batch answer with one response message per requested item, each
// holding the item in m:Items (GetItem, CreateItem, UpdateItem).
func parseItemMessages(env *envelope, op string, n int, idOf func(int) string) ([]ItemResult, error) {
	msgs, err := responseMessages(env, op)
	if err != nil {
		return nil, err
	}
	if len(msgs) != n {
		return nil, malformed("%sResponse with %d messages for %d items", op, len(msgs), n)
	}
	out := make([]ItemResult, n)
	for i, m := range msgs {
		if m.err != nil {
			out[i].Err = itemError(op, idOf(i), m.err)
			continue
		}
		items := child(m.el, nsMessages, "Items")
		first := firstChild(items)
		if first == nil {
			if op == "UpdateItem" {
				// An update that changed nothing may come back without the item.
				continue
			}
			return nil, malformed("%sResponseMessage without an item", op)
		}
		it, err := parseItem(first)
		if err != nil {
			return nil, err
		}
		out[i].Item = it
	}
	return out, nil
}

// FindItemsBySyncKey finds the items of folders that carry one of keys, returning one list per
// folder in the order of folders. It sends one FindItem per MaxBatch keys, restricted on the
// sync key property (an Or of IsEqualTo) and searching every folder at once, so that a batch
// of creates costs one lookup whatever the folders. EWS answers such a FindItem with one
// response message per ParentFolderIds entry, in request order, which is what tells the
// folders' items apart; a folder whose matches overflow the page is read on alone.
func (cl *Client) FindItemsBySyncKey(ctx context.Context, t Target, folders []FolderID, keys []string) ([][]*Item, error) {
	out := make([][]*Item, len(folders))
	if len(folders) == 0 {
		return out, nil
	}
	for chunk := range slices.Chunk(keys, MaxBatch) {
		pages, err := cl.findBySyncKey(ctx, t, folders, chunk, 0)
		if err != nil {
			return nil, err
		}
		for i, page := range pages {
			out[i] = append(out[i], page.items...)
			for offset := 0; !page.last && len(page.items) > 0 && page.next > offset; {
				offset = page.next
				more, err := cl.findBySyncKey(ctx, t, folders[i:i+1], chunk, offset)
				if err != nil {
					return nil, err
				}
				page = more[0]
				out[i] = append(out[i], page.items...)
			}
		}
	}
	return out, nil
}

// findBySyncKey reads one page, from offset, of the items of each folder that carry one of keys.
func (cl *Client) findBySyncKey(ctx context.Context, t Target, folders []FolderID, keys []string, offset int) ([]findItemPage, error) {
	body := newOp("FindItem")
	body.CreateAttr("Traversal", "Shallow")
	itemShape(body, false, []string{"item:ItemClass", "item:DateTimeCreated"}, true)
	view := add(body, "m:IndexedPageItemView")
	view.CreateAttr("MaxEntriesReturned", strconv.Itoa(max(len(keys), 10)))
	view.CreateAttr("Offset", strconv.Itoa(offset))
	view.CreateAttr("BasePoint", "Beginning")
	restriction := add(body, "m:Restriction")
	parent := restriction
	if len(keys) > 1 {
		parent = add(restriction, "t:Or")
	}
	for _, k := range keys {
		isEqualTo(parent, syncKeyURI, k)
	}
	ids := add(body, "m:ParentFolderIds")
	names := make([]string, len(folders))
	for i, f := range folders {
		f.write(ids)
		names[i] = f.String()
	}
	env, err := cl.do(ctx, call{op: "FindItem", target: t, body: body, idempotent: true})
	if err != nil {
		return nil, err
	}
	pages, err := parseFindItems(env, len(folders))
	if err != nil {
		return nil, classify(fmt.Errorf("FindItem in %s for %s: %w", strings.Join(names, ", "), t.Address, err))
	}
	return pages, nil
}

type findItemPage struct {
	items []*Item
	last  bool
	next  int
}

// parseFindItems reads a FindItem answer for n folders: one response message, and so one page,
// per folder in request order. A folder's error fails the whole answer.
func parseFindItems(env *envelope, n int) ([]findItemPage, error) {
	msgs, err := responseMessages(env, "FindItem")
	if err != nil {
		return nil, err
	}
	if len(msgs) != n {
		return nil, malformed("FindItemResponse with %d response messages for %d folders", len(msgs), n)
	}
	pages := make([]findItemPage, n)
	for i, m := range msgs {
		if m.err != nil {
			return nil, m.err
		}
		if pages[i], err = parseFindItemMessage(m.el); err != nil {
			return nil, err
		}
	}
	return pages, nil
}

func parseFindItemMessage(el *etree.Element) (findItemPage, error) {
	root := child(el, nsMessages, "RootFolder")
	if root == nil {
		return findItemPage{}, malformed("FindItemResponseMessage without RootFolder")
	}
	page := findItemPage{last: root.SelectAttrValue("IncludesLastItemInRange", "true") == "true"}
	page.next, _ = strconv.Atoi(root.SelectAttrValue("IndexedPagingOffset", "0"))
	for _, ie := range child(root, nsTypes, "Items").NotNil().ChildElements() {
		it, err := parseItem(ie)
		if err != nil {
			return findItemPage{}, err
		}
		page.items = append(page.items, it)
	}
	return page, nil
}

// CreateItems creates records in folder, each tagged with its sync key; one result per record,
// in order, carrying the new item's id. Records that cannot be mapped fail alone and are not
// sent. Calendar items are created without sending meeting invitations.
//
// CreateItem is never repeated after an ambiguous failure: the caller looks up the sync keys
// and creates only what is missing.
func (cl *Client) CreateItems(ctx context.Context, t Target, folder FolderID, records []*tandemv1.Record) ([]ItemResult, error) {
	out := make([]ItemResult, len(records))
	type pending struct {
		index int
		el    *etree.Element
	}
	var todo []pending
	events := false
	for i, r := range records {
		holder := etree.NewElement("holder")
		var err error
		switch body := r.GetBody().(type) {
		case *tandemv1.Record_Contact:
			contactToXML(holder, body.Contact, r.GetSyncKey())
		case *tandemv1.Record_Event:
			events = true
			err = eventToXML(holder, body.Event, r.GetSyncKey())
		default:
			err = &syncerr.Error{Code: syncerr.SyncMalformedRecord, Detail: "record has no contact or event content"}
		}
		if err != nil {
			out[i].Err = recordError(err, r.GetSyncKey())
			continue
		}
		todo = append(todo, pending{index: i, el: firstChild(holder)})
	}
	for chunk := range slices.Chunk(todo, MaxWriteBatch) {
		body := newOp("CreateItem")
		if events {
			body.CreateAttr("SendMeetingInvitations", "SendToNone")
		}
		folder.write(add(body, "m:SavedItemFolderId"))
		list := add(body, "m:Items")
		for _, p := range chunk {
			list.AddChild(p.el)
		}
		env, err := cl.do(ctx, call{op: "CreateItem", target: t, body: body})
		if err != nil {
			return nil, err
		}
		res, err := parseItemMessages(env, "CreateItem", len(chunk), func(i int) string { return records[chunk[i].index].GetSyncKey() })
		if err != nil {
			return nil, classify(fmt.Errorf("CreateItem for %s: %w", t.Address, err))
		}
		for i, r := range res {
			out[chunk[i].index] = r
		}
	}
	return out, nil
}

func recordError(err error, id string) error {
	se := classify(err)
	if se.RecordID == "" {
		se.RecordID = id
	}
	return se
}

// ItemUpdate is one item to update.
type ItemUpdate struct {
	// ID is the item; its ChangeKey, when set, makes the update fail with a conflict if the
	// item changed since that version.
	ID ItemID
	// Record holds the new content.
	Record *tandemv1.Record
	// Fields are the canonical fields to write; empty means every field Exchange holds, and
	// record.SyncKeyField alone means none but the sync key.
	Fields []string
	// SyncKey, when set, tags the item with Tandem's sync key too, so that an item that began
	// in Exchange is found by its key from its first update by Tandem on.
	SyncKey string
}

// UpdateItems updates items, one result per update in order, carrying the item's new change
// key. Updates use ConflictResolution NeverOverwrite, so a stale change key fails with
// ErrorIrresolvableConflict, and never send meeting updates. An update with a sync key sets
// the sync key property first, in the same ItemChange.
func (cl *Client) UpdateItems(ctx context.Context, t Target, updates []ItemUpdate) ([]ItemResult, error) {
	out := make([]ItemResult, len(updates))
	type pending struct {
		index   int
		changes []fieldChange
	}
	var todo []pending
	events := false
	for i, u := range updates {
		var changes []fieldChange
		var err error
		itemTag := "t:Contact"
		// An update listing only the sync key sets the key and nothing else (an empty list
		// would mean every field).
		keyOnly, fields := record.KeyOnly(u.Fields), record.ContentFields(u.Fields)
		switch body := u.Record.GetBody().(type) {
		case *tandemv1.Record_Contact:
			if !keyOnly {
				changes, err = contactChanges(body.Contact, fields)
			}
		case *tandemv1.Record_Event:
			events, itemTag = true, "t:CalendarItem"
			if !keyOnly {
				changes, err = eventChanges(body.Event, fields)
			}
		default:
			err = &syncerr.Error{Code: syncerr.SyncMalformedRecord, Detail: "record has no contact or event content"}
		}
		if err != nil {
			out[i].Err = recordError(err, u.ID.ID)
			continue
		}
		if u.SyncKey != "" {
			changes = append([]fieldChange{syncKeyField(itemTag, u.SyncKey)}, changes...)
		}
		if len(changes) == 0 {
			// Nothing Exchange holds is to change; the item stays as it is.
			out[i].Item = &Item{ID: u.ID}
			continue
		}
		todo = append(todo, pending{index: i, changes: changes})
	}
	for chunk := range slices.Chunk(todo, MaxWriteBatch) {
		body := newOp("UpdateItem")
		body.CreateAttr("ConflictResolution", "NeverOverwrite")
		if events {
			body.CreateAttr("SendMeetingInvitationsOrCancellations", "SendToNone")
		}
		list := add(body, "m:ItemChanges")
		for _, p := range chunk {
			ic := add(list, "t:ItemChange")
			updates[p.index].ID.write(ic, true)
			ups := add(ic, "t:Updates")
			for _, fc := range p.changes {
				fc.write(ups)
			}
		}
		// Repeating an update is safe: with a change key a replay after success fails as a
		// conflict instead of writing twice, and without one it writes the same values again.
		env, err := cl.do(ctx, call{op: "UpdateItem", target: t, body: body, idempotent: true})
		if err != nil {
			return nil, err
		}
		res, err := parseItemMessages(env, "UpdateItem", len(chunk), func(i int) string { return updates[chunk[i].index].ID.ID })
		if err != nil {
			return nil, classify(fmt.Errorf("UpdateItem for %s: %w", t.Address, err))
		}
		for i, r := range res {
			if r.Err == nil && r.Item == nil {
				r.Item = &Item{ID: updates[chunk[i].index].ID}
			}
			out[chunk[i].index] = r
		}
	}
	return out, nil
}

// DeleteItems moves items to the mailbox's Deleted Items folder, one error per id in order.
//
// Tandem deletes with MoveToDeletedItems rather than HardDelete: a delete that came from a
// mistake on the Salesforce side stays recoverable by the user in Outlook, and the folder's
// sync reports the item as gone all the same. Calendar deletes never send cancellations.
func (cl *Client) DeleteItems(ctx context.Context, t Target, ids []ItemID, calendar bool) ([]error, error) {
	out := make([]error, 0, len(ids))
	for chunk := range slices.Chunk(ids, MaxWriteBatch) {
		body := newOp("DeleteItem")
		body.CreateAttr("DeleteType", "MoveToDeletedItems")
		if calendar {
			body.CreateAttr("SendMeetingCancellations", "SendToNone")
		}
		list := add(body, "m:ItemIds")
		for _, id := range chunk {
			id.write(list, true)
		}
		// Repeating a delete is safe: a replay after success answers ErrorItemNotFound.
		env, err := cl.do(ctx, call{op: "DeleteItem", target: t, body: body, idempotent: true})
		if err != nil {
			return nil, err
		}
		msgs, err := responseMessages(env, "DeleteItem")
		if err == nil && len(msgs) != len(chunk) {
			err = malformed("DeleteItemResponse with %d messages for %d items", len(msgs), len(chunk))
		}
		if err != nil {
			return nil, classify(fmt.Errorf("DeleteItem for %s: %w", t.Address, err))
		}
		for i, m := range msgs {
			if m.err != nil {
				out = append(out, itemError("DeleteItem", chunk[i].ID, m.err))
				continue
			}
			out = append(out, nil)
		}
	}
	return out, nil
}
