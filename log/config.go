package log

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/vfs"
)

// FsyncPolicy says when appended batches are made durable (R2).
type FsyncPolicy uint8

const (
	// FsyncInterval syncs in the background every FlushInterval (and every
	// FlushBytes of appended data, when set); Append returns before its
	// batch is durable and durability comes from replication.
	FsyncInterval FsyncPolicy = iota
	// FsyncAlways makes Append return only after an fsync covering its batch
	// returned success. Concurrent Appends share one fsync (group commit).
	FsyncAlways
)

// String returns the policy as configs spell it: "interval" or "always".
func (p FsyncPolicy) String() string {
	switch p {
	case FsyncInterval:
		return "interval"
	case FsyncAlways:
		return "always"
	}
	return fmt.Sprintf("fsync(%d)", uint8(p))
}

// ParseFsyncPolicy parses "always" or "interval".
func ParseFsyncPolicy(s string) (FsyncPolicy, error) {
	switch s {
	case "always":
		return FsyncAlways, nil
	case "interval":
		return FsyncInterval, nil
	}
	return 0, fmt.Errorf("fsync policy %q: want always or interval", s)
}

// CleanupPolicy says what happens to a log's old segments: deleted by
// retention, compacted (the latest record per key kept), or both.
type CleanupPolicy uint8

// The policies, as flags: CleanupCompact|CleanupDelete is "compact,delete".
const (
	CleanupDelete  CleanupPolicy = 1 << iota // retention deletes old segments
	CleanupCompact                           // the cleaner keeps the latest record per key
)

// Compact reports whether the policy includes compaction.
func (p CleanupPolicy) Compact() bool { return p&CleanupCompact != 0 }

// Delete reports whether the policy includes deletion by retention.
func (p CleanupPolicy) Delete() bool { return p&CleanupDelete != 0 }

// String returns the policy as topic configs spell it.
func (p CleanupPolicy) String() string {
	switch p {
	case CleanupDelete:
		return "delete"
	case CleanupCompact:
		return "compact"
	case CleanupCompact | CleanupDelete:
		return "compact,delete"
	}
	return fmt.Sprintf("cleanup(%d)", uint8(p))
}

// ParseCleanupPolicy parses "delete", "compact", or both comma-separated
// in either order.
func ParseCleanupPolicy(s string) (CleanupPolicy, error) {
	switch s {
	case "delete":
		return CleanupDelete, nil
	case "compact":
		return CleanupCompact, nil
	case "compact,delete", "delete,compact":
		return CleanupCompact | CleanupDelete, nil
	}
	return 0, fmt.Errorf("cleanup policy %q: want delete, compact or compact,delete", s)
}

// Defaults applied by WithDefaults to zero fields.
const (
	DefaultMinCleanableDirtyRatio = 0.5
	DefaultDeleteRetention        = 24 * time.Hour

	DefaultSegmentBytes       = 1 << 30
	DefaultSegmentAge         = 7 * 24 * time.Hour
	DefaultRetentionAge       = 7 * 24 * time.Hour
	DefaultFlushInterval      = time.Second
	DefaultMaxBatchBytes      = 1<<20 + record.HeaderSize // 1 MiB of records plus the batch header
	DefaultIndexIntervalBytes = 4096
	DefaultMaxIndexBytes      = 10 << 20
)

// Config is the configuration of one partition log. The zero value of a
// field means its default (WithDefaults); -1 means unlimited where the field
// says so.
type Config struct {
	// SegmentBytes rolls the active segment when an append would take it
	// past this size. Default 1 GiB.
	SegmentBytes int64
	// SegmentAge rolls the active segment once this much wall-clock time
	// has passed since its first batch was appended (not since that batch's
	// timestamp, which a producer sets). Default 7 days; -1 = never.
	SegmentAge time.Duration
	// RetentionBytes deletes the oldest closed segments while the log stays
	// at least this big without them. Default -1 = unlimited (0 also means
	// the default, so "keep nothing" is not expressible; use
	// DeleteRecordsBefore for that).
	RetentionBytes int64
	// RetentionAge deletes closed segments whose newest batch is older than
	// this. Default 7 days; -1 = unlimited.
	RetentionAge time.Duration
	// CleanupPolicy: delete (retention by RetentionBytes and RetentionAge),
	// compact (Clean keeps the latest record per key; retention by bytes
	// and age is off) or both. Default CleanupDelete.
	CleanupPolicy CleanupPolicy
	// MinCompactionLag: a record younger than this (by its batch's max
	// timestamp) is never compacted away. Default 0.
	MinCompactionLag time.Duration
	// MaxCompactionLag: a log whose oldest uncleaned record is older than
	// this is due for cleaning whatever its dirty ratio. Default -1 =
	// never (only the dirty ratio decides).
	MaxCompactionLag time.Duration
	// MinCleanableDirtyRatio: a log is due for cleaning once its dirty
	// bytes (not yet cleaned) are at least this fraction of its cleanable
	// bytes. Default 0.5; in (0, 1].
	MinCleanableDirtyRatio float64
	// DeleteRetention: a tombstone (a record with a null value) is
	// removed this long after the segment holding it was first cleaned,
	// giving consumers that long to see it. Default 1 day; -1 = never.
	DeleteRetention time.Duration
	// Fsync is the durability policy. Default FsyncInterval.
	Fsync FsyncPolicy
	// FlushInterval is the period of the background flush (FsyncInterval)
	// and of recovery-point checkpoints (both policies). Default 1 s.
	FlushInterval time.Duration
	// FlushBytes, when positive, also starts a background flush once this
	// many bytes were appended since the last one (FsyncInterval). Default
	// 0: by time only. On this project's reference machine an fdatasync
	// every 64 MiB cost ~40% of append bandwidth (BENCHMARKS.md), and in
	// interval mode durability comes from replication, so the default
	// flushes once per FlushInterval.
	FlushBytes int64
	// MaxBatchBytes bounds a whole batch, framing included; Append refuses
	// bigger ones. Default 1 MiB plus the batch framing.
	MaxBatchBytes int
	// IndexIntervalBytes is the log bytes between two offset-index entries.
	// Default 4096.
	IndexIntervalBytes int
	// MaxIndexBytes is the preallocated size of each index file; a full
	// index rolls the segment. Default 10 MiB.
	MaxIndexBytes int
	// Logger receives lifecycle and recovery events. Default zap.NewNop().
	Logger *zap.Logger
	// Now is the clock for segment age and retention age. Default time.Now.
	Now func() time.Time
	// FS is the file system every file of the log goes through (segments,
	// checkpoints, markers, the directory). Default vfs.Default (the os);
	// tests inject faults through it (package vfs/errorfs).
	FS vfs.FS
	// OnOffline, if set, runs once, with the error (it matches
	// ErrOffline), when the log goes offline. It runs under the log's
	// commit lock: it must not block nor call into the log.
	OnOffline func(err error)
	// OnSync, if set, runs after every fsync of the log's segments (the
	// group commit's and the interval flusher's) with how long it took and
	// its error, nil on success: the metrics' fsync latency and flush
	// failures. It runs on the syncing goroutine: it must be quick and
	// must not call into the log.
	OnSync func(d time.Duration, err error)
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.SegmentAge == 0 {
		c.SegmentAge = DefaultSegmentAge
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = -1
	}
	if c.RetentionAge == 0 {
		c.RetentionAge = DefaultRetentionAge
	}
	if c.CleanupPolicy == 0 {
		c.CleanupPolicy = CleanupDelete
	}
	if c.MaxCompactionLag == 0 {
		c.MaxCompactionLag = -1
	}
	if c.MinCleanableDirtyRatio == 0 {
		c.MinCleanableDirtyRatio = DefaultMinCleanableDirtyRatio
	}
	if c.DeleteRetention == 0 {
		c.DeleteRetention = DefaultDeleteRetention
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.IndexIntervalBytes == 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.MaxIndexBytes == 0 {
		c.MaxIndexBytes = DefaultMaxIndexBytes
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	return c
}

// minSegmentBytes keeps a segment able to hold at least one header.
const minSegmentBytes = 1024

// Validate checks c after defaults are applied and names the first bad field.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.SegmentBytes < minSegmentBytes:
		return fieldError("SegmentBytes", c.SegmentBytes, fmt.Sprintf("below %d", minSegmentBytes))
	case c.SegmentBytes > 1<<32-1:
		// Index positions are u32.
		return fieldError("SegmentBytes", c.SegmentBytes, "over 4 GiB - 1")
	case c.SegmentAge < 0 && c.SegmentAge != -1:
		return fieldError("SegmentAge", c.SegmentAge, "negative (use -1 for never)")
	case c.RetentionBytes < -1:
		return fieldError("RetentionBytes", c.RetentionBytes, "below -1")
	case c.RetentionAge < 0 && c.RetentionAge != -1:
		return fieldError("RetentionAge", c.RetentionAge, "negative (use -1 for unlimited)")
	case c.CleanupPolicy&^(CleanupCompact|CleanupDelete) != 0:
		return fieldError("CleanupPolicy", c.CleanupPolicy, "unknown policy")
	case c.MinCompactionLag < 0:
		return fieldError("MinCompactionLag", c.MinCompactionLag, "negative")
	case c.MaxCompactionLag < 0 && c.MaxCompactionLag != -1:
		return fieldError("MaxCompactionLag", c.MaxCompactionLag, "negative (use -1 for never)")
	case c.MaxCompactionLag >= 0 && c.MaxCompactionLag < c.MinCompactionLag:
		return fieldError("MaxCompactionLag", c.MaxCompactionLag, "below MinCompactionLag")
	case !(c.MinCleanableDirtyRatio > 0 && c.MinCleanableDirtyRatio <= 1):
		return fieldError("MinCleanableDirtyRatio", c.MinCleanableDirtyRatio, "outside (0, 1]")
	case c.DeleteRetention < 0 && c.DeleteRetention != -1:
		return fieldError("DeleteRetention", c.DeleteRetention, "negative (use -1 for never)")
	case c.Fsync != FsyncInterval && c.Fsync != FsyncAlways:
		return fieldError("Fsync", c.Fsync, "unknown policy")
	case c.FlushInterval < time.Millisecond:
		return fieldError("FlushInterval", c.FlushInterval, "below 1ms")
	case c.FlushBytes < 0:
		return fieldError("FlushBytes", c.FlushBytes, "negative")
	case c.MaxBatchBytes < record.HeaderSize:
		return fieldError("MaxBatchBytes", c.MaxBatchBytes, "below a batch header")
	case int64(c.MaxBatchBytes) > c.SegmentBytes:
		return fieldError("MaxBatchBytes", c.MaxBatchBytes, "over SegmentBytes")
	case c.IndexIntervalBytes < 0:
		return fieldError("IndexIntervalBytes", c.IndexIntervalBytes, "negative")
	case c.MaxIndexBytes < 12:
		return fieldError("MaxIndexBytes", c.MaxIndexBytes, "below one index entry")
	}
	return nil
}

// ErrConfig matches (errors.Is) every error returned by Config.Validate.
var ErrConfig = errors.New("invalid log config")

func fieldError(field string, v any, why string) error {
	return fmt.Errorf("%w: %s = %v: %s", ErrConfig, field, v, why)
}
