package log

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// groupCommit lets concurrent appenders share fsyncs (R2) without holding
// the append lock across one. A waiter that finds no sync running becomes
// the leader: it runs one sync outside every lock, which covers everything
// appended before the sync started; waiters that arrive meanwhile sleep and
// are covered by the next sync, whose leader is one of them. So with N
// appenders there is at most one fsync in flight and one queued.
//
// The first sync error is sticky (R5): it is never retried, every waiter
// not already covered gets it, and so does every later wait.
//
// Exclusive sections (lock/unlock) keep syncs out while the log deletes or
// truncates segments a sync could be touching.
type groupCommit struct {
	// sync makes everything appended so far durable and returns the offset
	// it covers: every offset below is durable when it returns nil. It runs
	// with busy set, so never concurrently with itself or an exclusive
	// section.
	sync func() (int64, error)
	// onSync, if set, runs after a sync moved the durable offset.
	onSync func()
	// onOffline, if set, runs once, with the sticky error, when the log
	// goes offline.
	onOffline func(err error)

	mu   sync.Mutex
	cond sync.Cond
	done int64 // offsets below are durable
	busy bool  // a sync or an exclusive section is running
	err  error // first sync error, wrapped in ErrOffline; sticky

	syncedOff atomic.Int64  // mirrors done for lock-free readers
	offline   atomic.Bool   // err != nil, for the Append fast path
	gen       atomic.Uint64 // bumped by every truncation (cut)
}

func newGroupCommit(done int64, sync func() (int64, error)) *groupCommit {
	g := &groupCommit{sync: sync, done: done}
	g.cond.L = &g.mu
	g.syncedOff.Store(done)
	return g
}

// wait returns once the offsets below target are durable, or with the
// sticky error. gen is g.gen as it was when the caller appended (read under
// the log's append lock): a truncation since then means the log synced
// everything before truncating (see Log.TruncateTo), so the caller's batch
// was durable before it could be removed.
func (g *groupCommit) wait(target int64, gen uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		if g.done >= target || g.gen.Load() != gen {
			return nil
		}
		if g.err != nil {
			return g.err
		}
		if !g.busy {
			g.busy = true
			g.mu.Unlock()
			covered, err := g.sync()
			g.mu.Lock()
			g.busy = false
			if err != nil {
				g.failLocked(err)
			} else if covered > g.done {
				g.done = covered
				g.syncedOff.Store(covered)
				if g.onSync != nil {
					g.onSync()
				}
			}
			g.cond.Broadcast()
			continue
		}
		g.cond.Wait()
	}
}

// fail takes the log offline with err (not a sync error, but one that leaves
// the log's durable state unknown, such as a failed roll).
func (g *groupCommit) fail(err error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failLocked(err)
	g.cond.Broadcast()
	return g.err
}

func (g *groupCommit) failLocked(err error) {
	if g.err == nil {
		g.err = fmt.Errorf("%w: %w", ErrOffline, err)
		g.offline.Store(true)
		if g.onOffline != nil {
			g.onOffline(g.err)
		}
	}
}

// failed returns the sticky error, nil while the log is online.
func (g *groupCommit) failed() error {
	if !g.offline.Load() {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// lock starts an exclusive section: it waits for a running sync to finish
// and keeps new ones from starting until unlock.
func (g *groupCommit) lock() {
	g.mu.Lock()
	for g.busy {
		g.cond.Wait()
	}
	g.busy = true
	g.mu.Unlock()
}

// unlock ends an exclusive section.
func (g *groupCommit) unlock() {
	g.mu.Lock()
	g.busy = false
	g.cond.Broadcast()
	g.mu.Unlock()
}

// cut records a truncation to offset: durable offsets cannot exceed it any
// more, and waiters from before it are released (see wait). Call inside an
// exclusive section, with the log's append lock held.
func (g *groupCommit) cut(offset int64) {
	g.mu.Lock()
	if g.done > offset {
		g.done = offset
		g.syncedOff.Store(offset)
	}
	g.gen.Add(1)
	g.cond.Broadcast()
	g.mu.Unlock()
}

// reset sets the durable offset after the log was rebuilt from offset
// (a full truncation); like cut, inside an exclusive section.
func (g *groupCommit) reset(offset int64) {
	g.mu.Lock()
	g.done = offset
	g.syncedOff.Store(offset)
	g.gen.Add(1)
	g.cond.Broadcast()
	g.mu.Unlock()
}

// synced returns the offset below which everything is durable.
func (g *groupCommit) synced() int64 { return g.syncedOff.Load() }
