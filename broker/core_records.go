package broker

import (
	"fmt"

	"github.com/sluicemq/sluice/protocol"
)

// HighWatermarkOffset, given to DeleteRecords, deletes every record below
// the high watermark (Kafka's -1).
const HighWatermarkOffset = -1

// errDeleteInternal refuses DeleteRecords on the offsets topic, as Kafka
// refuses it on its internal topics.
var errDeleteInternal = &protocol.Error{Code: protocol.ErrInvalidTopic, Detail: OffsetsTopic + " is internal: its records are the group coordinators'"}

// DeleteRecords deletes the records of a partition this broker leads
// below offset (HighWatermarkOffset: below the high watermark): it moves
// the log start offset up to offset (checkpointed before it counts, so a
// restart keeps it) and deletes the segments wholly below. It returns the
// partition's log start offset afterwards (Kafka's low watermark on the
// leader). An offset above the high watermark, or below 0 but for
// HighWatermarkOffset, is OFFSET_OUT_OF_RANGE; an offset at or below the
// log start changes nothing. Followers advance their own start offset to
// the leader's, up to their high watermark, with their next fetch
// (replica.Follower.AdvanceStart): the answer does not wait for them.
// The caller checks delete on the topic (Session.CanDeleteTopic).
func (b *Broker) DeleteRecords(cu *CatchUp, topic string, partition int32, offset int64) (int64, error) {
	if topic == OffsetsTopic {
		return -1, errDeleteInternal
	}
	p, err := b.partitionFor(cu, topic, partition)
	if err != nil {
		return -1, err
	}
	return p.deleteRecords(offset)
}

func (p *partition) deleteRecords(offset int64) (int64, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if err := p.unavailable(); err != nil {
		return -1, err
	}
	if !p.leader.HighWatermarkKnown() {
		// A new leader whose followers have not reported in its epoch
		// yet: its high watermark may be below the previous leader's.
		return -1, protocol.ErrOffsetNotAvailable
	}
	hw := p.highWatermark()
	if offset == HighWatermarkOffset {
		offset = hw
	}
	if offset < 0 || offset > hw {
		return -1, &protocol.Error{Code: protocol.ErrOffsetOutOfRange,
			Detail: fmt.Sprintf("delete records before %d: want -1 (the high watermark) or 0 to the high watermark %d", offset, hw)}
	}
	if err := p.log.DeleteRecordsBefore(offset); err != nil {
		return -1, err
	}
	p.producers.CutBelow(p.log.StartOffset())
	return p.log.StartOffset(), nil
}
