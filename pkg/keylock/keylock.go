// Package keylock serialises work per key within a process: one holder of a key at a time,
// waiting as long as a context allows. A key's lock is forgotten once nobody holds or waits for
// it, so the locks of many keys cost nothing while idle.
package keylock

import (
	"context"
	"sync"
)

// Locks holds one lock per key.
type Locks[K comparable] struct {
	mu    sync.Mutex
	locks map[K]*entry
}

// entry is one key's lock: a one-slot semaphore (so that waiting honours a context) and the
// number of goroutines holding or waiting for it, to forget it when none is left.
type entry struct {
	slot chan struct{}
	refs int
}

// Lock takes k's lock, waiting for as long as ctx allows; unlock gives it back. It returns
// ctx's error (context.Cause) if ctx ends first.
func (l *Locks[K]) Lock(ctx context.Context, k K) (unlock func(), err error) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[K]*entry{}
	}
	e := l.locks[k]
	if e == nil {
		e = &entry{slot: make(chan struct{}, 1)}
		l.locks[k] = e
	}
	e.refs++
	l.mu.Unlock()
	select {
	case e.slot <- struct{}{}:
		return func() {
			<-e.slot
			l.forget(k, e)
		}, nil
	case <-ctx.Done():
		l.forget(k, e)
		return nil, context.Cause(ctx)
	}
}

func (l *Locks[K]) forget(k K, e *entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.refs--
	if e.refs == 0 {
		delete(l.locks, k)
	}
}
