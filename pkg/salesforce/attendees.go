package salesforce

import (
	"context"
	"fmt"
	"slices"
	"strings"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Event invitees live in EventRelation rows that point at a User, Contact or Lead. Attendees
// whose email matches one of them become invitees; others (people outside the org's records)
// have no place in Salesforce and are left out. Setting invitees for a whole apply, however many
// users' events it writes, costs at most one query per object to resolve emails, one query for
// the current invitees of the events that existed before (an event the apply created has none),
// and one collections call each to add and remove relations.

// applyAttendees sets the invitees of the events st wrote successfully. An event's own user (its
// owner, who organises it) is never made an invitee of it.
func (c *Connector) applyAttendees(ctx context.Context, st *applyState) error {
	var events []ref
	emails := map[string]bool{}
	for _, p := range st.parts {
		own := strings.ToLower(p.user.GetEmail())
		idx := make([]int, 0, len(p.attendees))
		for i := range p.attendees {
			idx = append(idx, i)
		}
		slices.Sort(idx)
		for _, i := range idx {
			r := ref{p, i}
			if !r.result().GetOk() || r.result().GetRecord().GetId() == "" {
				continue
			}
			events = append(events, r)
			for _, a := range p.attendees[i] {
				if e := strings.ToLower(strings.TrimSpace(a.GetEmail())); e != "" && e != own {
					emails[e] = true
				}
			}
		}
	}
	if len(events) == 0 {
		return nil
	}
	resolved, err := c.resolveEmails(ctx, st.subject, emails)
	if err != nil {
		return err
	}
	eventIDs := make([]string, len(events))
	var older []string // events this apply did not create, which may have invitees already
	for k, r := range events {
		eventIDs[k] = r.result().GetRecord().GetId()
		if r.result().GetOp() != tandemv1.WriteOp_WRITE_OP_CREATE || r.result().GetAlreadyApplied() {
			older = append(older, eventIDs[k])
		}
	}
	existing := map[string]map[string]string{}
	if len(older) > 0 {
		var err error
		if existing, err = c.inviteeRelations(ctx, st.subject, older); err != nil {
			return err
		}
	}

	type change struct {
		event ref
		email string
	}
	var adds, removes []collectionItem
	var addFor, removeFor []change
	for k, r := range events {
		eventID := eventIDs[k]
		own := strings.ToLower(r.p.user.GetEmail())
		want := map[string]string{} // relation id → email
		for _, a := range r.p.attendees[r.i] {
			email := strings.ToLower(strings.TrimSpace(a.GetEmail()))
			rel, ok := resolved[email]
			if !ok || email == own || rel == r.p.user.GetUserId() {
				continue
			}
			if _, dup := want[rel]; dup {
				continue
			}
			want[rel] = email
			if _, has := existing[eventID][rel]; !has {
				adds = append(adds, collectionItem{body: map[string]any{"EventId": eventID, "RelationId": rel, "IsInvitee": true}})
				addFor = append(addFor, change{r, email})
			}
		}
		rels := make([]string, 0, len(existing[eventID]))
		for rel := range existing[eventID] {
			rels = append(rels, rel)
		}
		slices.Sort(rels)
		for _, rel := range rels {
			if _, keep := want[rel]; !keep {
				removes = append(removes, collectionItem{key: existing[eventID][rel]})
				removeFor = append(removeFor, change{r, rel})
			}
		}
	}
	for _, step := range []struct {
		op     collectionOp
		items  []collectionItem
		owners []change
		verb   string
	}{{opCreate, adds, addFor, "add invitee"}, {opDelete, removes, removeFor, "remove invitee"}} {
		if len(step.items) == 0 {
			continue
		}
		outcomes, err := c.collections(ctx, st.subject, step.op, objEventRelation, step.items)
		if err != nil {
			return err
		}
		for k, o := range outcomes {
			if o.err == nil || (step.op == opDelete && o.err.ErrorCode == "ENTITY_IS_DELETED") {
				continue
			}
			ch := step.owners[k]
			se := st.classify(o.err)
			se.RecordID = ch.event.result().GetRecord().GetId()
			se.Field = fAttendees
			se.Detail = fmt.Sprintf("%s %s: %s", step.verb, ch.email, se.Detail)
			ch.event.result().Warnings = append(ch.event.result().Warnings, se.Proto())
		}
	}
	return nil
}

// resolveEmails finds the User, Contact or Lead each email belongs to (in that order of
// preference: a colleague is a user even when also stored as a contact), asking each object
// only for the emails still unresolved.
func (c *Connector) resolveEmails(ctx context.Context, subject string, emails map[string]bool) (map[string]string, error) {
	resolved := map[string]string{}
	for _, object := range []string{objUser, objContact, objLead} {
		var rest []string
		for e := range emails {
			if _, ok := resolved[e]; !ok {
				rest = append(rest, e)
			}
		}
		if len(rest) == 0 {
			break
		}
		slices.Sort(rest)
		queries, err := emailStmt(object, rest).chunks(c.cfg.maxSOQLLength)
		if err != nil {
			return nil, fmt.Errorf("resolve invitees: %w", err)
		}
		for _, q := range queries {
			rows, err := c.queryAllRows(ctx, subject, q)
			if err != nil {
				return nil, fmt.Errorf("resolve invitees among %s records: %w", object, err)
			}
			for _, r := range rows {
				e := strings.ToLower(r.String("Email"))
				if _, ok := resolved[e]; !ok && emails[e] {
					resolved[e] = r.String("Id")
				}
			}
		}
	}
	return resolved, nil
}

// inviteeRelations returns the events' invitee relations: event id → relation id → EventRelation id.
func (c *Connector) inviteeRelations(ctx context.Context, subject string, eventIDs []string) (map[string]map[string]string, error) {
	queries, err := inviteeStmt(eventIDs).chunks(c.cfg.maxSOQLLength)
	if err != nil {
		return nil, fmt.Errorf("read invitees: %w", err)
	}
	out := map[string]map[string]string{}
	for _, q := range queries {
		rows, err := c.queryAllRows(ctx, subject, q)
		if err != nil {
			return nil, fmt.Errorf("read invitees: %w", err)
		}
		for _, r := range rows {
			ev := r.String("EventId")
			if out[ev] == nil {
				out[ev] = map[string]string{}
			}
			out[ev][r.String("RelationId")] = r.String("Id")
		}
	}
	return out, nil
}

// emailStmt finds the records of object (User, Contact or Lead) with one of emails.
func emailStmt(object string, emails []string) selectStmt {
	stmt := selectStmt{fields: []string{"Id", "Email"}, from: object, inField: "Email", inValues: emails, orderBy: "Id ASC"}
	if object == objUser {
		stmt.where = []string{"IsActive = true"}
	}
	return stmt
}

// inviteeStmt reads the invitee relations of events.
func inviteeStmt(eventIDs []string) selectStmt {
	return selectStmt{fields: []string{"Id", "EventId", "RelationId"}, from: objEventRelation,
		where: []string{"IsInvitee = true"}, inField: "EventId", inValues: eventIDs, orderBy: "Id ASC"}
}
