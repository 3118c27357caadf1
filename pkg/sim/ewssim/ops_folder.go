package ewssim

import (
	"slices"
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

// folderRef resolves a t:FolderId or t:DistinguishedFolderId. The caller holds call.mb.mu.
func (s *Server) folderRef(call *ewsCall, e *etree.Element) (*folder, *ewsError, *soapFault) {
	if e.NamespaceURI() != nsTypes {
		return nil, nil, schemaFault("folder id %s is in the wrong namespace", e.FullTag())
	}
	mb := call.mb
	switch e.Tag {
	case "FolderId":
		id := e.SelectAttr("Id")
		if id == nil {
			return nil, nil, schemaFault("FolderId has no Id attribute")
		}
		f, err := mb.lookupFolder(id.Value)
		return f, err, nil
	case "DistinguishedFolderId":
		name := e.SelectAttrValue("Id", "")
		if !slices.Contains(distinguishedFolderNames, name) {
			return nil, nil, enumFault(name, "DistinguishedFolderIdNameType")
		}
		owner, f := sequence(e, nsTypes, []string{"Mailbox"})
		if f != nil {
			return nil, nil, f
		}
		if m := owner["Mailbox"]; m != nil {
			_, addr, f := decodeMailbox(m)
			if f != nil {
				return nil, nil, f
			}
			if !strings.EqualFold(addr, mb.address) {
				if _, ok := s.mailbox(addr); !ok {
					return nil, &ewsError{code: "ErrorNonExistentMailbox", text: "The SMTP address has no mailbox associated with it.", values: [][2]string{{"SmtpAddress", addr}}}, nil
				}
				return nil, &ewsError{code: "ErrorAccessDenied", text: "Access is denied. Check credentials and try again."}, nil
			}
		}
		fo, ok := mb.dist[name]
		if !ok {
			return nil, errFolderNotFound(), nil
		}
		return fo, nil, nil
	case "AddressListId":
		return nil, &ewsError{code: "ErrorInvalidOperation", text: "The simulator has no address lists."}, nil
	}
	return nil, nil, schemaFault("the element %s is not a folder id", e.FullTag())
}

// folderWriter renders folders for a FolderShape.
type folderWriter struct {
	sh *shape
}

func (fw folderWriter) wants(name string, f *folder) bool {
	switch fw.sh.base {
	case "Default":
		if slices.Contains([]string{"DisplayName", "TotalCount", "ChildFolderCount"}, name) ||
			(name == "UnreadCount" && f.elementName() != "ContactsFolder" && f.elementName() != "CalendarFolder") {
			return true
		}
	case "AllProperties":
		if slices.Contains([]string{"ParentFolderId", "FolderClass", "DisplayName", "TotalCount", "ChildFolderCount", "EffectiveRights", "UnreadCount"}, name) {
			return true
		}
	}
	for _, p := range fw.sh.paths {
		if p.kind == pathField && folderFieldURIs[p.uri] == name {
			return true
		}
	}
	return false
}

func (fw folderWriter) write(parent *etree.Element, f *folder) {
	el := f.elementName()
	e := parent.CreateElement("t:" + el)
	id := e.CreateElement("t:FolderId")
	id.CreateAttr("Id", f.id)
	id.CreateAttr("ChangeKey", f.changeKey)
	if fw.wants("ParentFolderId", f) && f.parent != nil {
		idElement(e, "t:ParentFolderId", f.parent.id, f.parent.changeKey)
	}
	if fw.wants("FolderClass", f) && f.class != "" {
		e.CreateElement("t:FolderClass").SetText(f.class)
	}
	if fw.wants("DisplayName", f) {
		e.CreateElement("t:DisplayName").SetText(f.displayName)
	}
	if fw.wants("TotalCount", f) {
		e.CreateElement("t:TotalCount").SetText(strconv.Itoa(len(f.items)))
	}
	if fw.wants("ChildFolderCount", f) {
		e.CreateElement("t:ChildFolderCount").SetText(strconv.Itoa(len(f.children)))
	}
	if fw.wants("EffectiveRights", f) {
		r := e.CreateElement("t:EffectiveRights")
		for _, n := range []string{"CreateAssociated", "CreateContents", "CreateHierarchy", "Delete", "Modify", "Read"} {
			r.CreateElement("t:" + n).SetText("true")
		}
	}
	if fw.wants("DistinguishedFolderId", f) && f.distinguished != "" {
		e.CreateElement("t:DistinguishedFolderId").SetText(f.distinguished)
	}
	if fw.wants("UnreadCount", f) && el != "ContactsFolder" && el != "CalendarFolder" {
		unread := 0
		for _, si := range f.items {
			if si.Message != nil && !si.Message.IsRead {
				unread++
			}
		}
		e.CreateElement("t:UnreadCount").SetText(strconv.Itoa(unread))
	}
}

// folderGetter reads folder properties for FindFolder restrictions.
func folderGetter(f *folder) getter {
	return func(p propPath) ([]string, valueType, bool) {
		switch folderFieldURIs[p.uri] {
		case "DisplayName":
			return []string{f.displayName}, vtString, true
		case "FolderClass":
			return []string{f.class}, vtString, f.class != ""
		case "TotalCount":
			return []string{strconv.Itoa(len(f.items))}, vtInt, true
		case "ChildFolderCount":
			return []string{strconv.Itoa(len(f.children))}, vtInt, true
		case "FolderId":
			return []string{f.id}, vtString, true
		case "ParentFolderId":
			if f.parent == nil {
				return nil, vtString, false
			}
			return []string{f.parent.id}, vtString, true
		case "DistinguishedFolderId":
			return []string{f.distinguished}, vtString, f.distinguished != ""
		}
		return nil, vtString, false
	}
}

func (s *Server) opGetFolder(call *ewsCall) (*etree.Document, *soapFault) {
	seq, f := sequence(call.req.op, nsMessages, []string{"FolderShape", "FolderIds"}, "FolderShape", "FolderIds")
	if f != nil {
		return nil, f
	}
	sh, f := parseFolderShape(seq["FolderShape"])
	if f != nil {
		return nil, f
	}
	ids := seq["FolderIds"].ChildElements()
	if len(ids) == 0 {
		return nil, schemaFault("FolderIds is empty")
	}
	mb := call.mb
	mb.mu.Lock()
	defer mb.mu.Unlock()
	resp := newResponse(s.version, "GetFolder")
	for _, idEl := range ids {
		fo, err, f := s.folderRef(call, idEl)
		if f != nil {
			return nil, f
		}
		if err == nil {
			err = sh.pathErr
		}
		m := resp.message(err)
		if err != nil {
			continue
		}
		folderWriter{sh}.write(m.CreateElement("m:Folders"), fo)
	}
	return resp.doc, nil
}

// pageView is a parsed IndexedPageItemView / IndexedPageFolderView.
type pageView struct {
	set     bool
	max     int
	offset  int
	fromEnd bool
}

func parseIndexedView(e *etree.Element) (pageView, *soapFault, *ewsError) {
	v := pageView{set: true, max: -1}
	if len(e.ChildElements()) > 0 {
		return v, schemaFault("%s has child elements", e.Tag), nil
	}
	if m := e.SelectAttr("MaxEntriesReturned"); m != nil {
		n, err := strconv.Atoi(strings.TrimSpace(m.Value))
		if err != nil {
			return v, schemaFault("MaxEntriesReturned %q is not an int", m.Value), nil
		}
		if n <= 0 {
			return v, nil, &ewsError{code: "ErrorInvalidPagingMaxRows", text: "The paging MaxEntriesReturned value must be greater than zero."}
		}
		v.max = n
	}
	off, err := strconv.Atoi(strings.TrimSpace(e.SelectAttrValue("Offset", "")))
	if err != nil {
		return v, schemaFault("Offset is missing or not an int"), nil
	}
	if off < 0 {
		return v, nil, &ewsError{code: "ErrorInvalidIndexedPagingParameters", text: "The Offset must not be negative."}
	}
	v.offset = off
	switch e.SelectAttrValue("BasePoint", "") {
	case "Beginning":
	case "End":
		v.fromEnd = true
	default:
		return v, schemaFault("BasePoint must be Beginning or End"), nil
	}
	return v, nil, nil
}

// window returns the slice bounds of the page within n results, the offset of the next page and
// whether the page reaches the last result.
func (v pageView) window(n int) (start, end, next int, last bool) {
	if !v.set {
		return 0, n, n, true
	}
	if v.fromEnd {
		end = max(n-v.offset, 0)
		start = 0
		if v.max >= 0 {
			start = max(end-v.max, 0)
		}
		return start, end, v.offset + (end - start), start == 0
	}
	start = min(v.offset, n)
	end = n
	if v.max >= 0 {
		end = min(start+v.max, n)
	}
	return start, end, end, end == n
}

func setPagingAttrs(root *etree.Element, v pageView, next, total int, last bool) {
	if v.set {
		root.CreateAttr("IndexedPagingOffset", strconv.Itoa(next))
	}
	root.CreateAttr("TotalItemsInView", strconv.Itoa(total))
	root.CreateAttr("IncludesLastItemInRange", formatBool(last))
}

func (s *Server) opFindFolder(call *ewsCall) (*etree.Document, *soapFault) {
	op := call.req.op
	traversal := op.SelectAttrValue("Traversal", "")
	if !slices.Contains([]string{"Shallow", "Deep", "SoftDeleted"}, traversal) {
		return nil, enumFault(traversal, "FolderQueryTraversalType")
	}
	seq, f := sequence(op, nsMessages, []string{"FolderShape", "IndexedPageFolderView", "FractionalPageFolderView", "Restriction", "ParentFolderIds"}, "FolderShape", "ParentFolderIds")
	if f != nil {
		return nil, f
	}
	if seq["IndexedPageFolderView"] != nil && seq["FractionalPageFolderView"] != nil {
		return nil, schemaFault("only one paging view is allowed")
	}
	sh, f := parseFolderShape(seq["FolderShape"])
	if f != nil {
		return nil, f
	}
	reqErr := sh.pathErr
	var view pageView
	if e := seq["IndexedPageFolderView"]; e != nil {
		var err *ewsError
		if view, f, err = parseIndexedView(e); f != nil {
			return nil, f
		}
		reqErr = firstErr(reqErr, err)
	}
	if seq["FractionalPageFolderView"] != nil {
		reqErr = firstErr(reqErr, &ewsError{code: "ErrorInvalidRequest", text: "The simulator supports indexed paging only."})
	}
	var restr restriction
	if e := seq["Restriction"]; e != nil {
		var err *ewsError
		if restr, f, err = parseRestriction(e, true); f != nil {
			return nil, f
		}
		reqErr = firstErr(reqErr, err)
	}
	if traversal == "SoftDeleted" {
		reqErr = firstErr(reqErr, &ewsError{code: "ErrorInvalidOperation", text: "The simulator keeps no soft-deleted folders."})
	}
	parents := seq["ParentFolderIds"].ChildElements()
	if len(parents) == 0 {
		return nil, schemaFault("ParentFolderIds is empty")
	}
	mb := call.mb
	mb.mu.Lock()
	defer mb.mu.Unlock()
	resp := newResponse(s.version, "FindFolder")
	for _, pe := range parents {
		parent, err, f := s.folderRef(call, pe)
		if f != nil {
			return nil, f
		}
		err = firstErr(reqErr, err)
		m := resp.message(err)
		if err != nil {
			continue
		}
		var found []*folder
		collect := func(fo *folder) {
			if restr == nil || restr.match(folderGetter(fo)) {
				found = append(found, fo)
			}
		}
		if traversal == "Deep" {
			mb.walk(parent, collect)
		} else {
			for _, c := range parent.children {
				collect(c)
			}
		}
		start, end, next, last := view.window(len(found))
		root := m.CreateElement("m:RootFolder")
		setPagingAttrs(root, view, next, len(found), last)
		list := root.CreateElement("t:Folders")
		for _, fo := range found[start:end] {
			folderWriter{sh}.write(list, fo)
		}
	}
	return resp.doc, nil
}

func firstErr(errs ...*ewsError) *ewsError {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// folderElementClasses are the folder elements CreateFolder accepts and the class each gets
// when the request names none.
var folderElementClasses = map[string]string{
	"Folder": "IPF.Note", "ContactsFolder": "IPF.Contact", "CalendarFolder": "IPF.Appointment", "TasksFolder": "IPF.Task",
}

// folderProps is BaseFolderType's sequence followed by the subtypes' extensions.
var folderProps = []string{"FolderId", "ParentFolderId", "FolderClass", "DisplayName", "TotalCount", "ChildFolderCount",
	"ExtendedProperty", "ManagedFolderInformation", "EffectiveRights", "DistinguishedFolderId", "PolicyTag", "ArchiveTag",
	"ReplicaList", "SharingEffectiveRights", "PermissionSet", "SourceId", "AccountName", "UnreadCount", "SearchParameters"}

func (s *Server) opCreateFolder(call *ewsCall) (*etree.Document, *soapFault) {
	seq, f := sequence(call.req.op, nsMessages, []string{"ParentFolderId", "Folders"}, "ParentFolderId", "Folders")
	if f != nil {
		return nil, f
	}
	targets := seq["ParentFolderId"].ChildElements()
	if len(targets) != 1 {
		return nil, schemaFault("ParentFolderId must contain one folder id")
	}
	target := targets[0]
	type newFolder struct {
		element, name, class string
		err                  *ewsError
	}
	var todo []newFolder
	fks, f := kids(seq["Folders"], nsTypes)
	if f != nil {
		return nil, f
	}
	if len(fks) == 0 {
		return nil, schemaFault("Folders is empty")
	}
	for _, fe := range fks {
		nf := newFolder{element: fe.Tag}
		if fe.Tag == "SearchFolder" {
			nf.err = &ewsError{code: "ErrorInvalidFolderTypeForOperation", text: "The simulator does not create search folders."}
		} else if _, ok := folderElementClasses[fe.Tag]; !ok {
			return nil, schemaFault("the element %s is not a folder", fe.FullTag())
		}
		props, f := sequence(fe, nsTypes, folderProps)
		if f != nil {
			return nil, f
		}
		for name, pe := range props {
			switch name {
			case "FolderClass":
				nf.class = strings.TrimSpace(pe.Text())
			case "DisplayName":
				nf.name = pe.Text()
			default:
				if nf.err == nil {
					nf.err = &ewsError{code: "ErrorInvalidPropertySet", text: "Set action is invalid for property " + name + "."}
				}
			}
		}
		if nf.class == "" {
			nf.class = folderElementClasses[fe.Tag]
		}
		if strings.TrimSpace(nf.name) == "" && nf.err == nil {
			nf.err = &ewsError{code: "ErrorFolderSavePropertyError", text: "The folder has no DisplayName.", values: [][2]string{{"FieldURI", "folder:DisplayName"}}}
		}
		todo = append(todo, nf)
	}

	mb := call.mb
	mb.mu.Lock()
	defer mb.mu.Unlock()
	parent, perr, f := s.folderRef(call, target)
	if f != nil {
		return nil, f
	}
	resp := newResponse(s.version, "CreateFolder")
	for _, nf := range todo {
		err := firstErr(perr, nf.err)
		if err == nil && parent.childByName(nf.name) != nil {
			err = &ewsError{code: "ErrorFolderExists", text: "A folder with the specified name already exists."}
		}
		m := resp.message(err)
		if err != nil {
			continue
		}
		fo := mb.newFolder(parent, nf.name, nf.class, "")
		folderWriter{&shape{base: "IdOnly"}}.write(m.CreateElement("m:Folders"), fo)
	}
	return resp.doc, nil
}
