package broker

import (
	"context"
	"net"
	"slices"
	"strconv"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// handlerScratch holds the request and response structs a connection's
// handler decodes into and encodes from, reused request after request so
// the produce path does not allocate in steady state.
type handlerScratch struct {
	produceReq  protocol.ProduceRequest
	produceResp protocol.ProduceResponse
	acks        []ackWait // partitions of the current produce whose answer waits
	listReq     protocol.ListOffsetsRequest
	listResp    protocol.ListOffsetsResponse
	// endReplicaPoll ends the long-poll of the last replica Fetch on the
	// connection (nil: none waited); a later replica Fetch calls it.
	endReplicaPoll context.CancelFunc
}

// errMalformed wraps a request body that failed to decode: the broker
// answers INVALID_REQUEST and closes the connection.
type errMalformed struct{ err error }

func (e errMalformed) Error() string { return e.err.Error() }

// handle decodes the header of req, answers it (or arranges for a
// long-poll to answer it) and returns the response to queue. It never
// panics: a panic in a handler is recovered, logged with its stack and
// answered with UNKNOWN_SERVER_ERROR.
func (c *conn) handle(req *request) (resp *response) {
	resp = responsePool.Get().(*response)
	// The frame is released once, when the request has been handled:
	// nothing of the response refers to it.
	defer c.release(req)
	body, err := c.hdr.Decode(*req.frame)
	if err != nil {
		c.logger.Debug("malformed request header; closing connection", zap.Error(err))
		resp.none, resp.closeAfter = true, true
		return resp
	}
	h := &c.hdr
	if c.b.obs != nil {
		resp.timing.API, resp.timing.Read, resp.timing.Start = h.Key, req.read, observeNow()
	}
	defer func() {
		if r := recover(); r != nil {
			c.b.panics.Add(1)
			c.logger.Error("panic in request handler", zap.Stringer("api", h.Key),
				zap.Int32("correlation_id", h.CorrelationID), zap.Any("panic", r), zap.Stack("stack"))
			if resp.ready != nil {
				return // handed to a long-poll, which owns it now
			}
			if resp.fetch != nil {
				resp.fetch.releaseViews()
				putFetchState(resp.fetch)
			}
			putBuf(resp.frame)
			*resp = response{}
			c.errorResponse(resp, h, protocol.ErrUnknownServerError)
		}
	}()
	if !c.onProbation(h, body, resp) {
		return resp
	}
	if !h.Key.Supports(h.Version) {
		c.logger.Debug("unsupported api", zap.Stringer("api", h.Key), zap.Int16("version", h.Version))
		c.errorResponse(resp, h, protocol.ErrUnsupportedVersion)
		return resp
	}
	if code := c.gate(h); code != protocol.NoError {
		// Definite: nothing was done. The connection stays open (a
		// client may still log in on it): closing it with requests
		// unread would reset it and lose this answer.
		c.errorResponse(resp, h, code)
		return resp
	}
	if hook := c.b.testHook; hook != nil {
		hook(h.Key)
	}
	err = c.dispatch(h, body, resp)
	if err != nil {
		c.logger.Debug("malformed request; answering INVALID_REQUEST and closing", zap.Stringer("api", h.Key), zap.Error(err))
		if resp.ready == nil {
			c.errorResponse(resp, h, protocol.ErrInvalidRequest)
		}
		resp.closeAfter = true
	}
	return resp
}

// dispatch runs the API's handler. It returns an error only for a body
// that does not decode.
func (c *conn) dispatch(h *protocol.RequestHeader, body []byte, resp *response) error {
	c.dec.Reset(body)
	if c.b.refusing.Load() {
		// Stopping: the connections drain (drain.go). Nothing read now is
		// served, and the client knows it was not, nor anything it sent
		// on the connection after this request.
		c.errorResponse(resp, h, protocol.ErrBrokerNotAvailable)
		return nil
	}
	if !c.b.ready.Load() && h.Key != protocol.APIVersions && h.Key != protocol.ControllerForward &&
		h.Key != protocol.SaslHandshake && h.Key != protocol.SaslAuthenticate {
		// Starting: the controller's metadata may lag until this broker is
		// registered, and an answer from it would be wrong (a topic
		// reported unknown). Only other brokers' forwarded writes, which
		// this broker may be the leader for, are served meanwhile (after
		// their broker login). Nothing more of the connection is read
		// or served: a client takes a request refused whole with
		// BROKER_NOT_AVAILABLE as the proof that the requests it sent
		// after it were not handled (drain.go), which the broker ready a
		// moment later would break.
		c.errorResponse(resp, h, protocol.ErrBrokerNotAvailable)
		resp.closeAfter = true
		return nil
	}
	switch h.Key {
	case protocol.Produce:
		return c.handleProduce(h, resp)
	case protocol.Fetch:
		return c.handleFetch(h, resp)
	case protocol.ListOffsets:
		return c.handleListOffsets(h, resp)
	case protocol.Metadata:
		return c.handleMetadata(h, resp)
	case protocol.APIVersions:
		var req protocol.APIVersionsRequest
		if err := req.Decode(&c.dec, h.Version); err != nil {
			return errMalformed{err}
		}
		c.encode(resp, h, &protocol.APIVersionsResponse{APIs: protocol.SupportedAPIs()})
		return nil
	case protocol.CreateTopics:
		return c.handleCreateTopics(h, resp)
	case protocol.DeleteTopics:
		return c.handleDeleteTopics(h, resp)
	case protocol.DeleteRecords:
		return c.handleDeleteRecords(h, resp)
	case protocol.DescribeConfigs:
		return c.handleDescribeConfigs(h, resp)
	case protocol.AlterConfigs:
		return c.handleAlterConfigs(h, resp)
	case protocol.ControllerForward:
		return c.handleControllerForward(h, resp)
	case protocol.DescribeCluster:
		return c.handleDescribeCluster(h, resp)
	case protocol.OffsetForLeaderEpoch:
		return c.handleOffsetForLeaderEpoch(h, resp)
	case protocol.DescribeReplicas:
		return c.handleDescribeReplicas(h, resp)
	case protocol.ElectLeaders:
		return c.handleElectLeaders(h, resp)
	case protocol.AlterClusterMembership:
		return c.handleAlterClusterMembership(h, resp)
	case protocol.CreatePartitions:
		return c.handleCreatePartitions(h, resp)
	case protocol.AlterPartitionReassignments:
		return c.handleAlterPartitionReassignments(h, resp)
	case protocol.ListPartitionReassignments:
		return c.handleListPartitionReassignments(h, resp)
	case protocol.InitProducerID:
		return c.handleInitProducerID(h, resp)
	case protocol.FindCoordinator:
		return c.handleFindCoordinator(h, resp)
	case protocol.ConsumerGroupHeartbeat:
		return c.handleConsumerGroupHeartbeat(h, resp)
	case protocol.OffsetCommit:
		return c.handleOffsetCommit(h, resp)
	case protocol.OffsetFetch:
		return c.handleOffsetFetch(h, resp)
	case protocol.ListGroups:
		return c.handleListGroups(h, resp)
	case protocol.ConsumerGroupDescribe:
		return c.handleConsumerGroupDescribe(h, resp)
	case protocol.DeleteGroups:
		return c.handleDeleteGroups(h, resp)
	case protocol.QueueReceive:
		return c.handleQueueReceive(h, resp)
	case protocol.QueueAck:
		return c.handleQueueAck(h, resp)
	case protocol.DescribeQueueGroup:
		return c.handleDescribeQueueGroup(h, resp)
	case protocol.ResetQueueGroup:
		return c.handleResetQueueGroup(h, resp)
	case protocol.CreateAcls:
		return c.handleCreateAcls(h, resp)
	case protocol.DeleteAcls:
		return c.handleDeleteAcls(h, resp)
	case protocol.DescribeAcls:
		return c.handleDescribeAcls(h, resp)
	case protocol.DescribeUserScramCredentials:
		return c.handleDescribeUserScramCredentials(h, resp)
	case protocol.AlterUserScramCredentials:
		return c.handleAlterUserScramCredentials(h, resp)
	case protocol.SaslHandshake:
		return c.handleSaslHandshake(h, resp)
	case protocol.SaslAuthenticate:
		return c.handleSaslAuthenticate(h, resp)
	}
	// Supported by the protocol package but not served by this broker.
	c.errorResponse(resp, h, protocol.ErrUnsupportedVersion)
	return nil
}

// encode sets resp to the frame answering h with msg.
func (c *conn) encode(resp *response, h *protocol.RequestHeader, msg protocol.Message) {
	buf := getBuf()
	out, err := protocol.AppendResponse((*buf)[:0], h.CorrelationID, h.Version, msg)
	if err != nil {
		c.logger.Error("encode response", zap.Stringer("api", h.Key), zap.Error(err))
		out = protocol.AppendErrorResponse(out[:0], h, protocol.ErrUnknownServerError)
	}
	*buf = out
	resp.frame = buf
}

// errorResponse sets resp to the uniform error response (the body is the
// code alone), which every client decoder reads whatever the API.
func (c *conn) errorResponse(resp *response, h *protocol.RequestHeader, code protocol.ErrorCode) {
	buf := getBuf()
	*buf = protocol.AppendErrorResponse((*buf)[:0], h, code)
	resp.frame = buf
	resp.timing.Code = code
}

// refused answers a request whose authorization check failed with the
// check's code (definite: nothing was done) and reports whether it did.
func (c *conn) refused(resp *response, h *protocol.RequestHeader, err error) bool {
	if err == nil {
		return false
	}
	code, _ := ErrorCode(err)
	c.errorResponse(resp, h, code)
	return true
}

// handleMetadata answers with this broker's view of the cluster, caught
// up with the controller when it lacks a topic asked (CaughtUpMetadata).
func (c *conn) handleMetadata(h *protocol.RequestHeader, resp *response) error {
	var req protocol.MetadataRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	md := c.b.Metadata()
	names := req.Topics
	if req.AllTopics {
		names = md.TopicNames()
	} else {
		// A topic just created through another broker may not be
		// applied here yet: catch up rather than call it unknown.
		md = c.b.CaughtUpMetadata(names)
	}
	out := protocol.MetadataResponse{ClusterID: c.b.cfg.ClusterID, ControllerID: md.ControllerID}
	for _, id := range md.AliveBrokers() {
		out.Brokers = append(out.Brokers, brokerMetadata(md.Brokers[id]))
	}
	for _, name := range names {
		if c.sess.CanDescribe(name) != nil {
			if !req.AllTopics {
				out.Topics = append(out.Topics, protocol.TopicMetadata{ErrorCode: protocol.ErrTopicAuthorizationFailed, Name: name})
			}
			continue // a topic the caller may not describe is left out
		}
		t, ok := md.Topics[name]
		if !ok {
			code := protocol.ErrUnknownTopicOrPartition
			if controller.ValidateTopicName(name) != nil {
				code = protocol.ErrInvalidTopic
			}
			out.Topics = append(out.Topics, protocol.TopicMetadata{ErrorCode: code, Name: name})
			continue
		}
		out.Topics = append(out.Topics, topicMetadata(md, t))
	}
	c.encode(resp, h, &out)
	return nil
}

func brokerMetadata(b *controller.Broker) protocol.BrokerMetadata {
	host, portStr, err := net.SplitHostPort(b.Addr)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil {
		host, port = b.Addr, 0
	}
	return protocol.BrokerMetadata{ID: b.ID, Host: host, Port: int32(port), Rack: b.Rack}
}

func topicMetadata(md *controller.Metadata, t *controller.Topic) protocol.TopicMetadata {
	tm := protocol.TopicMetadata{Name: t.Name, ID: t.ID, Partitions: make([]protocol.PartitionMetadata, len(t.Partitions))}
	for i, p := range t.Partitions {
		pm := protocol.PartitionMetadata{
			Partition:       p.Index,
			Leader:          p.Leader,
			LeaderEpoch:     p.LeaderEpoch,
			Replicas:        slices.Clone(p.Replicas),
			ISR:             slices.Clone(p.ISR),
			OfflineReplicas: []int32{},
			Note:            controller.PartitionNote(md, t, &p),
		}
		for _, r := range p.Replicas {
			if b, ok := md.Brokers[r]; !ok || b.State != controller.BrokerAlive || p.IsOffline(r) {
				pm.OfflineReplicas = append(pm.OfflineReplicas, r)
			}
		}
		if p.Leader < 0 {
			pm.ErrorCode = protocol.ErrLeaderNotAvailable
		}
		tm.Partitions[i] = pm
	}
	return tm
}

// resize returns s with length n, reusing its storage.
func resize[T any](s []T, n int) []T {
	if n <= cap(s) {
		return s[:n]
	}
	return append(s[:cap(s)], make([]T, n-cap(s))...)
}
