package kafka

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/protocol"
)

// KIP-848 consumer groups (ConsumerGroupHeartbeat, ConsumerGroupDescribe)
// are the core's own groups (Broker.GroupHeartbeat, DescribeGroup), the
// ones the sluice protocol serves: the translation is of topic ids, which
// these APIs carry instead of names.

// topicIDPrefix fills the first half of a Kafka topic id: a sluice
// topic id is 64 bits, a Kafka one 128. The prefix keeps the ids clear of
// Kafka's reserved ones (zero, and 0…01 for the metadata topic).
const topicIDPrefix = 0x736c756963650001 // "sluice", 1

// topicID is a topic's id as Kafka clients see it (Metadata v10+): the
// same on every broker, as the sluice id is the controller's.
func topicID(id uint64) [16]byte {
	var out [16]byte
	binary.BigEndian.PutUint64(out[:8], topicIDPrefix)
	binary.BigEndian.PutUint64(out[8:], id)
	return out
}

// sluiceTopicID is the sluice topic id of a Kafka topic id; false for an
// id no sluice topic has.
func sluiceTopicID(id [16]byte) (uint64, bool) {
	if binary.BigEndian.Uint64(id[:8]) != topicIDPrefix {
		return 0, false
	}
	return binary.BigEndian.Uint64(id[8:]), true
}

// caughtUpForIDs is this broker's metadata, caught up with the controller
// first (Broker.CaughtUpMetadata: once per request) when one of ids, the
// Kafka topic ids a request names, is not known here yet: a topic just
// created through another broker is found by id as it is by name.
func (s *Server) caughtUpForIDs(ids [][16]byte) *controller.Metadata {
	var sluiceIDs []uint64
	for _, id := range ids {
		if v, ok := sluiceTopicID(id); ok {
			sluiceIDs = append(sluiceIDs, v)
		}
	}
	return s.b.CaughtUpMetadata(nil, sluiceIDs...)
}

// topicByID is the name of the topic of a Kafka topic id.
func topicByID(md *controller.Metadata, id [16]byte) (string, bool) {
	want, ok := sluiceTopicID(id)
	if !ok {
		return "", false
	}
	for name, t := range md.Topics {
		if t.ID == want {
			return name, true
		}
	}
	return "", false
}

// errUnknownTopicID refuses owned partitions of a topic id this broker
// does not know (deleted, or not yet in its metadata).
var errUnknownTopicID = &protocol.Error{Code: protocol.ErrUnknownTopicOrPartition, Detail: "a topic id in the owned partitions is not known"}

// consumerGroupHeartbeat is a KIP-848 heartbeat through the core. Fields
// Kafka sends as null are "unchanged" (group.Heartbeat's nil).
func (s *Server) consumerGroupHeartbeat(fc *broker.FrontConn, h header, req *kmsg.ConsumerGroupHeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	hb := group.Heartbeat{GroupID: req.Group, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch,
		ClientID: string(h.clientID), ClientHost: fc.RemoteHost(), SubscribedTopicNames: req.SubscribedTopicNames,
		SubscribedTopicRegex: req.SubscribedTopicRegex, RegexFilter: fc.Session().RegexFilter()}
	if req.InstanceID != nil {
		hb.InstanceID = *req.InstanceID
	}
	if req.RackID != nil {
		hb.RackID = *req.RackID
	}
	if req.ServerAssignor != nil {
		hb.ServerAssignor = *req.ServerAssignor
	}
	if req.RebalanceTimeoutMillis > 0 {
		hb.RebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	// The owned partitions name their topics by id: one this broker has
	// not applied yet (a coordinator behind on metadata) is caught up
	// with the controller, as a topic named in a Metadata request is.
	ids := make([][16]byte, len(req.Topics))
	for i, t := range req.Topics {
		ids[i] = t.TopicID
	}
	md := s.caughtUpForIDs(ids)
	var err error
	if req.Topics != nil {
		hb.OwnedPartitions = make([]group.TopicPartitions, 0, len(req.Topics))
		for _, t := range req.Topics {
			name, ok := topicByID(md, t.TopicID)
			if !ok {
				err = errUnknownTopicID
				break
			}
			hb.OwnedPartitions = append(hb.OwnedPartitions, group.TopicPartitions{Topic: name, Partitions: t.Partitions})
		}
	}
	var res group.HeartbeatResult
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), broker.GroupWriteTimeout)
		res, err = s.b.GroupHeartbeat(ctx, hb)
		cancel()
	}
	resp.ErrorCode, resp.ErrorMessage = errorCode(err)
	if err != nil {
		resp.MemberEpoch = -1
		return resp
	}
	resp.MemberID, resp.MemberEpoch = &res.MemberID, res.MemberEpoch
	resp.HeartbeatIntervalMillis = int32(res.HeartbeatInterval.Milliseconds())
	// The assignment's topics by id, from metadata read after the
	// coordinator assigned them: a topic it assigned is in it.
	md = s.b.Metadata()
	a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
	for _, t := range res.Assignment {
		if ct := md.Topics[t.Topic]; ct != nil {
			a.Topics = append(a.Topics, kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{TopicID: topicID(ct.ID), Partitions: t.Partitions})
		}
	}
	resp.Assignment = &a
	return resp
}

// consumerGroupDescribe describes KIP-848 groups through the core; a
// classic group is GROUP_ID_NOT_FOUND here, as in Kafka.
func (s *Server) consumerGroupDescribe(sess *broker.Session, req *kmsg.ConsumerGroupDescribeRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	md := s.b.Metadata()
	assignment := func(tps []group.TopicPartitions) kmsg.Assignment {
		var a kmsg.Assignment
		for _, t := range tps {
			at := kmsg.NewAssignmentTopicPartition()
			at.Topic, at.Partitions = t.Topic, t.Partitions
			if ct := md.Topics[t.Topic]; ct != nil {
				at.TopicID = topicID(ct.ID)
			}
			a.TopicPartitions = append(a.TopicPartitions, at)
		}
		return a
	}
	for _, id := range req.Groups {
		rg := kmsg.NewConsumerGroupDescribeResponseGroup()
		rg.Group = id
		var d group.Description
		err := sess.CanDescribeGroup(id)
		if err == nil {
			d, err = s.b.DescribeGroup(id)
		}
		if err == nil && d.Type != group.TypeConsumer {
			err = &protocol.Error{Code: protocol.ErrGroupIDNotFound, Detail: "group " + id + " is a classic group, not a consumer group"}
		}
		rg.ErrorCode, rg.ErrorMessage = errorCode(err)
		if err == nil {
			rg.State, rg.Epoch, rg.AssignmentEpoch, rg.AssignorName = kafkaState(d.State), d.Epoch, d.AssignmentEpoch, d.Assignor
			for _, m := range d.Members {
				rm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
				rm.MemberID, rm.MemberEpoch, rm.ClientID, rm.ClientHost = m.MemberID, m.MemberEpoch, m.ClientID, m.ClientHost
				rm.SubscribedTopics, rm.MemberType = m.SubscribedTopicNames, 1
				if m.InstanceID != "" {
					rm.InstanceID = &m.InstanceID
				}
				if m.RackID != "" {
					rm.RackID = &m.RackID
				}
				if m.SubscribedTopicRegex != "" {
					rm.SubscribedTopicRegex = &m.SubscribedTopicRegex
				}
				rm.Assignment, rm.TargetAssignment = assignment(m.Assignment), assignment(m.TargetAssignment)
				rg.Members = append(rg.Members, rm)
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}
