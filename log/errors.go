package log

import "errors"

var (
	// ErrOffline is returned by every Append (and Sync) after an fsync of the
	// log failed: the log's durable state is unknown, so it accepts nothing
	// more until it is reopened (R5). It wraps the original error.
	ErrOffline = errors.New("log offline after a storage error")
	// ErrClosed is returned by operations on a closed log.
	ErrClosed = errors.New("log closed")
	// ErrStaleEpoch is returned by Append when the leader epoch set with
	// SetLeaderEpoch is below the epoch of the log's last batch: epochs in
	// a log never decrease (R6 treats a decrease as corruption).
	ErrStaleEpoch = errors.New("leader epoch below the log's last epoch")
	// ErrBatchOffsets is returned by Append for a batch whose offsets would
	// overflow int64.
	ErrBatchOffsets = errors.New("batch offsets out of range")
)
