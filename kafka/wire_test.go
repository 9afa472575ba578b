package kafka

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/protocol"
)

// rawConn speaks Kafka's framing by hand, for requests no client sends.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// frame is a request frame: header v1 (v2 when flexible), then body.
func frame(key, version int16, corr int32, flexible bool, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if flexible {
		b = append(b, 0)
	}
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// request sends req at its version and returns the response body after
// the correlation id (and the tag buffer of a flexible non-ApiVersions
// response).
func (r *rawConn) request(req kmsg.Request, corr int32) []byte {
	r.t.Helper()
	if _, err := r.nc.Write(frame(req.Key(), req.GetVersion(), corr, req.IsFlexible(), req.AppendTo(nil))); err != nil {
		r.t.Fatal(err)
	}
	body, err := r.read(corr)
	if err != nil {
		r.t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	if req.IsFlexible() && req.Key() != apiVersionsKey {
		if len(body) == 0 || body[0] != 0 {
			r.t.Fatalf("%s v%d: response header has no empty tag buffer", kmsg.NameForKey(req.Key()), req.GetVersion())
		}
		body = body[1:]
	}
	return body
}

// read reads one response frame, checks its correlation id and returns
// what follows it.
func (r *rawConn) read(corr int32) ([]byte, error) {
	r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var n [4]byte
	if _, err := io.ReadFull(r.br, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, err
	}
	if got := int32(binary.BigEndian.Uint32(b)); got != corr {
		return nil, errors.New("correlation id mismatch")
	}
	return b[4:], nil
}

// closed reports whether the server closes the connection within d
// without sending anything.
func (r *rawConn) closed(d time.Duration) bool {
	r.nc.SetReadDeadline(time.Now().Add(d))
	_, err := r.br.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// TestEveryAdvertisedVersionAnswers sends each key of Table at every
// version from 0 to the codec's maximum and checks the answer decodes
// with kmsg: served versions answer normally, others with
// UNSUPPORTED_VERSION (Produce v0-2 among them), none by a dropped
// connection.
func TestEveryAdvertisedVersionAnswers(t *testing.T) {
	_, addr := single(t, nil)
	c := dialRaw(t, addr)
	corr := int32(0)
	for key, vr := range Table {
		probe := kmsg.RequestForKey(key)
		for v := int16(0); v <= min(probe.MaxVersion(), vr.Max+1); v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			switch r := req.(type) {
			case *kmsg.DescribeClusterRequest:
				r.EndpointType = 1
			case *kmsg.ProduceRequest:
				r.Acks = 1 // acks=0 has no answer
			case *kmsg.FetchRequest:
				r.MaxWaitMillis = 0
			case *kmsg.FindCoordinatorRequest:
				r.CoordinatorKey, r.CoordinatorKeys = "g", []string{"g"}
			}
			corr++
			body := c.request(req, corr)
			resp := req.ResponseKind()
			resp.SetVersion(v)
			if key == apiVersionsKey && v > vr.Max {
				resp.SetVersion(0) // the KIP-511 fallback
			}
			if err := resp.ReadFrom(body); err != nil {
				t.Fatalf("%s v%d: response does not decode: %v", kmsg.NameForKey(key), v, err)
			}
			unsupported := v < vr.Min || v > vr.Max || (key == produceKey && v < minProduceServed)
			if code := topError(resp); unsupported && code != kerrUnsupportedVersion && code != -2 {
				t.Fatalf("%s v%d (not served): error %d, want UNSUPPORTED_VERSION", kmsg.NameForKey(key), v, code)
			}
		}
	}
}

// topError is a response's top-level error code, -2 when it has none
// (per-item codes only).
func topError(resp kmsg.Response) int16 {
	switch r := resp.(type) {
	case *kmsg.ApiVersionsResponse:
		return r.ErrorCode
	case *kmsg.InitProducerIDResponse:
		return r.ErrorCode
	case *kmsg.DescribeClusterResponse:
		return r.ErrorCode
	case *kmsg.FindCoordinatorResponse:
		if r.Version >= 4 {
			return r.Coordinators[0].ErrorCode
		}
		return r.ErrorCode
	case *kmsg.JoinGroupResponse:
		return r.ErrorCode
	case *kmsg.SyncGroupResponse:
		return r.ErrorCode
	case *kmsg.HeartbeatResponse:
		return r.ErrorCode
	case *kmsg.LeaveGroupResponse:
		return r.ErrorCode
	case *kmsg.ListGroupsResponse:
		return r.ErrorCode
	case *kmsg.ConsumerGroupHeartbeatResponse:
		return r.ErrorCode
	case *kmsg.ShareGroupHeartbeatResponse:
		return r.ErrorCode
	case *kmsg.ShareFetchResponse:
		return r.ErrorCode
	case *kmsg.ShareAcknowledgeResponse:
		return r.ErrorCode
	}
	return -2
}

// TestProduceV2IsUnsupported: Produce v0-2 are advertised (librdkafka's
// compression check) but answered UNSUPPORTED_VERSION per partition.
func TestProduceV2IsUnsupported(t *testing.T) {
	_, addr := single(t, nil)
	c := dialRaw(t, addr)
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(2)
	req.Acks = 1
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: []byte{1, 2, 3}}}}}
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(2)
	if err := resp.ReadFrom(c.request(req, 7)); err != nil {
		t.Fatal(err)
	}
	if got := resp.Topics[0].Partitions[0].ErrorCode; got != kerr.UnsupportedVersion.Code {
		t.Fatalf("produce v2: error %d, want UNSUPPORTED_VERSION", got)
	}
}

// TestApiVersionsFallback: an ApiVersions version above ours gets the
// KIP-511 answer, a v0 response with UNSUPPORTED_VERSION listing our
// versions; the same connection then works at v3.
func TestApiVersionsFallback(t *testing.T) {
	_, addr := single(t, nil)
	c := dialRaw(t, addr)
	if _, err := c.nc.Write(frame(apiVersionsKey, 99, 1, true, []byte{0xde, 0xad})); err != nil {
		t.Fatal(err)
	}
	body, err := c.read(1)
	if err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerrUnsupportedVersion || len(resp.ApiKeys) != len(Table) {
		t.Fatalf("fallback: error %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
	resp = kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(3)
	if err := resp.ReadFrom(c.request(req, 2)); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("v3 after the fallback: %v, error %d", err, resp.ErrorCode)
	}
}

// TestHostileInput: requests a client should never send close the
// connection, cleanly and soon, without a panic and without holding
// memory: unknown keys, a length bomb, a large non-Produce request, a
// truncated frame, a slow first request, a truncated body.
func TestHostileInput(t *testing.T) {
	b, addr := single(t, func(c *broker.Config) {
		c.FirstRequestTimeout = 300 * time.Millisecond
		c.FrameReadTimeout = 300 * time.Millisecond
	})
	metadata := kmsg.NewPtrMetadataRequest()
	metadata.SetVersion(1)
	cases := []struct {
		name string
		send func(c *rawConn)
	}{
		{"unknown key", func(c *rawConn) { c.nc.Write(frame(9999, 0, 1, false, nil)) }},
		{"group key not served", func(c *rawConn) { c.nc.Write(frame(11, 5, 1, false, nil)) }},
		{"version past the codec", func(c *rawConn) { c.nc.Write(frame(3, 999, 1, false, nil)) }},
		{"length bomb", func(c *rawConn) { c.nc.Write([]byte{0x7f, 0xff, 0xff, 0xff, 0, 3}) }},
		{"negative length", func(c *rawConn) { c.nc.Write([]byte{0xff, 0xff, 0xff, 0xf0}) }},
		{"2 MiB metadata of empty topic names", func(c *rawConn) {
			// 1<<20 topics of 2 bytes each: kmsg would make 32 B of
			// each, and the answer would name every one.
			body := binary.BigEndian.AppendUint32(nil, 1<<20)
			body = append(body, bytes.Repeat([]byte{0, 0}, 1<<20)...)
			c.nc.Write(frame(3, 1, 1, false, body))
		}},
		{"truncated header", func(c *rawConn) { c.nc.Write([]byte{0, 0, 0, 3, 0, 3, 0}) }},
		{"truncated body", func(c *rawConn) {
			f := frame(3, 1, 1, false, metadata.AppendTo(nil))
			binary.BigEndian.PutUint32(f, uint32(len(f)-4+100))
			c.nc.Write(f)
		}},
		{"malformed body", func(c *rawConn) { c.nc.Write(frame(3, 1, 1, false, []byte{0, 0, 0, 5, 0})) }},
		{"slowloris", func(c *rawConn) {
			f := frame(3, 1, 1, false, metadata.AppendTo(nil))
			for _, x := range f[:len(f)-1] {
				if _, err := c.nc.Write([]byte{x}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond) // the attack: a byte at a time
			}
		}},
		{"silent", func(*rawConn) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			start := time.Now()
			tc.send(c)
			if !c.closed(5 * time.Second) {
				t.Fatal("connection not closed within 5 s")
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("closed after %v", d)
			}
		})
	}
	// The broker still serves.
	c := dialRaw(t, addr)
	resp := kmsg.NewPtrMetadataResponse()
	resp.SetVersion(1)
	if err := resp.ReadFrom(c.request(metadata, 3)); err != nil || len(resp.Brokers) != 1 {
		t.Fatalf("metadata after the hostile connections: %v %+v", err, resp)
	}
	_ = b
}

// TestFetchEncodeMatchesKmsg checks the zero-copy Fetch response encoder
// against kmsg's decoder at every served version.
func TestFetchEncodeMatchesKmsg(t *testing.T) {
	for v := Table[1].Min; v <= Table[1].Max; v++ {
		st := &fetchState{version: v, corr: 42}
		st.fetch.Parts = []broker.FetchPart{
			{Topic: "a", Partition: 0, Result: broker.ReadResult{HighWatermark: 10, LastStableOffset: 10, LogStartOffset: 2}},
			{Topic: "a", Partition: 3, Err: protocol.ErrNotLeaderOrFollower, Result: broker.ReadResult{HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1}},
			{Topic: "bb", Partition: 1, Result: broker.ReadResult{HighWatermark: 5, LastStableOffset: 5, LogStartOffset: 0}},
		}
		var b []byte
		pieces, code := st.encode()
		if code != protocol.ErrNotLeaderOrFollower {
			t.Fatalf("v%d: encode's first error %v, want %v", v, code, protocol.ErrNotLeaderOrFollower)
		}
		for _, p := range pieces {
			b = append(b, p...)
		}
		if int(binary.BigEndian.Uint32(b)) != len(b)-4 || int32(binary.BigEndian.Uint32(b[4:])) != 42 {
			t.Fatalf("v%d: bad length or correlation id", v)
		}
		resp := kmsg.NewPtrFetchResponse()
		resp.SetVersion(v)
		if err := resp.ReadFrom(b[8:]); err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if len(resp.Topics) != 2 || resp.Topics[0].Topic != "a" || resp.Topics[1].Topic != "bb" || len(resp.Topics[0].Partitions) != 2 {
			t.Fatalf("v%d: %+v", v, resp)
		}
		p0, p3 := resp.Topics[0].Partitions[0], resp.Topics[0].Partitions[1]
		if p0.HighWatermark != 10 || p0.ErrorCode != 0 || p3.Partition != 3 || p3.ErrorCode != kerr.NotLeaderForPartition.Code {
			t.Fatalf("v%d: partitions %+v %+v", v, p0, p3)
		}
		if v >= 5 && p0.LogStartOffset != 2 {
			t.Fatalf("v%d: log start offset %d", v, p0.LogStartOffset)
		}
	}
}

// TestErrorTableMatchesKafka: every code the core answers with has a row,
// and each row's retriable flag is Kafka's (franz-go's kerr table).
func TestErrorTableMatchesKafka(t *testing.T) {
	for code, row := range errorTable {
		if row.code == 0 {
			continue
		}
		ke := kerr.ErrorForCode(row.code)
		var kafkaErr *kerr.Error
		if !errors.As(ke, &kafkaErr) {
			t.Fatalf("%v: Kafka has no code %d", code, row.code)
		}
		if kafkaErr.Retriable != row.retriable {
			t.Errorf("%v → %s: retriable %v in the table, %v in Kafka", code, kafkaErr.Message, row.retriable, kafkaErr.Retriable)
		}
	}
	for c := protocol.ErrorCode(-1); c < 200; c++ {
		if c.String() != "UNKNOWN_CODE("+strconv.Itoa(int(c))+")" {
			if _, ok := errorTable[c]; !ok {
				t.Errorf("protocol code %v has no row in errorTable", c)
			}
		}
	}
}

// TestConnectionLimits: Kafka connections count against the broker's
// connection limits with the sluice listener's (broker.ServeConn); past
// them a Kafka connection is closed at once.
func TestConnectionLimits(t *testing.T) {
	_, addr := single(t, func(c *broker.Config) {
		c.MaxConnections = 2
		c.ReservedBrokerConnections = -1
	})
	req := kmsg.NewPtrApiVersionsRequest()
	for i := range 2 {
		c := dialRaw(t, addr)
		c.request(req, int32(i)) // admitted and served
	}
	if c := dialRaw(t, addr); !c.closed(5 * time.Second) {
		t.Fatal("a third connection past MaxConnections 2 was not closed")
	}
}
