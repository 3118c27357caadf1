package ewssim

import (
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

const maxSyncChanges = 512

// netChange is what a window of a folder's change log amounts to for one item, relative to what
// a client at the window's start knows.
type netChange struct {
	existedBefore bool
	exists        bool
	modified      bool
	readFlag      bool
}

// kind returns the change SyncFolderItems reports, or 0 for none. Like Exchange, a create and
// later updates in one window are one Create, and a create and a delete are nothing.
func (n *netChange) kind() changeOp {
	switch {
	case !n.existedBefore && n.exists:
		return opCreate
	case n.existedBefore && !n.exists:
		return opDelete
	case n.existedBefore && n.modified:
		return opUpdate
	case n.existedBefore && n.readFlag:
		return opReadFlag
	}
	return 0
}

func (n *netChange) apply(op changeOp) {
	switch op {
	case opCreate:
		n.exists = true
	case opDelete:
		n.exists = false
	case opUpdate:
		n.modified = true
	case opReadFlag:
		n.readFlag = true
	}
}

// syncWindow walks f's log from pos and returns the items with a net change (in order of first
// appearance), their changes, and the position reached: it stops before the entry that would
// make more than limit items change.
func syncWindow(f *folder, pos, limit int, ignore map[string]bool) (order []string, nets map[string]*netChange, end int) {
	nets = map[string]*netChange{}
	count := 0
	end = pos
	for ; end < len(f.log); end++ {
		e := f.log[end]
		if ignore[e.itemID] {
			continue
		}
		n, seen := nets[e.itemID]
		if !seen {
			if count >= limit {
				break
			}
			n = &netChange{existedBefore: e.op != opCreate}
			n.exists = n.existedBefore
			nets[e.itemID] = n
			order = append(order, e.itemID)
		}
		before := n.kind() != 0
		n.apply(e.op)
		switch after := n.kind() != 0; {
		case after && !before:
			count++
		case before && !after:
			count--
		}
	}
	return order, nets, end
}

func (s *Server) opSyncFolderItems(call *ewsCall) (*etree.Document, *soapFault) {
	seq, f := sequence(call.req.op, nsMessages, []string{"ItemShape", "SyncFolderId", "SyncState", "Ignore", "MaxChangesReturned", "SyncScope"},
		"ItemShape", "SyncFolderId", "MaxChangesReturned")
	if f != nil {
		return nil, f
	}
	sh, f := parseItemShape(seq["ItemShape"])
	if f != nil {
		return nil, f
	}
	ids := seq["SyncFolderId"].ChildElements()
	if len(ids) != 1 {
		return nil, schemaFault("SyncFolderId must contain one folder id")
	}
	maxChanges, err := strconv.Atoi(strings.TrimSpace(seq["MaxChangesReturned"].Text()))
	if err != nil || maxChanges < 1 || maxChanges > maxSyncChanges {
		// MaxSyncChangesReturnedType is xs:int restricted to 1..512: Exchange rejects anything
		// else while validating the request against the schema.
		return nil, schemaFault("the value %q of MaxChangesReturned is not valid (1..%d)", seq["MaxChangesReturned"].Text(), maxSyncChanges)
	}
	if sc := seq["SyncScope"]; sc != nil && sc.Text() != "NormalItems" && sc.Text() != "NormalAndAssociatedItems" {
		return nil, enumFault(sc.Text(), "SyncFolderItemsScopeType")
	}
	state := ""
	if st := seq["SyncState"]; st != nil {
		state = strings.TrimSpace(st.Text())
	}
	ignore := map[string]bool{}
	if ig := seq["Ignore"]; ig != nil {
		ks, f := kids(ig, nsTypes)
		if f != nil {
			return nil, f
		}
		for _, k := range ks {
			if k.Tag != "ItemId" || k.SelectAttr("Id") == nil {
				return nil, schemaFault("Ignore may only contain ItemId elements with an Id")
			}
			ignore[k.SelectAttrValue("Id", "")] = true
		}
	}

	mb := call.mb
	mb.mu.Lock()
	defer mb.mu.Unlock()
	resp := newResponse(s.version, "SyncFolderItems")
	fo, ferr, f := s.folderRef(call, ids[0])
	if f != nil {
		return nil, f
	}
	if ferr = firstErr(ferr, sh.pathErr); ferr != nil {
		resp.message(ferr)
		return resp.doc, nil
	}
	pos := 0
	if state != "" {
		st, err := decodeSyncState(s.stateKey, state)
		if err != nil || st.mailbox != mb.guid || st.folder != fo.num || st.pos > uint64(len(fo.log)) {
			resp.message(errInvalidSyncState())
			return resp.doc, nil
		}
		pos = int(st.pos)
	}
	order, nets, end := syncWindow(fo, pos, maxChanges, ignore)

	m := resp.message(nil)
	m.CreateElement("m:SyncState").SetText(encodeSyncState(s.stateKey, syncState{mailbox: mb.guid, folder: fo.num, pos: uint64(end)}))
	m.CreateElement("m:IncludesLastItemInRange").SetText(formatBool(end == len(fo.log)))
	changes := m.CreateElement("m:Changes")
	w := newItemWriter(mb, sh, modeSync)
	for _, id := range order {
		kind := nets[id].kind()
		si, present := fo.items[id]
		switch kind {
		case opCreate, opUpdate:
			// An item the log shows as existing may have been deleted or moved after the
			// window; its Delete comes with the next window, so say nothing now.
			if !present {
				continue
			}
			name := "t:Create"
			if kind == opUpdate {
				name = "t:Update"
			}
			w.write(changes.CreateElement(name), si)
		case opDelete:
			changes.CreateElement("t:Delete").CreateElement("t:ItemId").CreateAttr("Id", id)
		case opReadFlag:
			if !present {
				continue
			}
			rf := changes.CreateElement("t:ReadFlagChange")
			idElement(rf, "t:ItemId", si.ItemID, si.ChangeKey)
			rf.CreateElement("t:IsRead").SetText(formatBool(si.Message != nil && si.Message.IsRead))
		}
	}
	if len(changes.ChildElements()) == 0 {
		// A read that found nothing: a benchmark tells the polls of an idle mailbox apart.
		s.counts.add(EmptySyncCount)
	}
	return resp.doc, nil
}
