package segment

import "errors"

// Sentinel errors. Callers branch on them with errors.Is; the returned errors
// wrap them with the segment's base offset and the values involved.
var (
	// ErrOffsetOutOfRange: the offset is below Base() or above NextOffset().
	ErrOffsetOutOfRange = errors.New("offset out of range")
	// ErrClosed: the segment was closed or deleted.
	ErrClosed = errors.New("segment closed")
	// ErrSealed: Append on a sealed segment (TruncateTo unseals it).
	ErrSealed = errors.New("segment sealed")
	// ErrFull: the batch does not fit (Full would have said so) or its
	// offsets do not fit the 32-bit relative offsets of the indexes. The log
	// rolls a new segment and appends there.
	ErrFull = errors.New("segment full")
	// ErrNotContiguous: a batch's base offset is not the offset expected
	// after the previous batch (Append, Open's scan, Recover).
	ErrNotContiguous = errors.New("batch base offset not contiguous")
	// ErrEpochDecreased: Recover found a batch whose leader epoch is lower
	// than the one before it (R6).
	ErrEpochDecreased = errors.New("leader epoch decreased")
	// ErrNeedsRecovery: Open found bytes at the end of the log file that are
	// not whole batches (an unclean stop). Appends are refused until Recover
	// has truncated them.
	ErrNeedsRecovery = errors.New("segment needs recovery")
)
