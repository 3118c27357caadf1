package salesforce

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// objectFor names the Salesforce object of a record kind.
func objectFor(kind tandemv1.RecordKind) (string, error) {
	switch kind {
	case tandemv1.RecordKind_RECORD_KIND_CONTACT:
		return objContact, nil
	case tandemv1.RecordKind_RECORD_KIND_EVENT:
		return objEvent, nil
	default:
		return "", syncerr.New(syncerr.SyncMalformedMessage, "unsupported record kind %v", kind)
	}
}

// UserCommands are one user's write commands in an ApplyMany.
type UserCommands struct {
	// User is whom the commands are for: the records they create are the user's.
	User *tandemv1.SyncUser
	// Commands are carried out in order.
	Commands []*tandemv1.WriteCommand
	// Redelivered says the commands may have been carried out before (see Redelivered).
	Redelivered bool
}

// UserResults is what came of one user's commands in an ApplyMany.
type UserResults struct {
	// Results has one result per command, in order; nil when Err is set.
	Results []*tandemv1.WriteResult
	// Err says the user's commands could not be carried out as a whole (authentication, API
	// limits, Salesforce unavailable); all their operations but plain creates can then safely be
	// retried.
	Err error
}

// applyState is one apply in progress: the commands of one or more users, written with one
// subject's token.
type applyState struct {
	object  string
	subject string
	// setsOwner says the subject is not the user the records are for (the integration user, or
	// the client credentials flow's execution user): creates set OwnerId to the command's user.
	setsOwner bool
	// writer names, for messages, whom the writes act as.
	writer string
	// accessHint says what to do when Salesforce refuses the subject access to a record; empty
	// when the subject is the records' user.
	accessHint string
	// accounts are the Accounts the contacts' companies name (contacts only); cachedAccounts
	// the companies whose Accounts came from the account cache, and refreshedAccounts those
	// of them looked up again since, after a write failed on its cached Account.
	accounts          accountsByName
	cachedAccounts    map[string]bool
	refreshedAccounts map[string]bool
	parts             []*part
}

// part is one user's commands within an apply.
type part struct {
	user        *tandemv1.SyncUser
	cmds        []*tandemv1.WriteCommand
	redelivered bool
	results     []*tandemv1.WriteResult
	// written are the records as they will be held once written (content after truncation).
	written []*tandemv1.Record
	// attendees lists the events whose invitees the apply sets, by command index.
	attendees map[int][]*tandemv1.Attendee
	// err is set when the user's commands could not be carried out as a whole.
	err error
}

// ref is one command of an apply: its user's part and its index there.
type ref struct {
	p *part
	i int
}

func (r ref) cmd() *tandemv1.WriteCommand   { return r.p.cmds[r.i] }
func (r ref) result() *tandemv1.WriteResult { return r.p.results[r.i] }

// ApplyOption adjusts one Apply call.
type ApplyOption func(*applyOptions)

type applyOptions struct {
	redelivered bool
}

// Redelivered says the batch may have been carried out before: a worker applying it crashed
// or lost its lease before acknowledging it, so some of its commands may already have taken
// effect. Apply then looks up the sync keys of the batch's creates first (one queryAll per
// redeliveryLookupKeys keys, which is why ordinary batches skip it), so that a record an
// earlier attempt created and the user has deleted since is not created again.
func Redelivered() ApplyOption { return func(o *applyOptions) { o.redelivered = true } }

// Apply carries out one user's commands: ApplyMany for a single user.
func (c *Connector) Apply(ctx context.Context, user *tandemv1.SyncUser, kind tandemv1.RecordKind, cmds []*tandemv1.WriteCommand, opts ...ApplyOption) ([]*tandemv1.WriteResult, error) {
	var o applyOptions
	for _, opt := range opts {
		opt(&o)
	}
	res := c.ApplyMany(ctx, kind, []UserCommands{{User: user, Commands: cmds, Redelivered: o.redelivered}})
	return res[0].Results, res[0].Err
}

// SharesWrites reports whether the writes of different users share API calls, which is when
// they all act as one Salesforce user: the integration user (write_as INTEGRATION_USER, the
// default) or the client credentials flow's execution user. Under write_as REP every rep acts
// with their own token, and ApplyMany carries out each user's commands on their own.
func (c *Connector) SharesWrites() bool { return !c.auth.repWrites() }

// ApplyMany carries out the commands of several users of the org, all of one kind, and returns
// what came of each user's commands, in order.
//
// Whom the writes act as is the org's write_as. As the integration user (the default), every
// user's commands share the calls: one Account lookup for all the contacts' companies, one
// recycle-bin lookup for all the redelivered creates, and sObject Collections calls of up to
// 200 records of any users, with creates setting OwnerId to the command's user. As each rep
// (write_as REP, JWT bearer flow), each user's commands are carried out with the user's own
// token (records they create are theirs, CreatedBy and LastModifiedBy show them, and only
// what their profile and sharing allow is done), one user after the other.
//
// Creates are upserts on Tandem_Sync_Key__c, so a retried create finds its first attempt
// (already_applied); creates without a sync key are plain creates, never retried after an
// unclear failure. Updates asked to check their record's version (WriteCommand.check_version)
// are checked first, all in one query, and fail as SALESFORCE_CONFLICT if the record changed
// since it was read (see checkVersions). Updates send only the listed fields, and the command's
// sync key; deleting a record that is already deleted succeeds (already_applied). Values longer
// than their field are truncated and reported as warnings; the write still happens. A record
// Salesforce rejects gets an error in its result and never fails the others, of the same user
// or of another. A user's Err is set only when a call that carried, or was to carry, one of the
// user's commands failed as a whole (authentication, API limits, Salesforce unavailable): the
// calls stop there, and users whose commands had all been answered before get their results.
// All operations but plain creates can then safely be retried.
//
// An upsert does not see records in the recycle bin, so a create redelivered after its first
// attempt took effect and the user deleted the record would bring the record back. For a
// Redelivered user, such a create is not sent: its result fails with SALESFORCE_ENTITY_DELETED
// and carries the deleted record's id, so the deletion can be carried over instead.
func (c *Connector) ApplyMany(ctx context.Context, kind tandemv1.RecordKind, batches []UserCommands) []UserResults {
	out := make([]UserResults, len(batches))
	object, err := objectFor(kind)
	if err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	if c.SharesWrites() {
		c.applyAs(ctx, kind, object, c.auth.integrationSubject(), batches, out)
		return out
	}
	for i := range batches {
		subject, err := c.auth.userSubject(batches[i].User)
		if err != nil {
			out[i].Err = err
			continue
		}
		c.applyAs(ctx, kind, object, subject, batches[i:i+1], out[i:i+1])
	}
	return out
}

// applyAs carries out batches as subject, filling out.
func (c *Connector) applyAs(ctx context.Context, kind tandemv1.RecordKind, object, subject string, batches []UserCommands, out []UserResults) {
	st := &applyState{object: object, subject: subject, setsOwner: c.SharesWrites(), writer: c.auth.writer(),
		accessHint: c.auth.writerAccessHint(), parts: make([]*part, len(batches))}
	commands, redelivered := 0, false
	for k, b := range batches {
		p := &part{
			user:        b.User,
			cmds:        b.Commands,
			redelivered: b.Redelivered,
			results:     make([]*tandemv1.WriteResult, len(b.Commands)),
			written:     make([]*tandemv1.Record, len(b.Commands)),
			attendees:   map[int][]*tandemv1.Attendee{},
		}
		for i, cmd := range b.Commands {
			p.results[i] = &tandemv1.WriteResult{CommandId: cmd.GetCommandId(), SyncKey: cmd.GetSyncKey(), Op: cmd.GetOp()}
		}
		st.parts[k] = p
		commands += len(b.Commands)
		redelivered = redelivered || b.Redelivered
	}
	attrs := []attribute.KeyValue{c.metrics.org, attribute.String("tandem.record_kind", kind.String()), attribute.Int("tandem.users", len(batches)),
		attribute.Int("tandem.commands", commands), attribute.Bool("tandem.redelivered", redelivered)}
	if len(batches) == 1 {
		attrs = append(attrs, attribute.String("tandem.user_id", batches[0].User.GetUserId()))
	}
	ctx, span := c.tracer.Start(ctx, "salesforce.Apply", trace.WithAttributes(attrs...))
	err := c.apply(ctx, st, commands)
	endSpan(span, err)
	for k, p := range st.parts {
		if p.err != nil {
			out[k].Err = p.err
		} else {
			out[k].Results = p.results
		}
	}
}

// opBatch is the commands of one collections operation in an apply, with their items.
type opBatch struct {
	op    collectionOp
	refs  []ref
	items []collectionItem
}

func (b *opBatch) add(r ref, item collectionItem) {
	b.refs, b.items = append(b.refs, r), append(b.items, item)
}

// apply carries out st's commands: Account lookup, recycle-bin lookup of retried creates,
// the version check of updates that ask for one, then upserts, plain creates, updates and
// deletes, then invitees. On an error it stops and
// gives the error to every user with a command not yet answered.
func (c *Connector) apply(ctx context.Context, st *applyState, commands int) error {
	if st.object == objContact {
		var cmds []*tandemv1.WriteCommand
		for _, p := range st.parts {
			cmds = append(cmds, p.cmds...)
		}
		accounts, cached, err := c.lookUpAccounts(ctx, st.subject, cmds, true)
		if err != nil {
			return st.abort(fmt.Errorf("apply %d %s writes for org %s: %w", commands, st.object, c.orgID, err))
		}
		st.accounts, st.cachedAccounts = accounts, cached
	}
	upserts, creates, updates, deletes := &opBatch{op: opUpsert}, &opBatch{op: opCreate}, &opBatch{op: opUpdate}, &opBatch{op: opDelete}
	for _, p := range st.parts {
		for i, cmd := range p.cmds {
			r := ref{p, i}
			item, err := c.prepare(st, r)
			switch {
			case err != nil:
				r.fail(syncerr.As(err))
			case item == nil: // nothing Salesforce holds changes
				r.succeed(cmd.GetTargetId(), false)
			case cmd.GetOp() == tandemv1.WriteOp_WRITE_OP_DELETE:
				deletes.add(r, *item)
			case cmd.GetOp() == tandemv1.WriteOp_WRITE_OP_UPDATE:
				updates.add(r, *item)
			case cmd.GetSyncKey() != "":
				upserts.add(r, *item)
			default:
				creates.add(r, *item)
			}
		}
	}
	// The creates of a redelivered user may have taken effect, and so may those of a user with
	// a create planned again after its first attempt went unanswered (WriteCommand.retry).
	lookUp := map[*part]bool{}
	for _, r := range upserts.refs {
		if r.p.redelivered || r.cmd().GetRetry() {
			lookUp[r.p] = true
		}
	}
	if len(lookUp) > 0 {
		n := len(upserts.items)
		if err := c.skipDeletedCreates(ctx, st, upserts, func(r ref) bool { return lookUp[r.p] }); err != nil {
			return st.abort(fmt.Errorf("apply %d retried %s creates for org %s: %w", n, st.object, c.orgID, err))
		}
	}
	if err := c.checkVersions(ctx, st, updates); err != nil {
		return st.abort(fmt.Errorf("apply %d %s updates for org %s: %w", len(updates.items), st.object, c.orgID, err))
	}
	for _, b := range []*opBatch{upserts, creates, updates, deletes} {
		if len(b.items) == 0 {
			continue
		}
		if err := c.write(ctx, st, b); err != nil {
			return st.abort(fmt.Errorf("apply %d %s writes for org %s: %w", len(b.items), st.object, c.orgID, err))
		}
	}
	if err := c.markAppliedThenDeleted(ctx, st, updates); err != nil {
		return st.abort(fmt.Errorf("apply %d %s updates for org %s: %w", len(updates.items), st.object, c.orgID, err))
	}
	if st.settingAttendees() {
		if err := c.applyAttendees(ctx, st); err != nil {
			return st.abort(fmt.Errorf("apply event invitees for org %s: %w", c.orgID, err))
		}
	}
	return nil
}

// write sends b's items and records their outcomes. A contact that failed because the Account
// its company named in the account cache has since been deleted or hidden from the writer is
// prepared again after a fresh lookup of its company, and sent once more.
func (c *Connector) write(ctx context.Context, st *applyState, b *opBatch) error {
	for retry := false; ; retry = true {
		// Salesforce stamps what these calls write at or after now; it does not say with what.
		sent := c.now()
		outcomes, err := c.collections(ctx, st.subject, b.op, st.object, b.items)
		if err != nil {
			return err
		}
		var stale []ref
		for k, r := range b.refs {
			if !retry && st.staleAccount(r, b.items[k], outcomes[k]) {
				stale = append(stale, r)
				continue
			}
			st.record(r, b.op, outcomes[k], sent)
		}
		if len(stale) == 0 {
			return nil
		}
		if err := c.refreshAccounts(ctx, st, stale); err != nil {
			return err
		}
		b = &opBatch{op: b.op}
		for _, r := range stale {
			r.result().Warnings = nil // prepare adds them again
			switch item, err := c.prepare(st, r); {
			case err != nil:
				r.fail(syncerr.As(err))
			case item == nil:
				r.succeed(r.cmd().GetTargetId(), false)
			default:
				b.add(r, *item)
			}
		}
		if len(b.items) == 0 {
			return nil
		}
	}
}

// refreshAccounts looks up again, bypassing the account cache, the companies of the stale
// writes not looked up again yet in this apply (an earlier batch may have), into st.accounts.
func (c *Connector) refreshAccounts(ctx context.Context, st *applyState, stale []ref) error {
	var cmds []*tandemv1.WriteCommand
	var names []string
	for _, r := range stale {
		if name := r.cmd().GetRecord().GetContact().GetCompanyName(); !st.refreshedAccounts[name] {
			cmds, names = append(cmds, r.cmd()), append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	// Dropped first, so that a failed lookup leaves no stale answer for the next apply.
	c.accounts.forget(st.subject, names)
	fresh, _, err := c.lookUpAccounts(ctx, st.subject, cmds, false)
	if err != nil {
		return err
	}
	if st.refreshedAccounts == nil {
		st.refreshedAccounts = map[string]bool{}
	}
	for _, name := range names {
		st.accounts[name] = fresh[name]
		st.refreshedAccounts[name] = true
	}
	return nil
}

// abort gives err to every user with a command not yet answered, or with invitees not yet
// set, and returns it.
func (st *applyState) abort(err error) error {
	for _, p := range st.parts {
		if len(p.attendees) > 0 || slices.ContainsFunc(p.results, func(r *tandemv1.WriteResult) bool { return !r.GetOk() && r.GetError() == nil }) {
			p.err = err
		}
	}
	return err
}

// settingAttendees reports whether some event's invitees are still to be set.
func (st *applyState) settingAttendees() bool {
	return slices.ContainsFunc(st.parts, func(p *part) bool { return len(p.attendees) > 0 })
}

// prepare validates a command and builds its collection item; nil when there is nothing to
// send (an update of fields Salesforce does not hold).
func (c *Connector) prepare(st *applyState, r ref) (*collectionItem, error) {
	cmd := r.cmd()
	switch cmd.GetOp() {
	case tandemv1.WriteOp_WRITE_OP_DELETE:
		if cmd.GetTargetId() == "" {
			return nil, syncerr.New(syncerr.SyncMalformedRecord, "delete without a target id")
		}
		return &collectionItem{key: cmd.GetTargetId()}, nil
	case tandemv1.WriteOp_WRITE_OP_CREATE, tandemv1.WriteOp_WRITE_OP_UPDATE:
	default:
		return nil, syncerr.New(syncerr.SyncMalformedRecord, "unsupported write operation %v", cmd.GetOp())
	}
	create := cmd.GetOp() == tandemv1.WriteOp_WRITE_OP_CREATE
	if !create && cmd.GetTargetId() == "" {
		return nil, syncerr.New(syncerr.SyncMalformedRecord, "update without a target id")
	}
	rec := &tandemv1.Record{}
	if cmd.GetRecord() != nil {
		rec = proto.Clone(cmd.GetRecord()).(*tandemv1.Record)
	}
	fields := newFieldSet(cmd.GetFields())
	if create {
		fields = nil // a create writes every mapped field
	}
	var vals map[string]any
	var cuts []truncation
	switch st.object {
	case objContact:
		ct := rec.GetContact()
		if ct == nil {
			return nil, syncerr.New(syncerr.SyncMalformedRecord, "%s command without a contact", cmd.GetOp())
		}
		vals, cuts = contactValues(ct, fields, create, c.fields)
		st.setAccount(r, ct, fields, create, vals)
	case objEvent:
		ev := rec.GetEvent()
		if ev == nil {
			return nil, syncerr.New(syncerr.SyncMalformedRecord, "%s command without an event", cmd.GetOp())
		}
		var err error
		if vals, cuts, err = eventValues(ev, fields, create, c.fields); err != nil {
			return nil, &syncerr.Error{Code: syncerr.SyncMalformedRecord, Detail: err.Error(), RecordID: cmd.GetTargetId(), Err: err}
		}
		if fields.has(fAttendees) && (!create || len(ev.GetAttendees()) > 0) {
			r.p.attendees[r.i] = ev.GetAttendees()
		}
	}
	for _, cut := range cuts {
		w := &syncerr.Error{
			Code:     syncerr.SalesforceStringTooLong,
			Detail:   fmt.Sprintf("%s.%s holds at most %d characters; the value of %d was truncated", st.object, cut.api, cut.to, cut.from),
			Upstream: "STRING_TOO_LONG",
			RecordID: cmd.GetTargetId(),
			Field:    cut.canonical,
		}
		r.result().Warnings = append(r.result().Warnings, w.Proto())
	}
	rec.Id = cmd.GetTargetId()
	rec.Version = ""
	r.p.written[r.i] = rec
	if create {
		if user := r.p.user.GetUserId(); st.setsOwner && user != "" {
			// Written by anyone but the user, the record would belong to the writer.
			vals["OwnerId"] = user
			rec.OwnerId = user
		} else if rec.OwnerId == "" {
			rec.OwnerId = user
		}
		if cmd.GetSyncKey() != "" {
			vals[SyncKeyField] = cmd.GetSyncKey()
			rec.SyncKey = cmd.GetSyncKey()
		}
		return &collectionItem{key: cmd.GetSyncKey(), body: vals}, nil
	}
	if key := cmd.GetSyncKey(); key != "" {
		// An update tags the record with its pair's key too (an update listing only the key does
		// nothing else), so that a record Tandem did not create — linked by matching — relinks by
		// key should the link ever be lost.
		vals[SyncKeyField] = key
		rec.SyncKey = key
	}
	if len(vals) == 0 {
		return nil, nil // invitees, if listed, are still set
	}
	vals["Id"] = cmd.GetTargetId()
	return &collectionItem{key: cmd.GetTargetId(), body: vals}, nil
}

// record fills a command's result from its outcome; sent is when the call that carried the
// command was sent (WriteResult.sent_at).
func (st *applyState) record(r ref, op collectionOp, o collectionOutcome, sent time.Time) {
	cmd := r.cmd()
	if o.err == nil {
		id := o.id
		if id == "" {
			id = cmd.GetTargetId()
		}
		r.succeed(id, op == opUpsert && !o.created)
		if op != opDelete {
			r.result().SentAt = timestamppb.New(sent)
		}
		return
	}
	if op == opDelete && (o.err.ErrorCode == "ENTITY_IS_DELETED" || o.err.ErrorCode == "NOT_FOUND") {
		// The record is gone: the delete has the effect it asked for.
		r.succeed(cmd.GetTargetId(), true)
		return
	}
	se := st.classify(o.err)
	se.RecordID = cmd.GetTargetId()
	if len(o.err.Fields) > 0 {
		se.Field = canonicalField(st.object, o.err.Fields[0])
	}
	r.fail(se)
}

// classify turns a record's error into the catalogue error, saying what to do when the
// writer lacks access to a record it writes for someone else.
func (st *applyState) classify(e *APIError) *syncerr.Error {
	se := classifyAPIError(e)
	if se.Code == syncerr.SalesforceInsufficientAccess && st.accessHint != "" {
		se.Detail += "; " + st.accessHint
	}
	return se
}

func (r ref) succeed(id string, alreadyApplied bool) {
	res := r.result()
	res.Ok = true
	res.AlreadyApplied = alreadyApplied
	if rec := r.p.written[r.i]; rec != nil && res.Op != tandemv1.WriteOp_WRITE_OP_DELETE {
		rec.Id = id
		res.Record = rec
	} else {
		res.Record = &tandemv1.Record{Id: id, SyncKey: res.SyncKey}
	}
	for _, w := range res.Warnings {
		if w.RecordId == "" {
			w.RecordId = id
		}
	}
}

func (r ref) fail(se *syncerr.Error) {
	res := r.result()
	res.Ok = false
	res.Error = se.Proto()
	res.Record = nil
	delete(r.p.attendees, r.i)
}
