// Package segment is one segment of a partition log: a log file of whole
// record batches and its two sparse indexes.
//
// Files, named by the segment's base offset as 20 zero-padded digits:
//
//	N.log        the batches, back to back, exactly as record.Batch bytes
//	N.index      sparse offset → file position: 8-byte entries (relative
//	             offset u32, position u32), one per IndexIntervalBytes of log
//	N.timeindex  sparse max timestamp → offset: 12-byte entries (timestamp
//	             i64, relative offset u32), timestamps non-decreasing
//
// Both index files are memory-mapped (github.com/tysonmote/gommap),
// preallocated to MaxIndexBytes while the segment is active and trimmed to
// their used size by Seal or Close. The log file is memory-mapped for reads.
//
// Concurrency: one writer (Append, Sync, TruncateTo, Seal) and any number of
// readers (Read, Find*, Size, NextOffset). A reader sees only whole batches:
// the readable size is published after the bytes of an append are in place.
// A View holds a reference to the segment; Close and Delete wait until every
// View is released before unmapping or removing anything, so no reader ever
// touches an unmapped page (R8).
//
// A segment knows nothing of partitions, replication or networking.
package segment
