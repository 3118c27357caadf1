package sfsim

import (
	"errors"
	"time"
)

// ErrTransactionEnded is returned by a Transaction's methods after Commit or Rollback.
var ErrTransactionEnded = errors.New("sfsim: transaction already ended")

// Transaction is a long-running transaction in the org — a batch job, a data load, a slow
// trigger — made through the backdoor. Each write takes its SystemModstamp (and a new record its
// id) when it is made, as Salesforce's writes do, but nothing the transaction writes is visible
// to anyone else — queries, getUpdated, the API's writes — until Commit. Records saved by others
// meanwhile get later SystemModstamps, so a committed transaction leaves records older than ones
// a poll has already read: the late commit that a SystemModstamp watermark must not skip.
//
// The records a transaction writes stay locked until it ends: API writes to them fail with
// UNABLE_TO_LOCK_ROW, as they do in Salesforce once the wait for the lock times out. Other
// backdoor edits are not held up; do not edit the same records through both.
type Transaction struct {
	s     *Server
	t     *txn
	holds map[string]bool
	ended bool
}

// Begin starts a transaction.
func (s *Server) Begin() *Transaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	x := &Transaction{s: s, t: s.st.begin(now, nil), holds: map[string]bool{}}
	s.open[x] = now
	return x
}

// Insert creates a record inside the transaction, as the user asUserID (the administrator when
// empty); see Server.Insert.
func (x *Transaction) Insert(object string, values map[string]any, asUserID string) (string, error) {
	var id string
	err := x.write(func(s *Server) (err error) {
		id, err = s.insertIn(x.t, object, values, asUserID)
		return err
	})
	return id, err
}

// Update changes a record inside the transaction; see Server.Update.
func (x *Transaction) Update(object, id string, values map[string]any, asUserID string) error {
	return x.write(func(s *Server) error { return s.updateIn(x.t, object, id, values, asUserID) })
}

// Delete moves a record to the recycle bin inside the transaction, as the administrator.
func (x *Transaction) Delete(object, id string) error {
	return x.write(func(s *Server) error { return s.deleteIn(x.t, object, id) })
}

// write runs one write of the transaction at the server's current time, holding the records it
// wrote once it succeeds.
func (x *Transaction) write(fn func(*Server) error) error {
	s := x.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if x.ended {
		return ErrTransactionEnded
	}
	x.t.now = s.now()
	if err := fn(s); err != nil {
		return err
	}
	x.holdWritten()
	return nil
}

// Commit makes the transaction's writes visible, with the SystemModstamps they were made at.
func (x *Transaction) Commit() error {
	s := x.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if x.ended {
		return ErrTransactionEnded
	}
	x.end()
	x.t.commit()
	s.afterCommit(x.t)
	return nil
}

// Rollback discards the transaction's writes. The ids of records it created stay unused.
func (x *Transaction) Rollback() {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if !x.ended {
		x.end()
	}
}

// holdWritten locks the records the transaction has written (a delete cascades to children),
// once each; callers hold s.mu.
func (x *Transaction) holdWritten() {
	for _, id := range x.t.order {
		if !x.holds[id] {
			x.holds[id] = true
			x.s.held[id]++
		}
	}
}

// end releases the transaction's locks; callers hold s.mu.
func (x *Transaction) end() {
	x.ended = true
	delete(x.s.open, x)
	for id := range x.holds {
		if x.s.held[id]--; x.s.held[id] <= 0 {
			delete(x.s.held, id)
		}
	}
}

// coveredUntil is what getUpdated reports as latestDateCovered for a request ending at end: end,
// or the start of the earliest transaction still open if that is earlier, since what it writes
// commits later with stamps from then on. Callers hold s.mu.
func (s *Server) coveredUntil(end time.Time) time.Time {
	for _, began := range s.open {
		if began.Before(end) {
			end = began
		}
	}
	return end
}

// locked reports whether an API write may not lock a record: an open Transaction holds it, or
// an injected fault says so. Callers hold s.mu.
func (s *Server) locked(id string) bool {
	if s.held[id] > 0 {
		return true
	}
	return s.faults.locked(id)
}
