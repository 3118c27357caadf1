package salesforce

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/tandem-sync/tandem/pkg/syncerr"
)

// checkVersions fails, as conflicts, the updates asked to check their record's version
// (WriteCommand.check_version) whose record has changed since it was read, and takes them out of
// updates: one query reads the current SystemModstamp of them all, and the fields they write.
// sObject Collections take no precondition, so the check comes just before the update; a change
// made between the two is overwritten, as one made while a cycle is planned is.
//
// A record that changed but already holds every value its update writes (the update's first
// attempt took effect and its result was lost, or an edit made the same change) needs no write:
// the update succeeds as already applied. A record that is gone (not found, or in the recycle
// bin) is left to the update, which reports it. An update that asks for the check without
// saying which version it expects cannot be checked, and fails as a conflict unless it is
// already applied.
func (c *Connector) checkVersions(ctx context.Context, st *applyState, updates *opBatch) error {
	checked := map[string][]int{} // target id → positions in updates
	fields := map[string]bool{"Id": true, "IsDeleted": true, "SystemModstamp": true}
	for k, r := range updates.refs {
		if r.cmd().GetCheckVersion() {
			checked[updates.items[k].key] = append(checked[updates.items[k].key], k)
			for f := range updates.items[k].body {
				fields[f] = true
			}
		}
	}
	if len(checked) == 0 {
		return nil
	}
	rows := map[string]SObject{}
	stmt := selectStmt{fields: slices.Sorted(maps.Keys(fields)), from: st.object, inField: "Id"}
	err := c.lookUpWithDeleted(ctx, stmt, slices.Sorted(maps.Keys(checked)), func(row SObject) {
		if !row.Bool("IsDeleted") {
			rows[row.String("Id")] = row
		}
	})
	if err != nil {
		return fmt.Errorf("read the versions of %d %s records: %w", len(checked), st.object, err)
	}
	kept := &opBatch{op: updates.op}
	for k, r := range updates.refs {
		cmd := r.cmd()
		row, found := rows[updates.items[k].key]
		if !cmd.GetCheckVersion() || !found {
			kept.add(r, updates.items[k])
			continue
		}
		now := ""
		if rec, err := recordHeader(row); err == nil {
			now = rec.GetVersion()
		}
		switch {
		case now != "" && now == cmd.GetExpectedVersion():
			kept.add(r, updates.items[k])
		case holds(row, updates.items[k].body):
			r.succeed(cmd.GetTargetId(), true)
		default:
			r.fail(&syncerr.Error{
				Code:     syncerr.SalesforceConflict,
				Detail:   fmt.Sprintf("%s %s was modified at %s; Tandem read it at version %q", st.object, cmd.GetTargetId(), now, cmd.GetExpectedVersion()),
				RecordID: cmd.GetTargetId(),
			})
		}
	}
	*updates = *kept
	return nil
}
