package ewssim

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// ewsError is an error Exchange reports inside a response message (ResponseClass="Error"),
// for one folder or item of a request.
type ewsError struct {
	code   string
	text   string
	values [][2]string // MessageXml <t:Value Name="...">...</t:Value>
}

func (e *ewsError) Error() string { return e.code + ": " + e.text }

func errItemNotFound() *ewsError {
	return &ewsError{code: "ErrorItemNotFound", text: "The specified object was not found in the store., The process failed to get the correct properties."}
}

func errFolderNotFound() *ewsError {
	return &ewsError{code: "ErrorFolderNotFound", text: "The specified folder could not be found in the store."}
}

func errIDMalformed() *ewsError {
	return &ewsError{code: "ErrorInvalidIdMalformed", text: "Id is malformed."}
}

func errInvalidSyncState() *ewsError {
	return &ewsError{code: "ErrorInvalidSyncStateData", text: "Synchronization state data is corrupt or otherwise invalid."}
}

// soapFault is an error Exchange reports for a whole request, as a SOAP fault with HTTP 500.
type soapFault struct {
	code   string
	text   string
	values [][2]string
}

func (f *soapFault) Error() string { return f.code + ": " + f.text }

func schemaFault(format string, a ...any) *soapFault {
	return &soapFault{code: "ErrorSchemaValidation", text: "The request failed schema validation: " + fmt.Sprintf(format, a...)}
}

func invalidRequest(format string, a ...any) *soapFault {
	return &soapFault{code: "ErrorInvalidRequest", text: "The request is invalid: " + fmt.Sprintf(format, a...)}
}

// request is a parsed EWS SOAP request.
type request struct {
	op        *etree.Element
	opName    string
	version   string
	actAs     string // ExchangeImpersonation target, "" when absent
	actAsKind string // PrimarySmtpAddress, SmtpAddress or PrincipalName
	tz        *time.Location
}

// parseEnvelope checks the SOAP envelope and the EWS headers and returns the operation element.
func parseEnvelope(doc *etree.Document) (*request, *soapFault) {
	env := doc.Root()
	if env == nil || env.Tag != "Envelope" || env.NamespaceURI() != nsSOAP {
		return nil, schemaFault("the root element is not a SOAP 1.1 Envelope")
	}
	var header, body *etree.Element
	for _, c := range env.ChildElements() {
		if c.NamespaceURI() != nsSOAP {
			return nil, schemaFault("unexpected element %s in Envelope", c.FullTag())
		}
		switch {
		case c.Tag == "Header" && header == nil && body == nil:
			header = c
		case c.Tag == "Body" && body == nil:
			body = c
		default:
			return nil, schemaFault("unexpected element %s in Envelope", c.FullTag())
		}
	}
	if body == nil {
		return nil, schemaFault("the Envelope has no Body")
	}
	ops := body.ChildElements()
	if len(ops) != 1 {
		return nil, schemaFault("the Body must contain exactly one element, found %d", len(ops))
	}
	req := &request{op: ops[0], opName: ops[0].Tag}
	if ops[0].NamespaceURI() != nsMessages {
		return nil, schemaFault("the element %s is not in the EWS messages namespace", ops[0].FullTag())
	}
	if header == nil {
		return req, nil
	}
	for _, h := range header.ChildElements() {
		if h.NamespaceURI() != nsTypes {
			if mustUnderstand(h) {
				return nil, &soapFault{code: "ErrorInvalidRequest", text: "header " + h.FullTag() + " must be understood but is not supported"}
			}
			continue
		}
		switch h.Tag {
		case "RequestServerVersion":
			req.version = h.SelectAttrValue("Version", "")
			if req.version == "" {
				return nil, schemaFault("RequestServerVersion has no Version attribute")
			}
		case "ExchangeImpersonation":
			if err := parseImpersonation(h, req); err != nil {
				return nil, err
			}
		case "TimeZoneContext":
			def := h.SelectElement("TimeZoneDefinition")
			if def == nil {
				return nil, schemaFault("TimeZoneContext needs a TimeZoneDefinition")
			}
			req.tz = zoneLocation(def.SelectAttrValue("Id", ""))
		case "MailboxCulture", "DateTimePrecision", "ManagementRole", "SerializedSecurityContext":
			// Accepted and ignored: they do not change what the simulator returns.
		default:
			return nil, schemaFault("unexpected header element %s", h.FullTag())
		}
	}
	return req, nil
}

// mustUnderstand reports whether a header carries soap:mustUnderstand="1" (or "true").
func mustUnderstand(h *etree.Element) bool {
	for _, a := range h.Attr {
		if a.Key == "mustUnderstand" && (a.Value == "1" || a.Value == "true") && a.NamespaceURI() == nsSOAP {
			return true
		}
	}
	return false
}

func parseImpersonation(h *etree.Element, req *request) *soapFault {
	kids := h.ChildElements()
	if len(kids) != 1 || kids[0].Tag != "ConnectingSID" || kids[0].NamespaceURI() != nsTypes {
		return schemaFault("ExchangeImpersonation must contain one t:ConnectingSID")
	}
	ids := kids[0].ChildElements()
	if len(ids) != 1 || ids[0].NamespaceURI() != nsTypes {
		return schemaFault("ConnectingSID must contain one identifier")
	}
	switch ids[0].Tag {
	case "PrimarySmtpAddress", "SmtpAddress", "PrincipalName":
		req.actAs = strings.TrimSpace(ids[0].Text())
		req.actAsKind = ids[0].Tag
	case "SID":
		return &soapFault{code: "ErrorInvalidExchangeImpersonationHeaderData", text: "The simulator identifies impersonated users by SMTP address or principal name, not by SID."}
	default:
		return schemaFault("unexpected element %s in ConnectingSID", ids[0].FullTag())
	}
	if req.actAs == "" {
		return &soapFault{code: "ErrorInvalidExchangeImpersonationHeaderData", text: "The impersonation header names no user."}
	}
	return nil
}

// checkVersion applies Exchange's rules to RequestServerVersion: it must name a schema version
// the server knows, no newer than the server's own.
func checkVersion(requested string, server serverVersion) *soapFault {
	if requested == "" {
		return &soapFault{code: "ErrorInvalidServerVersion", text: "The request has no RequestServerVersion header; the simulator requires one."}
	}
	i := slices.Index(exchangeVersions, requested)
	if i < 0 {
		return schemaFault("the value %q of attribute Version of RequestServerVersion is not a valid ExchangeVersionType", requested)
	}
	if i > slices.Index(exchangeVersions, server.schema) {
		return &soapFault{code: "ErrorInvalidServerVersion", text: fmt.Sprintf("The specified server version is invalid: %s is newer than this server (%s).", requested, server.schema)}
	}
	return nil
}

// newEnvelope starts a response the way Exchange 2016/2019 writes it.
func newEnvelope(v serverVersion) (*etree.Document, *etree.Element) {
	doc := etree.NewDocument()
	// Exchange writes carriage returns in text as character references (&#xD;), so that a CRLF
	// written in a text body reads back as CRLF; a raw CR would become LF in any XML parser.
	doc.WriteSettings.CanonicalText = true
	doc.CreateProcInst("xml", `version="1.0" encoding="utf-8"`)
	env := doc.CreateElement("s:Envelope")
	env.CreateAttr("xmlns:s", nsSOAP)
	hdr := env.CreateElement("s:Header")
	svi := hdr.CreateElement("h:ServerVersionInfo")
	svi.CreateAttr("MajorVersion", strconv.Itoa(v.major))
	svi.CreateAttr("MinorVersion", strconv.Itoa(v.minor))
	svi.CreateAttr("MajorBuildNumber", strconv.Itoa(v.build))
	svi.CreateAttr("MinorBuildNumber", strconv.Itoa(v.revision))
	svi.CreateAttr("Version", v.schema)
	svi.CreateAttr("xmlns:h", nsTypes)
	svi.CreateAttr("xmlns", nsTypes)
	svi.CreateAttr("xmlns:xsd", nsXSD)
	svi.CreateAttr("xmlns:xsi", nsXSI)
	body := env.CreateElement("s:Body")
	body.CreateAttr("xmlns:xsi", nsXSI)
	body.CreateAttr("xmlns:xsd", nsXSD)
	return doc, body
}

// response is an EWS response under construction: one m:ResponseMessages element that gets one
// response message per folder or item of the request.
type response struct {
	doc  *etree.Document
	msgs *etree.Element
	op   string
}

func newResponse(v serverVersion, op string) *response {
	doc, body := newEnvelope(v)
	r := body.CreateElement("m:" + op + "Response")
	r.CreateAttr("xmlns:m", nsMessages)
	r.CreateAttr("xmlns:t", nsTypes)
	return &response{doc: doc, msgs: r.CreateElement("m:ResponseMessages"), op: op}
}

// message appends a response message; err nil means success. The returned element receives
// the message's payload.
func (r *response) message(err *ewsError) *etree.Element {
	m := r.msgs.CreateElement("m:" + r.op + "ResponseMessage")
	if err == nil {
		m.CreateAttr("ResponseClass", "Success")
		m.CreateElement("m:ResponseCode").SetText("NoError")
		return m
	}
	m.CreateAttr("ResponseClass", "Error")
	m.CreateElement("m:MessageText").SetText(err.text)
	m.CreateElement("m:ResponseCode").SetText(err.code)
	m.CreateElement("m:DescriptiveLinkKey").SetText("0")
	if len(err.values) > 0 {
		x := m.CreateElement("m:MessageXml")
		for _, v := range err.values {
			val := x.CreateElement("t:Value")
			val.CreateAttr("Name", v[0])
			val.SetText(v[1])
		}
	}
	return m
}

// faultDocument renders a SOAP fault the way Exchange does, with the EWS error code both as the
// faultcode and in the detail.
func faultDocument(v serverVersion, f *soapFault) *etree.Document {
	doc, body := newEnvelope(v)
	fault := body.CreateElement("s:Fault")
	code := fault.CreateElement("faultcode")
	code.CreateAttr("xmlns:a", nsTypes)
	code.SetText("a:" + f.code)
	fs := fault.CreateElement("faultstring")
	fs.CreateAttr("xml:lang", "en-US")
	fs.SetText(f.text)
	detail := fault.CreateElement("detail")
	rc := detail.CreateElement("e:ResponseCode")
	rc.CreateAttr("xmlns:e", nsErrors)
	rc.SetText(f.code)
	msg := detail.CreateElement("e:Message")
	msg.CreateAttr("xmlns:e", nsErrors)
	msg.SetText(f.text)
	if len(f.values) > 0 {
		x := detail.CreateElement("t:MessageXml")
		x.CreateAttr("xmlns:t", nsTypes)
		for _, v := range f.values {
			val := x.CreateElement("t:Value")
			val.CreateAttr("Name", v[0])
			val.SetText(v[1])
		}
	}
	return doc
}

// writeXML sends doc with the given status.
func writeXML(w http.ResponseWriter, status int, doc *etree.Document) {
	b, err := doc.WriteToBytes()
	if err != nil {
		http.Error(w, "render response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeBytes(w, status, b)
}

func writeBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	// A failed write means the client went away; there is nobody left to tell.
	_, _ = w.Write(b)
}

// Helpers for walking request elements.

// kids returns e's child elements, failing when one is not in namespace ns.
func kids(e *etree.Element, ns string) ([]*etree.Element, *soapFault) {
	out := e.ChildElements()
	for _, c := range out {
		if c.NamespaceURI() != ns {
			return nil, schemaFault("element %s in %s is in the wrong namespace", c.FullTag(), e.Tag)
		}
	}
	return out, nil
}

// sequence checks that e's children (in ns) appear in the order of names, each at most once
// unless listed in repeated, that the required ones are there, and returns them by name.
func sequence(e *etree.Element, ns string, names []string, required ...string) (map[string]*etree.Element, *soapFault) {
	ks, f := kids(e, ns)
	if f != nil {
		return nil, f
	}
	out := map[string]*etree.Element{}
	last := -1
	for _, c := range ks {
		i := slices.Index(names, c.Tag)
		if i < 0 {
			return nil, schemaFault("the element %s is not expected in %s", c.FullTag(), e.Tag)
		}
		if i <= last {
			return nil, schemaFault("the element %s in %s is out of order or repeated", c.FullTag(), e.Tag)
		}
		last = i
		out[c.Tag] = c
	}
	for _, r := range required {
		if out[r] == nil {
			return nil, schemaFault("%s is missing the required element %s", e.Tag, r)
		}
	}
	return out, nil
}

func parseBool(s string) (bool, bool) {
	switch strings.TrimSpace(s) {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	return false, false
}

func formatBool(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func itoa(i int) string { return strconv.Itoa(i) }
