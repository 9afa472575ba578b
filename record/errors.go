package record

import (
	"errors"
	"fmt"
)

// ErrCorrupt matches (errors.Is) every error that reports a batch failing a
// validity check. The concrete type is *CorruptError, which says which check.
var ErrCorrupt = errors.New("corrupt record batch")

// Check names one validity check of a batch (R1). Each failure says which.
type Check uint8

// The checks, in the order Validate applies them.
const (
	CheckShort       Check = iota + 1 // fewer bytes than a header, or than batchLength declares
	CheckLength                       // batchLength outside [HeaderSize-12, max batch bytes]
	CheckMagic                        // magic byte is not 2
	CheckCRC                          // CRC-32C mismatch
	CheckOffsetDelta                  // lastOffsetDelta negative or inconsistent with recordCount
	CheckRecordCount                  // recordCount negative or impossible for the bytes present
	CheckRecord                       // a record's framing disagrees with the batch
	CheckVarint                       // a varint is longer than its maximum or truncated
	CheckCompression                  // unknown codec, undecodable block, or output over the cap
)

var checkNames = [...]string{
	CheckShort:       "short",
	CheckLength:      "length",
	CheckMagic:       "magic",
	CheckCRC:         "crc",
	CheckOffsetDelta: "offset-delta",
	CheckRecordCount: "record-count",
	CheckRecord:      "record",
	CheckVarint:      "varint",
	CheckCompression: "compression",
}

// String returns the check's short name, stable for logs and metrics.
func (c Check) String() string {
	if int(c) < len(checkNames) && checkNames[c] != "" {
		return checkNames[c]
	}
	return fmt.Sprintf("check(%d)", uint8(c))
}

// CorruptError reports which check a batch failed and why.
type CorruptError struct {
	Check  Check
	Detail string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt record batch: %s: %s", e.Check, e.Detail)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corrupt(c Check, format string, args ...any) error {
	return &CorruptError{Check: c, Detail: fmt.Sprintf(format, args...)}
}
