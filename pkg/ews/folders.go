package ews

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// FolderID identifies a folder by its Id or, for a distinguished folder, by its well-known name.
type FolderID struct {
	// ID is the folder's EWS Id.
	ID string
	// ChangeKey is the folder's change key, if known.
	ChangeKey string
	// Distinguished is a well-known folder name ("contacts", "calendar", ...); used when ID is empty.
	Distinguished string
}

// Distinguished folder names Tandem uses.
var (
	ContactsFolder = FolderID{Distinguished: "contacts"}
	CalendarFolder = FolderID{Distinguished: "calendar"}
	// DeletedItemsFolder is where deleted items go, Outlook's and Tandem's alike; they keep
	// their extended properties there, sync key included.
	DeletedItemsFolder = FolderID{Distinguished: "deleteditems"}
)

func (f FolderID) String() string {
	if f.ID != "" {
		return f.ID
	}
	return f.Distinguished
}

// write appends the folder id element (t:FolderId or t:DistinguishedFolderId) to parent.
func (f FolderID) write(parent *etree.Element) {
	if f.ID == "" {
		add(parent, "t:DistinguishedFolderId").CreateAttr("Id", f.Distinguished)
		return
	}
	e := add(parent, "t:FolderId")
	e.CreateAttr("Id", f.ID)
	if f.ChangeKey != "" {
		e.CreateAttr("ChangeKey", f.ChangeKey)
	}
}

// Folder is a folder as Exchange describes it.
type Folder struct {
	ID          FolderID
	ParentID    string
	DisplayName string
	FolderClass string
	// Created is the folder's creation time (PR_CREATION_TIME) when the server returned it.
	Created time.Time
}

// creationTimeTag is PR_CREATION_TIME; it orders folders that a race created twice.
const creationTimeTag = "0x3007"

func folderShape(parent *etree.Element) {
	shape := add(parent, "m:FolderShape")
	addText(shape, "t:BaseShape", "IdOnly")
	props := add(shape, "t:AdditionalProperties")
	fieldURI(props, "folder:FolderClass")
	fieldURI(props, "folder:DisplayName")
	ext := add(props, "t:ExtendedFieldURI")
	ext.CreateAttr("PropertyTag", creationTimeTag)
	ext.CreateAttr("PropertyType", "SystemTime")
}

// GetFolders reads folders by id; the result is in request order. One failing folder fails the call.
func (cl *Client) GetFolders(ctx context.Context, t Target, ids ...FolderID) ([]Folder, error) {
	body := newOp("GetFolder")
	folderShape(body)
	fids := add(body, "m:FolderIds")
	for _, id := range ids {
		id.write(fids)
	}
	env, err := cl.do(ctx, call{op: "GetFolder", target: t, body: body, idempotent: true})
	if err != nil {
		return nil, err
	}
	folders, err := parseGetFolder(env)
	if err != nil {
		return nil, classify(fmt.Errorf("GetFolder for %s: %w", t.Address, err))
	}
	if len(folders) != len(ids) {
		return nil, classify(fmt.Errorf("GetFolder for %s: %w", t.Address, malformed("%d folders for %d ids", len(folders), len(ids))))
	}
	return folders, nil
}

func parseGetFolder(env *envelope) ([]Folder, error) {
	msgs, err := responseMessages(env, "GetFolder")
	if err != nil {
		return nil, err
	}
	var out []Folder
	for _, m := range msgs {
		if m.err != nil {
			return nil, m.err
		}
		f, err := onlyFolder(child(m.el, nsMessages, "Folders"))
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func onlyFolder(folders *etree.Element) (Folder, error) {
	if folders == nil || len(folders.ChildElements()) != 1 {
		return Folder{}, malformed("response message without exactly one folder")
	}
	return parseFolder(folders.ChildElements()[0])
}

func parseFolder(e *etree.Element) (Folder, error) {
	id := child(e, nsTypes, "FolderId")
	if id == nil || id.SelectAttrValue("Id", "") == "" {
		return Folder{}, malformed("%s without a FolderId", e.Tag)
	}
	f := Folder{
		ID:          FolderID{ID: id.SelectAttrValue("Id", ""), ChangeKey: id.SelectAttrValue("ChangeKey", "")},
		DisplayName: childText(e, nsTypes, "DisplayName"),
		FolderClass: childText(e, nsTypes, "FolderClass"),
	}
	if p := child(e, nsTypes, "ParentFolderId"); p != nil {
		f.ParentID = p.SelectAttrValue("Id", "")
	}
	for _, ep := range children(e, nsTypes, "ExtendedProperty") {
		uri := child(ep, nsTypes, "ExtendedFieldURI")
		if tag := uri.NotNil().SelectAttrValue("PropertyTag", ""); tag != "" && propertyTagIs(tag, creationTimeTag) {
			if ts, err := parseDateTime(childText(ep, nsTypes, "Value")); err == nil {
				f.Created = ts
			}
		}
	}
	return f, nil
}

// propertyTagIs compares property tags written in hex or decimal.
func propertyTagIs(a, b string) bool {
	parse := func(s string) (uint64, bool) {
		s = strings.TrimSpace(strings.ToLower(s))
		base := 10
		if strings.HasPrefix(s, "0x") {
			s, base = s[2:], 16
		}
		n, err := strconv.ParseUint(s, base, 32)
		return n, err == nil
	}
	x, ok1 := parse(a)
	y, ok2 := parse(b)
	return ok1 && ok2 && x == y
}

// maxFolderPages bounds FindFolder paging; a display-name restriction matches a handful at most.
const maxFolderPages = 10

// FindFolders lists the direct subfolders of parent whose display name is displayName, or all
// of them when displayName is empty.
func (cl *Client) FindFolders(ctx context.Context, t Target, parent FolderID, displayName string) ([]Folder, error) {
	var out []Folder
	offset := 0
	for page := 0; page < maxFolderPages; page++ {
		body := newOp("FindFolder")
		body.CreateAttr("Traversal", "Shallow")
		folderShape(body)
		view := add(body, "m:IndexedPageFolderView")
		view.CreateAttr("MaxEntriesReturned", "100")
		view.CreateAttr("Offset", strconv.Itoa(offset))
		view.CreateAttr("BasePoint", "Beginning")
		if displayName != "" {
			isEqualTo(add(body, "m:Restriction"), func(p *etree.Element) { fieldURI(p, "folder:DisplayName") }, displayName)
		}
		parent.write(add(body, "m:ParentFolderIds"))

		env, err := cl.do(ctx, call{op: "FindFolder", target: t, body: body, idempotent: true})
		if err != nil {
			return nil, err
		}
		res, err := parseFindFolder(env)
		if err != nil {
			return nil, classify(fmt.Errorf("FindFolder for %s: %w", t.Address, err))
		}
		out = append(out, res.folders...)
		if res.last || len(res.folders) == 0 {
			return out, nil
		}
		offset = res.next
	}
	return out, nil
}

type findFolderResult struct {
	folders []Folder
	last    bool
	next    int
}

func parseFindFolder(env *envelope) (findFolderResult, error) {
	el, err := single(env, "FindFolder")
	if err != nil {
		return findFolderResult{}, err
	}
	root := child(el, nsMessages, "RootFolder")
	if root == nil {
		return findFolderResult{}, malformed("FindFolderResponseMessage without RootFolder")
	}
	res := findFolderResult{last: root.SelectAttrValue("IncludesLastItemInRange", "true") == "true"}
	res.next, _ = strconv.Atoi(root.SelectAttrValue("IndexedPagingOffset", "0"))
	for _, fe := range child(root, nsTypes, "Folders").NotNil().ChildElements() {
		f, err := parseFolder(fe)
		if err != nil {
			return findFolderResult{}, err
		}
		res.folders = append(res.folders, f)
	}
	if !res.last && res.next <= 0 {
		return findFolderResult{}, malformed("FindFolder page without IndexedPagingOffset")
	}
	return res, nil
}

// CreateFolder creates a folder under parent. The folder element is chosen from the class:
// IPF.Contact makes a t:ContactsFolder, IPF.Appointment a t:CalendarFolder, others a t:Folder.
func (cl *Client) CreateFolder(ctx context.Context, t Target, parent FolderID, displayName, folderClass string) (Folder, error) {
	body := newOp("CreateFolder")
	parent.write(add(body, "m:ParentFolderId"))
	tag := "t:Folder"
	switch {
	case strings.HasPrefix(folderClass, "IPF.Contact"):
		tag = "t:ContactsFolder"
	case strings.HasPrefix(folderClass, "IPF.Appointment"):
		tag = "t:CalendarFolder"
	}
	fe := add(add(body, "m:Folders"), tag)
	if folderClass != "" {
		addText(fe, "t:FolderClass", folderClass)
	}
	addText(fe, "t:DisplayName", displayName)

	// CreateFolder is not repeated after an ambiguous failure: the caller finds the folder first.
	env, err := cl.do(ctx, call{op: "CreateFolder", target: t, body: body})
	if err != nil {
		return Folder{}, err
	}
	el, err := single(env, "CreateFolder")
	if err != nil {
		return Folder{}, classify(fmt.Errorf("CreateFolder %s for %s: %w", displayName, t.Address, err))
	}
	f, err := onlyFolder(child(el, nsMessages, "Folders"))
	if err != nil {
		return Folder{}, classify(fmt.Errorf("CreateFolder %s for %s: %w", displayName, t.Address, err))
	}
	f.DisplayName, f.FolderClass = displayName, folderClass
	return f, nil
}
