package log

// Err returns the error that took the log offline (it matches ErrOffline
// and wraps the cause: a failed fsync, a failed write), or nil while the
// log is online. Once offline a log stays offline until it is reopened
// (R5).
func (l *Log) Err() error { return l.commit.failed() }

// Stats is a log's size on disk, as Log.Stats reports it.
type Stats struct {
	// Segments is the number of segments, the active one included.
	Segments int
	// Bytes is the size of the segments' log files (indexes not counted).
	Bytes int64
}

// Stats returns the log's segment count and size. It takes the segment
// list's read lock only, so it does not wait for an append or a sync.
func (l *Log) Stats() Stats {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	st := Stats{Segments: len(l.segs)}
	for _, s := range l.segs {
		st.Bytes += s.Size()
	}
	return st
}
