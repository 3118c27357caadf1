package ewssim

import (
	"encoding/base64"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// pathKind says how a property path addresses a property.
type pathKind uint8

const (
	pathField    pathKind = iota + 1 // t:FieldURI
	pathIndexed                      // t:IndexedFieldURI
	pathExtended                     // t:ExtendedFieldURI
)

// propPath is a parsed t:Path: FieldURI, IndexedFieldURI or ExtendedFieldURI.
type propPath struct {
	kind  pathKind
	uri   string
	index string
	ext   ExtendedProperty // identity and type; no value
	// extKey is ext.key(), computed once: restrictions compare it against every item.
	extKey string
}

func (p propPath) String() string {
	switch p.kind {
	case pathIndexed:
		return p.uri + "[" + p.index + "]"
	case pathExtended:
		return "ExtendedProperty(" + p.extKey + ")"
	}
	return p.uri
}

// element is the item element the path addresses in items of kind k, or false when the path
// does not apply to that kind.
func (p propPath) element(k itemKind) (string, bool) {
	switch p.kind {
	case pathField:
		return schemas[k].elementForURI(p.uri)
	case pathIndexed:
		d, ok := dictionaryURIs[p.uri]
		return d.element, ok && k == kindContact
	default:
		return "ExtendedProperty", true
	}
}

// parsePath parses a path element. Values the schema rejects are faults; well-formed paths the
// simulator cannot serve are per-message errors.
func parsePath(e *etree.Element) (propPath, *soapFault, *ewsError) {
	if e.NamespaceURI() != nsTypes {
		return propPath{}, schemaFault("path element %s is in the wrong namespace", e.FullTag()), nil
	}
	switch e.Tag {
	case "FieldURI":
		uri := e.SelectAttrValue("FieldURI", "")
		if !unindexedFieldURIs[uri] {
			return propPath{}, schemaFault("the FieldURI value %q is not a valid UnindexedFieldURIType", uri), nil
		}
		return propPath{kind: pathField, uri: uri}, nil, nil
	case "IndexedFieldURI":
		uri, index := e.SelectAttrValue("FieldURI", ""), e.SelectAttrValue("FieldIndex", "")
		d, ok := dictionaryURIs[uri]
		switch {
		case uri == "item:InternetMessageHeader" || uri == "contacts:ImAddress":
			return propPath{}, nil, &ewsError{code: "ErrorInvalidPropertyRequest", text: "The simulator does not support the property " + uri + "."}
		case !ok:
			return propPath{}, schemaFault("the FieldURI value %q is not a valid DictionaryURIType", uri), nil
		case e.SelectAttr("FieldIndex") == nil:
			return propPath{}, schemaFault("IndexedFieldURI has no FieldIndex"), nil
		case !slices.Contains(dictionaryKeys(d.element), index):
			if d.element == "EmailAddresses" {
				return propPath{}, nil, &ewsError{code: "ErrorInvalidContactEmailIndex", text: "The email address index " + index + " is invalid."}
			}
			return propPath{}, nil, &ewsError{code: "ErrorInvalidPropertyRequest", text: "The FieldIndex " + index + " is invalid for " + uri + "."}
		}
		return propPath{kind: pathIndexed, uri: uri, index: index}, nil, nil
	case "ExtendedFieldURI":
		p, f, err := parseExtendedURI(e)
		return propPath{kind: pathExtended, ext: p, extKey: p.key()}, f, err
	}
	return propPath{}, schemaFault("the element %s is not a property path", e.FullTag()), nil
}

var guidPattern = regexp.MustCompile(`^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$`)

// parseExtendedURI parses and checks a t:ExtendedFieldURI.
func parseExtendedURI(e *etree.Element) (ExtendedProperty, *soapFault, *ewsError) {
	p := ExtendedProperty{
		DistinguishedPropertySetID: e.SelectAttrValue("DistinguishedPropertySetId", ""),
		PropertySetID:              e.SelectAttrValue("PropertySetId", ""),
		PropertyTag:                e.SelectAttrValue("PropertyTag", ""),
		PropertyName:               e.SelectAttrValue("PropertyName", ""),
		PropertyID:                 e.SelectAttrValue("PropertyId", ""),
		PropertyType:               e.SelectAttrValue("PropertyType", ""),
	}
	if len(e.ChildElements()) > 0 {
		return p, schemaFault("ExtendedFieldURI has child elements"), nil
	}
	if p.DistinguishedPropertySetID != "" && !slices.Contains(distinguishedPropertySets, p.DistinguishedPropertySetID) {
		return p, schemaFault("%q is not a valid DistinguishedPropertySetType", p.DistinguishedPropertySetID), nil
	}
	if p.PropertySetID != "" && !guidPattern.MatchString(p.PropertySetID) {
		return p, schemaFault("PropertySetId %q is not a GUID", p.PropertySetID), nil
	}
	if p.PropertyID != "" {
		n, err := strconv.ParseInt(p.PropertyID, 10, 32)
		if err != nil {
			return p, schemaFault("PropertyId %q is not an int", p.PropertyID), nil
		}
		p.PropertyID = strconv.FormatInt(n, 10)
	}
	if p.PropertyType == "" {
		return p, schemaFault("ExtendedFieldURI has no PropertyType"), nil
	}
	if !slices.Contains(mapiPropertyTypes, p.PropertyType) {
		return p, schemaFault("%q is not a valid MapiPropertyTypeType", p.PropertyType), nil
	}
	invalid := &ewsError{code: "ErrorInvalidExtendedProperty", text: "The extended property attribute combination is invalid."}
	hasSet := p.DistinguishedPropertySetID != "" || p.PropertySetID != ""
	switch {
	case p.PropertyTag != "":
		if hasSet || p.PropertyName != "" || p.PropertyID != "" {
			return p, nil, invalid
		}
		if !validTag(p.PropertyTag) {
			return p, nil, invalid
		}
	case p.DistinguishedPropertySetID != "" && p.PropertySetID != "":
		return p, nil, invalid
	case !hasSet:
		return p, nil, invalid
	case (p.PropertyName == "") == (p.PropertyID == ""):
		return p, nil, invalid
	}
	return p, nil, nil
}

func validTag(t string) bool {
	if strings.HasPrefix(strings.ToLower(t), "0x") {
		_, err := strconv.ParseUint(t[2:], 16, 16)
		return err == nil
	}
	_, err := strconv.ParseUint(t, 10, 16)
	return err == nil
}

// isArrayType reports whether a MAPI type holds several values.
func isArrayType(t string) bool { return strings.HasSuffix(t, "Array") }

// checkExtendedValue checks one value against the property's MAPI type.
func checkExtendedValue(t, v string) bool {
	switch strings.TrimSuffix(t, "Array") {
	case "Short", "Integer", "Long", "Error":
		_, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		return err == nil
	case "Float", "Double", "Currency", "ApplicationTime":
		_, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return err == nil
	case "Boolean":
		_, ok := parseBool(v)
		return ok
	case "SystemTime":
		_, err := parseDateTime(v, time.UTC)
		return err == nil
	case "CLSID":
		return guidPattern.MatchString(strings.TrimSpace(v))
	case "Binary":
		_, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		return err == nil
	}
	return true
}

// writeExtendedURI renders p's ExtendedFieldURI under parent.
func writeExtendedURI(parent *etree.Element, p ExtendedProperty) {
	u := parent.CreateElement("t:ExtendedFieldURI")
	for _, a := range [][2]string{
		{"DistinguishedPropertySetId", p.DistinguishedPropertySetID},
		{"PropertySetId", p.PropertySetID},
		{"PropertyTag", p.PropertyTag},
		{"PropertyName", p.PropertyName},
		{"PropertyId", p.PropertyID},
		{"PropertyType", p.PropertyType},
	} {
		if a[1] != "" {
			u.CreateAttr(a[0], a[1])
		}
	}
}

// shape is a parsed ItemShape or FolderShape.
type shape struct {
	base     string // IdOnly, Default or AllProperties
	bodyType string // Best, HTML or Text
	paths    []propPath
	// pathErr is set when a requested property cannot be served; every response message that
	// would use the shape reports it.
	pathErr *ewsError
}

// parseItemShape parses a t:ItemResponseShapeType element.
func parseItemShape(e *etree.Element) (*shape, *soapFault) {
	seq, f := sequence(e, nsTypes, []string{"BaseShape", "IncludeMimeContent", "BodyType", "UniqueBodyType",
		"NormalizedBodyType", "FilterHtmlContent", "ConvertHtmlCodePageToUTF8", "InlineImageUrlTemplate",
		"BlockExternalImages", "AddBlankTargetToLinks", "MaximumBodySize", "AdditionalProperties"}, "BaseShape")
	if f != nil {
		return nil, f
	}
	sh := &shape{base: strings.TrimSpace(seq["BaseShape"].Text()), bodyType: "Best"}
	switch sh.base {
	case "IdOnly", "Default", "AllProperties":
	case "PcxPeopleSearch":
		sh.pathErr = &ewsError{code: "ErrorInvalidRequest", text: "The simulator does not support the PcxPeopleSearch shape."}
	default:
		return nil, schemaFault("%q is not a valid DefaultShapeNamesType", sh.base)
	}
	if bt := seq["BodyType"]; bt != nil {
		sh.bodyType = strings.TrimSpace(bt.Text())
		if !slices.Contains([]string{"Best", "HTML", "Text"}, sh.bodyType) {
			return nil, schemaFault("%q is not a valid BodyTypeResponseType", sh.bodyType)
		}
	}
	if mc := seq["IncludeMimeContent"]; mc != nil {
		if v, _ := parseBool(mc.Text()); v {
			sh.pathErr = &ewsError{code: "ErrorInvalidPropertyRequest", text: "The simulator does not return MIME content."}
		}
	}
	if ap := seq["AdditionalProperties"]; ap != nil {
		if f := sh.addPaths(ap); f != nil {
			return nil, f
		}
	}
	return sh, nil
}

func (sh *shape) addPaths(ap *etree.Element) *soapFault {
	ks := ap.ChildElements()
	if len(ks) == 0 {
		return schemaFault("AdditionalProperties is empty")
	}
	for _, k := range ks {
		p, f, err := parsePath(k)
		if f != nil {
			return f
		}
		if err != nil && sh.pathErr == nil {
			sh.pathErr = err
		}
		if err == nil {
			sh.paths = append(sh.paths, p)
		}
	}
	return nil
}

// parseFolderShape parses a t:FolderResponseShapeType element.
func parseFolderShape(e *etree.Element) (*shape, *soapFault) {
	seq, f := sequence(e, nsTypes, []string{"BaseShape", "AdditionalProperties"}, "BaseShape")
	if f != nil {
		return nil, f
	}
	sh := &shape{base: strings.TrimSpace(seq["BaseShape"].Text())}
	if !slices.Contains([]string{"IdOnly", "Default", "AllProperties"}, sh.base) {
		return nil, schemaFault("%q is not a valid DefaultShapeNamesType", sh.base)
	}
	if ap := seq["AdditionalProperties"]; ap != nil {
		if f := sh.addPaths(ap); f != nil {
			return nil, f
		}
	}
	return sh, nil
}
