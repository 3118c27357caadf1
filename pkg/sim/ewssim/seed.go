package ewssim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Seed fills a mailbox (creating it when needed) with realistic, deterministic data: contacts
// in the Salesforce_Sync folder under Contacts (created when missing) and events in the
// calendar. The same seed gives the same contacts and events; event dates are placed around
// the current week of the server's clock.
func (s *Server) Seed(address string, contacts, events int, seed int64) error {
	if contacts < 0 || events < 0 {
		return fmt.Errorf("ewssim: seed %s: negative counts", address)
	}
	if _, ok := s.mailbox(address); !ok {
		if err := s.AddMailbox(address); err != nil && !errors.Is(err, ErrMailboxExists) {
			return fmt.Errorf("ewssim: seed %s: %w", address, err)
		}
	}
	mb, err := s.lockedMailbox(address)
	if err != nil {
		return fmt.Errorf("ewssim: seed %s: %w", address, err)
	}
	defer mb.mu.Unlock()

	parent := mb.dist["contacts"]
	sync := parent.childByName(SyncFolderName)
	if sync == nil {
		sync = mb.newFolder(parent, SyncFolderName, "IPF.Contact", "")
	}
	g := &seeder{rng: rand.New(rand.NewPCG(uint64(seed), 0x7e1d5a11)), mb: mb, names: map[string]bool{}}
	now := s.now()
	for range contacts {
		it := Item{Contact: g.contact()}
		if e := mb.normalize(&it, now, false); e != nil {
			return fmt.Errorf("ewssim: seed %s: generated an invalid contact: %w", address, e)
		}
		mb.insert(sync, it, now)
	}
	week := startOfWeek(now)
	cal := mb.dist["calendar"]
	for range events {
		it := Item{CalendarItem: g.event(week)}
		mb.fillOccurrenceIDs(&it)
		if e := mb.normalize(&it, now, false); e != nil {
			return fmt.Errorf("ewssim: seed %s: generated an invalid event: %w", address, e)
		}
		mb.insert(cal, it, now)
	}
	return nil
}

func startOfWeek(t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
}

type seeder struct {
	rng *rand.Rand
	mb  *mailbox
	// names are the contacts' names drawn so far: a mailbox never gets two contacts of the same
	// name, which no email might tell apart from a namesake in Salesforce (an ambiguous match
	// that leaves both unsynced, as it should, but that a demo would show as a failure).
	names map[string]bool
}

func (g *seeder) pick(list []string) string { return list[g.rng.IntN(len(list))] }
func (g *seeder) chance(p float64) bool     { return g.rng.Float64() < p }

var (
	seedGivenNames = []string{
		"James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
		"William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
		"Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Sandra", "Anthony", "Ashley", "Mark", "Emily",
		"José", "François", "Zoë", "Søren", "Łukasz", "Björn", "Chloé", "Renée", "Jürgen", "Siobhán",
		"Ana María", "Hiroshi", "Priya", "Wei", "Fatima", "Olga", "Mateo", "Ingrid", "Ólafur", "Andrzej",
		"美咲", "Дмитрий", "Nguyễn", "Aoife", "Kwame", "Lucía", "Håkon", "Élodie", "Mehmet", "Chiara",
	}
	seedMiddleNames = []string{"A.", "B.", "J.", "Marie", "Lee", "Ann", "R.", "Louise", "Paul", "K."}
	seedSurnames    = []string{
		"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
		"Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Taylor", "Moore", "Jackson", "Martin", "Lee",
		"Müller", "Dubois", "Núñez", "Østergaard", "Kowalski", "O'Brien", "Nakamura", "Schröder", "Janssen",
		"Rossi", "Nguyen", "Patel", "Kim", "Ivanova", "Papadopoulos", "van der Berg", "Fernández", "Björklund",
		"田中", "Çelik", "Ó Súilleabháin", "Dvořák", "Lefèvre", "Weiß", "Mensah", "Haddad", "Silva", "Novak",
	}
	seedCompanies = []string{
		"Contoso Ltd", "Fabrikam Inc", "Northwind Traders", "Tailspin Toys", "Adventure Works", "Litware Inc",
		"Proseware", "Woodgrove Bank", "Wide World Importers", "Fourth Coffee", "Alpine Ski House",
		"Blue Yonder Airlines", "Coho Winery", "Lucerne Publishing", "Margie's Travel", "Trey Research",
		"Graphic Design Institute", "School of Fine Art", "Humongous Insurance", "Wingtip Toys",
		"Münchner Maschinenbau AG", "Société Générale d'Énergie", "Nordisk Fjord A/S", "São Paulo Têxtil Ltda",
		"Kraków Logistyka Sp. z o.o.", "東京精密株式会社", "Acme Corporation", "Globex", "Initech", "Umbrella Health",
	}
	seedTitles = []string{
		"Account Executive", "VP of Sales", "Chief Financial Officer", "Procurement Manager", "IT Director",
		"Operations Manager", "Head of Marketing", "Software Engineer", "Office Manager", "CEO", "Buyer",
		"Directeur commercial", "Geschäftsführer", "Senior Consultant", "Product Manager", "Legal Counsel",
	}
	seedDepartments = []string{"Sales", "Finance", "Procurement", "IT", "Operations", "Marketing", "Engineering", "Legal", "Executive", "Einkauf"}
	seedStreets     = []string{
		"Main Street", "Market Street", "Oak Avenue", "Pine Road", "Broadway", "High Street", "Rue de Rivoli",
		"Hauptstraße", "Calle Mayor", "Via Roma", "Strandvejen", "ul. Floriańska", "Avenida Paulista", "Queen Street West",
	}
	// Phone formats use the numbers each country reserves for fiction where it has some.
	seedCities = []struct{ city, state, country, postal, phone string }{
		{"San Francisco", "CA", "United States", "94105", "+1 415-555-01%02d"},
		{"New York", "NY", "United States", "10001", "+1 212-555-01%02d"},
		{"Austin", "TX", "United States", "73301", "+1 512-555-01%02d"},
		{"Seattle", "WA", "United States", "98101", "+1 206-555-01%02d"},
		{"Chicago", "IL", "United States", "60601", "+1 312-555-01%02d"},
		{"Toronto", "ON", "Canada", "M5H 2N2", "+1 416-555-01%02d"},
		{"London", "", "United Kingdom", "EC1A 1BB", "+44 20 7946 0%03d"},
		{"Paris", "Île-de-France", "France", "75001", "+33 1 99 00 %04d"},
		{"München", "Bayern", "Germany", "80331", "+49 89 99999 %03d"},
		{"Zürich", "ZH", "Switzerland", "8001", "+41 44 999 %04d"},
		{"São Paulo", "SP", "Brazil", "01000-000", "+55 11 5555-%04d"},
		{"Tokyo", "東京都", "Japan", "100-0001", "+81 3-5555-%04d"},
		{"Sydney", "NSW", "Australia", "2000", "+61 2 5550 %04d"},
		{"Kraków", "Małopolskie", "Poland", "30-001", "+48 12 555 %04d"},
		{"København", "", "Denmark", "1050", "+45 55 55 %04d"},
		{"Dublin", "", "Ireland", "D02 X285", "+353 1 555 %04d"},
	}
	seedNotes = []string{
		"Met at the trade show; interested in the enterprise plan.",
		"Prefers email over phone. Decision expected next quarter.",
		"Introduced by our partner. Follow up about the renewal.",
		"Budget owner for the EMEA rollout.\nAsk about the pilot results.",
		"Très intéressé par l'intégration — rappeler après les vacances.",
		"Ansprechpartner für die Ausschreibung 2026.",
		"Key stakeholder — loop in on all contract discussions.",
	}
	seedCategories = []string{"Customer", "Partner", "Prospect", "VIP", "Internal", "Travel"}
)

// asciiFold turns "Zoë Müller" into "zoemuller" for made-up email addresses; names with no
// Latin letters fall back to a generated local part.
func asciiFold(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		switch {
		case r == 'ø' || r == 'Ø':
			b.WriteByte('o')
		case r == 'ł' || r == 'Ł':
			b.WriteByte('l')
		case r == 'ß':
			b.WriteString("ss")
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

func companyDomain(company string) string {
	d := asciiFold(strings.Fields(company + " x")[0])
	if d == "" {
		d = "company"
	}
	return d + ".example.com"
}

func (g *seeder) person() (given, surname, email string) {
	given, surname = g.pick(seedGivenNames), g.pick(seedSurnames)
	local := asciiFold(given) + "." + asciiFold(surname)
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") {
		local = fmt.Sprintf("contact%04d", g.rng.IntN(10000))
	}
	return given, surname, local + "@" + companyDomain(g.pick(seedCompanies))
}

func (g *seeder) phone(format string) string {
	return fmt.Sprintf(format, g.rng.IntN(100))
}

func (g *seeder) address(key string) PhysicalAddress {
	c := seedCities[g.rng.IntN(len(seedCities))]
	street := fmt.Sprintf("%d %s", 1+g.rng.IntN(2500), g.pick(seedStreets))
	if g.chance(0.2) {
		street += fmt.Sprintf("\nSuite %d", 100+g.rng.IntN(900))
	}
	return PhysicalAddress{Key: key, Street: street, City: c.city, State: c.state, CountryOrRegion: c.country, PostalCode: c.postal}
}

func (g *seeder) contact() *Contact {
	c := &Contact{}
	c.GivenName, c.Surname, _ = g.person()
	for range 20 {
		if !g.names[c.GivenName+"\x1f"+c.Surname] {
			break
		}
		c.GivenName, c.Surname, _ = g.person()
	}
	g.names[c.GivenName+"\x1f"+c.Surname] = true
	if g.chance(0.15) {
		c.MiddleName = g.pick(seedMiddleNames)
	}
	c.FileAs = c.Surname + ", " + c.GivenName
	company := ""
	if g.chance(0.85) {
		company = g.pick(seedCompanies)
		c.CompanyName = company
	}
	if g.chance(0.7) {
		c.JobTitle = g.pick(seedTitles)
	}
	if g.chance(0.5) {
		c.Department = g.pick(seedDepartments)
	}
	local := asciiFold(c.GivenName) + "." + asciiFold(c.Surname)
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") {
		local = fmt.Sprintf("contact%05d", g.rng.IntN(100000))
	}
	domain := "mail.example.net"
	if company != "" {
		domain = companyDomain(company)
	}
	if g.chance(0.95) {
		c.SetEmail("EmailAddress1", local+"@"+domain)
	}
	if g.chance(0.2) {
		c.SetEmail("EmailAddress2", local+"@personal.example.org")
	}
	if g.chance(0.05) {
		c.SetEmail("EmailAddress3", asciiFold(c.GivenName)+fmt.Sprint(g.rng.IntN(100))+"@example.org")
	}
	city := seedCities[g.rng.IntN(len(seedCities))]
	for _, p := range []struct {
		key string
		p   float64
	}{{"BusinessPhone", 0.8}, {"MobilePhone", 0.6}, {"HomePhone", 0.15}, {"OtherTelephone", 0.05}, {"BusinessFax", 0.1}, {"AssistantPhone", 0.05}} {
		if g.chance(p.p) {
			c.SetPhone(p.key, g.phone(city.phone))
		}
	}
	for _, a := range []struct {
		key string
		p   float64
	}{{"Business", 0.6}, {"Home", 0.15}, {"Other", 0.05}} {
		if g.chance(a.p) {
			c.SetAddress(g.address(a.key))
		}
	}
	if g.chance(0.3) {
		c.Birthday = time.Date(1955+g.rng.IntN(46), time.Month(1+g.rng.IntN(12)), 1+g.rng.IntN(28), 0, 0, 0, 0, time.UTC)
	}
	if g.chance(0.25) {
		c.Body, c.BodyType = g.pick(seedNotes), "Text"
	}
	if g.chance(0.1) {
		c.Categories = []string{g.pick(seedCategories)}
	}
	return c
}

var (
	seedSubjects = []string{
		"Quarterly business review", "Pipeline review", "Déjeuner d'affaires", "Kick-off: Projekt Müller",
		"Product demo", "1:1", "Renewal discussion", "Budget planning", "営業会議", "Customer onboarding",
		"Contract negotiation", "Site visit", "Executive briefing", "Café mit dem Einkauf", "Pricing workshop",
		"Support escalation review", "Partner sync", "Reunión de seguimiento",
	}
	seedLocations = []string{"Conference Room A", "Conference Room 4.12", "Microsoft Teams Meeting", "Customer office",
		"Café Central, Wien", "Zoom", "Building 7 / Lobby", "Headquarters — Boardroom", ""}
	seedZones  = []string{"Pacific Standard Time", "Eastern Standard Time", "W. Europe Standard Time", "GMT Standard Time", "UTC", "Tokyo Standard Time"}
	seedAgenda = []string{
		"Agenda:\n1. Recap\n2. Open issues\n3. Next steps",
		"Please review the attached proposal before the call.",
		"Dial-in details in the Teams invite.",
		"Ordre du jour : bilan du trimestre et perspectives.",
	}
	seedRooms = []Attendee{{Name: "Conference Room A", Address: "room-a@rooms.example.com"}, {Name: "Boardroom", Address: "boardroom@rooms.example.com"}}
)

func (g *seeder) attendee() Attendee {
	given, surname, email := g.person()
	a := Attendee{Name: given + " " + surname, Address: email}
	switch r := g.rng.IntN(10); {
	case r < 5:
		a.ResponseType = "Accept"
	case r < 6:
		a.ResponseType = "Tentative"
	case r < 7:
		a.ResponseType = "Decline"
	default:
		a.ResponseType = "NoResponseReceived"
	}
	if a.ResponseType != "NoResponseReceived" {
		a.LastResponseTime = time.Date(2025, time.Month(1+g.rng.IntN(12)), 1+g.rng.IntN(28), g.rng.IntN(24), g.rng.IntN(60), 0, 0, time.UTC)
	}
	return a
}

func (g *seeder) event(week time.Time) *CalendarItem {
	e := &CalendarItem{}
	e.Subject = g.pick(seedSubjects)
	zone := g.pick(seedZones)
	e.StartTimeZone, e.EndTimeZone = zone, zone
	loc := zoneLocation(zone)
	if loc == nil {
		loc = time.UTC
	}
	day := week.AddDate(0, 0, g.rng.IntN(84)-28)
	kind := g.rng.IntN(100)
	switch {
	case kind < 15: // all-day, one to three days, midnight to midnight in the event's zone
		y, m, d := day.Date()
		start := time.Date(y, m, d, 0, 0, 0, 0, loc)
		e.Start, e.End = start, start.AddDate(0, 0, 1+g.rng.IntN(3))
		e.IsAllDayEvent = true
		e.LegacyFreeBusyStatus = []string{"Free", "OOF", "Busy"}[g.rng.IntN(3)]
	default:
		y, m, d := day.Date()
		start := time.Date(y, m, d, 8+g.rng.IntN(10), []int{0, 30}[g.rng.IntN(2)], 0, 0, loc)
		e.Start, e.End = start, start.Add(time.Duration(1+g.rng.IntN(3))*30*time.Minute)
		if g.chance(0.1) {
			e.LegacyFreeBusyStatus = "Tentative"
		}
	}
	e.Location = g.pick(seedLocations)
	if kind >= 15 && kind < 90 {
		for range 1 + g.rng.IntN(5) {
			e.RequiredAttendees = append(e.RequiredAttendees, g.attendee())
		}
		for range g.rng.IntN(3) {
			e.OptionalAttendees = append(e.OptionalAttendees, g.attendee())
		}
		if g.chance(0.1) {
			room := seedRooms[g.rng.IntN(len(seedRooms))]
			room.ResponseType = "Accept"
			e.Resources = []Attendee{room}
		}
	}
	if kind >= 70 {
		g.recurrence(e)
	}
	switch r := g.rng.IntN(20); {
	case r == 0:
		e.Sensitivity = "Personal"
	case r < 3:
		e.Sensitivity = "Private"
	}
	if g.chance(0.4) {
		e.Body, e.BodyType = g.pick(seedAgenda), "Text"
	}
	if g.chance(0.15) {
		e.Categories = []string{g.pick(seedCategories)}
	}
	return e
}

// recurrence makes e the master of a series, sometimes with a deleted and a moved occurrence.
func (g *seeder) recurrence(e *CalendarItem) {
	loc := zoneLocation(e.StartTimeZone)
	if loc == nil {
		loc = time.UTC
	}
	local := e.Start.In(loc)
	r := &Recurrence{StartDate: local.Format("2006-01-02")}
	period := 0 // days between occurrences, when simple enough to place exceptions
	switch g.rng.IntN(6) {
	case 0:
		r.Pattern, r.Interval, period = "Daily", 1, 1
	case 1, 2:
		r.Pattern, r.Interval = "Weekly", 1+g.rng.IntN(2)
		r.DaysOfWeek = []string{local.Weekday().String()}
		period = 7 * r.Interval
	case 3:
		r.Pattern, r.Interval, r.DayOfMonth = "AbsoluteMonthly", 1, local.Day()
	case 4:
		r.Pattern, r.Interval = "RelativeMonthly", 1
		r.DaysOfWeek, r.DayOfWeekIndex = []string{local.Weekday().String()}, dayOfWeekIndexes[min((local.Day()-1)/7, 4)]
	default:
		r.Pattern, r.DayOfMonth, r.Month = "AbsoluteYearly", local.Day(), local.Month().String()
	}
	switch g.rng.IntN(3) {
	case 0:
		r.Range, r.NumberOfOccurrences = "Numbered", 4+g.rng.IntN(9)
	case 1:
		r.Range, r.EndDate = "EndDate", local.AddDate(0, 6, 0).Format("2006-01-02")
	default:
		r.Range = "NoEnd"
	}
	e.Recurrence = r
	if period > 0 && g.chance(0.3) {
		e.DeletedOccurrences = []time.Time{e.Start.AddDate(0, 0, 2*period).UTC()}
	}
	if period > 0 && g.chance(0.3) {
		orig := e.Start.AddDate(0, 0, period)
		e.ModifiedOccurrences = []Occurrence{{Start: orig.Add(time.Hour).UTC(), End: orig.Add(time.Hour + e.End.Sub(e.Start)).UTC(), OriginalStart: orig.UTC()}}
	}
}
