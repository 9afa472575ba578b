package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/protocol"
)

// The share-group offset admin APIs (KIP-932: DescribeShareGroupOffsets
// 90, AlterShareGroupOffsets 91, DeleteShareGroupOffsets 92) over the
// queue group of the same id. A share partition's start offset is the
// queue group's window start of the partition (the core's
// DescribeQueueGroup, what `sluice queue describe` shows); altering it is
// the core's ResetQueueGroup (`sluice queue reset --to-offset`), which
// drops every record state in the window; deleting a topic's offsets
// resets its partitions to the log start, where a queue group that never
// read them starts (sluice's share.auto.offset.reset is earliest). Alter
// and delete need the share group empty of Kafka members
// (NON_EMPTY_GROUP), as Kafka requires; sluice's own queue members are
// not known here, and what they hold is refused after the reset, as
// `sluice queue reset` says.

var errShareGroupNotEmpty = &protocol.Error{Code: protocol.ErrNonEmptyGroup, Detail: "the share group has members: stop them first"}

// shareGroupEmpty reports an error unless the share group has no Kafka
// members on this coordinator.
func (s *Server) shareGroupEmpty(groupID string) error {
	st := s.share
	st.mu.Lock()
	defer st.mu.Unlock()
	if g := st.groups[groupID]; g != nil {
		g.expire(st.now())
		if len(g.members) > 0 {
			return errShareGroupNotEmpty
		}
	}
	return nil
}

// describeShareGroupOffsets answers each group's start offsets of the
// partitions asked (all the group has read when topics is null): -1 for
// a partition the group never read, as Kafka's uninitialized share
// partition. Lag (v1) is the records from the start to the high watermark
// that are not done, when this broker leads the partition; -1 otherwise.
// It needs describe on the group and on each topic.
func (s *Server) describeShareGroupOffsets(ctx context.Context, sess *broker.Session, req *kmsg.DescribeShareGroupOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeShareGroupOffsetsResponse)
	md := s.b.Metadata()
	var cu broker.CatchUp
	for _, rg := range req.Groups {
		g := kmsg.NewDescribeShareGroupOffsetsResponseGroup()
		g.GroupID = rg.GroupID
		err := sess.CanDescribeGroup(rg.GroupID)
		if err == nil {
			err = s.coordinates(rg.GroupID)
		}
		var parts []group.QueuePartitionDescription
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, broker.GroupWriteTimeout)
			parts, _, err = s.b.DescribeQueueGroup(cctx, rg.GroupID)
			cancel()
		}
		if err != nil {
			g.ErrorCode, g.ErrorMessage = errorCode(err)
			resp.Groups = append(resp.Groups, g)
			continue
		}
		byKey := make(map[group.QueueKey]group.QueuePartitionDescription, len(parts))
		for _, p := range parts {
			byKey[p.QueueKey] = p
		}
		asked := rg.Topics
		if asked == nil { // every topic the group has read
			for _, p := range parts {
				if n := len(asked); n == 0 || asked[n-1].Topic != p.Topic {
					asked = append(asked, kmsg.DescribeShareGroupOffsetsRequestGroupTopic{Topic: p.Topic})
				}
				asked[len(asked)-1].Partitions = append(asked[len(asked)-1].Partitions, p.Partition)
			}
		}
		for _, rt := range asked {
			t := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopic()
			t.Topic = rt.Topic
			mt := md.Topics[rt.Topic]
			if mt != nil {
				t.TopicID = topicID(mt.ID)
			}
			terr := sess.CanDescribe(rt.Topic)
			if terr == nil && mt == nil {
				terr = &protocol.Error{Code: protocol.ErrUnknownTopicOrPartition, Detail: rt.Topic}
			}
			for _, pn := range rt.Partitions {
				p := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopicPartition()
				p.Partition, p.StartOffset, p.LeaderEpoch, p.Lag = pn, -1, -1, -1
				perr := terr
				if perr == nil && (pn < 0 || int(pn) >= len(mt.Partitions)) {
					perr = &protocol.Error{Code: protocol.ErrUnknownTopicOrPartition, Detail: fmt.Sprintf("%s/%d", rt.Topic, pn)}
				}
				if perr != nil {
					p.ErrorCode, p.ErrorMessage = errorCode(perr)
				} else if d, ok := byKey[group.QueueKey{Topic: rt.Topic, Partition: pn}]; ok {
					p.StartOffset = d.Start
					p.Lag = s.shareLag(&cu, d)
				}
				t.Partitions = append(t.Partitions, p)
			}
			g.Topics = append(g.Topics, t)
		}
		resp.Groups = append(resp.Groups, g)
	}
	return resp
}

// shareLag is the records of d's partition from its start to the high
// watermark not yet done (accepted or archived), or -1 when this broker
// does not lead the partition (the high watermark is its leader's).
func (s *Server) shareLag(cu *broker.CatchUp, d group.QueuePartitionDescription) int64 {
	hw, err := s.b.ListOffset(cu, d.Topic, d.Partition, -1 /* latest: the high watermark */)
	if err != nil {
		return -1
	}
	return max(hw.Offset-d.Start-int64(d.Accepted+d.Archived), 0)
}

// shareOffsetsCheck is the common part of altering and deleting a share
// group's offsets: read on the group (delete on it to delete, Kafka's
// rule), the coordinator here, the group empty.
func (s *Server) shareOffsetsCheck(sess *broker.Session, groupID string, op auth.Operation) error {
	if err := sess.CanGroup(groupID, op); err != nil {
		return err
	}
	if err := s.coordinates(groupID); err != nil {
		return err
	}
	return s.shareGroupEmpty(groupID)
}

// alterShareGroupOffsets moves the group's start offset of each partition
// named (ResetQueueGroup: the window's states are dropped; an offset below
// the log start starts at the log start). It needs read on the group and
// on each topic; the partitions of a refused or unknown topic are not
// moved, the others are, in one reset.
func (s *Server) alterShareGroupOffsets(ctx context.Context, sess *broker.Session, req *kmsg.AlterShareGroupOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterShareGroupOffsetsResponse)
	if err := s.shareOffsetsCheck(sess, req.GroupID, auth.OpRead); err != nil {
		resp.ErrorCode, resp.ErrorMessage = errorCode(err)
		return resp
	}
	md := s.b.Metadata()
	to := map[group.QueueKey]int64{}
	var pending []*kmsg.AlterShareGroupOffsetsResponseTopicPartition
	for _, rt := range req.Topics {
		t := kmsg.NewAlterShareGroupOffsetsResponseTopic()
		t.Topic = rt.Topic
		mt, terr := shareTopic(sess, md, rt.Topic)
		if mt != nil {
			t.TopicID = topicID(mt.ID)
		}
		for _, rp := range rt.Partitions {
			p := kmsg.NewAlterShareGroupOffsetsResponseTopicPartition()
			p.Partition = rp.Partition
			perr := terr
			switch {
			case perr != nil:
			case rp.Partition < 0 || int(rp.Partition) >= len(mt.Partitions):
				perr = &protocol.Error{Code: protocol.ErrUnknownTopicOrPartition, Detail: fmt.Sprintf("%s/%d", rt.Topic, rp.Partition)}
			case rp.StartOffset < 0:
				perr = &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: fmt.Sprintf("start offset %d", rp.StartOffset)}
			default:
				to[group.QueueKey{Topic: rt.Topic, Partition: rp.Partition}] = rp.StartOffset
			}
			if perr != nil {
				p.ErrorCode, p.ErrorMessage = errorCode(perr)
			}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if p := &resp.Topics[i].Partitions[j]; p.ErrorCode == 0 {
				pending = append(pending, p)
			}
		}
	}
	if err := s.resetShareGroup(ctx, req.GroupID, to); err != nil {
		for _, p := range pending {
			p.ErrorCode, p.ErrorMessage = errorCode(err)
		}
	}
	return resp
}

// deleteShareGroupOffsets drops the group's state of each topic named:
// its partitions start again at the log start. It needs delete on the
// group and read on each topic.
func (s *Server) deleteShareGroupOffsets(ctx context.Context, sess *broker.Session, req *kmsg.DeleteShareGroupOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteShareGroupOffsetsResponse)
	if err := s.shareOffsetsCheck(sess, req.GroupID, auth.OpDelete); err != nil {
		resp.ErrorCode, resp.ErrorMessage = errorCode(err)
		return resp
	}
	md := s.b.Metadata()
	to := map[group.QueueKey]int64{}
	var pending []int
	for _, rt := range req.Topics {
		t := kmsg.NewDeleteShareGroupOffsetsResponseTopic()
		t.Topic = rt.Topic
		mt, err := shareTopic(sess, md, rt.Topic)
		if mt != nil {
			t.TopicID = topicID(mt.ID)
		}
		if err != nil {
			t.ErrorCode, t.ErrorMessage = errorCode(err)
		} else {
			for p := range mt.Partitions {
				to[group.QueueKey{Topic: rt.Topic, Partition: int32(p)}] = 0 // the log start
			}
			pending = append(pending, len(resp.Topics))
		}
		resp.Topics = append(resp.Topics, t)
	}
	if err := s.resetShareGroup(ctx, req.GroupID, to); err != nil {
		for _, i := range pending {
			resp.Topics[i].ErrorCode, resp.Topics[i].ErrorMessage = errorCode(err)
		}
	}
	return resp
}

// shareTopic is topic's metadata if the session may read it.
func shareTopic(sess *broker.Session, md *controller.Metadata, topic string) (*controller.Topic, error) {
	if err := sess.CanRead(topic); err != nil {
		return nil, err
	}
	mt := md.Topics[topic]
	if mt == nil || topic == broker.OffsetsTopic {
		return nil, &protocol.Error{Code: protocol.ErrUnknownTopicOrPartition, Detail: topic}
	}
	return mt, nil
}

// resetShareGroup is the core's ResetQueueGroup of the partitions in to
// (nothing to do when empty).
func (s *Server) resetShareGroup(ctx context.Context, groupID string, to map[group.QueueKey]int64) error {
	if len(to) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, broker.GroupWriteTimeout)
	defer cancel()
	return s.b.ResetQueueGroup(cctx, groupID, to)
}
