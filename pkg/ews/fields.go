package ews

import (
	"fmt"
	"slices"

	"github.com/beevik/etree"

	"github.com/tandem-sync/tandem/pkg/syncerr"
)

// fieldChange is one entry of an UpdateItem's t:Updates: SetItemField when item is set (the item
// element holding just the new value), DeleteItemField otherwise. The property is path when
// set (an extended property), else uri with index.
type fieldChange struct {
	uri   string
	index string
	path  func(parent *etree.Element)
	item  *etree.Element
}

func (fc fieldChange) write(updates *etree.Element) {
	tag := "t:DeleteItemField"
	if fc.item != nil {
		tag = "t:SetItemField"
	}
	e := add(updates, tag)
	switch {
	case fc.path != nil:
		fc.path(e)
	case fc.index != "":
		indexedFieldURI(e, fc.uri, fc.index)
	default:
		fieldURI(e, fc.uri)
	}
	if fc.item != nil {
		e.AddChild(fc.item)
	}
}

// setField returns a SetItemField of an item element (itemTag, e.g. "t:Contact") holding one
// child built by fill.
func setField(uri, index, itemTag string, fill func(item *etree.Element)) fieldChange {
	item := etree.NewElement(itemTag)
	fill(item)
	return fieldChange{uri: uri, index: index, item: item}
}

func deleteField(uri, index string) fieldChange {
	return fieldChange{uri: uri, index: index}
}

// textField sets a simple text field, or deletes it when value is empty.
func textField(uri, itemTag, elemTag, value string) fieldChange {
	if value == "" {
		return deleteField(uri, "")
	}
	return setField(uri, "", itemTag, func(item *etree.Element) { addText(item, elemTag, value) })
}

// syncKeyField tags an item (of element itemTag) with Tandem's sync key.
func syncKeyField(itemTag, key string) fieldChange {
	item := etree.NewElement(itemTag)
	syncKeyProperty(item, key)
	return fieldChange{path: syncKeyURI, item: item}
}

// bodyField sets the item body as text. An empty body is written as an empty text body rather
// than deleted: the body is a property every item has, and Exchange refuses to delete some
// of those (ErrorInvalidPropertyDelete), so clearing it is the portable way.
func bodyField(itemTag, text string) fieldChange {
	return setField("item:Body", "", itemTag, func(item *etree.Element) {
		addText(item, "t:Body", text).CreateAttr("BodyType", "Text")
	})
}

// unknownFieldError reports a canonical field name the connector cannot write.
func unknownFieldError(kind, name string) error {
	return &syncerr.Error{
		Code:   syncerr.SyncMalformedRecord,
		Detail: fmt.Sprintf("%s field %q cannot be written to Exchange", kind, name),
		Field:  name,
	}
}

// selectFields returns the canonical fields an update writes: the listed ones, or all when
// none are listed, in a stable order.
func selectFields(listed, all []string) []string {
	if len(listed) == 0 {
		return all
	}
	out := slices.Clone(listed)
	slices.Sort(out)
	return slices.Compact(out)
}
