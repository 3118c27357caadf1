package ewssim

import (
	"slices"

	"github.com/beevik/etree"
)

// itemIDs reads the children of an ItemIds element: ItemId elements, or the occurrence forms
// the simulator answers with an error.
type itemRef struct {
	id        string
	changeKey string
	err       *ewsError
}

func parseItemRef(e *etree.Element) (itemRef, *soapFault) {
	if e.NamespaceURI() != nsTypes {
		return itemRef{}, schemaFault("item id %s is in the wrong namespace", e.FullTag())
	}
	switch e.Tag {
	case "ItemId":
		id := e.SelectAttr("Id")
		if id == nil {
			return itemRef{}, schemaFault("ItemId has no Id attribute")
		}
		if id.Value == "" {
			return itemRef{err: &ewsError{code: "ErrorInvalidIdEmpty", text: "Id is empty."}}, nil
		}
		return itemRef{id: id.Value, changeKey: e.SelectAttrValue("ChangeKey", "")}, nil
	case "OccurrenceItemId", "RecurringMasterItemId", "RecurringMasterItemIdRanges":
		return itemRef{err: &ewsError{code: "ErrorInvalidOperation", text: "The simulator does not expand recurring series; use the master's ItemId."}}, nil
	}
	return itemRef{}, schemaFault("the element %s is not an item id", e.FullTag())
}

func parseItemRefs(e *etree.Element) ([]itemRef, *soapFault) {
	ks := e.ChildElements()
	if len(ks) == 0 {
		return nil, schemaFault("%s is empty", e.Tag)
	}
	refs := make([]itemRef, 0, len(ks))
	for _, k := range ks {
		r, f := parseItemRef(k)
		if f != nil {
			return nil, f
		}
		refs = append(refs, r)
	}
	return refs, nil
}

func (s *Server) opGetItem(call *ewsCall) (*etree.Document, *soapFault) {
	seq, f := sequence(call.req.op, nsMessages, []string{"ItemShape", "ItemIds"}, "ItemShape", "ItemIds")
	if f != nil {
		return nil, f
	}
	sh, f := parseItemShape(seq["ItemShape"])
	if f != nil {
		return nil, f
	}
	refs, f := parseItemRefs(seq["ItemIds"])
	if f != nil {
		return nil, f
	}
	mb := call.mb
	mb.mu.Lock()
	defer mb.mu.Unlock()
	w := newItemWriter(mb, sh, modeGet)
	resp := newResponse(s.version, "GetItem")
	for _, ref := range refs {
		err := firstErr(sh.pathErr, ref.err)
		var si *storedItem
		if err == nil {
			si, err = mb.lookupItem(ref.id)
		}
		items := resp.message(err).CreateElement("m:Items")
		if err == nil {
			w.write(items, si)
		}
	}
	return resp.doc, nil
}

func (s *Server) opFindItem(call *ewsCall) (*etree.Document, *soapFault) {
	op := call.req.op
	traversal := op.SelectAttrValue("Traversal", "")
	if !slices.Contains([]string{"Shallow", "SoftDeleted", "Associated"}, traversal) {
		return nil, enumFault(traversal, "ItemQueryTraversalType")
	}
	views := []string{"IndexedPageItemView", "FractionalPageItemView", "SeekToConditionPageItemView", "CalendarView", "ContactsView"}
	seq, f := sequence(op, nsMessages, slices.Concat([]string{"ItemShape"}, views,
		[]string{"GroupBy", "DistinguishedGroupBy", "Restriction", "SortOrder", "ParentFolderIds", "QueryString"}),
		"ItemShape", "ParentFolderIds")
	if f != nil {
		return nil, f
	}
	nViews := 0
	for _, v := range views {
		if seq[v] != nil {
			nViews++
		}
	}
	if nViews > 1 || (seq["GroupBy"] != nil && seq["DistinguishedGroupBy"] != nil) {
		return nil, schemaFault("FindItem takes at most one paging view and one grouping")
	}
	sh, f := parseItemShape(seq["ItemShape"])
	if f != nil {
		return nil, f
	}
	reqErr := sh.pathErr
	var view pageView
	if e := seq["IndexedPageItemView"]; e != nil {
		var err *ewsError
		if view, f, err = parseIndexedView(e); f != nil {
			return nil, f
		}
		reqErr = firstErr(reqErr, err)
	}
	for _, v := range []string{"FractionalPageItemView", "SeekToConditionPageItemView", "CalendarView", "ContactsView"} {
		if seq[v] != nil {
			reqErr = firstErr(reqErr, &ewsError{code: "ErrorInvalidRequest", text: "The simulator does not support " + v + "; use IndexedPageItemView."})
		}
	}
	for _, v := range []string{"GroupBy", "DistinguishedGroupBy", "QueryString"} {
		if seq[v] != nil {
			reqErr = firstErr(reqErr, &ewsError{code: "ErrorInvalidRequest", text: "The simulator does not support " + v + "."})
		}
	}
	var restr restriction
	if e := seq["Restriction"]; e != nil {
		var err *ewsError
		if restr, f, err = parseRestriction(e, false); f != nil {
			return nil, f
		}
		reqErr = firstErr(reqErr, err)
	}
	var order []sortKey
	if e := seq["SortOrder"]; e != nil {
		var err *ewsError
		if order, f, err = parseSortOrder(e); f != nil {
			return nil, f
		}
		reqErr = firstErr(reqErr, err)
	}
	parents := seq["ParentFolderIds"].ChildElements()
	if len(parents) == 0 {
		return nil, schemaFault("ParentFolderIds is empty")
	}

	mb := call.mb
	mb.mu.Lock()
	defer mb.mu.Unlock()
	w := newItemWriter(mb, sh, modeFind)
	reqErr = firstErr(reqErr, w.heavyRequest())
	resp := newResponse(s.version, "FindItem")
	for _, pe := range parents {
		fo, err, f := s.folderRef(call, pe)
		if f != nil {
			return nil, f
		}
		err = firstErr(reqErr, err)
		m := resp.message(err)
		if err != nil {
			continue
		}
		var found []*storedItem
		if traversal == "Shallow" {
			for _, si := range fo.sortedItems() {
				if restr == nil || restr.match(itemGetter(si, mb)) {
					found = append(found, si)
				}
			}
		}
		// Newest first unless the request sorts: what Exchange's default views show.
		slices.Reverse(found)
		sortItems(found, mb, order)
		start, end, next, last := view.window(len(found))
		root := m.CreateElement("m:RootFolder")
		setPagingAttrs(root, view, next, len(found), last)
		list := root.CreateElement("t:Items")
		for _, si := range found[start:end] {
			w.write(list, si)
		}
	}
	return resp.doc, nil
}

func itemGetter(si *storedItem, mb *mailbox) getter {
	return func(p propPath) ([]string, valueType, bool) { return pathValues(si, mb, p) }
}

type sortKey struct {
	path       propPath
	descending bool
}

func parseSortOrder(e *etree.Element) ([]sortKey, *soapFault, *ewsError) {
	ks, f := kids(e, nsTypes)
	if f != nil {
		return nil, f, nil
	}
	if len(ks) == 0 {
		return nil, schemaFault("SortOrder is empty"), nil
	}
	var out []sortKey
	var unsupported *ewsError
	for _, k := range ks {
		if k.Tag != "FieldOrder" {
			return nil, schemaFault("SortOrder may only contain FieldOrder elements"), nil
		}
		order := k.SelectAttrValue("Order", "")
		if order != "Ascending" && order != "Descending" {
			return nil, enumFault(order, "SortDirectionType"), nil
		}
		paths := k.ChildElements()
		if len(paths) != 1 {
			return nil, schemaFault("FieldOrder needs exactly one path"), nil
		}
		p, f, err := parsePath(paths[0])
		if f != nil {
			return nil, f, nil
		}
		if err == nil && p.kind == pathField && !knownItemURI(p.uri) {
			err = &ewsError{code: "ErrorUnsupportedPathForSortGroup", text: "The property " + p.uri + " can't be used for sorting."}
		}
		unsupported = firstErr(unsupported, err)
		out = append(out, sortKey{path: p, descending: order == "Descending"})
	}
	return out, nil, unsupported
}

// sortItems orders items by the sort keys; items without the property sort first ascending.
func sortItems(items []*storedItem, mb *mailbox, order []sortKey) {
	if len(order) == 0 {
		return
	}
	slices.SortStableFunc(items, func(a, b *storedItem) int {
		for _, k := range order {
			av, vt, aok := pathValues(a, mb, k.path)
			bv, _, bok := pathValues(b, mb, k.path)
			c := 0
			switch {
			case !aok && !bok:
			case !aok:
				c = -1
			case !bok:
				c = 1
			default:
				c = compareValues(av[0], bv[0], vt)
			}
			if k.descending {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
}

// defaultFolderFor is where CreateItem saves an item of kind k without SavedItemFolderId.
func defaultFolderFor(k itemKind) string {
	switch k {
	case kindContact:
		return "contacts"
	case kindCalendar:
		return "calendar"
	}
	return "drafts"
}

func (s *Server) opCreateItem(call *ewsCall) (*etree.Document, *soapFault) {
	op := call.req.op
	disposition := op.SelectAttrValue("MessageDisposition", "")
	if disposition != "" && !slices.Contains([]string{"SaveOnly", "SendOnly", "SendAndSaveCopy"}, disposition) {
		return nil, enumFault(disposition, "MessageDispositionType")
	}
	invitations := op.SelectAttrValue("SendMeetingInvitations", "")
	if invitations != "" && !slices.Contains([]string{"SendToNone", "SendOnlyToAll", "SendToAllAndSaveCopy"}, invitations) {
		return nil, enumFault(invitations, "CalendarItemCreateOrDeleteOperationType")
	}
	seq, f := sequence(op, nsMessages, []string{"SavedItemFolderId", "Items"}, "Items")
	if f != nil {
		return nil, f
	}
	var target *etree.Element
	if e := seq["SavedItemFolderId"]; e != nil {
		ks := e.ChildElements()
		if len(ks) != 1 {
			return nil, schemaFault("SavedItemFolderId must contain one folder id")
		}
		target = ks[0]
	}
	elems := seq["Items"].ChildElements()
	if len(elems) == 0 {
		return nil, schemaFault("Items is empty")
	}
	var items []*decodedItem
	for _, e := range elems {
		d, f := decodeItem(e, call.req.tz)
		if f != nil {
			return nil, f
		}
		items = append(items, d)
	}

	mb := call.mb
	mb.mu.Lock()
	defer mb.mu.Unlock()
	now := s.now()
	var saveIn *folder
	var folderErr *ewsError
	if target != nil {
		if saveIn, folderErr, f = s.folderRef(call, target); f != nil {
			return nil, f
		}
	}
	resp := newResponse(s.version, "CreateItem")
	for _, d := range items {
		err := firstErr(folderErr, d.err)
		it := d.item
		fo := saveIn
		if err == nil {
			k := it.kind()
			if fo == nil {
				fo = mb.dist[defaultFolderFor(k)]
			}
			err = checkCreate(k, fo, disposition, invitations)
		}
		if err == nil {
			err = mb.normalize(&it, now, true)
		}
		list := resp.message(err).CreateElement("m:Items")
		if err != nil {
			continue
		}
		si := mb.insert(fo, it, now)
		if it.CalendarItem != nil && it.CalendarItem.isMeeting() && invitations != "SendToNone" {
			s.counts.add("MeetingInvitationsSent")
		}
		writeIDOnly(list, si)
	}
	return resp.doc, nil
}

func checkCreate(k itemKind, fo *folder, disposition, invitations string) *ewsError {
	switch k {
	case kindContact:
		if !fo.holds(kindContact) {
			return &ewsError{code: "ErrorCannotCreateContactInNonContactFolder", text: "Cannot create a contact in a non-contact folder."}
		}
	case kindCalendar:
		if invitations == "" {
			return &ewsError{code: "ErrorSendMeetingInvitationsRequired", text: "SendMeetingInvitations attribute is required for calendar items."}
		}
		if !fo.holds(kindCalendar) {
			return &ewsError{code: "ErrorCannotCreateCalendarItemInNonCalendarFolder", text: "Cannot create a calendar item in a non-calendar folder."}
		}
	case kindMessage:
		switch disposition {
		case "":
			return &ewsError{code: "ErrorMessageDispositionRequired", text: "MessageDisposition attribute is required."}
		case "SendOnly", "SendAndSaveCopy":
			return &ewsError{code: "ErrorInvalidOperation", text: "The simulator does not send mail; use SaveOnly."}
		}
	}
	return nil
}

// writeIDOnly renders the item element with just its ItemId, as CreateItem and UpdateItem
// responses do.
func writeIDOnly(parent *etree.Element, si *storedItem) {
	e := parent.CreateElement("t:" + si.kind().element())
	idElement(e, "t:ItemId", si.ItemID, si.ChangeKey)
}

// itemChange is one parsed t:ItemChange.
type itemChange struct {
	ref     itemRef
	updates []fieldUpdate
}

type fieldUpdate struct {
	action  string // SetItemField, AppendToItemField or DeleteItemField
	path    propPath
	pathErr *ewsError
	carrier *decodedItem
}

func parseItemChange(e *etree.Element, call *ewsCall) (itemChange, *soapFault) {
	if e.NamespaceURI() != nsTypes || e.Tag != "ItemChange" {
		return itemChange{}, schemaFault("ItemChanges may only contain t:ItemChange elements")
	}
	ks, f := kids(e, nsTypes)
	if f != nil {
		return itemChange{}, f
	}
	if len(ks) < 2 || ks[1].Tag != "Updates" || (len(ks) == 3 && ks[2].Tag != "CalendarActivityData") || len(ks) > 3 {
		return itemChange{}, schemaFault("ItemChange must contain an item id and then Updates")
	}
	var ch itemChange
	if ch.ref, f = parseItemRef(ks[0]); f != nil {
		return ch, f
	}
	ups, f := kids(ks[1], nsTypes)
	if f != nil {
		return ch, f
	}
	if len(ups) == 0 {
		return ch, schemaFault("Updates is empty")
	}
	for _, u := range ups {
		switch u.Tag {
		case "SetItemField", "AppendToItemField", "DeleteItemField":
		default:
			return ch, schemaFault("the element %s is not an item change description", u.FullTag())
		}
		parts := u.ChildElements()
		want := 2
		if u.Tag == "DeleteItemField" {
			want = 1
		}
		if len(parts) != want {
			return ch, schemaFault("%s must contain a path%s", u.Tag, map[bool]string{true: " and an item", false: ""}[want == 2])
		}
		fu := fieldUpdate{action: u.Tag}
		fu.path, f, fu.pathErr = parsePath(parts[0])
		if f != nil {
			return ch, f
		}
		if want == 2 {
			if fu.carrier, f = decodeItem(parts[1], call.req.tz); f != nil {
				return ch, f
			}
		}
		ch.updates = append(ch.updates, fu)
	}
	return ch, nil
}

func (s *Server) opUpdateItem(call *ewsCall) (*etree.Document, *soapFault) {
	op := call.req.op
	conflict := op.SelectAttrValue("ConflictResolution", "")
	if !slices.Contains([]string{"NeverOverwrite", "AutoResolve", "AlwaysOverwrite"}, conflict) {
		return nil, enumFault(conflict, "ConflictResolutionType")
	}
	invitations := op.SelectAttrValue("SendMeetingInvitationsOrCancellations", "")
	if invitations != "" && !slices.Contains([]string{"SendToNone", "SendOnlyToAll", "SendOnlyToChanged", "SendToAllAndSaveCopy", "SendToChangedAndSaveCopy"}, invitations) {
		return nil, enumFault(invitations, "CalendarItemUpdateOperationType")
	}
	disposition := op.SelectAttrValue("MessageDisposition", "")
	if disposition != "" && !slices.Contains([]string{"SaveOnly", "SendOnly", "SendAndSaveCopy"}, disposition) {
		return nil, enumFault(disposition, "MessageDispositionType")
	}
	seq, f := sequence(op, nsMessages, []string{"SavedItemFolderId", "ItemChanges"}, "ItemChanges")
	if f != nil {
		return nil, f
	}
	var changes []itemChange
	ces := seq["ItemChanges"].ChildElements()
	if len(ces) == 0 {
		return nil, schemaFault("ItemChanges is empty")
	}
	for _, ce := range ces {
		ch, f := parseItemChange(ce, call)
		if f != nil {
			return nil, f
		}
		changes = append(changes, ch)
	}

	mb := call.mb
	mb.mu.Lock()
	defer mb.mu.Unlock()
	now := s.now()
	resp := newResponse(s.version, "UpdateItem")
	for _, ch := range changes {
		si, err := s.applyChange(mb, ch, conflict, invitations, disposition)
		m := resp.message(err)
		list := m.CreateElement("m:Items")
		if err != nil {
			continue
		}
		readOnly := !slices.ContainsFunc(ch.updates, func(u fieldUpdate) bool {
			return u.path.kind != pathField || u.path.uri != "message:IsRead"
		})
		mb.touch(si, now, readOnly)
		if si.CalendarItem != nil && si.CalendarItem.isMeeting() && invitations != "SendToNone" {
			s.counts.add("MeetingInvitationsSent")
		}
		writeIDOnly(list, si)
		m.CreateElement("m:ConflictResults").CreateElement("t:Count").SetText("0")
	}
	return resp.doc, nil
}

// applyChange carries out one ItemChange atomically: on any error the item is left as it was.
func (s *Server) applyChange(mb *mailbox, ch itemChange, conflict, invitations, disposition string) (*storedItem, *ewsError) {
	if ch.ref.err != nil {
		return nil, ch.ref.err
	}
	si, err := mb.lookupItem(ch.ref.id)
	if err != nil {
		return nil, err
	}
	if ch.ref.changeKey != "" && ch.ref.changeKey != si.ChangeKey && conflict != "AlwaysOverwrite" {
		return nil, &ewsError{code: "ErrorIrresolvableConflict", text: "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item."}
	}
	if si.CalendarItem != nil && invitations == "" {
		return nil, &ewsError{code: "ErrorSendMeetingInvitationsOrCancellationsRequired", text: "SendMeetingInvitationsOrCancellations attribute is required for calendar items."}
	}
	if si.Message != nil && (disposition == "SendOnly" || disposition == "SendAndSaveCopy") {
		return nil, &ewsError{code: "ErrorInvalidOperation", text: "The simulator does not send mail; use SaveOnly."}
	}
	work := si.Item.Clone()
	for _, u := range ch.updates {
		if u.pathErr != nil {
			return nil, u.pathErr
		}
		var err *ewsError
		switch u.action {
		case "SetItemField":
			err = applySet(&work, u.path, u.carrier)
		case "AppendToItemField":
			err = applyAppend(&work, u.path, u.carrier)
		default:
			err = applyDelete(&work, u.path)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := validateUpdated(&work); err != nil {
		return nil, err
	}
	si.Item = work
	return si, nil
}

// validateUpdated applies the checks Exchange makes when an updated item is saved.
func validateUpdated(it *Item) *ewsError {
	if c := it.CalendarItem; c != nil {
		if c.End.Before(c.Start) {
			return &ewsError{code: "ErrorCalendarEndDateIsEarlierThanStartDate", text: "EndDate is earlier than StartDate"}
		}
		if c.Recurrence != nil {
			return checkRecurrence(c.Recurrence)
		}
	}
	if c := it.Contact; c != nil {
		for i := range c.EmailAddresses {
			if c.EmailAddresses[i].Name == "" {
				c.EmailAddresses[i].Name = c.EmailAddresses[i].Address
			}
		}
	}
	return nil
}

func (s *Server) opDeleteItem(call *ewsCall) (*etree.Document, *soapFault) {
	op := call.req.op
	deleteType := op.SelectAttrValue("DeleteType", "")
	if !slices.Contains([]string{"HardDelete", "SoftDelete", "MoveToDeletedItems"}, deleteType) {
		return nil, enumFault(deleteType, "DisposalType")
	}
	cancellations := op.SelectAttrValue("SendMeetingCancellations", "")
	if cancellations != "" && !slices.Contains([]string{"SendToNone", "SendOnlyToAll", "SendToAllAndSaveCopy"}, cancellations) {
		return nil, enumFault(cancellations, "CalendarItemCreateOrDeleteOperationType")
	}
	if a := op.SelectAttrValue("AffectedTaskOccurrences", ""); a != "" && a != "AllOccurrences" && a != "SpecifiedOccurrenceOnly" {
		return nil, enumFault(a, "AffectedTaskOccurrencesType")
	}
	seq, f := sequence(op, nsMessages, []string{"ItemIds"}, "ItemIds")
	if f != nil {
		return nil, f
	}
	refs, f := parseItemRefs(seq["ItemIds"])
	if f != nil {
		return nil, f
	}
	mb := call.mb
	mb.mu.Lock()
	defer mb.mu.Unlock()
	now := s.now()
	resp := newResponse(s.version, "DeleteItem")
	for _, ref := range refs {
		err := ref.err
		var si *storedItem
		if err == nil {
			si, err = mb.lookupItem(ref.id)
		}
		if err == nil && si.CalendarItem != nil && cancellations == "" {
			err = &ewsError{code: "ErrorSendMeetingCancellationsRequired", text: "SendMeetingCancellations attribute is required for calendar items."}
		}
		resp.message(err)
		if err != nil {
			continue
		}
		if si.CalendarItem != nil && si.CalendarItem.isMeeting() && cancellations != "SendToNone" {
			s.counts.add("MeetingCancellationsSent")
		}
		deleted := mb.dist["deleteditems"]
		if deleteType == "MoveToDeletedItems" && si.folder != deleted {
			mb.move(si, deleted, now)
		} else {
			mb.remove(si)
		}
	}
	return resp.doc, nil
}
