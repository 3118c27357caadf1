package ews

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// XML namespaces of EWS and SOAP 1.1.
const (
	nsSOAP     = "http://schemas.xmlsoap.org/soap/envelope/"
	nsTypes    = "http://schemas.microsoft.com/exchange/services/2006/types"
	nsMessages = "http://schemas.microsoft.com/exchange/services/2006/messages"
	nsErrors   = "http://schemas.microsoft.com/exchange/services/2006/errors"
)

// maxXMLDepth bounds nesting when parsing responses. EWS answers nest about 15 deep; the bound
// keeps a hostile or broken answer from costing unbounded stack.
const maxXMLDepth = 128

// ServerVersion is the ServerVersionInfo Exchange puts in every SOAP response header.
type ServerVersion struct {
	Major, Minor, MajorBuild, MinorBuild int
	// Schema is the schema version the server speaks, e.g. "V2017_07_11".
	Schema string
}

// String formats the version as Exchange reports it, e.g. "15.2.1748.10 V2017_07_11".
func (v ServerVersion) String() string {
	if v == (ServerVersion{}) {
		return ""
	}
	s := fmt.Sprintf("%d.%d.%d.%d", v.Major, v.Minor, v.MajorBuild, v.MinorBuild)
	if v.Schema != "" {
		s += " " + v.Schema
	}
	return s
}

// Supported reports whether Tandem supports the server: Exchange 2016 (15.1) or later, which
// includes Exchange 2019, Subscription Edition and Exchange Online. An unknown version (no
// ServerVersionInfo) is given the benefit of the doubt.
func (v ServerVersion) Supported() bool {
	if v.Major == 0 {
		return true
	}
	return v.Major > 15 || (v.Major == 15 && v.Minor >= 1)
}

func parseServerVersion(e *etree.Element) ServerVersion {
	num := func(name string) int {
		n, _ := strconv.Atoi(e.SelectAttrValue(name, "0"))
		return n
	}
	return ServerVersion{
		Major:      num("MajorVersion"),
		Minor:      num("MinorVersion"),
		MajorBuild: num("MajorBuildNumber"),
		MinorBuild: num("MinorBuildNumber"),
		Schema:     e.SelectAttrValue("Version", ""),
	}
}

// parseXML parses a response body. The body has already been read under the client's size cap
// (Config.MaxResponseBytes), so what parsing costs is bounded by it; on top of that, a body is
// refused with a MalformedResponseError whose Err says why (errors.Is) when it
//   - is not valid UTF-8, or declares another encoding (EWS always answers in UTF-8; anything
//     else would be read as mangled text): ErrInvalidUTF8, ErrForeignEncoding;
//   - holds a document type declaration, an entity declaration or any other directive,
//     anywhere: EWS never sends them, and refusing them rules out entity expansion and external
//     entities whatever a parser would do with them (ours expands none): ErrDocumentType;
//   - nests deeper than maxXMLDepth: ErrTooDeep.
func parseXML(data []byte) (*etree.Document, error) {
	if !utf8.Valid(data) {
		return nil, &MalformedResponseError{Detail: fmt.Sprintf("at byte %d", firstInvalidUTF8(data)), Err: ErrInvalidUTF8}
	}
	// Checked before parsing so that an entity bomb is reported as what it is, not as the
	// undefined entity the parser stops at.
	if bytes.Contains(data, []byte("<!DOCTYPE")) || bytes.Contains(data, []byte("<!ENTITY")) {
		return nil, &MalformedResponseError{Detail: "a <!DOCTYPE or <!ENTITY in the body", Err: ErrDocumentType}
	}
	doc := etree.NewDocument()
	doc.ReadSettings.MaxDepth = maxXMLDepth
	doc.ReadSettings.CharsetReader = refuseEncoding
	if err := doc.ReadFromBytes(data); err != nil {
		switch {
		case errors.Is(err, etree.ErrMaxDepth):
			return nil, &MalformedResponseError{Detail: "nesting", Err: ErrTooDeep}
		case errors.Is(err, ErrForeignEncoding):
			return nil, &MalformedResponseError{Detail: "XML declaration", Err: err}
		}
		return nil, &MalformedResponseError{Detail: "not well-formed XML", Err: err}
	}
	if hasDirective(&doc.Element) {
		return nil, &MalformedResponseError{Detail: "a <!...> directive in the body", Err: ErrDocumentType}
	}
	if doc.Root() == nil {
		return nil, malformed("no root element")
	}
	return doc, nil
}

// Reasons parseXML refuses a body, wrapped in a MalformedResponseError.
var (
	// ErrInvalidUTF8 is a body that is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("response is not valid UTF-8")
	// ErrForeignEncoding is a body that declares an encoding other than UTF-8.
	ErrForeignEncoding = errors.New("response declares an encoding other than UTF-8")
	// ErrDocumentType is a body with a document type or entity declaration (or another directive).
	ErrDocumentType = errors.New("document type and entity declarations are not accepted")
	// ErrTooDeep is a body nested deeper than maxXMLDepth.
	ErrTooDeep = fmt.Errorf("response nests deeper than %d elements", maxXMLDepth)
)

// refuseEncoding is the parser's charset reader, asked for any encoding but UTF-8: US-ASCII is
// UTF-8 already (the body passed utf8.Valid), any other is refused.
func refuseEncoding(charset string, input io.Reader) (io.Reader, error) {
	if strings.EqualFold(charset, "us-ascii") {
		return input, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrForeignEncoding, charset)
}

// hasDirective reports whether e or any element below it holds a directive (<!...>). The
// recursion is bounded by maxXMLDepth, which the parser enforced.
func hasDirective(e *etree.Element) bool {
	for _, tok := range e.Child {
		switch t := tok.(type) {
		case *etree.Directive:
			return true
		case *etree.Element:
			if hasDirective(t) {
				return true
			}
		}
	}
	return false
}

func firstInvalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// is reports whether e is the element {ns}local.
func is(e *etree.Element, ns, local string) bool {
	return e != nil && e.Tag == local && e.NamespaceURI() == ns
}

// child returns e's first child element {ns}local, or nil. It accepts a nil e so that lookups
// can be chained over optional elements.
func child(e *etree.Element, ns, local string) *etree.Element {
	if e == nil {
		return nil
	}
	for _, c := range e.ChildElements() {
		if c.Tag == local && c.NamespaceURI() == ns {
			return c
		}
	}
	return nil
}

// children returns e's child elements {ns}local.
func children(e *etree.Element, ns, local string) []*etree.Element {
	if e == nil {
		return nil
	}
	var out []*etree.Element
	for _, c := range e.ChildElements() {
		if c.Tag == local && c.NamespaceURI() == ns {
			out = append(out, c)
		}
	}
	return out
}

// childText returns the text of e's first child {ns}local, or "".
func childText(e *etree.Element, ns, local string) string {
	if c := child(e, ns, local); c != nil {
		return c.Text()
	}
	return ""
}

// childLocal returns e's first child element named local in any namespace. SOAP 1.1 fault
// parts are unqualified and some proxies rewrite them, so faults are read by local name.
func childLocal(e *etree.Element, local string) *etree.Element {
	if e == nil {
		return nil
	}
	for _, c := range e.ChildElements() {
		if c.Tag == local {
			return c
		}
	}
	return nil
}

// firstChild returns e's first child element.
func firstChild(e *etree.Element) *etree.Element {
	if e == nil {
		return nil
	}
	for _, c := range e.ChildElements() {
		return c
	}
	return nil
}

// envelope is a parsed SOAP response.
type envelope struct {
	version ServerVersion
	// body is the first element inside soap:Body: the operation's response element.
	body *etree.Element
}

// parseEnvelope parses a SOAP response. A SOAP fault is returned as a *ResponseError together
// with the envelope, so the caller still learns the server version.
func parseEnvelope(data []byte) (*envelope, error) {
	doc, err := parseXML(data)
	if err != nil {
		return nil, err
	}
	root := doc.Root()
	if !is(root, nsSOAP, "Envelope") {
		return nil, malformed("root element is %s, not a SOAP 1.1 envelope", root.FullTag())
	}
	env := &envelope{}
	if v := child(child(root, nsSOAP, "Header"), nsTypes, "ServerVersionInfo"); v != nil {
		env.version = parseServerVersion(v)
	}
	body := child(root, nsSOAP, "Body")
	if body == nil {
		return nil, malformed("SOAP envelope without a body")
	}
	first := firstChild(body)
	if first == nil {
		return nil, malformed("empty SOAP body")
	}
	if is(first, nsSOAP, "Fault") {
		return env, parseFault(first)
	}
	env.body = first
	return env, nil
}

// parseFault reads a SOAP fault. Exchange puts the EWS response code in
// detail/e:ResponseCode (and, prefixed, in faultcode) and throttling hints in detail/MessageXml.
func parseFault(f *etree.Element) *ResponseError {
	re := &ResponseError{Fault: true}
	detail := childLocal(f, "detail")
	re.Code = strings.TrimSpace(childText(detail, nsErrors, "ResponseCode"))
	if re.Code == "" {
		code := strings.TrimSpace(childLocal(f, "faultcode").NotNil().Text())
		if i := strings.LastIndexByte(code, ':'); i >= 0 {
			code = code[i+1:]
		}
		re.Code = code
	}
	if re.Code == "" {
		re.Code = "ErrorUnknownFault"
	}
	re.Message = strings.TrimSpace(childText(detail, nsErrors, "Message"))
	if re.Message == "" {
		re.Message = strings.TrimSpace(childLocal(f, "faultstring").NotNil().Text())
	}
	re.BackOff = backOff(childLocal(detail, "MessageXml"))
	return re
}

// backOff reads BackOffMilliseconds from a MessageXml element.
func backOff(messageXML *etree.Element) time.Duration {
	if messageXML == nil {
		return 0
	}
	for _, v := range messageXML.ChildElements() {
		if v.Tag == "Value" && v.SelectAttrValue("Name", "") == "BackOffMilliseconds" {
			ms, err := strconv.ParseInt(strings.TrimSpace(v.Text()), 10, 64)
			if err == nil && ms > 0 {
				return time.Duration(ms) * time.Millisecond
			}
		}
	}
	return 0
}

// message is one response message of a batch operation.
type message struct {
	el *etree.Element
	// err is set when the message's ResponseClass is Error.
	err *ResponseError
}

// responseMessages checks that env answers op and returns its response messages in order.
func responseMessages(env *envelope, op string) ([]message, error) {
	if !is(env.body, nsMessages, op+"Response") {
		return nil, malformed("expected m:%sResponse, got %s", op, env.body.FullTag())
	}
	rms := child(env.body, nsMessages, "ResponseMessages")
	if rms == nil {
		return nil, malformed("%sResponse without ResponseMessages", op)
	}
	var msgs []message
	for _, rm := range rms.ChildElements() {
		m := message{el: rm}
		switch class := rm.SelectAttrValue("ResponseClass", ""); class {
		case "Success":
		case "Warning":
			// The one warning EWS answers item by item is ErrorBatchProcessingStopped: Exchange
			// stopped the batch before this item, which was not processed.
			if code := strings.TrimSpace(childText(rm, nsMessages, "ResponseCode")); code != "" && code != "NoError" {
				m.err = &ResponseError{Code: code, Message: strings.TrimSpace(childText(rm, nsMessages, "MessageText"))}
			}
		case "Error":
			code := strings.TrimSpace(childText(rm, nsMessages, "ResponseCode"))
			if code == "" {
				code = "ErrorUnknown"
			}
			m.err = &ResponseError{
				Code:    code,
				Message: strings.TrimSpace(childText(rm, nsMessages, "MessageText")),
				BackOff: backOff(child(rm, nsMessages, "MessageXml")),
			}
		default:
			return nil, malformed("%s with ResponseClass %q", rm.Tag, class)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// single returns the only response message of a single-item operation, or its error.
func single(env *envelope, op string) (*etree.Element, error) {
	msgs, err := responseMessages(env, op)
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		return nil, malformed("%sResponse with %d response messages, want 1", op, len(msgs))
	}
	if msgs[0].err != nil {
		return nil, msgs[0].err
	}
	return msgs[0].el, nil
}

// newOp starts the body element of an EWS operation.
func newOp(op string) *etree.Element {
	return etree.NewElement("m:" + op)
}

// add appends a child element with the given prefixed tag.
func add(parent *etree.Element, tag string) *etree.Element {
	return parent.CreateElement(tag)
}

// addText appends a child element holding text.
func addText(parent *etree.Element, tag, text string) *etree.Element {
	e := parent.CreateElement(tag)
	e.SetText(text)
	return e
}

// buildEnvelope wraps an operation in a SOAP envelope with the version and impersonation headers.
// An empty impersonate acts as the authenticated account itself.
func buildEnvelope(version, impersonate string, body *etree.Element) ([]byte, error) {
	doc := etree.NewDocument()
	// Canonical text escapes carriage returns, so CRLF line breaks in notes survive the trip.
	doc.WriteSettings.CanonicalText = true
	doc.CreateProcInst("xml", `version="1.0" encoding="utf-8"`)
	env := doc.CreateElement("soap:Envelope")
	env.CreateAttr("xmlns:soap", nsSOAP)
	env.CreateAttr("xmlns:t", nsTypes)
	env.CreateAttr("xmlns:m", nsMessages)
	header := add(env, "soap:Header")
	add(header, "t:RequestServerVersion").CreateAttr("Version", version)
	if impersonate != "" {
		sid := add(add(header, "t:ExchangeImpersonation"), "t:ConnectingSID")
		addText(sid, "t:PrimarySmtpAddress", impersonate)
	}
	add(env, "soap:Body").AddChild(body.Copy())
	return doc.WriteToBytes()
}
