package sfsim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/tandem-sync/tandem/pkg/sim/soql"
)

// Seed data: varied on purpose (accents, apostrophes, non-Latin scripts, long values), since
// the sync must carry all of it across.
var (
	seedFirstNames = []string{
		"Olivia", "Liam", "Emma", "Noah", "Ava", "Mateo", "Sophia", "Lucas", "Isabella", "Ethan",
		"Mia", "James", "Charlotte", "Benjamin", "Amelia", "Elijah", "Harper", "Oliver", "Evelyn", "Jacob",
		"José", "María", "Zoë", "Søren", "Björn", "Chloé", "François", "Łukasz", "Anaïs", "Renée",
		"Priya", "Arjun", "Wei", "Mei", "Hiroshi", "Yuki", "Ji-woo", "Min-jun", "Aisha", "Omar",
		"Fatima", "Kwame", "Ngozi", "Thandiwe", "Siobhán", "Seán", "Dmitri", "Anastasia", "Giulia", "Matteo",
		"Ana-Lucía", "Jean-Luc", "D'Andre", "Mary Ann", "Nguyễn", "王", "Ολυμπία", "Александр", "Ayşe", "Kai",
	}
	seedLastNames = []string{
		"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
		"Hernández", "López", "González", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
		"O'Connor", "O'Brien", "McDonald", "MacLeod", "Smith-Jones", "van der Berg", "de la Cruz", "Müller", "Schröder", "Øvergaard",
		"Dubois", "Lefèvre", "Rossi", "Bianchi", "Nowak", "Kowalski", "Novák", "Horváth", "Yılmaz", "Papadopoulos",
		"Patel", "Sharma", "Chen", "Wang", "Li", "Zhang", "Tanaka", "Suzuki", "Kim", "Park",
		"Okafor", "Mensah", "Nkosi", "Haddad", "Khan", "Ivanov", "Petrova", "Silva", "Santos", "Nakamura-Whitfield",
	}
	seedTitles = []string{
		"Account Executive", "Senior Account Executive", "Sales Manager", "VP, Sales & Marketing", "Chief Executive Officer",
		"CFO", "Head of Procurement", "IT Director", "Software Engineer", "Operations Manager", "Office Manager",
		"Director of Business Development", "Purchasing Agent", "Regional Sales Director, EMEA", "Customer Success Manager",
		"Product Manager", "Marketing Coordinator", "General Counsel", "Executive Assistant to the Chief Operating Officer",
		"Senior Vice President of Global Strategic Partnerships and Channel Alliances, Americas Region",
	}
	seedDepartments = []string{"Sales", "Marketing", "Finance", "IT", "Operations", "Procurement", "Legal", "Engineering", "Executive", "Customer Success", "R&D"}
	seedCompanies   = []string{
		"Northwind Traders", "Contoso", "Fabrikam", "Adventure Works", "Tailspin Toys", "Wide World Importers", "Litware",
		"Proseware", "Fourth Coffee", "Alpine Ski House", "Blue Yonder Airlines", "Coho Winery", "Lucerne Publishing",
		"Margie's Travel", "Trey Research", "Woodgrove Bank", "Wingtip Toys", "Graphic Design Institute", "Humongous Insurance",
		"Datum Corporation", "Südwest Maschinenbau", "Société Générale d'Électricité", "Kōhai Robotics", "Nordlys Energi",
	}
	seedCompanySuffixes = []string{"", " Inc.", " Ltd.", " GmbH", " LLC", " Group", " Holdings", " S.A."}
	seedDomains         = []string{"example.com", "example.org", "example.net", "mail.example.com", "corp.example.co.uk"}
	seedStreets         = []string{"Market Street", "Main Street", "High Street", "Rue de Rivoli", "Friedrichstraße", "Calle Mayor", "Elm Avenue", "Harbour Road", "King's Road", "Oak Lane"}
	seedPlaces          = []struct{ city, state, postal, country, phone string }{
		{"San Francisco", "CA", "94105", "United States", "+1 (415) 555-%04d"},
		{"New York", "NY", "10001", "United States", "+1 (212) 555-%04d"},
		{"Austin", "TX", "78701", "United States", "+1 (512) 555-%04d"},
		{"Chicago", "IL", "60601", "United States", "+1 (312) 555-%04d"},
		{"Toronto", "ON", "M5H 2N2", "Canada", "+1 (416) 555-%04d"},
		{"London", "", "EC1A 1BB", "United Kingdom", "+44 20 7946 %04d"},
		{"Paris", "", "75001", "France", "+33 1 70 18 %04d"},
		{"Berlin", "", "10115", "Germany", "+49 30 901820%02d"},
		{"São Paulo", "SP", "01310-100", "Brazil", "+55 11 5555-%04d"},
		{"Tokyo", "", "100-0005", "Japan", "+81 3-5555-%04d"},
		{"Sydney", "NSW", "2000", "Australia", "+61 2 5550 %04d"},
		{"Zürich", "ZH", "8001", "Switzerland", "+41 44 555 %04d"},
	}
	seedSentences = []string{
		"Met at the annual partner summit; interested in the enterprise tier.",
		"Prefers email over phone. Do not call before 10am local time.",
		"Decision maker for the Q3 renewal.",
		"Referred by the regional office — follow up after the budget review.",
		"Speaks French and Spanish.",
		"Assistant handles all scheduling; copy her on invitations.",
		"Former customer at a previous company, very positive about the product.",
		"Asked for a security questionnaire and the SOC 2 report.",
		"Mentioned a competitor evaluation (\"we're also looking at others\").",
		"Birthday lunch tradition with the team — nice touch to remember.",
	}
	seedSubjects = []string{
		"Intro call", "Quarterly business review", "Demo: sync for the sales team", "Lunch", "Contract negotiation",
		"Renewal discussion", "Pipeline review", "Onboarding kickoff", "Follow-up call", "Site visit",
		"Déjeuner d'affaires", "Call with the CFO's office", "Workshop: data migration (part 2)", "1:1",
		"Conference — booth duty", "Pricing review & sign-off", "Executive briefing", "Customer advisory board",
	}
	seedLocations = []string{
		"Zoom", "Microsoft Teams meeting", "Conference Room 4B", "HQ — Floor 12, Room Everest", "Customer office",
		"Café de Flore, 172 Bd Saint-Germain, 75006 Paris", "+1 (415) 555-0199, PIN 4821#", "Building 3 lobby",
	}
	seedDurations = []int{15, 30, 30, 45, 60, 60, 60, 90, 120, 180}
)

func seedRand(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15))
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func chance(r *rand.Rand, p float64) bool { return r.Float64() < p }

// emailLocal makes an ASCII email local part from a name.
func emailLocal(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			b.WriteRune(r)
		case r == 'é' || r == 'è' || r == 'ê' || r == 'ë':
			b.WriteByte('e')
		case r == 'á' || r == 'à' || r == 'â' || r == 'ä' || r == 'ã':
			b.WriteByte('a')
		case r == 'ó' || r == 'ö' || r == 'ø' || r == 'ô':
			b.WriteByte('o')
		case r == 'ü' || r == 'ú':
			b.WriteByte('u')
		case r == 'í' || r == 'ï' || r == 'ı':
			b.WriteByte('i')
		case r == 'ç':
			b.WriteByte('c')
		case r == 'ß':
			b.WriteString("ss")
		case r == 'ł':
			b.WriteByte('l')
		case r == 'ñ':
			b.WriteByte('n')
		case r == 'ş':
			b.WriteByte('s')
		case r == '-' || r == ' ':
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// seedOwner checks that a seed's owner is an active user. Callers hold s.mu.
func (s *Server) seedOwner(ownerID string) (string, error) {
	id, err := s.actor(ownerID)
	if err != nil {
		return "", err
	}
	if s.st.records[id].get("IsActive") != true {
		return "", fmt.Errorf("sfsim: seed owner %s is inactive", id)
	}
	return id, nil
}

// seedInsert saves one seeded record in its own transaction.
//
// Every record of one seeding call carries the same SystemModstamp (stamp), as the records of
// one bulk load request do in Salesforce: stamped one after the other, a millisecond apart
// (store.stamp), 50,000 records would be stamped most of a minute ahead of the clock, and every
// change made in that minute would sort before them.
func (s *Server) seedInsert(o *object, values fields, actor string, stamp time.Time) (string, error) {
	t := s.st.begin(s.now(), nil)
	t.stamped = stamp
	id, errs := t.insert(o, values, actor)
	if errs != nil {
		return "", &RecordError{Object: o.name, Errors: errs}
	}
	t.commit()
	return id, nil
}

// SeedContacts creates n realistic contacts owned by ownerID, the same ones for the same seed:
// names from many cultures, emails, phones, titles, addresses, birthdays, notes, some linked
// to accounts it creates. It returns the contacts' ids in creation order.
func (s *Server) SeedContacts(ownerID string, n int, seed int64) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	owner, err := s.seedOwner(ownerID)
	if err != nil {
		return nil, err
	}
	rng := seedRand(seed)
	stamp := s.st.stamp(s.now())
	accounts, err := s.seedAccounts(owner, rng, max(1, min(50, n/25)), stamp)
	if err != nil {
		return nil, err
	}
	contact := s.schema.object("Contact")
	ids := make([]string, 0, n)
	// One owner never gets two contacts of the same name: with no email to tell them apart, a
	// namesake in the owner's mailbox would be an ambiguous match, rightly left unsynced, which a
	// demo would show as a failure.
	names := map[string]bool{}
	for i := range n {
		first, last := pick(rng, seedFirstNames), pick(rng, seedLastNames)
		for range 20 {
			if !names[first+"\x1f"+last] {
				break
			}
			first, last = pick(rng, seedFirstNames), pick(rng, seedLastNames)
		}
		place := pick(rng, seedPlaces)
		v := fields{"LastName": last}
		// A few contacts have only a last name (unless another one has that name already).
		if !chance(rng, 0.04) || names["\x1f"+last] {
			v["FirstName"] = first
			names[first+"\x1f"+last] = true
		} else {
			names["\x1f"+last] = true
		}
		if chance(rng, 0.08) {
			v["MiddleName"] = pick(rng, []string{"A.", "Marie", "J.", "Lee", "Elizabeth", "de"})
		}
		if chance(rng, 0.25) {
			v["Salutation"] = pick(rng, []string{"Mr.", "Ms.", "Mrs.", "Dr.", "Prof."})
		}
		if chance(rng, 0.03) {
			v["Suffix"] = pick(rng, []string{"Jr.", "Sr.", "III", "PhD"})
		}
		var acct *record
		if chance(rng, 0.7) {
			acct = pick(rng, accounts)
			v["AccountId"] = acct.id
		}
		if chance(rng, 0.9) {
			domain := pick(rng, seedDomains)
			if acct != nil {
				domain = emailLocal(acct.str("Name")) + ".example.com"
			}
			local := emailLocal(first) + "." + emailLocal(last)
			if strings.Trim(local, ".") == "" || strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") {
				local = fmt.Sprintf("contact%d", i)
			}
			if chance(rng, 0.2) {
				local += fmt.Sprint(rng.IntN(100))
			}
			email := local + "@" + domain
			if len(email) > contact.field("Email").Length {
				email = local + "@" + seedDomains[0]
			}
			v["Email"] = email
		}
		phone := func() string { return fmt.Sprintf(place.phone, rng.IntN(100)) }
		if chance(rng, 0.8) {
			v["Phone"] = phone()
		}
		if chance(rng, 0.6) {
			v["MobilePhone"] = phone()
		}
		if chance(rng, 0.15) {
			v["HomePhone"] = phone()
		}
		if chance(rng, 0.05) {
			v["OtherPhone"] = phone()
		}
		if chance(rng, 0.1) {
			v["Fax"] = phone()
		}
		if chance(rng, 0.05) {
			v["AssistantPhone"] = phone()
			v["AssistantName"] = pick(rng, seedFirstNames) + " " + pick(rng, seedLastNames)
		}
		if chance(rng, 0.75) {
			v["Title"] = pick(rng, seedTitles)
		}
		if chance(rng, 0.6) {
			v["Department"] = pick(rng, seedDepartments)
		}
		if chance(rng, 0.6) {
			street := fmt.Sprintf("%d %s", 1+rng.IntN(2500), pick(rng, seedStreets))
			if chance(rng, 0.2) {
				street += fmt.Sprintf("\nSuite %d", 100+rng.IntN(900))
			}
			v["MailingStreet"], v["MailingCity"], v["MailingPostalCode"], v["MailingCountry"] = street, place.city, place.postal, place.country
			if place.state != "" {
				v["MailingState"] = place.state
			}
		}
		if chance(rng, 0.05) {
			other := pick(rng, seedPlaces)
			v["OtherStreet"] = fmt.Sprintf("%d %s", 1+rng.IntN(300), pick(rng, seedStreets))
			v["OtherCity"], v["OtherPostalCode"], v["OtherCountry"] = other.city, other.postal, other.country
		}
		if chance(rng, 0.3) {
			v["Birthdate"] = soql.Date{Year: 1955 + rng.IntN(46), Month: time.Month(1 + rng.IntN(12)), Day: 1 + rng.IntN(28)}
		}
		if chance(rng, 0.25) {
			v["Description"] = seedDescription(rng)
		}
		if chance(rng, 0.2) {
			v["LeadSource"] = pick(rng, []string{"Web", "Phone Inquiry", "Partner Referral", "Other"})
		}
		id, err := s.seedInsert(contact, v, owner, stamp)
		if err != nil {
			return ids, fmt.Errorf("seed contact %d: %w", i, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func seedDescription(rng *rand.Rand) string {
	n := 1 + rng.IntN(3)
	if chance(rng, 0.02) {
		n = 60 // a long note
	}
	parts := make([]string, n)
	for i := range parts {
		parts[i] = pick(rng, seedSentences)
	}
	sep := " "
	if chance(rng, 0.3) {
		sep = "\n"
	}
	return strings.Join(parts, sep)
}

// seedAccounts returns n accounts for the seed, creating those that do not exist yet.
// Callers hold s.mu.
func (s *Server) seedAccounts(owner string, rng *rand.Rand, n int, stamp time.Time) ([]*record, error) {
	account := s.schema.object("Account")
	byName := map[string]*record{}
	s.st.each(account, func(r *record) bool {
		if !r.deleted {
			byName[r.str("Name")] = r
		}
		return true
	})
	out := make([]*record, 0, n)
	for range n {
		name := pick(rng, seedCompanies) + pick(rng, seedCompanySuffixes)
		if r := byName[name]; r != nil {
			out = append(out, r)
			continue
		}
		place := pick(rng, seedPlaces)
		v := fields{"Name": name, "BillingCity": place.city, "BillingCountry": place.country,
			"Industry": pick(rng, account.field("Industry").PicklistValues), "Phone": fmt.Sprintf(place.phone, rng.IntN(100))}
		id, err := s.seedInsert(account, v, owner, stamp)
		if err != nil {
			return nil, fmt.Errorf("seed account %s: %w", name, err)
		}
		r := s.st.records[id]
		byName[name] = r
		out = append(out, r)
	}
	return out, nil
}

// SeedEvents creates n realistic events owned by ownerID, the same ones for the same seed,
// spread from 30 days before to 60 days after the simulator's clock: meetings of varied
// length, some all-day and multi-day, some private or free, some linked to the owner's
// contacts and accounts, some with invitees (EventRelations). It returns the events' ids.
func (s *Server) SeedEvents(ownerID string, n int, seed int64) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	owner, err := s.seedOwner(ownerID)
	if err != nil {
		return nil, err
	}
	rng := seedRand(seed)
	stamp := s.st.stamp(s.now())
	contactObj, eventObj, relObj := s.schema.object("Contact"), s.schema.object("Event"), s.schema.object("EventRelation")
	var contacts []string
	for _, r := range s.st.referencing(contactObj.field("OwnerId"), owner) {
		if !r.deleted && r.obj == contactObj {
			contacts = append(contacts, r.id)
		}
	}
	var users []string
	s.st.each(s.schema.object("User"), func(r *record) bool {
		if r.id != owner && r.get("IsActive") == true {
			users = append(users, r.id)
		}
		return true
	})
	today := s.now().UTC().Truncate(24 * time.Hour)
	ids := make([]string, 0, n)
	for i := range n {
		day := today.AddDate(0, 0, rng.IntN(91)-30)
		v := fields{"Subject": pick(rng, seedSubjects)}
		allDay := chance(rng, 0.12)
		if allDay {
			days := 1
			if chance(rng, 0.25) {
				days = 2 + rng.IntN(4)
			}
			v["IsAllDayEvent"] = true
			v["ActivityDate"] = soql.DateOf(day)
			v["DurationInMinutes"] = int64(days * 1440)
			if chance(rng, 0.4) {
				v["Subject"] = pick(rng, []string{"Vacation", "Out of office", "Trade show", "Offsite"})
				v["ShowAs"] = "OutOfOffice"
			}
		} else {
			start := day.Add(time.Duration(8+rng.IntN(10))*time.Hour + time.Duration(15*rng.IntN(4))*time.Minute)
			v["StartDateTime"] = start
			v["EndDateTime"] = start.Add(time.Duration(pick(rng, seedDurations)) * time.Minute)
			if chance(rng, 0.1) {
				v["ShowAs"] = "Free"
			}
		}
		if chance(rng, 0.55) {
			v["Location"] = pick(rng, seedLocations)
		}
		if chance(rng, 0.3) {
			v["Description"] = seedDescription(rng)
		}
		if chance(rng, 0.08) {
			v["IsPrivate"] = true
		}
		if len(contacts) > 0 && chance(rng, 0.4) {
			who := pick(rng, contacts)
			v["WhoId"] = who
			if acct := s.st.records[who].str("AccountId"); acct != "" && chance(rng, 0.5) {
				v["WhatId"] = acct
			}
		}
		id, err := s.seedInsert(eventObj, v, owner, stamp)
		if err != nil {
			return ids, fmt.Errorf("seed event %d: %w", i, err)
		}
		ids = append(ids, id)
		if allDay || !chance(rng, 0.3) {
			continue
		}
		pool := append(slices.Clone(contacts), users...)
		if len(pool) == 0 {
			continue
		}
		invited := map[string]bool{}
		for range 1 + rng.IntN(4) {
			who := pick(rng, pool)
			if invited[who] {
				continue
			}
			invited[who] = true
			rv := fields{"EventId": id, "RelationId": who, "IsInvitee": true}
			switch rng.IntN(4) {
			case 0:
				rv["Status"] = "Accepted"
				rv["RespondedDate"] = s.now().UTC().Add(-time.Duration(rng.IntN(72)) * time.Hour)
			case 1:
				rv["Status"] = "Declined"
				rv["Response"] = pick(rng, []string{"Conflict with another meeting", "On leave that week", "Sorry, can't make it"})
				rv["RespondedDate"] = s.now().UTC().Add(-time.Duration(rng.IntN(72)) * time.Hour)
			default:
				rv["Status"] = "New"
			}
			if _, err := s.seedInsert(relObj, rv, owner, stamp); err != nil {
				return ids, fmt.Errorf("seed invitee of event %s: %w", id, err)
			}
		}
	}
	return ids, nil
}
