package log

// Err returns the error that took the log offline (it matches ErrOffline
// and wraps the cause: a failed fsync, a failed write), or nil while the
// log is online. Once offline a log stays offline until it is reopened
// (R5).
func (l *Log) Err() error { return l.commit.failed() }
