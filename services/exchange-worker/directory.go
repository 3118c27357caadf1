package exchangeworker

import (
	"context"
	"log/slog"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// syncingMailbox is a user whose configuration syncs at least one record kind.
type syncingMailbox struct {
	exchange.Mailbox
	Kinds []tandemv1.RecordKind
	// Assignment is the user and the configuration it syncs with.
	Assignment store.Assignment
}

// syncingMailboxes lists the org's users that sync, with the kinds each syncs: those assigned a
// configuration that syncs something, and with an email address.
func syncingMailboxes(ctx context.Context, st *store.Store, orgID string) ([]syncingMailbox, error) {
	assigned, err := st.ListAssignments(ctx, orgID)
	if err != nil {
		return nil, err
	}
	var out []syncingMailbox
	for _, a := range assigned {
		kinds := store.SyncedKinds(a.Config)
		if len(kinds) == 0 || a.User.GetEmail() == "" {
			continue
		}
		out = append(out, syncingMailbox{Mailbox: exchange.Mailbox{OrgID: orgID, UserID: a.User.GetUserId(), Address: a.User.GetEmail()}, Kinds: kinds, Assignment: a})
	}
	return out, nil
}

// introduction is the naming of an org's mailboxes to one connector; done is closed once named.
type introduction struct {
	conn exchange.Connector
	done chan struct{}
}

// introduce tells a connector the worker has not used before which mailboxes it will serve
// (exchange.Expecter), so that it resolves the org's mailboxes in batches. A connector is new
// when the org is new to the worker or its settings changed. The org's other jobs that start
// meanwhile wait for it, or each of them would resolve its own mailbox alone first. Failing to
// list the users costs only the batching: each mailbox is then resolved on its own.
func (w *Worker) introduce(ctx context.Context, orgID string, conn exchange.Connector) {
	ex, ok := conn.(exchange.Expecter)
	if !ok {
		return
	}
	w.introducedMu.Lock()
	in := w.introduced[orgID]
	if in != nil && in.conn == conn {
		w.introducedMu.Unlock()
		select {
		case <-in.done:
		case <-ctx.Done():
		}
		return
	}
	in = &introduction{conn: conn, done: make(chan struct{})}
	w.introduced[orgID] = in
	w.introducedMu.Unlock()
	defer close(in.done)
	mbs, err := syncingMailboxes(ctx, w.st, orgID)
	if err != nil {
		w.log.WarnContext(ctx, "cannot list the org's mailboxes to resolve them together", slog.String("org", orgID), slog.Any("error", err))
		return
	}
	addresses := make([]string, len(mbs))
	for i, mb := range mbs {
		addresses[i] = mb.Address
	}
	ex.Expect(addresses)
}
