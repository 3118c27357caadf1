package planner

import tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"

// Local reports whether plan, made from state, decides only about pairs state already links,
// each on its own: updates, conflicts resolved by updates, refreshed mappings, sync keys
// stamped, writes still in flight. It creates, deletes, links, unlinks and tombstones nothing,
// holds nothing, reports no problem of the whole user (record limit, held deletes) and leaves
// no record waiting for time to pass. Such a plan changes nothing that another pair or a free
// record is decided by, and it is the same whether made from the whole ledger or from only the
// pairs it touches (see ledger.LoadScope).
func Local(state *State, plan *Plan) bool {
	if len(plan.Unlinks) > 0 || len(plan.Tombstones) > 0 || plan.NewHold != nil || plan.ResolvedHold != "" ||
		len(plan.Adopted) > 0 || len(plan.Errors) > 0 || plan.Relinked > 0 || plan.Orphaned > 0 || plan.Waiting > 0 {
		return false
	}
	for _, w := range plan.Writes {
		if w.GetCommand().GetOp() != tandemv1.WriteOp_WRITE_OP_UPDATE {
			return false
		}
	}
	for _, m := range plan.Links {
		old, ok := state.Mappings[m.GetSyncKey()]
		if !ok || old.GetExchangeId() != m.GetExchangeId() || old.GetSalesforceId() != m.GetSalesforceId() {
			return false
		}
	}
	return true
}
