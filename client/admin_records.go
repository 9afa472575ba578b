package client

import (
	"context"
	"fmt"

	"github.com/sluicemq/sluice/protocol"
)

// DeleteRecords deletes the records of one partition below offset before
// (-1: below the high watermark), on its leader: the partition's log
// start offset moves there, and the records below it can no longer be
// fetched (OFFSET_OUT_OF_RANGE; AtStart lists the new start). It returns
// the leader's new log start offset (the low watermark). An offset above
// the high watermark fails with ErrOffsetOutOfRange and changes nothing;
// one at or below the start changes nothing. Followers follow with their
// next fetch. Needs delete on the topic. A stale leader is retried after
// a metadata refresh (deleting below the same offset twice is harmless).
func (c *Client) DeleteRecords(ctx context.Context, topic string, partition int32, before int64) (int64, error) {
	ti, err := c.topicInfo(ctx, topic)
	if err != nil {
		return -1, fmt.Errorf("delete records: %w", err)
	}
	if partition < 0 || int(partition) >= len(ti.partitions) {
		return -1, fmt.Errorf("delete records: %w", &TopicError{Topic: topic,
			Err: protocol.ErrUnknownTopicOrPartition.ErrWithDetail(fmt.Sprintf("partition %d of %d", partition, len(ti.partitions)))})
	}
	for attempt := 0; ; attempt++ {
		code, detail, low := protocol.ErrLeaderNotAvailable, "", int64(-1)
		if leader, _, ok := c.meta.leader(topic, partition); ok {
			req := &protocol.DeleteRecordsRequest{TimeoutMs: int32(c.cfg.requestTimeout.Milliseconds()),
				Topics: []protocol.DeleteRecordsTopic{{Name: topic, Partitions: []protocol.DeleteRecordsPartition{{Partition: partition, Offset: before}}}}}
			m, err := c.roundTrip(ctx, leader, req, func() protocol.Message { return new(protocol.DeleteRecordsResponse) }, true)
			if err != nil {
				return -1, fmt.Errorf("delete records of %s-%d: %w", topic, partition, err)
			}
			code, detail = protocol.ErrUnknownServerError, "partition missing from the response"
			for _, t := range m.(*protocol.DeleteRecordsResponse).Topics {
				for _, p := range t.Partitions {
					if t.Name == topic && p.Partition == partition {
						code, detail, low = p.ErrorCode, p.ErrorMessage, p.LowWatermark
					}
				}
			}
		}
		if code == protocol.NoError {
			return low, nil
		}
		if !staleMetadata(code) || attempt >= c.cfg.requestRetries {
			return -1, fmt.Errorf("delete records of %s-%d: %w", topic, partition, code.ErrWithDetail(detail))
		}
		c.meta.requestRefresh()
		if err := c.sleep(ctx, c.backoff(attempt+1)); err != nil {
			return -1, err
		}
	}
}
