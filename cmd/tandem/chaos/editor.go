package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
)

// Editor plays the users: each Step makes one edit, as a person would in Outlook or in the
// Salesforce UI, through the simulators' user-facing Go APIs (the same change logs the
// protocols read), and records it in the Model. The edits are drawn from a seeded source, so a
// seed gives the same sequence of edit kinds.
type Editor struct {
	ews   *ewssim.Server
	sf    *sfsim.Server
	users []User
	model *Model
	rng   *rand.Rand
	now   func() time.Time
}

// NewEditor returns an editor of users' contacts on both simulators.
func NewEditor(ews *ewssim.Server, sf *sfsim.Server, users []User, model *Model, seed uint64, now func() time.Time) *Editor {
	return &Editor{ews: ews, sf: sf, users: users, model: model, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), now: now}
}

// action is one kind of edit, with its weight in the draw.
type action struct {
	name   string
	weight int
	do     func(e *Editor, u User) (bool, error)
}

// actions are the kinds of edit a user makes. A do function returns false when the edit did not
// apply (no live person to edit on that side yet); the step then tries another kind.
var actions = []action{
	{"create in Exchange", 14, (*Editor).createInExchange},
	{"create in Salesforce", 14, (*Editor).createInSalesforce},
	{"update in Exchange", 18, (*Editor).updateInExchange},
	{"update in Salesforce", 18, (*Editor).updateInSalesforce},
	{"update on both sides", 6, (*Editor).updateOnBothSides},
	{"delete in Exchange", 5, (*Editor).deleteInExchange},
	{"delete in Salesforce", 5, (*Editor).deleteInSalesforce},
	{"move out of Salesforce_Sync", 4, (*Editor).moveOut},
	{"move into Salesforce_Sync", 4, (*Editor).moveIn},
	{"create a namesake", 6, (*Editor).createNamesake},
}

// Step makes one edit for a random user and says what it did.
func (e *Editor) Step() (string, error) {
	u := e.users[e.rng.IntN(len(e.users))]
	total := 0
	for _, a := range actions {
		total += a.weight
	}
	for range 8 {
		pick := e.rng.IntN(total)
		for _, a := range actions {
			if pick -= a.weight; pick >= 0 {
				continue
			}
			ok, err := a.do(e, u)
			if err != nil {
				return "", fmt.Errorf("%s for %s: %w", a.name, u.Mailbox, err)
			}
			if ok {
				return a.name + " for " + u.Mailbox, nil
			}
			break
		}
	}
	// Nothing to edit yet: a create always applies.
	if _, err := e.createInExchange(u); err != nil {
		return "", fmt.Errorf("create in Exchange for %s: %w", u.Mailbox, err)
	}
	return "create in Exchange for " + u.Mailbox, nil
}

var (
	givenNames = []string{"Ada", "Ben", "Chloé", "Dmitri", "Eve", "Fatima", "Goran", "Hana", "Ivan", "Jules"}
	surnames   = []string{"Smith", "Okafor", "Müller", "Nguyen", "O'Brien", "García", "Kowalski", "Tanaka", "Dubois", "Larsen"}
	titles     = []string{"CTO", "Buyer", "VP Sales", "Engineer", "Director", "Analyst"}
)

// newPerson draws a person's fields: most have an email address, some do not. Names repeat
// among people with an email (Tandem must never link two of them by name), while a person
// without one gets a name of their own: two namesakes without an email cannot be told apart by
// anyone, so Tandem holds such records back as ambiguous (an error-report entry) instead of
// guessing, and the model could not say which outcome is right.
func (e *Editor) newPerson(id string) (first, last, email string) {
	first, last = givenNames[e.rng.IntN(len(givenNames))], surnames[e.rng.IntN(len(surnames))]
	if e.rng.IntN(10) < 7 {
		return first, last, fmt.Sprintf("p%s@customer.example", sanitize(id))
	}
	return first, last + "-" + sanitize(id), ""
}

func exchangeContact(id, first, last, email string) ewssim.Contact {
	c := ewssim.Contact{GivenName: first, Surname: last, ItemBase: ewssim.ItemBase{Body: "Met at the trade fair. " + Marker(id)}}
	if email != "" {
		c.EmailAddresses = []ewssim.ContactEmail{{Key: "EmailAddress1", Address: email}}
	}
	return c
}

func (e *Editor) createInExchange(u User) (bool, error) {
	id := e.model.NewPerson(u.Mailbox, Exchange, e.now())
	first, last, email := e.newPerson(id)
	_, err := e.ews.PutContact(u.Mailbox, exchange.SyncFolderName, exchangeContact(id, first, last, email))
	return err == nil, err
}

func (e *Editor) createInSalesforce(u User) (bool, error) {
	id := e.model.NewPerson(u.Mailbox, Salesforce, e.now())
	first, last, email := e.newPerson(id)
	return e.insertSalesforce(u, id, first, last, email)
}

func (e *Editor) insertSalesforce(u User, id, first, last, email string) (bool, error) {
	values := map[string]any{"FirstName": first, "LastName": last, "Description": Marker(id) + " Prefers email."}
	if email != "" {
		values["Email"] = email
	}
	_, err := e.sf.Insert("Contact", values, u.SalesforceID)
	return err == nil, err
}

// createNamesake creates someone with the same name as a live person with an email address,
// and another address: two people, never to be merged.
func (e *Editor) createNamesake(u User) (bool, error) {
	live := e.model.Live(u.Mailbox)
	if len(live) == 0 {
		return false, nil
	}
	twinOf := live[e.rng.IntN(len(live))]
	c, ok := e.findExchange(u, twinOf)
	if !ok || len(c.Contact.EmailAddresses) == 0 {
		return false, nil
	}
	side := Exchange
	if e.rng.IntN(2) == 0 {
		side = Salesforce
	}
	id := e.model.NewPerson(u.Mailbox, side, e.now())
	e.model.note(id, "named like "+twinOf, side, e.now())
	email := fmt.Sprintf("p%s@customer.example", sanitize(id))
	if side == Exchange {
		_, err := e.ews.PutContact(u.Mailbox, exchange.SyncFolderName, exchangeContact(id, c.Contact.GivenName, c.Contact.Surname, email))
		return err == nil, err
	}
	return e.insertSalesforce(u, id, c.Contact.GivenName, c.Contact.Surname, email)
}

// pick returns a random live person of u, or "".
func (e *Editor) pick(u User) string {
	live := e.model.Live(u.Mailbox)
	if len(live) == 0 {
		return ""
	}
	return live[e.rng.IntN(len(live))]
}

// findExchange returns the Salesforce_Sync item of person id.
func (e *Editor) findExchange(u User, id string) (*ewssim.Item, bool) {
	for _, it := range e.ews.Items(u.Mailbox, exchange.SyncFolderName) {
		if it.Contact != nil && markerOf(it.Contact.Body) == id {
			return &it, true
		}
	}
	return nil, false
}

// findSalesforce returns the id of u's Salesforce contact of person id.
func (e *Editor) findSalesforce(u User, id string) (string, bool) {
	for _, c := range e.sf.List("Contact") {
		if fmt.Sprint(c["OwnerId"]) == u.SalesforceID && markerOf(fmt.Sprint(c["Description"])) == id {
			return fmt.Sprint(c["Id"]), true
		}
	}
	return "", false
}

func (e *Editor) updateInExchange(u User) (bool, error) {
	id := e.pick(u)
	if id == "" {
		return false, nil
	}
	return e.updateExchange(u, id, e.newTitle(u, id))
}

// newTitle picks a job title that neither side of person id holds, nor any of taken. Two
// copies then only ever agree because Tandem carried an edit across, never because users made
// the same edit on both sides by chance: a coincidence Tandem cannot tell from an edit that
// has not reached the other side, which Copies.Agree assumes it can.
func (e *Editor) newTitle(u User, id string, taken ...string) string {
	if it, ok := e.findExchange(u, id); ok {
		taken = append(taken, it.Contact.JobTitle)
	}
	for _, c := range e.sf.List("Contact") {
		if fmt.Sprint(c["OwnerId"]) == u.SalesforceID && markerOf(fmt.Sprint(c["Description"])) == id {
			taken = append(taken, fmt.Sprint(c["Title"]))
		}
	}
	var free []string
	for _, t := range titles {
		if !slices.Contains(taken, t) {
			free = append(free, t)
		}
	}
	return free[e.rng.IntN(len(free))]
}

func (e *Editor) updateExchange(u User, id, title string) (bool, error) {
	it, ok := e.findExchange(u, id)
	if !ok {
		return false, nil
	}
	err := e.ews.UpdateItem(u.Mailbox, it.ItemID, func(it *ewssim.Item) { it.Contact.JobTitle = title })
	if err == nil {
		e.model.Updated(id, Exchange, e.now())
	}
	return err == nil, err
}

func (e *Editor) updateInSalesforce(u User) (bool, error) {
	id := e.pick(u)
	if id == "" {
		return false, nil
	}
	return e.updateSalesforce(u, id, map[string]any{"Phone": fmt.Sprintf("+1 555 %04d", e.rng.IntN(10000))})
}

func (e *Editor) updateSalesforce(u User, id string, values map[string]any) (bool, error) {
	sfID, ok := e.findSalesforce(u, id)
	if !ok {
		return false, nil
	}
	err := e.sf.Update("Contact", sfID, values, u.SalesforceID)
	if err == nil {
		e.model.Updated(id, Salesforce, e.now())
	}
	return err == nil, err
}

// updateOnBothSides edits the same person on both sides before Tandem can sync either edit:
// sometimes the same field, sometimes different ones.
func (e *Editor) updateOnBothSides(u User) (bool, error) {
	id := e.pick(u)
	if id == "" {
		return false, nil
	}
	title := e.newTitle(u, id)
	if ok, err := e.updateExchange(u, id, title); !ok || err != nil {
		return ok, err
	}
	values := map[string]any{"Title": e.newTitle(u, id, title)}
	if e.rng.IntN(2) == 0 {
		values = map[string]any{"Department": "Procurement"}
	}
	return e.updateSalesforce(u, id, values)
}

func (e *Editor) deleteInExchange(u User) (bool, error) {
	return e.removeFromExchange(u, "deleted", func(itemID string) error { return e.ews.DeleteItem(u.Mailbox, itemID) })
}

// removeFromExchange takes a random live person's contact out of Salesforce_Sync with remove,
// which Tandem treats as a removal from sync whatever it was (how names it in the history).
func (e *Editor) removeFromExchange(u User, how string, remove func(itemID string) error) (bool, error) {
	id := e.pick(u)
	if id == "" {
		return false, nil
	}
	it, ok := e.findExchange(u, id)
	if !ok {
		return false, nil
	}
	seen := e.copies(u, id, Exchange)
	err := remove(it.ItemID)
	if err == nil {
		e.model.Removed(id, Exchange, how, e.now(), seen)
	}
	return err == nil, err
}

func (e *Editor) deleteInSalesforce(u User) (bool, error) {
	id := e.pick(u)
	if id == "" {
		return false, nil
	}
	sfID, ok := e.findSalesforce(u, id)
	if !ok {
		return false, nil
	}
	seen := e.copies(u, id, Salesforce)
	err := e.sf.Delete("Contact", sfID)
	if err == nil {
		e.model.Removed(id, Salesforce, "deleted", e.now(), seen)
	}
	return err == nil, err
}

// moveOut moves a person's contact from Salesforce_Sync into the main Contacts folder: the
// person leaves sync, like a deletion in Exchange, and must never come back into the folder.
func (e *Editor) moveOut(u User) (bool, error) {
	return e.removeFromExchange(u, "moved out of Salesforce_Sync", func(itemID string) error {
		return e.ews.MoveItem(u.Mailbox, itemID, "contacts")
	})
}

// moveIn creates a contact in the main Contacts folder and moves it into Salesforce_Sync: it
// syncs like a new one.
func (e *Editor) moveIn(u User) (bool, error) {
	id := e.model.NewPerson(u.Mailbox, Exchange, e.now())
	first, last, email := e.newPerson(id)
	itemID, err := e.ews.PutContact(u.Mailbox, "contacts", exchangeContact(id, first, last, email))
	if err != nil {
		return false, err
	}
	e.model.note(id, "moved into Salesforce_Sync", Exchange, e.now())
	return true, e.ews.MoveItem(u.Mailbox, itemID, exchange.SyncFolderName)
}

// copies looks at both sides for person id of u, as seen from side.
func (e *Editor) copies(u User, id string, side Side) Copies {
	var ex, sf []contact
	for _, c := range e.ews.Dump().Mailboxes[u.Mailbox].Contacts {
		if markerOf(c.Body) == id {
			ex = append(ex, fromExchange(c))
		}
	}
	for _, c := range e.sf.List("Contact") {
		if fmt.Sprint(c["OwnerId"]) == u.SalesforceID && markerOf(fmt.Sprint(c["Description"])) == id {
			sf = append(sf, fromSalesforce(c))
		}
	}
	other := sf
	if side == Salesforce {
		other = ex
	}
	return Copies{
		OnOtherSide: len(other) > 0,
		Agree:       len(ex) == 1 && len(sf) == 1 && differingField(ex[0], sf[0]) == "",
	}
}
