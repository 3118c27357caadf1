// Package chaos is the independent judge of `tandem chaos`: a model of what the simulated users
// did to their contacts, on which side and when, and a check of both simulators' final state
// against it. It knows nothing of Tandem's ledger, mappings or sync keys: a person is recognised
// on either side only by the marker the user wrote into the contact's notes when creating it,
// which Tandem syncs like any other field and which the users never edit.
package chaos

import (
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"
)

// Side is where a user made an edit.
type Side int

// The two sides.
const (
	Exchange Side = iota + 1
	Salesforce
)

func (s Side) String() string {
	switch s {
	case Exchange:
		return "Exchange"
	case Salesforce:
		return "Salesforce"
	}
	return "unknown side"
}

// other returns the opposite side.
func (s Side) other() Side {
	if s == Exchange {
		return Salesforce
	}
	return Exchange
}

// markerPattern finds a person's marker in a contact's notes.
var markerPattern = regexp.MustCompile(`\[chaos:([A-Za-z0-9._-]+)\]`)

// Marker returns the text that identifies person id in a contact's notes.
func Marker(id string) string { return "[chaos:" + id + "]" }

// markerOf returns the person id a contact's notes carry, or "".
func markerOf(notes string) string {
	m := markerPattern.FindStringSubmatch(notes)
	if m == nil {
		return ""
	}
	return m[1]
}

// state is what became of a person, as far as the users are concerned.
type state int

const (
	live    state = iota // in sync: one copy on each side
	deleted              // removed from sync by a user: no copy on either side
)

// person is one contact a user created, followed through the user's edits.
type person struct {
	id      string
	user    string
	created Side
	// createdAt is when a user created it.
	createdAt time.Time
	state     state
	// lastEdit is when each side was last changed by a user (creation included).
	lastEdit map[Side]time.Time
	// removedAt and removedOn say when and where the person was deleted or moved out.
	removedAt time.Time
	removedOn Side
	// atRemoval is what the simulators held of the person when it was removed.
	atRemoval Copies
	// history is what users did to the person, for the report of a failing run.
	history []string
}

// did adds an edit to the person's history.
func (p *person) did(what string, side Side, t time.Time) {
	p.history = append(p.history, fmt.Sprintf("%s %s in %s", t.Format("15:04:05.000"), what, side))
}

// Model records what the users did. It is safe for concurrent use.
type Model struct {
	// ExchangeDeleteDeletes says the sync configuration deletes a contact in Salesforce when
	// it is removed from Exchange (EXCHANGE_DELETE_POLICY_DELETE); by default the Salesforce
	// contact stays, unlinked.
	ExchangeDeleteDeletes bool

	mu      sync.Mutex
	people  map[string]*person
	edits   int
	counter map[string]int
}

// NewModel returns an empty model.
func NewModel() *Model {
	return &Model{people: map[string]*person{}, counter: map[string]int{}}
}

// NewPerson records that user created a contact on side at t and returns the person's id,
// whose Marker the contact's notes must carry.
func (m *Model) NewPerson(user string, side Side, t time.Time) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counter[user]++
	id := fmt.Sprintf("%s.%d", sanitize(user), m.counter[user])
	p := &person{id: id, user: user, created: side, createdAt: t, lastEdit: map[Side]time.Time{side: t}}
	p.did("created", side, t)
	m.people[id] = p
	m.edits++
	return id
}

// Existing records a person that was there before the run, already on both sides.
func (m *Model) Existing(user, id string, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.people[id] = &person{id: id, user: user, createdAt: t, lastEdit: map[Side]time.Time{Exchange: t, Salesforce: t}}
}

// Updated records a user's change to person id on side at t.
func (m *Model) Updated(id string, side Side, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.people[id]; p != nil {
		p.lastEdit[side] = t
		p.did("updated", side, t)
		m.edits++
	}
}

// Copies is what the simulators hold of a person at one moment, as a user looking at both
// sides would see it.
type Copies struct {
	// OnOtherSide says the side opposite an edit holds a copy.
	OnOtherSide bool
	// Agree says both sides hold a copy and the copies agree on every compared field: no edit
	// is still on its way from one side to the other.
	Agree bool
}

// Removed records that a user deleted person id on side at t, or (how says which) moved it
// out of the synced folder, which Tandem treats the same; seen is what both sides held just
// before.
func (m *Model) Removed(id string, side Side, how string, t time.Time, seen Copies) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.people[id]; p != nil && p.state == live {
		p.state, p.removedAt, p.removedOn, p.atRemoval = deleted, t, side, seen
		p.did(how, side, t)
		m.edits++
	}
}

// Edits counts the users' edits.
func (m *Model) Edits() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.edits
}

// Live returns the ids of user's people that are still in sync, in a stable order, for the
// edit generator to pick from.
func (m *Model) Live(user string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id, p := range m.people {
		if p.user == user && p.state == live {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// contested reports whether a removed person may legitimately have come back: when it was
// removed, an edit made on the other side since the person was created had not reached the
// removed copy yet, and a modification beats a concurrent deletion. Whether the edit had
// arrived is judged from both simulators at the moment of the removal, not from how long ago it
// was made: faults may hold an edit back for any time.
func (p *person) contested() bool {
	if p.state != deleted || p.atRemoval.Agree {
		return false
	}
	edited, ok := p.lastEdit[p.removedOn.other()]
	return ok && edited.After(p.createdAt)
}

func sanitize(s string) string {
	out := []rune{}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			out = append(out, r)
		default:
			out = append(out, '_')
		}
	}
	return string(out)
}

// note adds a detail to person id's history without counting an edit.
func (m *Model) note(id, what string, side Side, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.people[id]; p != nil {
		p.did(what, side, t)
	}
}

// Histories returns what the users did to each person, by person id.
func (m *Model) Histories() map[string][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]string, len(m.people))
	for id, p := range m.people {
		out[id] = append([]string(nil), p.history...)
	}
	return out
}
