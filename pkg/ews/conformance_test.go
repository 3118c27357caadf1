package ews

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/exchange/exchangetest"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	simAccount  = "svc@contoso.com"
	simPassword = "Sim-Passw0rd"
)

// simEnv is a simulated Exchange on an httptest server.
type simEnv struct {
	sim *ewssim.Server
	srv *httptest.Server
}

func newSimEnv(t *testing.T, cfg ewssim.Config) *simEnv {
	t.Helper()
	if cfg.ServiceAccounts == nil {
		cfg.ServiceAccounts = []ewssim.ServiceAccount{{Username: simAccount, Password: simPassword, ImpersonateAll: true}}
	}
	cfg.RequireAnchorMailbox = true
	sim := ewssim.New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)
	return &simEnv{sim: sim, srv: srv}
}

// connection is a Basic connection to the simulator found through its SOAP Autodiscover.
func (e *simEnv) connection() *tandemv1.ExchangeConnection {
	return &tandemv1.ExchangeConnection{
		Auth:            tandemv1.ExchangeAuth_EXCHANGE_AUTH_BASIC,
		ServiceAccount:  simAccount,
		Password:        simPassword,
		AutodiscoverUrl: e.srv.URL + "/autodiscover/autodiscover.svc",
	}
}

func (e *simEnv) connector(t *testing.T, conn *tandemv1.ExchangeConnection, mutate ...func(*ConnectorConfig)) *Connector {
	t.Helper()
	cfg := ConnectorConfig{
		Connection: conn,
		HTTPClient: e.srv.Client(),
		AllowHTTP:  true,
		PageSize:   2, // small pages make every read span several SyncFolderItems calls
		Client:     Config{RetryBaseDelay: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond, RequestTimeout: 10 * time.Second},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConformance runs the connector conformance suite against the simulator posing as each
// supported server: Exchange 2016 and 2019 on premises with a Basic service account found
// through Autodiscover, and Exchange Online with OAuth client credentials and a fixed EWS URL.
func TestConformance(t *testing.T) {
	oauthApp := ewssim.OAuthApp{TenantID: "contoso.onmicrosoft.com", ClientID: "tandem-app", ClientSecret: "app-secret"}
	for _, server := range []struct {
		name    string
		version string
		conn    func(e *simEnv) *tandemv1.ExchangeConnection
	}{
		{"Exchange2016", "Exchange2016", (*simEnv).connection},
		{"Exchange2019", "Exchange2019", (*simEnv).connection},
		{"ExchangeOnline", "ExchangeOnline", func(e *simEnv) *tandemv1.ExchangeConnection {
			return &tandemv1.ExchangeConnection{
				Auth: tandemv1.ExchangeAuth_EXCHANGE_AUTH_OAUTH_CLIENT_CREDENTIALS, TenantId: oauthApp.TenantID,
				ClientId: oauthApp.ClientID, ClientSecret: oauthApp.ClientSecret,
				TokenUrl: e.srv.URL + "/" + oauthApp.TenantID + "/oauth2/v2.0/token",
				EwsUrl:   e.srv.URL + "/EWS/Exchange.asmx",
			}
		}},
	} {
		t.Run(server.name, func(t *testing.T) {
			exchangetest.Run(t, func(t *testing.T) *exchangetest.Harness {
				env := newSimEnv(t, ewssim.Config{ServerVersion: server.version, OAuthApps: []ewssim.OAuthApp{oauthApp}})
				const address = "alice@contoso.com"
				if err := env.sim.AddMailbox(address); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if n := env.sim.Counts()["MissingAnchorMailbox"]; n != 0 {
						t.Errorf("%d requests without X-AnchorMailbox", n)
					}
				})
				return &exchangetest.Harness{
					Connector:    env.connector(t, server.conn(env)),
					NewConnector: func() exchange.Connector { return env.connector(t, server.conn(env)) },
					Mailbox:      exchange.Mailbox{OrgID: "00D000000000001", UserID: "005000000000001", Address: address},
					Backdoor:     &simBackdoor{env: env, address: address},
					Faults:       &simFaults{sim: env.sim, address: address},
				}
			})
		})
	}
}

// simFaults injects throttling into the simulator.
type simFaults struct {
	sim     *ewssim.Server
	address string
}

func (f *simFaults) Throttle(_ context.Context, backOff time.Duration, n int) error {
	f.sim.InjectFault(ewssim.Fault{Mailbox: f.address, Kind: ewssim.FaultServerBusy, BackOff: backOff, Times: n})
	return nil
}

// simBackdoor edits the simulator's mailbox as the user would in Outlook. Its conversions are
// written independently of the connector's so that the two check each other.
type simBackdoor struct {
	env     *simEnv
	address string
}

// harnessZones are the time zones the suite uses.
var harnessZones = map[string]string{
	"UTC": "UTC", "Eastern Standard Time": "America/New_York",
	"W. Europe Standard Time": "Europe/Berlin", "GMT Standard Time": "Europe/London",
}

func harnessZone(id string) *time.Location {
	loc, err := time.LoadLocation(harnessZones[id])
	if err != nil || harnessZones[id] == "" {
		return time.UTC
	}
	return loc
}

func (b *simBackdoor) CreateContact(_ context.Context, c *tandemv1.Contact) (string, error) {
	return b.env.sim.PutContact(b.address, exchange.SyncFolderName, toSimContact(c))
}

func (b *simBackdoor) CreateEvent(_ context.Context, e *tandemv1.Event) (string, error) {
	return b.env.sim.PutEvent(b.address, toSimEvent(e))
}

func (b *simBackdoor) UpdateContact(_ context.Context, id string, c *tandemv1.Contact) error {
	return b.env.sim.UpdateItem(b.address, id, func(it *ewssim.Item) {
		keep := it.Contact.ExtendedProperties
		nc := toSimContact(c)
		nc.ExtendedProperties = keep
		it.Contact = &nc
	})
}

func (b *simBackdoor) UpdateEvent(_ context.Context, id string, e *tandemv1.Event) error {
	return b.env.sim.UpdateItem(b.address, id, func(it *ewssim.Item) {
		keep, uid, org := it.CalendarItem.ExtendedProperties, it.CalendarItem.UID, it.CalendarItem.Organizer
		ne := toSimEvent(e)
		ne.ExtendedProperties, ne.UID, ne.Organizer = keep, uid, org
		it.CalendarItem = &ne
	})
}

func (b *simBackdoor) Delete(_ context.Context, _ tandemv1.RecordKind, id string) error {
	return b.env.sim.DeleteItem(b.address, id)
}

func (b *simBackdoor) MoveOut(_ context.Context, kind tandemv1.RecordKind, id string) error {
	if kind == tandemv1.RecordKind_RECORD_KIND_CONTACT {
		return b.env.sim.MoveItem(b.address, id, "contacts")
	}
	other, err := b.env.sim.FolderID(b.address, "Other calendar")
	if err != nil {
		if other, err = b.env.sim.CreateFolder(b.address, "calendar", "Other calendar", "IPF.Appointment"); err != nil {
			return err
		}
	}
	return b.env.sim.MoveItem(b.address, id, other)
}

func (b *simBackdoor) List(_ context.Context, kind tandemv1.RecordKind) ([]*tandemv1.Record, error) {
	folder := "calendar"
	if kind == tandemv1.RecordKind_RECORD_KIND_CONTACT {
		folder = exchange.SyncFolderName
	}
	return b.records(kind, folder), nil
}

func (b *simBackdoor) Deleted(_ context.Context, kind tandemv1.RecordKind) ([]*tandemv1.Record, error) {
	return b.records(kind, "deleteditems"), nil
}

// records converts the items of kind in folder.
func (b *simBackdoor) records(kind tandemv1.RecordKind, folder string) []*tandemv1.Record {
	var out []*tandemv1.Record
	for _, it := range b.env.sim.Items(b.address, folder) {
		rec := &tandemv1.Record{Id: it.ItemID, Version: it.ChangeKey}
		switch {
		case it.Contact != nil && kind == tandemv1.RecordKind_RECORD_KIND_CONTACT:
			rec.SyncKey = simSyncKey(it.Contact.ExtendedProperties)
			rec.Body = &tandemv1.Record_Contact{Contact: fromSimContact(it.Contact)}
		case it.CalendarItem != nil && kind == tandemv1.RecordKind_RECORD_KIND_EVENT:
			rec.SyncKey = simSyncKey(it.CalendarItem.ExtendedProperties)
			rec.Body = &tandemv1.Record_Event{Event: fromSimEvent(it.CalendarItem)}
		default:
			continue
		}
		out = append(out, rec)
	}
	return out
}

// SyncFolders asks the simulator with a hand-written FindFolder, independent of the client.
func (b *simBackdoor) SyncFolders(ctx context.Context) (int, error) {
	body := `<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <soap:Header>
    <t:RequestServerVersion Version="Exchange2013_SP1"/>
    <t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>` + b.address + `</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>
  </soap:Header>
  <soap:Body>
    <m:FindFolder Traversal="Shallow">
      <m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>
      <m:ParentFolderIds><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderIds>
    </m:FindFolder>
  </soap:Body>
</soap:Envelope>`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.env.srv.URL+"/EWS/Exchange.asmx", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(simAccount, simPassword)
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("X-AnchorMailbox", b.address)
	resp, err := b.env.srv.Client().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(data); err != nil {
		return 0, fmt.Errorf("FindFolder answer: %w", err)
	}
	n := 0
	for _, dn := range doc.FindElements("//DisplayName") {
		if strings.EqualFold(dn.Text(), exchange.SyncFolderName) {
			n++
		}
	}
	if !bytes.Contains(data, []byte("NoError")) {
		return 0, fmt.Errorf("FindFolder failed: %s", data)
	}
	return n, nil
}

func simSyncKey(props []ewssim.ExtendedProperty) string {
	for _, p := range props {
		if strings.EqualFold(strings.Trim(p.PropertySetID, "{}"), SyncKeyPropertySetID) && p.PropertyName == SyncKeyPropertyName {
			return p.Value
		}
	}
	return ""
}

var simPhoneKeys = []struct {
	key string
	get func(*tandemv1.Contact) *string
}{
	{"BusinessPhone", func(c *tandemv1.Contact) *string { return &c.BusinessPhone }},
	{"MobilePhone", func(c *tandemv1.Contact) *string { return &c.MobilePhone }},
	{"HomePhone", func(c *tandemv1.Contact) *string { return &c.HomePhone }},
	{"OtherTelephone", func(c *tandemv1.Contact) *string { return &c.OtherPhone }},
	{"BusinessFax", func(c *tandemv1.Contact) *string { return &c.BusinessFax }},
	{"AssistantPhone", func(c *tandemv1.Contact) *string { return &c.AssistantPhone }},
}

var simAddressKeys = []struct {
	key string
	get func(*tandemv1.Contact) **tandemv1.PostalAddress
}{
	{"Business", func(c *tandemv1.Contact) **tandemv1.PostalAddress { return &c.BusinessAddress }},
	{"Home", func(c *tandemv1.Contact) **tandemv1.PostalAddress { return &c.HomeAddress }},
	{"Other", func(c *tandemv1.Contact) **tandemv1.PostalAddress { return &c.OtherAddress }},
}

func toSimContact(c *tandemv1.Contact) ewssim.Contact {
	sc := ewssim.Contact{
		GivenName: c.GivenName, MiddleName: c.MiddleName, Surname: c.Surname, CompanyName: c.CompanyName,
		JobTitle: c.JobTitle, Department: c.Department,
		DisplayName: strings.TrimSpace(c.GivenName + " " + c.Surname),
	}
	sc.Body, sc.BodyType = c.Notes, "Text"
	// Exchange's simulator keeps the contact properties it does not model by element name.
	for name, v := range map[string]string{"AssistantName": c.AssistantName, "Generation": c.Suffix} {
		if v != "" {
			if sc.Other == nil {
				sc.Other = map[string]string{}
			}
			sc.Other[name] = v
		}
	}
	sc.SetEmail("EmailAddress1", c.EmailAddress1)
	sc.SetEmail("EmailAddress2", c.EmailAddress2)
	sc.SetEmail("EmailAddress3", c.EmailAddress3)
	for _, p := range simPhoneKeys {
		sc.SetPhone(p.key, *p.get(c))
	}
	for _, a := range simAddressKeys {
		if pa := *a.get(c); pa != nil {
			sc.SetAddress(ewssim.PhysicalAddress{Key: a.key, Street: pa.Street, City: pa.City, State: pa.State, CountryOrRegion: pa.Country, PostalCode: pa.PostalCode})
		}
	}
	if d := c.Birthday; d != nil {
		sc.Birthday = time.Date(int(d.Year), time.Month(d.Month), int(d.Day), 11, 59, 0, 0, time.UTC)
	}
	return sc
}

func fromSimContact(sc *ewssim.Contact) *tandemv1.Contact {
	c := &tandemv1.Contact{
		GivenName: sc.GivenName, MiddleName: sc.MiddleName, Surname: sc.Surname, CompanyName: sc.CompanyName,
		JobTitle: sc.JobTitle, Department: sc.Department, Notes: sc.Body,
		AssistantName: sc.Other["AssistantName"], Suffix: sc.Other["Generation"],
		EmailAddress1: sc.Email("EmailAddress1"), EmailAddress2: sc.Email("EmailAddress2"), EmailAddress3: sc.Email("EmailAddress3"),
	}
	for _, p := range simPhoneKeys {
		*p.get(c) = sc.Phone(p.key)
	}
	for _, a := range simAddressKeys {
		if pa, ok := sc.Address(a.key); ok {
			*a.get(c) = &tandemv1.PostalAddress{Street: pa.Street, City: pa.City, State: pa.State, Country: pa.CountryOrRegion, PostalCode: pa.PostalCode}
		}
	}
	if !sc.Birthday.IsZero() {
		b := sc.Birthday.UTC()
		c.Birthday = &tandemv1.Date{Year: int32(b.Year()), Month: int32(b.Month()), Day: int32(b.Day())}
	}
	return c
}

var (
	simSensitivity = map[tandemv1.Sensitivity]string{
		tandemv1.Sensitivity_SENSITIVITY_NORMAL: "Normal", tandemv1.Sensitivity_SENSITIVITY_PERSONAL: "Personal",
		tandemv1.Sensitivity_SENSITIVITY_PRIVATE: "Private", tandemv1.Sensitivity_SENSITIVITY_CONFIDENTIAL: "Confidential",
	}
	simShowAs = map[tandemv1.ShowAs]string{
		tandemv1.ShowAs_SHOW_AS_FREE: "Free", tandemv1.ShowAs_SHOW_AS_TENTATIVE: "Tentative", tandemv1.ShowAs_SHOW_AS_BUSY: "Busy",
		tandemv1.ShowAs_SHOW_AS_OUT_OF_OFFICE: "OOF", tandemv1.ShowAs_SHOW_AS_WORKING_ELSEWHERE: "WorkingElsewhere",
	}
	simPattern = map[tandemv1.RecurrencePatternType]string{
		tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_DAILY:            "Daily",
		tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_WEEKLY:           "Weekly",
		tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_ABSOLUTE_MONTHLY: "AbsoluteMonthly",
		tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_RELATIVE_MONTHLY: "RelativeMonthly",
		tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_ABSOLUTE_YEARLY:  "AbsoluteYearly",
		tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_RELATIVE_YEARLY:  "RelativeYearly",
	}
	simDays = map[tandemv1.DayOfWeek]string{
		tandemv1.DayOfWeek_DAY_OF_WEEK_SUNDAY: "Sunday", tandemv1.DayOfWeek_DAY_OF_WEEK_MONDAY: "Monday",
		tandemv1.DayOfWeek_DAY_OF_WEEK_TUESDAY: "Tuesday", tandemv1.DayOfWeek_DAY_OF_WEEK_WEDNESDAY: "Wednesday",
		tandemv1.DayOfWeek_DAY_OF_WEEK_THURSDAY: "Thursday", tandemv1.DayOfWeek_DAY_OF_WEEK_FRIDAY: "Friday",
		tandemv1.DayOfWeek_DAY_OF_WEEK_SATURDAY: "Saturday", tandemv1.DayOfWeek_DAY_OF_WEEK_DAY: "Day",
		tandemv1.DayOfWeek_DAY_OF_WEEK_WEEKDAY: "Weekday", tandemv1.DayOfWeek_DAY_OF_WEEK_WEEKEND_DAY: "WeekendDay",
	}
	simIndex = map[tandemv1.WeekIndex]string{
		tandemv1.WeekIndex_WEEK_INDEX_FIRST: "First", tandemv1.WeekIndex_WEEK_INDEX_SECOND: "Second",
		tandemv1.WeekIndex_WEEK_INDEX_THIRD: "Third", tandemv1.WeekIndex_WEEK_INDEX_FOURTH: "Fourth", tandemv1.WeekIndex_WEEK_INDEX_LAST: "Last",
	}
)

func reverse[K, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

func simDate(d *tandemv1.Date) string {
	if d == nil {
		return ""
	}
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day)
}

func toSimEvent(e *tandemv1.Event) ewssim.CalendarItem {
	ce := ewssim.CalendarItem{
		Location: e.Location, StartTimeZone: e.StartTimeZone, EndTimeZone: e.EndTimeZone,
		IsAllDayEvent: e.IsAllDay, LegacyFreeBusyStatus: simShowAs[e.ShowAs],
	}
	ce.Subject, ce.Body, ce.BodyType = e.Subject, e.Body, "Text"
	ce.Sensitivity, ce.Categories = simSensitivity[e.Sensitivity], e.Categories
	if ce.EndTimeZone == "" {
		ce.EndTimeZone = ce.StartTimeZone
	}
	if e.IsAllDay {
		loc := harnessZone(e.StartTimeZone)
		sd, ed := e.StartDate, e.EndDate
		if ed == nil {
			ed = sd
		}
		ce.Start = time.Date(int(sd.Year), time.Month(sd.Month), int(sd.Day), 0, 0, 0, 0, loc)
		ce.End = time.Date(int(ed.Year), time.Month(ed.Month), int(ed.Day)+1, 0, 0, 0, 0, loc)
	} else {
		ce.Start, ce.End = e.Start.AsTime(), e.End.AsTime()
	}
	for _, a := range e.Attendees {
		sa := ewssim.Attendee{Name: a.Name, Address: a.Email}
		switch a.Type {
		case tandemv1.AttendeeType_ATTENDEE_TYPE_OPTIONAL:
			ce.OptionalAttendees = append(ce.OptionalAttendees, sa)
		case tandemv1.AttendeeType_ATTENDEE_TYPE_RESOURCE:
			ce.Resources = append(ce.Resources, sa)
		default:
			ce.RequiredAttendees = append(ce.RequiredAttendees, sa)
		}
	}
	if r := e.Recurrence; r != nil {
		sr := &ewssim.Recurrence{
			Pattern: simPattern[r.Pattern], Interval: int(r.Interval), DayOfWeekIndex: simIndex[r.Index],
			DayOfMonth: int(r.DayOfMonth), FirstDayOfWeek: simDays[r.FirstDayOfWeek],
			StartDate: simDate(r.StartDate), EndDate: simDate(r.EndDate), NumberOfOccurrences: int(r.NumberOfOccurrences),
		}
		if r.Month > 0 {
			sr.Month = time.Month(r.Month).String()
		}
		for _, d := range r.DaysOfWeek {
			sr.DaysOfWeek = append(sr.DaysOfWeek, simDays[d])
		}
		switch {
		case r.EndDate != nil:
			sr.Range = "EndDate"
		case r.NumberOfOccurrences > 0:
			sr.Range = "Numbered"
		default:
			sr.Range = "NoEnd"
		}
		if sr.StartDate == "" {
			sr.StartDate = ce.Start.In(harnessZone(e.StartTimeZone)).Format("2006-01-02")
		}
		ce.Recurrence = sr
	}
	return ce
}

func fromSimEvent(ce *ewssim.CalendarItem) *tandemv1.Event {
	e := &tandemv1.Event{
		Subject: ce.Subject, Body: ce.Body, Location: ce.Location, IsAllDay: ce.IsAllDayEvent,
		StartTimeZone: ce.StartTimeZone, EndTimeZone: ce.EndTimeZone, Categories: ce.Categories,
		Sensitivity: reverse(simSensitivity)[ce.Sensitivity], ShowAs: reverse(simShowAs)[ce.LegacyFreeBusyStatus],
		Start: timestamppb.New(ce.Start), End: timestamppb.New(ce.End),
	}
	if e.IsAllDay {
		loc := harnessZone(ce.StartTimeZone)
		s, end := ce.Start.In(loc), ce.End.In(loc).AddDate(0, 0, -1)
		e.StartDate = &tandemv1.Date{Year: int32(s.Year()), Month: int32(s.Month()), Day: int32(s.Day())}
		e.EndDate = &tandemv1.Date{Year: int32(end.Year()), Month: int32(end.Month()), Day: int32(end.Day())}
	}
	for _, g := range []struct {
		list []ewssim.Attendee
		typ  tandemv1.AttendeeType
	}{
		{ce.RequiredAttendees, tandemv1.AttendeeType_ATTENDEE_TYPE_REQUIRED},
		{ce.OptionalAttendees, tandemv1.AttendeeType_ATTENDEE_TYPE_OPTIONAL},
		{ce.Resources, tandemv1.AttendeeType_ATTENDEE_TYPE_RESOURCE},
	} {
		for _, a := range g.list {
			e.Attendees = append(e.Attendees, &tandemv1.Attendee{Email: a.Address, Name: a.Name, Type: g.typ})
		}
	}
	if r := ce.Recurrence; r != nil {
		days := reverse(simDays)
		cr := &tandemv1.Recurrence{
			Pattern: reverse(simPattern)[r.Pattern], Interval: int32(r.Interval), Index: reverse(simIndex)[r.DayOfWeekIndex],
			DayOfMonth: int32(r.DayOfMonth), FirstDayOfWeek: days[r.FirstDayOfWeek], NumberOfOccurrences: int32(r.NumberOfOccurrences),
		}
		if m, err := time.Parse("January", r.Month); err == nil {
			cr.Month = int32(m.Month())
		}
		for _, d := range r.DaysOfWeek {
			cr.DaysOfWeek = append(cr.DaysOfWeek, days[d])
		}
		for _, s := range []struct {
			in  string
			out **tandemv1.Date
		}{{r.StartDate, &cr.StartDate}, {r.EndDate, &cr.EndDate}} {
			if t, err := time.Parse("2006-01-02", s.in); err == nil {
				*s.out = &tandemv1.Date{Year: int32(t.Year()), Month: int32(t.Month()), Day: int32(t.Day())}
			}
		}
		e.Recurrence = cr
	}
	return e
}
