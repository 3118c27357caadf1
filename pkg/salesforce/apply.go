package salesforce

import (
	"context"
	"fmt"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

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

// applyState is one Apply call in progress.
type applyState struct {
	object  string
	subject string
	results []*tandemv1.WriteResult
	// written are the records as they will be held once written (content after truncation).
	written []*tandemv1.Record
	// attendees lists the events whose invitees the call sets, by command index.
	attendees map[int][]*tandemv1.Attendee
	// accounts are the Accounts the contacts' companies name (contacts only).
	accounts accountsByName
}

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

// Apply carries out commands as actingUser (with their token, so records they create are
// theirs) and returns one result per command, in order.
//
// Creates are upserts on Tandem_Sync_Key__c, so a retried create finds its first attempt
// (already_applied); creates without a sync key are plain creates, never retried after an
// unclear failure. Updates send only the listed fields, and the command's sync key; deleting a record that is already
// deleted succeeds (already_applied). Values longer than their field are truncated and
// reported as warnings; the write still happens. A record Salesforce rejects gets an error in
// its result and never fails the others. Apply returns an error only when the batch could not
// be carried out as a whole (authentication, API limits, Salesforce unavailable); all its
// operations but plain creates can then safely be retried.
//
// An upsert does not see records in the recycle bin, so a create redelivered after its first
// attempt took effect and the user deleted the record would bring the record back. With
// Redelivered, such a create is not sent: its result fails with SALESFORCE_ENTITY_DELETED and
// carries the deleted record's id, so the deletion can be carried over instead.
func (c *Connector) Apply(ctx context.Context, actingUser *tandemv1.SyncUser, kind tandemv1.RecordKind, cmds []*tandemv1.WriteCommand, opts ...ApplyOption) (_ []*tandemv1.WriteResult, err error) {
	var o applyOptions
	for _, opt := range opts {
		opt(&o)
	}
	ctx, span := c.tracer.Start(ctx, "salesforce.Apply", trace.WithAttributes(c.metrics.org, attribute.String("tandem.user_id", actingUser.GetUserId()),
		attribute.String("tandem.record_kind", kind.String()), attribute.Int("tandem.commands", len(cmds)),
		attribute.Bool("tandem.redelivered", o.redelivered)))
	defer func() { endSpan(span, err) }()
	object, err := objectFor(kind)
	if err != nil {
		return nil, err
	}
	subject, err := c.auth.userSubject(actingUser)
	if err != nil {
		return nil, err
	}
	st := &applyState{
		object:    object,
		subject:   subject,
		results:   make([]*tandemv1.WriteResult, len(cmds)),
		written:   make([]*tandemv1.Record, len(cmds)),
		attendees: map[int][]*tandemv1.Attendee{},
	}
	if object == objContact {
		if st.accounts, err = c.lookUpAccounts(ctx, subject, cmds); err != nil {
			return nil, fmt.Errorf("apply %d %s writes for org %s: %w", len(cmds), object, c.orgID, err)
		}
	}
	var upserts, creates, updates, deletes []int
	var upsertItems, createItems, updateItems, deleteItems []collectionItem
	for i, cmd := range cmds {
		st.results[i] = &tandemv1.WriteResult{CommandId: cmd.GetCommandId(), SyncKey: cmd.GetSyncKey(), Op: cmd.GetOp()}
		item, err := c.prepare(st, i, cmd, actingUser)
		switch {
		case err != nil:
			st.fail(i, syncerr.As(err))
		case item == nil: // nothing Salesforce holds changes
			st.succeed(i, cmd.GetTargetId(), false)
		case cmd.GetOp() == tandemv1.WriteOp_WRITE_OP_DELETE:
			deletes, deleteItems = append(deletes, i), append(deleteItems, *item)
		case cmd.GetOp() == tandemv1.WriteOp_WRITE_OP_UPDATE:
			updates, updateItems = append(updates, i), append(updateItems, *item)
		case cmd.GetSyncKey() != "":
			upserts, upsertItems = append(upserts, i), append(upsertItems, *item)
		default:
			creates, createItems = append(creates, i), append(createItems, *item)
		}
	}
	// A create planned again after its first attempt went unanswered (WriteCommand.retry) may
	// have taken effect just like a redelivered one.
	retried := slices.ContainsFunc(upserts, func(i int) bool { return cmds[i].GetRetry() })
	if (o.redelivered || retried) && len(upserts) > 0 {
		n := len(upserts)
		if upserts, upsertItems, err = c.skipDeletedCreates(ctx, st, cmds, upserts, upsertItems); err != nil {
			return nil, fmt.Errorf("apply %d retried %s creates for org %s: %w", n, object, c.orgID, err)
		}
	}
	batches := []struct {
		op    collectionOp
		idx   []int
		items []collectionItem
	}{{opUpsert, upserts, upsertItems}, {opCreate, creates, createItems}, {opUpdate, updates, updateItems}, {opDelete, deletes, deleteItems}}
	for _, b := range batches {
		if len(b.items) == 0 {
			continue
		}
		outcomes, err := c.collections(ctx, subject, b.op, object, b.items)
		if err != nil {
			return nil, fmt.Errorf("apply %d %s writes for org %s: %w", len(b.items), object, c.orgID, err)
		}
		for k, idx := range b.idx {
			st.record(idx, cmds[idx], b.op, outcomes[k])
		}
	}
	if err := c.markAppliedThenDeleted(ctx, st, updates, updateItems); err != nil {
		return nil, fmt.Errorf("apply %d %s updates for org %s: %w", len(updates), object, c.orgID, err)
	}
	if len(st.attendees) > 0 {
		if err := c.applyAttendees(ctx, st, actingUser); err != nil {
			return nil, fmt.Errorf("apply event invitees for org %s: %w", c.orgID, err)
		}
	}
	return st.results, nil
}

// prepare validates a command and builds its collection item; nil when there is nothing to
// send (an update of fields Salesforce does not hold).
func (c *Connector) prepare(st *applyState, i int, cmd *tandemv1.WriteCommand, actingUser *tandemv1.SyncUser) (*collectionItem, error) {
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
		st.setAccount(i, cmd, ct, fields, create, vals)
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
			st.attendees[i] = ev.GetAttendees()
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
		st.results[i].Warnings = append(st.results[i].Warnings, w.Proto())
	}
	rec.Id = cmd.GetTargetId()
	rec.Version = ""
	st.written[i] = rec
	if create {
		if !c.auth.perUser() && actingUser.GetUserId() != "" {
			// Without a token per user every record would belong to the execution user.
			vals["OwnerId"] = actingUser.GetUserId()
			rec.OwnerId = actingUser.GetUserId()
		} else if rec.OwnerId == "" {
			rec.OwnerId = actingUser.GetUserId()
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

// record fills a command's result from its outcome.
func (st *applyState) record(i int, cmd *tandemv1.WriteCommand, op collectionOp, o collectionOutcome) {
	if o.err == nil {
		id := o.id
		if id == "" {
			id = cmd.GetTargetId()
		}
		st.succeed(i, id, op == opUpsert && !o.created)
		return
	}
	if op == opDelete && (o.err.ErrorCode == "ENTITY_IS_DELETED" || o.err.ErrorCode == "NOT_FOUND") {
		// The record is gone: the delete has the effect it asked for.
		st.succeed(i, cmd.GetTargetId(), true)
		return
	}
	se := classifyAPIError(o.err)
	se.RecordID = cmd.GetTargetId()
	if len(o.err.Fields) > 0 {
		se.Field = canonicalField(st.object, o.err.Fields[0])
	}
	delete(st.attendees, i)
	st.fail(i, se)
}

func (st *applyState) succeed(i int, id string, alreadyApplied bool) {
	r := st.results[i]
	r.Ok = true
	r.AlreadyApplied = alreadyApplied
	if rec := st.written[i]; rec != nil && r.Op != tandemv1.WriteOp_WRITE_OP_DELETE {
		rec.Id = id
		r.Record = rec
	} else {
		r.Record = &tandemv1.Record{Id: id, SyncKey: r.SyncKey}
	}
	for _, w := range r.Warnings {
		if w.RecordId == "" {
			w.RecordId = id
		}
	}
}

func (st *applyState) fail(i int, se *syncerr.Error) {
	st.results[i].Ok = false
	st.results[i].Error = se.Proto()
	st.results[i].Record = nil
	delete(st.attendees, i)
}
