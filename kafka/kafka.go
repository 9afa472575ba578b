// Package kafka is sluice's Kafka wire front end: a listener that speaks
// Apache Kafka's protocol, so Kafka clients (franz-go, librdkafka and kcat,
// the Java client, ...) produce to and consume from sluice unchanged.
//
// It owns translation only. Requests are decoded and responses encoded
// with github.com/twmb/franz-go/pkg/kmsg (generated from Kafka's message
// definitions); every behaviour is the broker core's (package broker:
// Append and LeaderAppend.Wait, StartFetch/WaitFetch, ListOffset,
// EpochEndOffset, Metadata, topic admin, InitProducerID, and the group
// coordinator's calls: group.go, group_consumer.go), reached through the
// same calls the sluice protocol makes. Record batches pass through
// untouched: sluice stores Kafka's RecordBatch v2, so a produced batch's
// bytes go to the core as they came, and a fetch writes the segment's
// bytes straight to the socket (writev of the mapped segment, no copy).
//
// Connections are the broker's (broker.ServeConn): the same connection
// limits, frame-size cap, in-flight bounds, memory budget and timeouts as
// the sluice listener. On top, a request other than Produce may be at most
// maxRequestBytes: kmsg decodes an array into count × element-size bytes,
// so a large frame of tiny elements would cost many times its size.
//
// Versions: Table (versions.go) is what ApiVersions advertises; a version
// outside it is answered UNSUPPORTED_VERSION in the response of that
// version, an ApiVersions version we do not know with the KIP-511
// fallback (a v0 response listing our versions). A key we do not serve
// closes the connection with a log line: the client cannot read an answer
// to a request it should not have sent. Errors are the core's, mapped to
// Kafka's codes by one table (errors.go).
//
// Concurrency: Serve owns its accept loop and one goroutine per
// connection (the broker's reader, handler and writer run under it);
// cancelling its context closes the listener and every connection, and
// Serve returns when all have stopped. Handle runs on a connection's
// handler goroutine, one request at a time in arrival order; waits
// (acks=all, fsync, long-poll fetch) run in goroutines the connection
// owns (broker.FrontConn.Go).
package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/protocol"
)

// maxRequestBytes caps every request but Produce (whose cap is the
// broker's MaxFrameBytes, as max.message.bytes applies per batch).
const maxRequestBytes = 1 << 20

// Server is a Kafka listener over one broker.
type Server struct {
	b        *broker.Broker
	logger   *zap.Logger
	share    *shareState    // share groups' members and sessions (share.go)
	sessions *fetchSessions // fetch sessions (fetchsession.go)
}

// Option configures a Server.
type Option func(*Server)

// FetchSessionSlots sets how many fetch sessions (KIP-227) the listener
// keeps, Kafka's max.incremental.fetch.session.cache.slots
// (DefaultFetchSessionSlots); 0 turns them off: every Fetch is answered
// without a session, and clients send full fetches.
func FetchSessionSlots(n int) Option {
	return func(s *Server) { s.sessions.slots = max(n, 0) }
}

// New returns a Kafka front end for b; logger may be nil.
func New(b *broker.Broker, logger *zap.Logger, opts ...Option) *Server {
	if logger == nil {
		logger = zap.NewNop()
	}
	s := &Server{b: b, logger: logger.With(zap.Int32("broker", b.ID()), zap.String("listener", "kafka")), share: newShareState(),
		sessions: newFetchSessions(DefaultFetchSessionSlots)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// FetchSessionStats reports what the fetch-session cache did so far.
func (s *Server) FetchSessionStats() FetchSessionStats { return s.sessions.stats() }

// Serve accepts Kafka connections on ln until ctx is cancelled or the
// broker begins to close, then closes ln, and returns once every
// connection it accepted has stopped: ctx's cancel ends them, the
// broker's Close drains them. The broker must be started. It returns nil
// after ctx is cancelled or the broker's Close began, or the accept error
// that stopped it.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Accept until ctx is cancelled or the broker begins to close
	// (Broker.Closing): from then on a client dialling is refused, as at
	// the broker's own listener, and retries another broker.
	done := make(chan struct{})
	defer close(done)
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-s.b.Closing():
		case <-done:
		}
		ln.Close()
	})
	s.logger.Info("kafka listener serving", zap.String("addr", ln.Addr().String()))
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// Out of file descriptors and the like: back off and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logger.Warn("accept", zap.Error(err), zap.Duration("retry_in", backoff))
			select {
			case <-time.After(backoff):
				continue
			case <-ctx.Done():
				return nil
			}
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.b.ServeConn(ctx, nc, s)
		}()
	}
}

// header is a request header (v1, or v2 for flexible requests).
type header struct {
	key, version int16
	correlation  int32
	clientID     []byte // aliases the frame: copy what outlives Handle
}

var (
	errShortHeader = errors.New("request header truncated")
	errBadTags     = errors.New("request header tag buffer malformed")
)

// parseHeader reads the fixed part of a request header: key, version,
// correlation id and client id (a non-compact nullable string in both
// header versions). It returns the rest of the frame.
func parseHeader(frame []byte) (header, []byte, error) {
	if len(frame) < 10 {
		return header{}, nil, errShortHeader
	}
	h := header{
		key:         int16(binary.BigEndian.Uint16(frame)),
		version:     int16(binary.BigEndian.Uint16(frame[2:])),
		correlation: int32(binary.BigEndian.Uint32(frame[4:])),
	}
	n := int(int16(binary.BigEndian.Uint16(frame[8:])))
	rest := frame[10:]
	switch {
	case n == -1:
	case n < 0 || n > len(rest):
		return h, nil, errShortHeader
	default:
		h.clientID, rest = rest[:n:n], rest[n:]
	}
	return h, rest, nil
}

// skipTags skips a tag buffer (header v2): a count, then per tag its
// number and a length-prefixed value, all unsigned varints.
func skipTags(b []byte) ([]byte, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return nil, errBadTags
	}
	b = b[n:]
	for range count {
		if _, n = binary.Uvarint(b); n <= 0 {
			return nil, errBadTags
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, errBadTags
		}
		b = b[n+int(size):]
	}
	return b, nil
}

// decoded is a request read from a frame, or why it is not answered
// normally: an immediate answer (the KIP-511 fallback, UNSUPPORTED_VERSION)
// or a reason to close the connection.
type decoded struct {
	h        header
	req      kmsg.Request  // set when the request is to be dispatched
	flexible bool          // the response has header v1 (a tag buffer)
	answer   kmsg.Response // set when this is the whole answer
	close    string        // set when the connection closes instead
	err      error         // the decoding error behind close, if any
}

// decodeRequest reads a frame (after its length prefix). It never
// panics and allocates in proportion to the frame (kmsg checks each
// array's count against the bytes left); it is what FuzzDecodeRequest
// exercises.
func decodeRequest(frame []byte) decoded {
	h, body, err := parseHeader(frame)
	if err != nil {
		return decoded{h: h, close: "malformed request header", err: err}
	}
	req := kmsg.RequestForKey(h.key)
	vr, served := Table[h.key]
	switch {
	case req == nil || !served:
		return decoded{h: h, close: "request for an API key not served"}
	case h.key == apiVersionsKey && (h.version < 0 || h.version > vr.Max):
		// KIP-511: a version we do not know may not even parse; answer
		// v0 with UNSUPPORTED_VERSION and our range, and the client
		// retries with a version from it.
		return decoded{h: h, answer: apiVersionsResponse(0, kerrUnsupportedVersion)}
	case h.version < 0 || h.version > req.MaxVersion():
		return decoded{h: h, close: "request version unknown to the codec"}
	case h.key != produceKey && len(frame) > maxRequestBytes:
		return decoded{h: h, close: fmt.Sprintf("request of %d bytes, above the %d allowed but for Produce", len(frame), maxRequestBytes)}
	}
	req.SetVersion(h.version)
	if req.IsFlexible() {
		if body, err = skipTags(body); err != nil {
			return decoded{h: h, close: "malformed request header", err: err}
		}
	}
	if err := decode(req, body); err != nil {
		return decoded{h: h, close: "malformed request", err: err}
	}
	d := decoded{h: h, req: req, flexible: req.IsFlexible() && h.key != apiVersionsKey} // ApiVersions answers with header v0
	if h.version < vr.Min || h.version > vr.Max || (h.key == produceKey && h.version < minProduceServed) {
		d.answer = failed(req, kerrUnsupportedVersion)
		if d.answer == nil {
			return decoded{h: h, close: "no error response for this key"}
		}
	}
	return d
}

// Name is the front end's name in metrics (broker.FrontEnd).
func (s *Server) Name() string { return "kafka" }

// Handle answers one Kafka request (broker.FrontEnd), naming its API for
// the metrics: a request answered with nothing (acks=0) is still counted.
func (s *Server) Handle(fc *broker.FrontConn, frame []byte) *broker.Reply {
	r := s.handle(fc, frame)
	if r == nil {
		r = &broker.Reply{}
	}
	if r.API == "" {
		r.API = "other"
		if len(frame) >= 2 {
			r.API = apiName(int16(binary.BigEndian.Uint16(frame)))
		}
	}
	return r
}

// apiName names key in the metrics: Kafka's name for a key the listener
// serves (Table, the SASL keys), "other" for the rest, so the series
// stay a fixed set whatever clients send.
func apiName(key int16) string {
	if _, ok := Table[key]; ok || key == saslHandshakeKey || key == saslAuthenticateKey {
		return kmsg.NameForKey(key)
	}
	return "other"
}

func (s *Server) handle(fc *broker.FrontConn, frame []byte) *broker.Reply {
	if r, ok := s.handleSASL(fc, frame); ok { // sasl.go
		return r
	}
	d := decodeRequest(frame)
	switch {
	case d.close != "":
		fc.Logger().Info("kafka: closing connection: "+d.close, zap.Int16("api_key", d.h.key),
			zap.String("api", kmsg.NameForKey(d.h.key)), zap.Int16("api_version", d.h.version), zap.Error(d.err))
		return &broker.Reply{Close: true}
	case d.answer != nil:
		fc.Logger().Debug("kafka: unsupported version", zap.String("api", kmsg.NameForKey(d.h.key)), zap.Int16("api_version", d.h.version))
		r := reply(d.h.correlation, d.flexible, d.answer)
		r.Code = protocol.ErrUnsupportedVersion
		return r
	}
	return s.dispatch(fc, d.h, d.flexible, d.req)
}

// unsafeReader is what kmsg's generated requests offer besides ReadFrom.
type unsafeReader interface{ UnsafeReadFrom([]byte) error }

// decode reads body into req. Produce and Fetch, the hot paths, are read
// unsafely: their strings alias the frame, which is reused once Handle
// returns, so their handlers copy every string that outlives the call
// (the core copies the records into the segment). Every other request's
// strings are copied by kmsg: they reach the controller's metadata and
// the logs.
func decode(req kmsg.Request, body []byte) error {
	if u, ok := req.(unsafeReader); ok && (req.Key() == produceKey || req.Key() == fetchKey) {
		return u.UnsafeReadFrom(body)
	}
	return req.ReadFrom(body)
}

// dispatch runs the handler of a request of a served version.
func (s *Server) dispatch(fc *broker.FrontConn, h header, flexible bool, req kmsg.Request) *broker.Reply {
	if err := refusal(fc.Session(), req); err != nil {
		r := reply(h.correlation, flexible, failed(req, codeOf(err)))
		r.Code = protocol.ErrorCode(codeOf(err))
		return r
	}
	var resp kmsg.Response
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		resp = apiVersionsResponse(h.version, 0)
		if len(fc.Session().Mechanisms()) > 0 {
			addSASLVersions(resp.(*kmsg.ApiVersionsResponse))
		}
	case *kmsg.ProduceRequest:
		return s.produce(fc, h, flexible, r)
	case *kmsg.FetchRequest:
		return s.fetch(fc, h, r)
	case *kmsg.MetadataRequest:
		resp = s.metadata(fc.Session(), r)
	case *kmsg.ListOffsetsRequest:
		resp = s.listOffsets(fc.Session(), r)
	case *kmsg.OffsetForLeaderEpochRequest:
		resp = s.offsetForLeaderEpoch(fc.Session(), r)
	case *kmsg.InitProducerIDRequest:
		resp = s.initProducerID(fc, r)
	case *kmsg.CreateTopicsRequest:
		resp = s.createTopics(fc.Context(), fc.Session(), r)
	case *kmsg.DeleteTopicsRequest:
		resp = s.deleteTopics(fc.Context(), fc.Session(), r)
	case *kmsg.CreatePartitionsRequest:
		resp = s.createPartitions(fc.Context(), fc.Session(), r)
	case *kmsg.DeleteRecordsRequest:
		resp = s.deleteRecords(fc.Session(), r)
	case *kmsg.AlterPartitionAssignmentsRequest:
		resp = s.alterPartitionAssignments(fc.Context(), r)
	case *kmsg.ListPartitionReassignmentsRequest:
		resp = s.listPartitionReassignments(r)
	case *kmsg.DescribeConfigsRequest:
		resp = s.describeConfigs(fc.Session(), r)
	case *kmsg.AlterConfigsRequest:
		resp = s.alterConfigs(fc.Context(), fc.Session(), r)
	case *kmsg.IncrementalAlterConfigsRequest:
		resp = s.incrementalAlterConfigs(fc.Context(), fc.Session(), r)
	case *kmsg.DescribeClusterRequest:
		resp = s.describeCluster(r)
	case *kmsg.DescribeACLsRequest:
		resp = s.describeACLs(r)
	case *kmsg.CreateACLsRequest:
		resp = s.createACLs(fc.Context(), r)
	case *kmsg.DeleteACLsRequest:
		resp = s.deleteACLs(fc.Context(), r)
	case *kmsg.DescribeUserSCRAMCredentialsRequest:
		resp = s.describeUserSCRAMCredentials(r)
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		resp = s.alterUserSCRAMCredentials(fc.Context(), r)
	case *kmsg.FindCoordinatorRequest:
		resp = s.findCoordinator(fc.Context(), fc.Session(), r)
	case *kmsg.OffsetCommitRequest:
		resp = s.offsetCommit(r)
	case *kmsg.OffsetFetchRequest:
		resp = s.offsetFetch(fc.Session(), r)
	case *kmsg.JoinGroupRequest:
		return s.joinGroup(fc, h, flexible, r)
	case *kmsg.SyncGroupRequest:
		return s.syncGroup(fc, h, flexible, r)
	case *kmsg.HeartbeatRequest:
		resp = s.heartbeat(r)
	case *kmsg.LeaveGroupRequest:
		resp = s.leaveGroup(r)
	case *kmsg.ListGroupsRequest:
		resp = s.listGroups(fc.Session(), r)
	case *kmsg.DescribeGroupsRequest:
		resp = s.describeGroups(fc.Session(), r)
	case *kmsg.DeleteGroupsRequest:
		resp = s.deleteGroups(fc.Session(), r)
	case *kmsg.ConsumerGroupHeartbeatRequest:
		resp = s.consumerGroupHeartbeat(fc, h, r)
	case *kmsg.ConsumerGroupDescribeRequest:
		resp = s.consumerGroupDescribe(fc.Session(), r)
	case *kmsg.ShareGroupHeartbeatRequest: // share*.go
		resp = s.shareGroupHeartbeat(fc, h, r)
	case *kmsg.ShareGroupDescribeRequest:
		resp = s.shareGroupDescribe(fc.Session(), r)
	case *kmsg.ShareFetchRequest:
		return s.shareFetch(fc, h, flexible, r)
	case *kmsg.ShareAcknowledgeRequest:
		resp = s.shareAcknowledge(fc, r)
	case *kmsg.DescribeShareGroupOffsetsRequest: // share_offsets.go
		resp = s.describeShareGroupOffsets(fc.Context(), fc.Session(), r)
	case *kmsg.AlterShareGroupOffsetsRequest:
		resp = s.alterShareGroupOffsets(fc.Context(), fc.Session(), r)
	case *kmsg.DeleteShareGroupOffsetsRequest:
		resp = s.deleteShareGroupOffsets(fc.Context(), fc.Session(), r)
	default:
		// Table and this switch name the same keys (TestEveryAdvertisedVersionAnswers).
		panic(fmt.Sprintf("kafka: key %d in Table without a handler", h.key))
	}
	return reply(h.correlation, flexible, resp)
}

// refusal runs the authorization check of a request refused whole (one
// group's, or the cluster's; the rules are the core Session's): nil lets
// it through. Requests naming several topics, groups or resources are
// checked per entry by their handlers.
func refusal(sess *broker.Session, req kmsg.Request) error {
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		return sess.CanReadGroup(r.Group)
	case *kmsg.SyncGroupRequest:
		return sess.CanReadGroup(r.Group)
	case *kmsg.HeartbeatRequest:
		return sess.CanReadGroup(r.Group)
	case *kmsg.LeaveGroupRequest:
		return sess.CanReadGroup(r.Group)
	case *kmsg.ConsumerGroupHeartbeatRequest:
		return sess.CanSubscribe(r.Group, r.SubscribedTopicNames)
	case *kmsg.ShareGroupHeartbeatRequest:
		return sess.CanSubscribe(r.GroupID, r.SubscribedTopicNames)
	case *kmsg.OffsetCommitRequest:
		// Read on the group and on every topic, or nothing is committed.
		return sess.CanConsume(r.Group, func(yield func(string) bool) {
			for _, t := range r.Topics {
				if !yield(t.Topic) {
					return
				}
			}
		})
	case *kmsg.AlterPartitionAssignmentsRequest:
		return sess.CanAlterCluster()
	case *kmsg.ListPartitionReassignmentsRequest:
		return sess.CanDescribeCluster()
	case *kmsg.DescribeACLsRequest, *kmsg.DescribeUserSCRAMCredentialsRequest:
		return sess.CanDescribeCluster()
	case *kmsg.CreateACLsRequest, *kmsg.DeleteACLsRequest, *kmsg.AlterUserSCRAMCredentialsRequest:
		return sess.CanAlterCluster()
	}
	return nil
}

// reply frames a response: length, correlation id, the empty tag buffer
// of response header v1 when flexible, the body.
func reply(correlation int32, flexible bool, resp kmsg.Response) *broker.Reply {
	return &broker.Reply{Frame: [][]byte{appendResponse(nil, correlation, flexible, resp)}}
}

func appendResponse(dst []byte, correlation int32, flexible bool, resp kmsg.Response) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(correlation))
	if flexible {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// ctxTimeout bounds an admin call by the request's timeout (ms; at
// least 1 s, at most 5 min, 30 s when none).
func ctxTimeout(ctx context.Context, ms int32) (context.Context, context.CancelFunc) {
	d := 30 * time.Second
	if ms > 0 {
		d = min(max(time.Duration(ms)*time.Millisecond, time.Second), 5*time.Minute)
	}
	return context.WithTimeout(ctx, d)
}
