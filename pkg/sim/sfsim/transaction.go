package sfsim

import (
	"errors"
	"fmt"
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
	return &Transaction{s: s, t: s.st.begin(s.now(), nil), holds: map[string]bool{}}
}

// Insert creates a record inside the transaction, as the user asUserID (the administrator when
// empty); see Server.Insert.
func (x *Transaction) Insert(object string, values map[string]any, asUserID string) (string, error) {
	s := x.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if x.ended {
		return "", ErrTransactionEnded
	}
	o := s.schema.object(object)
	if o == nil {
		return "", fmt.Errorf("%w: %s", ErrUnknownObject, object)
	}
	actor, err := s.actor(asUserID)
	if err != nil {
		return "", err
	}
	vals, err := s.backdoorValues(o, values)
	if err != nil {
		return "", err
	}
	x.t.now = s.now()
	id, errs := x.t.create(o, vals, actor, true, "")
	if errs != nil {
		return "", &RecordError{Object: o.name, Errors: errs}
	}
	x.holdWritten()
	return id, nil
}

// Update changes a record inside the transaction; see Server.Update.
func (x *Transaction) Update(object, id string, values map[string]any, asUserID string) error {
	s := x.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if x.ended {
		return ErrTransactionEnded
	}
	o := s.schema.object(object)
	if o == nil {
		return fmt.Errorf("%w: %s", ErrUnknownObject, object)
	}
	actor, err := s.actor(asUserID)
	if err != nil {
		return err
	}
	vals, err := s.backdoorValues(o, values)
	if err != nil {
		return err
	}
	x.t.now = s.now()
	old, errs := x.t.lookup(o, id)
	if errs == nil {
		errs = x.t.apply(old, vals, actor, func(f *Field) bool { return f.Updateable })
	}
	if errs != nil {
		if errs[0].StatusCode == "INVALID_CROSS_REFERENCE_KEY" {
			return fmt.Errorf("%w: %s %s", ErrNotFound, o.name, id)
		}
		return &RecordError{Object: o.name, ID: id, Errors: errs}
	}
	x.holdWritten()
	return nil
}

// Delete moves a record to the recycle bin inside the transaction, as the administrator.
func (x *Transaction) Delete(object, id string) error {
	s := x.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if x.ended {
		return ErrTransactionEnded
	}
	o := s.schema.object(object)
	if o == nil {
		return fmt.Errorf("%w: %s", ErrUnknownObject, object)
	}
	x.t.now = s.now()
	_, errs := x.t.remove(o, id, s.adminID)
	if errs != nil {
		if errs[0].StatusCode == "INVALID_CROSS_REFERENCE_KEY" {
			return fmt.Errorf("%w: %s %s", ErrNotFound, o.name, id)
		}
		return &RecordError{Object: o.name, ID: id, Errors: errs}
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
	for id := range x.holds {
		if x.s.held[id]--; x.s.held[id] <= 0 {
			delete(x.s.held, id)
		}
	}
}

// locked reports whether an API write may not lock a record: an open Transaction holds it, or
// an injected fault says so. Callers hold s.mu.
func (s *Server) locked(id string) bool {
	if s.held[id] > 0 {
		return true
	}
	return s.faults.locked(id)
}
