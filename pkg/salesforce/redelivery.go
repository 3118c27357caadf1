package salesforce

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// redeliveryLookupKeys is how many sync keys one queryAll of a redelivered batch looks up: as
// many as one upsert call writes, so a redelivered batch costs at most one more call per
// upsert call (the keys of one lookup are a small fraction of the statement length limit).
const redeliveryLookupKeys = maxCollection

// clockSkew allows for the difference between Tandem's clock (a command's issue time) and
// Salesforce's (a record's CreatedDate).
const clockSkew = 2 * time.Minute

// skipDeletedCreates takes out of the upserts the creates (of the commands check selects) whose
// record an earlier attempt created and the user deleted since, and fails their results with
// SALESFORCE_ENTITY_DELETED and the deleted record's id. The upserts still to send stay in order.
// The keys of every user selected are looked up together.
func (c *Connector) skipDeletedCreates(ctx context.Context, st *applyState, upserts *opBatch, check func(ref) bool) error {
	var keys []string
	// issued is, per key, when its create was issued: only a record created after it can be an
	// earlier attempt of this create. An older deleted record with the key is an earlier
	// incarnation of the pair, deleted before this create was decided.
	issued := map[string]time.Time{}
	for k, it := range upserts.items {
		r := upserts.refs[k]
		if !check(r) {
			continue
		}
		if _, seen := issued[it.key]; !seen {
			keys = append(keys, it.key)
			issued[it.key] = time.Time{}
			if at := r.cmd().GetIssuedAt(); at != nil {
				issued[it.key] = at.AsTime().Add(-clockSkew)
			}
		}
	}
	if len(keys) == 0 {
		return nil
	}
	deleted, err := c.deletedSyncKeys(ctx, st.object, keys, issued)
	if err != nil {
		return err
	}
	if len(deleted) == 0 {
		return nil
	}
	kept := &opBatch{op: upserts.op}
	for k, r := range upserts.refs {
		key := upserts.items[k].key
		id, gone := deleted[key]
		if !gone || !check(r) {
			kept.add(r, upserts.items[k])
			continue
		}
		r.fail(&syncerr.Error{
			Code:     syncerr.SalesforceEntityDeleted,
			RecordID: id,
			Detail: fmt.Sprintf("%s %s with sync key %q was created by an earlier attempt of this command and has been deleted since; it is not created again",
				st.object, id, key),
		})
		// The id lets the caller link the pair to the deleted record and carry the deletion over.
		r.result().Record = &tandemv1.Record{Id: id}
	}
	*upserts = *kept
	return nil
}

// deletedSyncKeys returns, for each of keys whose records are all in the recycle bin, the id
// of the one deleted last among those created after since[key]. Keys with a live record, or
// with none at all, are absent: an upsert finds the live record, or creates the first one.
//
// The lookup runs as the integration user, like every org-wide read: it sees records in the
// recycle bin whoever deleted them, which the acting user may not.
func (c *Connector) deletedSyncKeys(ctx context.Context, object string, keys []string, since map[string]time.Time) (map[string]string, error) {
	live := map[string]bool{}
	deleted := map[string]string{}
	stmt := selectStmt{
		fields: []string{"Id", "IsDeleted", "CreatedDate", SyncKeyField},
		from:   object,
		// Newest first, so the first deleted row of a key is the one deleted last.
		orderBy: "SystemModstamp DESC, Id DESC",
		inField: SyncKeyField,
	}
	err := c.lookUpWithDeleted(ctx, stmt, keys, func(r SObject) {
		// Rows are matched to commands by the exact key, as the unique case-sensitive sync key
		// field makes both SOQL and the upsert match them.
		key := r.String(SyncKeyField)
		if !r.Bool("IsDeleted") {
			live[key] = true
			return
		}
		if created, ok, err := r.Time("CreatedDate"); err == nil && ok && created.Before(since[key]) {
			return // an earlier incarnation of the pair, not an attempt of this create
		}
		if _, ok := deleted[key]; !ok {
			deleted[key] = r.String("Id")
		}
	})
	if err != nil {
		return nil, fmt.Errorf("look up %d sync keys in the recycle bin: %w", len(keys), err)
	}
	for key := range live {
		delete(deleted, key)
	}
	return deleted, nil
}

// markAppliedThenDeleted looks in the recycle bin for the targets of the updates that failed
// because the record is deleted. A deleted record that holds every value its update sends was
// deleted after the update, or already agreed with it: the update's result is then marked
// already applied and carries the record as the update left it, so that the pair is taken as in
// sync when it was deleted and the deletion is carried over, rather than the source's change
// creating the record again. This happens when an update took effect, its result was lost with
// the worker that made it, and the rep deleted the record before the update was tried again.
//
// The lookup is one queryAll per recycle-bin lookup batch, run only on this failure path.
func (c *Connector) markAppliedThenDeleted(ctx context.Context, st *applyState, updates *opBatch) error {
	byID := map[string]int{} // target id → position in updates
	fieldSet := map[string]bool{}
	for k, r := range updates.refs {
		if res := r.result(); res.GetOk() || syncerr.Code(res.GetError().GetCode()) != syncerr.SalesforceEntityDeleted {
			continue
		}
		byID[updates.items[k].key] = k
		for f := range updates.items[k].body {
			fieldSet[f] = true
		}
	}
	if len(byID) == 0 {
		return nil
	}
	fieldSet["Id"], fieldSet["IsDeleted"] = true, true
	stmt := selectStmt{fields: slices.Sorted(maps.Keys(fieldSet)), from: st.object, inField: "Id"}
	err := c.lookUpWithDeleted(ctx, stmt, slices.Sorted(maps.Keys(byID)), func(row SObject) {
		k, ok := byID[row.String("Id")]
		if !ok || !row.Bool("IsDeleted") || !holds(row, updates.items[k].body) {
			return
		}
		r := updates.refs[k]
		res := r.result()
		res.AlreadyApplied = true
		if rec := r.p.written[r.i]; rec != nil {
			rec.Id = updates.items[k].key
			res.Record = rec
		}
	})
	if err != nil {
		return fmt.Errorf("look up %d deleted %s records in the recycle bin: %w", len(byID), st.object, err)
	}
	return nil
}

// lookUpWithDeleted runs stmt with queryAll (deleted records included) for values of its IN
// field, redeliveryLookupKeys values a query (split further under the statement length limit),
// and hands every row to row. It runs as the integration user, like every org-wide read: it sees
// records in the recycle bin whoever deleted them, which the acting user may not.
func (c *Connector) lookUpWithDeleted(ctx context.Context, stmt selectStmt, values []string, row func(SObject)) error {
	for start := 0; start < len(values); start += redeliveryLookupKeys {
		stmt.inValues = values[start:min(start+redeliveryLookupKeys, len(values))]
		stmts, err := stmt.chunks(c.cfg.maxSOQLLength)
		if err != nil {
			return syncerr.Wrap(syncerr.SyncInternal, fmt.Errorf("build the look-up: %w", err))
		}
		for _, q := range stmts {
			err := c.queryPages(ctx, c.auth.integrationSubject(), q, true, func(page *QueryResult) error {
				for _, r := range page.Records {
					row(r)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// holds reports whether row has every value of body (as JSON, so that a number or a null reads
// the same whichever way it was decoded).
func holds(row SObject, body map[string]any) bool {
	for f, want := range body {
		if f == "Id" {
			continue
		}
		got, _ := row.Get(f)
		a, errA := json.Marshal(got)
		b, errB := json.Marshal(want)
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			return false
		}
	}
	return true
}
