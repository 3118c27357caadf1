package engine

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// fakeSide is one system as the workers see it: records with versions, a change log for
// incremental reads, and writes with the same idempotency rules as the real connectors
// (a create whose sync key exists returns the existing record; Exchange updates check the
// ChangeKey). It stands in for a connector in the reconciler's tests.
type fakeSide struct {
	system tandemv1.System
	prefix string
	items  map[string]*tandemv1.Record
	log    []string
	seq    int
	// everHeld records every email the side ever held, to check nothing was lost.
	everHeld map[string]bool
	// deletedKeys remembers deleted records by sync key, as the recycle bin (Salesforce) and the
	// Deleted Items folder (Exchange) do: a retried create finds its first attempt there.
	deletedKeys map[string]string
	// now is the harness's clock: each change stamps the record's modification time, as both
	// systems do.
	now func() time.Time
	// createdAt is the log position of each record's creation: in Exchange, a record created
	// and deleted within one read's window is not reported at all (as SyncFolderItems does).
	createdAt map[string]int
	// lastStamp is the last SystemModstamp given (Salesforce).
	lastStamp time.Time
}

func newFakeSide(system tandemv1.System) *fakeSide {
	prefix := "E"
	if system == tandemv1.System_SYSTEM_SALESFORCE {
		prefix = "S"
	}
	return &fakeSide{system: system, prefix: prefix, items: map[string]*tandemv1.Record{}, everHeld: map[string]bool{}, deletedKeys: map[string]string{}, createdAt: map[string]int{}}
}

func (f *fakeSide) touch(id string) {
	f.seq++
	f.items[id].Version = fmt.Sprintf("%s-v%d", id, f.seq)
	if f.now != nil {
		at := f.now()
		if f.system == tandemv1.System_SYSTEM_SALESFORCE {
			// Salesforce's version is SystemModstamp, to the millisecond here; every change gets
			// its own.
			if !at.After(f.lastStamp) {
				at = f.lastStamp.Add(time.Millisecond)
			}
			f.lastStamp = at
			f.items[id].Version = at.UTC().Format(time.RFC3339Nano)
		}
		f.items[id].ModifiedAt = timestamppb.New(at)
	}
	f.log = append(f.log, id)
	f.everHeld[record.EmailKey(f.items[id])] = true
}

// create adds a record and returns its id.
func (f *fakeSide) create(rec *tandemv1.Record) *tandemv1.Record {
	f.seq++
	id := fmt.Sprintf("%s%03d", f.prefix, f.seq)
	n := proto.Clone(rec).(*tandemv1.Record)
	n.Id = id
	f.items[id] = n
	f.createdAt[id] = len(f.log)
	f.touch(id)
	return proto.Clone(n).(*tandemv1.Record)
}

func (f *fakeSide) update(id string, mutate func(*tandemv1.Contact)) bool {
	r, ok := f.items[id]
	if !ok {
		return false
	}
	mutate(r.GetContact())
	f.touch(id)
	return true
}

func (f *fakeSide) remove(id string) bool {
	r, ok := f.items[id]
	if !ok {
		return false
	}
	if k := r.GetSyncKey(); k != "" {
		f.deletedKeys[k] = id
	}
	delete(f.items, id)
	f.log = append(f.log, id)
	return true
}

func (f *fakeSide) ids() []string {
	ids := make([]string, 0, len(f.items))
	for id := range f.items {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// read returns the changes since cursor (-1: everything, as a full read) and the new cursor.
// Like SyncFolderItems, several changes of one record come back as its latest state.
func (f *fakeSide) read(cursor int) (changes []*tandemv1.Change, next int, full bool) {
	if cursor < 0 {
		for _, id := range f.ids() {
			changes = append(changes, &tandemv1.Change{Type: tandemv1.ChangeType_CHANGE_TYPE_UPSERT, Record: proto.Clone(f.items[id]).(*tandemv1.Record)})
		}
		return changes, len(f.log), true
	}
	seen := map[string]bool{}
	for _, id := range f.log[cursor:] {
		if seen[id] {
			continue
		}
		seen[id] = true
		if r, ok := f.items[id]; ok {
			changes = append(changes, &tandemv1.Change{Type: tandemv1.ChangeType_CHANGE_TYPE_UPSERT, Record: proto.Clone(r).(*tandemv1.Record)})
		} else if f.system != tandemv1.System_SYSTEM_EXCHANGE || f.createdAt[id] < cursor {
			changes = append(changes, &tandemv1.Change{Type: tandemv1.ChangeType_CHANGE_TYPE_DELETE, Record: &tandemv1.Record{Id: id}})
		}
	}
	return changes, len(f.log), false
}

func (f *fakeSide) bySyncKey(key string) *tandemv1.Record {
	for _, id := range f.ids() {
		if f.items[id].GetSyncKey() == key {
			return f.items[id]
		}
	}
	return nil
}

func (f *fakeSide) fail(code syncerr.Code, id string) *tandemv1.WriteResult {
	e := syncerr.New(code, "record %s", id)
	e.RecordID = id
	return &tandemv1.WriteResult{Error: e.Proto()}
}

// apply carries out a write batch as the worker owning the side would.
func (f *fakeSide) apply(b *tandemv1.WriteBatch) []*tandemv1.WriteResult {
	var out []*tandemv1.WriteResult
	for _, c := range b.GetCommands() {
		var r *tandemv1.WriteResult
		switch c.GetOp() {
		case tandemv1.WriteOp_WRITE_OP_CREATE:
			if existing := f.bySyncKey(c.GetSyncKey()); existing != nil {
				// A create whose earlier attempt exists updates it to this command's content (an
				// upsert on the external id in Salesforce; find by sync key, then update, in Exchange).
				upd := record.CopyFields(existing, c.GetRecord(), record.SyncFields(record.KindOf(c.GetRecord())))
				f.items[existing.GetId()] = upd
				f.touch(existing.GetId())
				r = &tandemv1.WriteResult{Ok: true, AlreadyApplied: true, Record: proto.Clone(f.items[existing.GetId()]).(*tandemv1.Record)}
				break
			}
			if id, ok := f.deletedKeys[c.GetSyncKey()]; ok {
				// The first attempt was made and the record deleted since.
				code := syncerr.ExchangeItemNotFound
				if f.system == tandemv1.System_SYSTEM_SALESFORCE {
					code = syncerr.SalesforceEntityDeleted
				}
				r = f.fail(code, id)
				r.Record = &tandemv1.Record{Id: id}
				break
			}
			r = &tandemv1.WriteResult{Ok: true, Record: f.create(c.GetRecord())}
		case tandemv1.WriteOp_WRITE_OP_UPDATE:
			cur, ok := f.items[c.GetTargetId()]
			switch {
			case !ok && f.system == tandemv1.System_SYSTEM_EXCHANGE:
				r = f.fail(syncerr.ExchangeItemNotFound, c.GetTargetId())
			case !ok:
				r = f.fail(syncerr.SalesforceEntityDeleted, c.GetTargetId())
			case f.system == tandemv1.System_SYSTEM_EXCHANGE && c.GetExpectedVersion() != "" && c.GetExpectedVersion() != cur.GetVersion():
				r = f.fail(syncerr.ExchangeConflict, c.GetTargetId())
			case f.system == tandemv1.System_SYSTEM_SALESFORCE && c.GetCheckVersion() && c.GetExpectedVersion() != cur.GetVersion():
				// The salesforce-worker's check before the update (WriteCommand.check_version).
				r = f.fail(syncerr.SalesforceConflict, c.GetTargetId())
			default:
				upd := record.CopyFields(cur, c.GetRecord(), c.GetFields())
				if c.GetSyncKey() != "" {
					upd.SyncKey = c.GetSyncKey()
				}
				f.items[cur.GetId()] = upd
				f.touch(cur.GetId())
				r = &tandemv1.WriteResult{Ok: true, Record: proto.Clone(upd).(*tandemv1.Record)}
			}
		case tandemv1.WriteOp_WRITE_OP_DELETE:
			already := !f.remove(c.GetTargetId())
			r = &tandemv1.WriteResult{Ok: true, AlreadyApplied: already, Record: &tandemv1.Record{Id: c.GetTargetId()}}
		}
		if f.system == tandemv1.System_SYSTEM_SALESFORCE && r.GetRecord() != nil {
			// Salesforce writes do not return the new SystemModstamp (reading it back would cost
			// calls); the worker says when it sent the write.
			r.Record.Version = ""
			if f.now != nil {
				r.SentAt = timestamppb.New(f.now())
			}
		}
		r.CommandId, r.SyncKey, r.Op = c.GetCommandId(), c.GetSyncKey(), c.GetOp()
		out = append(out, r)
	}
	return out
}

// byEmail indexes the side's records by email.
func (f *fakeSide) byEmail() map[string][]*tandemv1.Record {
	out := map[string][]*tandemv1.Record{}
	for _, id := range f.ids() {
		r := f.items[id]
		out[record.EmailKey(r)] = append(out[record.EmailKey(r)], r)
	}
	return out
}

func contactRecord(n int, first, last, title string) *tandemv1.Record {
	return &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{
		GivenName: first, Surname: last, JobTitle: title,
		EmailAddress1: "p" + strconv.Itoa(n) + "@example.com",
	}}}
}
