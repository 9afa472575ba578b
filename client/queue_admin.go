package client

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicemq/sluice/protocol"
)

// QueuePartitionState is one partition of a queue group: records before
// Start are done, End is the first offset never delivered, and the counts
// are of the records between.
type QueuePartitionState struct {
	Topic        string `json:"topic"`
	Partition    int32  `json:"partition"`
	Start        int64  `json:"start_offset"`
	End          int64  `json:"end_offset"`
	Available    int    `json:"available"`
	Acquired     int    `json:"acquired"`
	Accepted     int    `json:"accepted"`
	Archived     int    `json:"archived"`
	DeadLettered int64  `json:"dead_lettered"`
	// OldestAcquired is the age of the oldest lease still held, -1 when
	// none is.
	OldestAcquired time.Duration `json:"oldest_acquired_ns"`
	// AtCap: the window is full; no new record is delivered until its
	// start moves (the oldest records are settled).
	AtCap bool `json:"at_cap"`
}

// QueueGroupDescription is a queue group as its coordinator holds it.
type QueueGroupDescription struct {
	Group      string                `json:"group"`
	Lease      time.Duration         `json:"lease_ns"`
	Partitions []QueuePartitionState `json:"partitions"`
}

// DescribeQueueGroup describes a queue group (an error matching
// protocol.ErrGroupIDNotFound when its coordinator holds none).
func (c *Client) DescribeQueueGroup(ctx context.Context, name string) (QueueGroupDescription, error) {
	req := &protocol.DescribeQueueGroupRequest{GroupID: name}
	m, err := c.coordinated(ctx, name, req, func() protocol.Message { return new(protocol.DescribeQueueGroupResponse) }, c.cfg.requestRetries)
	if err != nil {
		return QueueGroupDescription{}, fmt.Errorf("describe queue group %q: %w", name, err)
	}
	resp := m.(*protocol.DescribeQueueGroupResponse)
	if resp.ErrorCode != protocol.NoError {
		return QueueGroupDescription{}, fmt.Errorf("describe queue group %q: %w", name, resp.ErrorCode.ErrWithDetail(resp.ErrorMessage))
	}
	out := QueueGroupDescription{Group: name, Lease: time.Duration(resp.LeaseMs) * time.Millisecond}
	for _, p := range resp.Partitions {
		s := QueuePartitionState{Topic: p.Topic, Partition: p.Partition, Start: p.StartOffset, End: p.EndOffset,
			Available: int(p.Available), Acquired: int(p.Acquired), Accepted: int(p.Accepted), Archived: int(p.Archived),
			DeadLettered: p.DeadLettered, OldestAcquired: -1, AtCap: p.AtCap}
		if p.OldestAcquiredMs >= 0 {
			s.OldestAcquired = time.Duration(p.OldestAcquiredMs) * time.Millisecond
		}
		out.Partitions = append(out.Partitions, s)
	}
	return out, nil
}

// ResetQueueGroup moves the queue group's window of every partition of
// topic to where to says (ResetToEarliest, ResetToLatest or
// ResetToOffset, kept within the log), dropping every state in it:
// records acquired are no longer held, records before the new start are
// done, records after it are delivered again. It returns the new starts.
func (c *Client) ResetQueueGroup(ctx context.Context, name, topic string, to ResetSpec) ([]OffsetReset, error) {
	if to.kind != resetEarliest && to.kind != resetLatest && to.kind != resetOffset {
		return nil, fmt.Errorf("reset queue group %q: only to the earliest, the latest or an offset", name)
	}
	starts, err := c.ListOffsets(ctx, topic, AtStart())
	if err != nil {
		return nil, fmt.Errorf("reset queue group %q: %w", name, err)
	}
	ends, err := c.ListOffsets(ctx, topic, AtEnd())
	if err != nil {
		return nil, fmt.Errorf("reset queue group %q: %w", name, err)
	}
	req := &protocol.ResetQueueGroupRequest{GroupID: name}
	var out []OffsetReset
	for i, s := range starts {
		if s.Err != nil || ends[i].Err != nil {
			return nil, fmt.Errorf("reset queue group %q: %s[%d]: %w", name, topic, s.Partition, firstErr(s.Err, ends[i].Err))
		}
		n := s.Offset
		switch to.kind {
		case resetLatest:
			n = ends[i].Offset
		case resetOffset:
			n = min(max(to.value, s.Offset), ends[i].Offset)
		}
		req.Partitions = append(req.Partitions, protocol.QueueResetPartition{Topic: topic, Partition: s.Partition, Offset: n})
		out = append(out, OffsetReset{Topic: topic, Partition: s.Partition, Current: -1, New: n})
	}
	m, err := c.coordinated(ctx, name, req, func() protocol.Message { return new(protocol.ResetQueueGroupResponse) }, c.cfg.requestRetries)
	if err != nil {
		return nil, fmt.Errorf("reset queue group %q: %w", name, err)
	}
	if resp := m.(*protocol.ResetQueueGroupResponse); resp.ErrorCode != protocol.NoError {
		return nil, fmt.Errorf("reset queue group %q: %w", name, resp.ErrorCode.ErrWithDetail(resp.ErrorMessage))
	}
	return out, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
