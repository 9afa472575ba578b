package kafka

import (
	"net"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// kafkaBroker is a broker as Kafka clients know it: its node id (the
// sluice broker id) and its Kafka listener's advertised address.
type kafkaBroker struct {
	id   int32
	host string
	port int32
	rack *string
}

// kafkaBrokers lists the alive brokers that have a Kafka listener, by id.
// Their Kafka addresses come from gossip (each broker's kafka_addr tag,
// broker.Config.KafkaAdvertisedAddr); a broker whose tag has not reached
// this one yet is left out until it has, and clients asking for a
// partition it leads refresh their metadata and ask again.
func (s *Server) kafkaBrokers(md *controller.Metadata) []kafkaBroker {
	addrs := map[int32]string{}
	for _, m := range s.b.Members() {
		if m.KafkaAddr != "" {
			addrs[m.ID] = m.KafkaAddr
		}
	}
	var out []kafkaBroker
	for _, id := range md.AliveBrokers() {
		addr, ok := addrs[id]
		if !ok {
			continue
		}
		host, portStr, err := net.SplitHostPort(addr)
		port, perr := strconv.Atoi(portStr)
		if err != nil || perr != nil {
			continue
		}
		kb := kafkaBroker{id: id, host: host, port: int32(port)}
		if rack := md.Brokers[id].Rack; rack != "" {
			kb.rack = &rack
		}
		out = append(out, kb)
	}
	return out
}

// metadata answers with this broker's view of the cluster: the brokers
// with a Kafka listener and the topics asked (all for a null list, or an
// empty one at v0), by name or, from v12, by topic id; an id no topic has
// is answered UNKNOWN_TOPIC_ID. Topics are never created by a Metadata
// request.
func (s *Server) metadata(sess *broker.Session, req *kmsg.MetadataRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	md := s.b.Metadata()
	var names []string
	var unknownIDs [][16]byte
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		names = md.TopicNames()
	} else {
		var ids []uint64
		for _, t := range req.Topics {
			if t.Topic != nil {
				names = append(names, *t.Topic)
			} else if id, ok := sluiceTopicID(t.TopicID); ok {
				ids = append(ids, id)
			}
		}
		// A topic just created through another broker may not be
		// applied here yet: answered unknown, franz-go asks again only
		// after MetadataMinAge (5 s). Named by id or by name, it is
		// caught up the same way, once per request.
		md = s.b.CaughtUpMetadata(names, ids...)
		for _, t := range req.Topics {
			if t.Topic != nil {
				continue
			}
			if name, ok := topicByID(md, t.TopicID); ok {
				names = append(names, name)
			} else {
				unknownIDs = append(unknownIDs, t.TopicID)
			}
		}
	}
	for _, id := range unknownIDs {
		rt := kmsg.NewMetadataResponseTopic()
		rt.TopicID, rt.ErrorCode = id, kerrUnknownTopicID
		resp.Topics = append(resp.Topics, rt)
	}
	for _, kb := range s.kafkaBrokers(md) {
		resp.Brokers = append(resp.Brokers, kmsg.MetadataResponseBroker{NodeID: kb.id, Host: kb.host, Port: kb.port, Rack: kb.rack})
	}
	cluster := s.b.ClusterID()
	resp.ClusterID, resp.ControllerID = &cluster, md.ControllerID
	for _, name := range names {
		rt := kmsg.NewMetadataResponseTopic()
		rt.Topic = &name
		t, ok := md.Topics[name]
		denied := sess.CanDescribe(name)
		switch {
		case denied != nil && all:
			continue // a topic the caller may not describe is left out
		case denied != nil:
			rt.ErrorCode = codeOf(denied)
		case ok:
			rt.Partitions, rt.TopicID = topicPartitions(md, t), topicID(t.ID)
		case controller.ValidateTopicName(name) != nil:
			rt.ErrorCode = codeOf(protocol.ErrInvalidTopic)
		default:
			rt.ErrorCode = codeOf(protocol.ErrUnknownTopicOrPartition)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func topicPartitions(md *controller.Metadata, t *controller.Topic) []kmsg.MetadataResponseTopicPartition {
	out := make([]kmsg.MetadataResponseTopicPartition, len(t.Partitions))
	for i, p := range t.Partitions {
		rp := kmsg.NewMetadataResponseTopicPartition()
		rp.Partition, rp.Leader, rp.LeaderEpoch = p.Index, p.Leader, p.LeaderEpoch
		rp.Replicas, rp.ISR, rp.OfflineReplicas = slices.Clone(p.Replicas), slices.Clone(p.ISR), []int32{}
		for _, r := range p.Replicas {
			if b, ok := md.Brokers[r]; !ok || b.State != controller.BrokerAlive || p.IsOffline(r) {
				rp.OfflineReplicas = append(rp.OfflineReplicas, r)
			}
		}
		if p.Leader < 0 {
			rp.ErrorCode = codeOf(protocol.ErrLeaderNotAvailable)
		}
		out[i] = rp
	}
	return out
}

// describeCluster lists the brokers with a Kafka listener (endpoint type
// 1, brokers; sluice has no separate controller endpoints).
func (s *Server) describeCluster(req *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = req.EndpointType
	if req.Version >= 1 && req.EndpointType != 1 {
		msg := "sluice serves only endpoint type 1 (brokers)"
		resp.ErrorCode, resp.ErrorMessage = codeOf(protocol.ErrInvalidRequest), &msg
		return resp
	}
	md := s.b.Metadata()
	resp.ClusterID, resp.ControllerID = s.b.ClusterID(), md.ControllerID
	for _, kb := range s.kafkaBrokers(md) {
		resp.Brokers = append(resp.Brokers, kmsg.DescribeClusterResponseBroker{NodeID: kb.id, Host: kb.host, Port: kb.port, Rack: kb.rack})
	}
	return resp
}
