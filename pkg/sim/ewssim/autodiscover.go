package ewssim

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/beevik/etree"
)

// serveAutodiscoverSOAP implements GetUserSettings at /autodiscover/autodiscover.svc.
func (s *Server) serveAutodiscoverSOAP(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authenticate(w, r); !ok {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	s.counts.add("GetUserSettings")
	users, settings, err := parseGetUserSettings(body)
	if err != nil {
		s.autodiscoverFault(w, r, err.Error())
		return
	}
	first := ""
	if len(users) > 0 {
		first = users[0]
	}
	if f, ok := s.faults.take("GetUserSettings", first, false); ok {
		s.counts.add("Fault:" + f.Kind.String())
		if s.applyTransportFault(w, r, f) {
			return
		}
	}

	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="utf-8"`)
	env := doc.CreateElement("s:Envelope")
	env.CreateAttr("xmlns:s", nsSOAP)
	env.CreateAttr("xmlns:a", nsWSA)
	hdr := env.CreateElement("s:Header")
	action := hdr.CreateElement("a:Action")
	action.CreateAttr("s:mustUnderstand", "1")
	action.SetText(nsAutodisc + "/Autodiscover/GetUserSettingsResponse")
	svi := hdr.CreateElement("h:ServerVersionInfo")
	svi.CreateAttr("xmlns:h", nsAutodisc)
	svi.CreateAttr("xmlns:i", nsXSI)
	for _, kv := range [][2]string{{"MajorVersion", itoa(s.version.major)}, {"MinorVersion", itoa(s.version.minor)},
		{"MajorBuildNumber", itoa(s.version.build)}, {"MinorBuildNumber", itoa(s.version.revision)}, {"Version", "Exchange2015"}} {
		svi.CreateElement("h:" + kv[0]).SetText(kv[1])
	}
	msg := env.CreateElement("s:Body").CreateElement("GetUserSettingsResponseMessage")
	msg.CreateAttr("xmlns", nsAutodisc)
	resp := msg.CreateElement("Response")
	resp.CreateAttr("xmlns:i", nsXSI)
	resp.CreateElement("ErrorCode").SetText("NoError")
	resp.CreateElement("ErrorMessage")
	list := resp.CreateElement("UserResponses")
	for _, u := range users {
		s.userResponse(list.CreateElement("UserResponse"), r, u, settings)
	}
	writeXML(w, http.StatusOK, doc)
}

func (s *Server) userResponse(ur *etree.Element, r *http.Request, user string, settings []string) {
	mb, ok := s.mailbox(user)
	if !ok {
		ur.CreateElement("ErrorCode").SetText("InvalidUser")
		ur.CreateElement("ErrorMessage").SetText("Invalid user: '" + user + "'")
		ur.CreateElement("RedirectTarget").CreateAttr("i:nil", "true")
		ur.CreateElement("UserSettingErrors")
		ur.CreateElement("UserSettings")
		return
	}
	ur.CreateElement("ErrorCode").SetText("NoError")
	ur.CreateElement("ErrorMessage").SetText("No error.")
	ur.CreateElement("RedirectTarget").CreateAttr("i:nil", "true")
	errs := ur.CreateElement("UserSettingErrors")
	out := ur.CreateElement("UserSettings")
	for _, name := range settings {
		v, ok := s.userSetting(r, mb, name)
		if !ok {
			e := errs.CreateElement("UserSettingError")
			e.CreateElement("ErrorCode").SetText("InvalidSetting")
			e.CreateElement("ErrorMessage").SetText("The requested setting is invalid.")
			e.CreateElement("SettingName").SetText(name)
			continue
		}
		us := out.CreateElement("UserSetting")
		us.CreateAttr("i:type", "StringSetting")
		us.CreateElement("Name").SetText(name)
		us.CreateElement("Value").SetText(v)
	}
}

func (s *Server) userSetting(r *http.Request, mb *mailbox, name string) (string, bool) {
	ews := s.base(r) + "/EWS/Exchange.asmx"
	switch name {
	case "UserDisplayName":
		return mb.displayName, true
	case "UserDN":
		return s.legacyDN(mb), true
	case "UserDeploymentId":
		return mailboxGUID("deployment").String(), true
	case "AutoDiscoverSMTPAddress":
		return mb.address, true
	case "InternalEwsUrl", "ExternalEwsUrl":
		return ews, true
	case "ExternalEwsVersion", "CasVersion":
		return s.version.String(), true
	case "EwsSupportedSchemas":
		var names []string
		for _, v := range exchangeVersions {
			if strings.HasPrefix(v, "Exchange") {
				names = append(names, v)
			}
			if v == s.version.schema {
				break
			}
		}
		return strings.Join(names, ", "), true
	case "InternalMailboxServer", "ExternalMailboxServer":
		return mb.guidText + "@" + domainOf(mb.address), true
	}
	return "", false
}

func (s *Server) legacyDN(mb *mailbox) string {
	local, _, _ := strings.Cut(mb.address, "@")
	return "/o=ExchangeSimulator/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=" +
		strings.ReplaceAll(mb.guidText, "-", "") + "-" + local
}

func domainOf(address string) string {
	_, d, _ := strings.Cut(address, "@")
	return d
}

type autodiscoverError string

func (e autodiscoverError) Error() string { return string(e) }

func parseGetUserSettings(body []byte) (users, settings []string, err error) {
	doc, err := parseXML(body)
	if err != nil {
		return nil, nil, autodiscoverError("the request is not well-formed XML")
	}
	env := doc.Root()
	if env == nil || env.Tag != "Envelope" || env.NamespaceURI() != nsSOAP {
		return nil, nil, autodiscoverError("the root element is not a SOAP 1.1 Envelope")
	}
	body1 := env.SelectElement("Body")
	if body1 == nil {
		return nil, nil, autodiscoverError("the Envelope has no Body")
	}
	msg := body1.SelectElement("GetUserSettingsRequestMessage")
	if msg == nil || msg.NamespaceURI() != nsAutodisc {
		return nil, nil, autodiscoverError("the Body does not contain a GetUserSettingsRequestMessage")
	}
	req := msg.SelectElement("Request")
	if req == nil {
		return nil, nil, autodiscoverError("GetUserSettingsRequestMessage has no Request")
	}
	if us := req.SelectElement("Users"); us != nil {
		for _, u := range us.SelectElements("User") {
			if m := u.SelectElement("Mailbox"); m != nil {
				users = append(users, strings.TrimSpace(m.Text()))
			}
		}
	}
	if rs := req.SelectElement("RequestedSettings"); rs != nil {
		for _, st := range rs.SelectElements("Setting") {
			settings = append(settings, strings.TrimSpace(st.Text()))
		}
	}
	if len(users) == 0 || len(settings) == 0 {
		return nil, nil, autodiscoverError("GetUserSettings needs at least one user and one setting")
	}
	return users, settings, nil
}

func (s *Server) autodiscoverFault(w http.ResponseWriter, r *http.Request, text string) {
	s.counts.add("Rejected")
	s.counts.add("Rejected:AutodiscoverInvalidRequest")
	s.log.DebugContext(r.Context(), "ewssim: autodiscover fault", "text", text)
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="utf-8"`)
	env := doc.CreateElement("s:Envelope")
	env.CreateAttr("xmlns:s", nsSOAP)
	fault := env.CreateElement("s:Body").CreateElement("s:Fault")
	fault.CreateElement("faultcode").SetText("s:Client")
	fs := fault.CreateElement("faultstring")
	fs.CreateAttr("xml:lang", "en-US")
	fs.SetText(text)
	writeXML(w, http.StatusInternalServerError, doc)
}

// serveAutodiscoverPOX implements the plain-old-XML Autodiscover at
// /autodiscover/autodiscover.xml, answering with the Outlook 2006a response schema.
func (s *Server) serveAutodiscoverPOX(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authenticate(w, r); !ok {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	s.counts.add("Autodiscover")
	email, schemaOK := parsePOXRequest(body)
	if f, ok := s.faults.take("Autodiscover", email, false); ok {
		s.counts.add("Fault:" + f.Kind.String())
		if s.applyTransportFault(w, r, f) {
			return
		}
	}
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="utf-8"`)
	root := doc.CreateElement("Autodiscover")
	root.CreateAttr("xmlns", nsPOXResp)
	mb, found := s.mailbox(email)
	switch {
	case email == "" || !schemaOK:
		poxError(root, "600", "Invalid Request")
	case !found:
		poxError(root, "500", "The email address can't be found.")
	default:
		s.poxSettings(root, r, mb)
	}
	doc.Indent(2)
	writeXML(w, http.StatusOK, doc)
}

func parsePOXRequest(body []byte) (email string, schemaOK bool) {
	doc, err := parseXML(body)
	if err != nil {
		return "", false
	}
	root := doc.Root()
	if root == nil || root.Tag != "Autodiscover" || root.NamespaceURI() != nsPOXReq {
		return "", false
	}
	req := root.SelectElement("Request")
	if req == nil {
		return "", false
	}
	if e := req.SelectElement("EMailAddress"); e != nil {
		email = strings.TrimSpace(e.Text())
	}
	schema := req.SelectElement("AcceptableResponseSchema")
	return email, schema != nil && strings.TrimSpace(schema.Text()) == nsPOXOutlook
}

func poxError(root *etree.Element, code, message string) {
	e := root.CreateElement("Response").CreateElement("Error")
	e.CreateAttr("Time", "00:00:00.0000000")
	e.CreateAttr("Id", "2477272013")
	e.CreateElement("ErrorCode").SetText(code)
	e.CreateElement("Message").SetText(message)
	e.CreateElement("DebugData")
}

func (s *Server) poxSettings(root *etree.Element, r *http.Request, mb *mailbox) {
	base := s.base(r)
	ews := base + "/EWS/Exchange.asmx"
	host := base
	if u, err := url.Parse(base); err == nil {
		host = u.Host
	}
	resp := root.CreateElement("Response")
	resp.CreateAttr("xmlns", nsPOXOutlook)
	user := resp.CreateElement("User")
	user.CreateElement("DisplayName").SetText(mb.displayName)
	user.CreateElement("LegacyDN").SetText(s.legacyDN(mb))
	user.CreateElement("AutoDiscoverSMTPAddress").SetText(mb.address)
	user.CreateElement("DeploymentId").SetText(mailboxGUID("deployment").String())
	acct := resp.CreateElement("Account")
	acct.CreateElement("AccountType").SetText("email")
	acct.CreateElement("Action").SetText("settings")
	online := "False"
	if s.version.minor >= 20 {
		online = "True"
	}
	acct.CreateElement("MicrosoftOnline").SetText(online)
	server := mb.guidText + "@" + domainOf(mb.address)
	exch := acct.CreateElement("Protocol")
	for _, kv := range [][2]string{
		{"Type", "EXCH"}, {"Server", server},
		{"ServerDN", "/o=ExchangeSimulator/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Servers/cn=" + server},
		{"ServerVersion", fmt.Sprintf("%08X", s.poxServerVersion())},
		{"MdbDN", "/o=ExchangeSimulator/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Servers/cn=" + server + "/cn=Microsoft Private MDB"},
		{"AuthPackage", "Anonymous"}, {"ASUrl", ews}, {"EwsUrl", ews}, {"EmwsUrl", ews}, {"OOFUrl", ews},
		{"ServerExclusiveConnect", "off"},
	} {
		exch.CreateElement(kv[0]).SetText(kv[1])
	}
	ssl := "Off"
	if strings.HasPrefix(base, "https:") {
		ssl = "On"
	}
	expr := acct.CreateElement("Protocol")
	for _, kv := range [][2]string{
		{"Type", "EXPR"}, {"Server", host}, {"SSL", ssl}, {"AuthPackage", "Basic"},
		{"ASUrl", ews}, {"EwsUrl", ews}, {"EmwsUrl", ews}, {"OOFUrl", ews}, {"ServerExclusiveConnect", "on"},
		{"EwsPartnerUrl", ews},
	} {
		expr.CreateElement(kv[0]).SetText(kv[1])
	}
	web := acct.CreateElement("Protocol")
	web.CreateElement("Type").SetText("WEB")
	for _, side := range []string{"Internal", "External"} {
		e := web.CreateElement(side)
		owa := e.CreateElement("OWAUrl")
		owa.CreateAttr("AuthenticationMethod", "Basic")
		owa.SetText(base + "/owa/")
		p := e.CreateElement("Protocol")
		p.CreateElement("Type").SetText(map[string]string{"Internal": "EXCH", "External": "EXPR"}[side])
		p.CreateElement("ASUrl").SetText(ews)
	}
}

// poxServerVersion packs the version the way Outlook Autodiscover's ServerVersion does:
// 4 bits of flags, 6 bits major, 6 bits minor, a set bit, 15 bits build.
func (s *Server) poxServerVersion() uint32 {
	return 0x7<<28 | uint32(s.version.major&0x3f)<<22 | uint32(s.version.minor&0x3f)<<16 | 1<<15 | uint32(s.version.build&0x7fff)
}
