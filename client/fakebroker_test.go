package client

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// fakeCluster is an in-process stand-in for a sluice cluster, speaking the
// real wire protocol over loopback TCP: brokers share one in-memory state
// of topics, partition leaders and logs. A hook can intercept any request
// to inject errors, delays, dropped responses or broken connections.
type fakeCluster struct {
	t       testing.TB
	mu      sync.Mutex
	brokers []*fakeBroker
	topics  map[string]*fakeTopic
	hook    func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action
	counts  map[protocol.APIKey]int
	appends notifier

	// Idempotence, as a real leader does it (R13): producer ids handed
	// out, each id's current epoch, and per producer and partition the
	// last batches appended.
	nextPID   int64
	pidEpochs map[int64]int16
	producers map[fakeProducerKey]*fakeProducer
	dups      int // duplicates answered with their original offsets

	// Consumer groups (fakegroup_test.go): the coordinator's broker id,
	// the heartbeat interval it gives, the groups, and the event log.
	coord       int32
	heartbeatMs int32
	groups      map[string]*fakeGroup
	evMu        sync.Mutex
	events      []string
}

type fakeProducerKey struct {
	pid       int64
	topic     string
	partition int32
}

// fakeProducer is one producer's state on one partition: its epoch and
// the last fakeRetained batches (first and last sequence, base offset).
type fakeProducer struct {
	epoch   int16
	batches []fakeRetained
}

type fakeRetained struct {
	first, last int32
	base        int64
}

// fakeRetainedBatches is how many batches a producer's state keeps, as a
// real leader does.
const fakeRetainedBatches = 5

type fakeTopic struct {
	parts   []*fakePart
	configs map[string]string
}

type fakePart struct {
	leader  int32
	epoch   int32
	batches []record.Batch // stamped with base offsets
	next    int64
}

// action is what a hook decides for one request; the zero action lets the
// broker answer normally.
type action struct {
	resp  protocol.Message // answer with this instead
	close bool             // close the connection without answering
	drop  bool             // handle the request, then close without answering
	wait  <-chan struct{}  // before answering, wait for this (or broker stop)
	// refuseWhole answers with the uniform BROKER_NOT_AVAILABLE refusal,
	// then reads and drops what the client still sends, unanswered, and
	// closes once it closed its side: a broker draining its connections
	// for shutdown (broker drain.go), at its worst.
	refuseWhole bool
}

type fakeBroker struct {
	id   int32
	cl   *fakeCluster
	ln   net.Listener
	quit chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	cns  map[net.Conn]bool
}

func newFakeCluster(t testing.TB, n int) *fakeCluster {
	fc := &fakeCluster{t: t, topics: map[string]*fakeTopic{}, counts: map[protocol.APIKey]int{},
		pidEpochs: map[int64]int16{}, producers: map[fakeProducerKey]*fakeProducer{}, coord: 1, heartbeatMs: 50}
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b := &fakeBroker{id: int32(i + 1), cl: fc, ln: ln, quit: make(chan struct{}), cns: map[net.Conn]bool{}}
		fc.brokers = append(fc.brokers, b)
		b.wg.Add(1)
		go b.accept()
	}
	t.Cleanup(fc.stop)
	return fc
}

func (fc *fakeCluster) stop() {
	for _, b := range fc.brokers {
		b.stop()
	}
}

func (fc *fakeCluster) addrs() []string {
	var out []string
	for _, b := range fc.brokers {
		out = append(out, b.ln.Addr().String())
	}
	return out
}

// addTopic creates a topic whose partition i is led by broker leaders[i].
func (fc *fakeCluster) addTopic(name string, leaders ...int32) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	t := &fakeTopic{configs: map[string]string{}}
	for _, l := range leaders {
		t.parts = append(t.parts, &fakePart{leader: l})
	}
	fc.topics[name] = t
}

func (fc *fakeCluster) setLeader(topic string, partition, leader int32) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	p := fc.topics[topic].parts[partition]
	p.leader = leader
	p.epoch++
}

func (fc *fakeCluster) setHook(h func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action) {
	fc.mu.Lock()
	fc.hook = h
	fc.mu.Unlock()
}

func (fc *fakeCluster) count(k protocol.APIKey) int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.counts[k]
}

// records returns the values stored in a partition, in offset order.
func (fc *fakeCluster) values(topic string, partition int32) []string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var out []string
	var rd record.Reader
	for _, b := range fc.topics[topic].parts[partition].batches {
		if err := rd.Reset(b); err != nil {
			fc.t.Errorf("stored batch: %v", err)
			return out
		}
		for rd.Next() {
			out = append(out, string(rd.Record().Value))
		}
	}
	return out
}

func (b *fakeBroker) stop() {
	select {
	case <-b.quit:
		return
	default:
	}
	close(b.quit)
	b.ln.Close()
	b.mu.Lock()
	for c := range b.cns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *fakeBroker) accept() {
	defer b.wg.Done()
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.cns[nc] = true
		b.mu.Unlock()
		b.wg.Add(1)
		go b.serve(nc)
	}
}

func (b *fakeBroker) serve(nc net.Conn) {
	defer b.wg.Done()
	defer func() {
		nc.Close()
		b.mu.Lock()
		delete(b.cns, nc)
		b.mu.Unlock()
	}()
	fr := protocol.NewFrameReader(nc, 0)
	var h protocol.RequestHeader
	var out []byte
	for {
		frame, err := fr.Next()
		if err != nil {
			return
		}
		body, err := h.Decode(frame)
		if err != nil {
			return
		}
		req := protocol.NewRequest(h.Key)
		if req == nil || !h.Key.Supports(h.Version) {
			out = protocol.AppendErrorResponse(out[:0], &h, protocol.ErrUnsupportedVersion)
		} else if err := protocol.Decode(req, body, h.Version); err != nil {
			return
		} else {
			b.cl.mu.Lock()
			b.cl.counts[h.Key]++
			hook := b.cl.hook
			b.cl.mu.Unlock()
			var act action
			if hook != nil {
				act = hook(b, h.Key, req)
			}
			if act.wait != nil {
				select {
				case <-act.wait:
				case <-b.quit:
					return
				}
			}
			if act.close {
				return
			}
			if act.refuseWhole {
				out = protocol.AppendErrorResponse(out[:0], &h, protocol.ErrBrokerNotAvailable)
				if _, err := nc.Write(out); err == nil {
					nc.(*net.TCPConn).CloseWrite()
					nc.SetReadDeadline(time.Now().Add(5 * time.Second))
					io.Copy(io.Discard, nc)
				}
				return
			}
			resp := act.resp
			if resp == nil {
				resp = b.handle(h.Key, req)
			}
			if act.drop {
				return
			}
			if resp == nil {
				continue // acks=0
			}
			if out, err = protocol.AppendResponse(out[:0], h.CorrelationID, h.Version, resp); err != nil {
				b.cl.t.Errorf("fake broker: encode %v: %v", h.Key, err)
				return
			}
		}
		if _, err := nc.Write(out); err != nil {
			return
		}
	}
}

func (b *fakeBroker) handle(key protocol.APIKey, m protocol.Message) protocol.Message {
	fc := b.cl
	if resp, ok := b.groupRequest(m); ok {
		return resp
	}
	switch req := m.(type) {
	case *protocol.APIVersionsRequest:
		return &protocol.APIVersionsResponse{APIs: protocol.SupportedAPIs()}
	case *protocol.MetadataRequest:
		return fc.metadata(req)
	case *protocol.InitProducerIDRequest:
		return fc.initProducerID(req)
	case *protocol.ProduceRequest:
		return b.produce(req)
	case *protocol.FetchRequest:
		return b.fetch(req)
	case *protocol.ListOffsetsRequest:
		return b.listOffsets(req)
	case *protocol.CreateTopicsRequest:
		return fc.createTopics(req)
	case *protocol.DeleteTopicsRequest:
		fc.mu.Lock()
		defer fc.mu.Unlock()
		resp := &protocol.DeleteTopicsResponse{}
		for _, n := range req.Topics {
			te := protocol.TopicError{Name: n}
			if fc.topics[n] == nil {
				te.ErrorCode = protocol.ErrUnknownTopicOrPartition
			}
			delete(fc.topics, n)
			resp.Topics = append(resp.Topics, te)
		}
		return resp
	case *protocol.DescribeConfigsRequest:
		fc.mu.Lock()
		defer fc.mu.Unlock()
		resp := &protocol.DescribeConfigsResponse{}
		for _, r := range req.Resources {
			res := protocol.DescribeConfigsResult{Type: r.Type, Name: r.Name}
			if t := fc.topics[r.Name]; t == nil {
				res.ErrorCode = protocol.ErrUnknownTopicOrPartition
			} else {
				for k, v := range t.configs {
					res.Configs = append(res.Configs, protocol.ConfigEntry{Name: k, Value: v})
				}
			}
			resp.Resources = append(resp.Resources, res)
		}
		return resp
	case *protocol.AlterConfigsRequest:
		fc.mu.Lock()
		defer fc.mu.Unlock()
		resp := &protocol.AlterConfigsResponse{}
		for _, r := range req.Resources {
			re := protocol.ResourceError{Type: r.Type, Name: r.Name}
			if t := fc.topics[r.Name]; t == nil {
				re.ErrorCode = protocol.ErrUnknownTopicOrPartition
			} else {
				for _, c := range r.Configs {
					if c.Op == protocol.ConfigDelete {
						delete(t.configs, c.Name)
					} else {
						t.configs[c.Name] = c.Value
					}
				}
			}
			resp.Resources = append(resp.Resources, re)
		}
		return resp
	}
	fc.t.Errorf("fake broker: unhandled %v", key)
	return nil
}

func (fc *fakeCluster) metadata(req *protocol.MetadataRequest) *protocol.MetadataResponse {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	resp := &protocol.MetadataResponse{ControllerID: 1, ClusterID: "fake"}
	for _, b := range fc.brokers {
		host, port, _ := net.SplitHostPort(b.ln.Addr().String())
		p, _ := strconv.Atoi(port)
		resp.Brokers = append(resp.Brokers, protocol.BrokerMetadata{ID: b.id, Host: host, Port: int32(p)})
	}
	names := req.Topics
	if req.AllTopics {
		names = nil
		for n := range fc.topics {
			names = append(names, n)
		}
	}
	for _, n := range names {
		tm := protocol.TopicMetadata{Name: n}
		t := fc.topics[n]
		if t == nil {
			tm.ErrorCode = protocol.ErrUnknownTopicOrPartition
		} else {
			for i, p := range t.parts {
				tm.Partitions = append(tm.Partitions, protocol.PartitionMetadata{Partition: int32(i),
					Leader: p.leader, LeaderEpoch: p.epoch, Replicas: []int32{p.leader}, ISR: []int32{p.leader}})
			}
		}
		resp.Topics = append(resp.Topics, tm)
	}
	return resp
}

// part returns the partition if b leads it, or the error code to answer.
func (b *fakeBroker) part(topic string, partition int32) (*fakePart, protocol.ErrorCode) {
	t := b.cl.topics[topic]
	if t == nil || partition < 0 || int(partition) >= len(t.parts) {
		return nil, protocol.ErrUnknownTopicOrPartition
	}
	p := t.parts[partition]
	if p.leader != b.id {
		return nil, protocol.ErrNotLeaderOrFollower
	}
	return p, protocol.NoError
}

func (b *fakeBroker) produce(req *protocol.ProduceRequest) protocol.Message {
	fc := b.cl
	fc.mu.Lock()
	resp := &protocol.ProduceResponse{}
	for _, t := range req.Topics {
		tr := protocol.ProduceTopicResponse{Name: t.Name}
		for _, pp := range t.Partitions {
			pr := protocol.ProducePartitionResponse{Partition: pp.Partition, LogAppendTime: -1}
			p, code := b.part(t.Name, pp.Partition)
			pr.ErrorCode = code
			if p != nil {
				if err := record.Validate(pp.Records, record.Limits{Contiguous: true}); err != nil {
					pr.ErrorCode, pr.ErrorMessage = protocol.ErrCorruptMessage, err.Error()
				} else if code, base, dup := fc.checkSequence(t.Name, pp.Partition, record.Batch(pp.Records), p.next); code != protocol.NoError || dup {
					pr.ErrorCode, pr.BaseOffset = code, base
				} else {
					batch := record.Batch(append([]byte(nil), pp.Records...))
					batch.SetBaseOffset(p.next)
					pr.BaseOffset = p.next
					p.next = batch.NextOffset()
					p.batches = append(p.batches, batch)
				}
			}
			tr.Partitions = append(tr.Partitions, pr)
		}
		resp.Topics = append(resp.Topics, tr)
	}
	fc.mu.Unlock()
	fc.appends.notify()
	if req.Acks == protocol.AcksNone {
		return nil
	}
	return resp
}

func (b *fakeBroker) fetch(req *protocol.FetchRequest) protocol.Message {
	fc := b.cl
	deadline := time.Now().Add(time.Duration(req.MaxWaitMs) * time.Millisecond)
	for {
		ch := fc.appends.wait()
		fc.mu.Lock()
		resp, size := &protocol.FetchResponse{}, 0
		for _, t := range req.Topics {
			tr := protocol.FetchTopicResponse{Name: t.Name}
			for _, fp := range t.Partitions {
				pr := protocol.FetchPartitionResponse{Partition: fp.Partition}
				p, code := b.part(t.Name, fp.Partition)
				pr.ErrorCode = code
				if p != nil {
					pr.HighWatermark = p.next
					switch {
					case fp.FetchOffset > p.next || fp.FetchOffset < 0:
						pr.ErrorCode = protocol.ErrOffsetOutOfRange
					default:
						for _, bt := range p.batches {
							if bt.NextOffset() <= fp.FetchOffset {
								continue
							}
							if len(pr.Records) > 0 && len(pr.Records)+len(bt) > int(fp.PartitionMaxBytes) {
								break
							}
							pr.Records = append(pr.Records, bt...)
						}
						size += len(pr.Records)
					}
				}
				tr.Partitions = append(tr.Partitions, pr)
			}
			resp.Topics = append(resp.Topics, tr)
		}
		fc.mu.Unlock()
		wait := time.Until(deadline)
		if size >= int(req.MinBytes) || wait <= 0 {
			return resp
		}
		t := time.NewTimer(wait)
		select {
		case <-ch:
		case <-t.C:
		case <-b.quit:
		}
		t.Stop()
	}
}

func (b *fakeBroker) listOffsets(req *protocol.ListOffsetsRequest) protocol.Message {
	fc := b.cl
	fc.mu.Lock()
	defer fc.mu.Unlock()
	resp := &protocol.ListOffsetsResponse{}
	for _, t := range req.Topics {
		tr := protocol.ListOffsetsTopicResponse{Name: t.Name}
		for _, lp := range t.Partitions {
			pr := protocol.ListOffsetsPartitionResponse{Partition: lp.Partition, Timestamp: -1, Offset: -1}
			p, code := b.part(t.Name, lp.Partition)
			pr.ErrorCode = code
			if p != nil {
				switch lp.Timestamp {
				case protocol.EarliestTimestamp:
					pr.Offset = 0
				case protocol.LatestTimestamp:
					pr.Offset = p.next
				default:
					var rd record.Reader
				search:
					for _, bt := range p.batches {
						if bt.MaxTimestamp() < lp.Timestamp || rd.Reset(bt) != nil {
							continue
						}
						for rd.Next() {
							if r := rd.Record(); r.Timestamp >= lp.Timestamp {
								pr.Offset, pr.Timestamp = r.Offset, r.Timestamp
								break search
							}
						}
					}
				}
			}
			tr.Partitions = append(tr.Partitions, pr)
		}
		resp.Topics = append(resp.Topics, tr)
	}
	return resp
}

func (fc *fakeCluster) createTopics(req *protocol.CreateTopicsRequest) protocol.Message {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	resp := &protocol.CreateTopicsResponse{}
	for _, ct := range req.Topics {
		te := protocol.TopicError{Name: ct.Name}
		switch {
		case fc.topics[ct.Name] != nil:
			te.ErrorCode = protocol.ErrTopicAlreadyExists
		case ct.Partitions == 0 || ct.Partitions < -1:
			te.ErrorCode = protocol.ErrInvalidPartitions
		default:
			n := max(ct.Partitions, 1)
			t := &fakeTopic{configs: map[string]string{}}
			for i := range n {
				t.parts = append(t.parts, &fakePart{leader: fc.brokers[int(i)%len(fc.brokers)].id})
			}
			for _, c := range ct.Configs {
				t.configs[c.Name] = c.Value
			}
			fc.topics[ct.Name] = t
		}
		resp.Topics = append(resp.Topics, te)
	}
	return resp
}

// initProducerID hands out a new producer id, or bumps the epoch of one.
func (fc *fakeCluster) initProducerID(req *protocol.InitProducerIDRequest) protocol.Message {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if req.ProducerID < 0 {
		fc.nextPID++
		fc.pidEpochs[fc.nextPID] = 0
		return &protocol.InitProducerIDResponse{ProducerID: fc.nextPID}
	}
	cur, ok := fc.pidEpochs[req.ProducerID]
	if !ok || cur != req.ProducerEpoch {
		return &protocol.InitProducerIDResponse{ErrorCode: protocol.ErrInvalidProducerEpoch}
	}
	fc.pidEpochs[req.ProducerID] = cur + 1
	return &protocol.InitProducerIDResponse{ProducerID: req.ProducerID, ProducerEpoch: cur + 1}
}

// checkSequence applies a real leader's idempotence rules to batch, about
// to be appended at next: a retained batch sent again is a duplicate,
// answered with its original base offset; a stale epoch, an unknown
// producer with a sequence other than 0 and a gap are refused. A batch
// that passes is recorded as appended. fc.mu is held.
func (fc *fakeCluster) checkSequence(topic string, partition int32, batch record.Batch, next int64) (code protocol.ErrorCode, base int64, dup bool) {
	pid := batch.ProducerID()
	if pid < 0 {
		return protocol.NoError, -1, false
	}
	epoch, seq := batch.ProducerEpoch(), batch.BaseSequence()
	last := nextSequence(seq, int(batch.RecordCount())-1)
	key := fakeProducerKey{pid, topic, partition}
	st := fc.producers[key]
	switch {
	case st == nil && seq != 0:
		return protocol.ErrUnknownProducerID, -1, false
	case st == nil || epoch > st.epoch:
		if seq != 0 {
			return protocol.ErrOutOfOrderSequenceNumber, -1, false
		}
		st = &fakeProducer{epoch: epoch}
		fc.producers[key] = st
	case epoch < st.epoch:
		return protocol.ErrInvalidProducerEpoch, -1, false
	default:
		for _, r := range st.batches {
			if r.first == seq && r.last == last {
				fc.dups++
				return protocol.NoError, r.base, true
			}
		}
		if want := nextSequence(st.batches[len(st.batches)-1].last, 1); seq != want {
			return protocol.ErrOutOfOrderSequenceNumber, -1, false
		}
	}
	st.batches = append(st.batches, fakeRetained{first: seq, last: last, base: next})
	if len(st.batches) > fakeRetainedBatches {
		st.batches = st.batches[1:]
	}
	return protocol.NoError, -1, false
}

// forgetProducers drops every producer's state, as a leader evicting
// idle producers (or one that lost it) does: their next batch gets
// UNKNOWN_PRODUCER_ID.
func (fc *fakeCluster) forgetProducers() {
	fc.mu.Lock()
	clear(fc.producers)
	fc.mu.Unlock()
}

// batchHeaders returns (producer id, epoch, base sequence, records) of
// each batch stored in a partition, in offset order.
func (fc *fakeCluster) batchHeaders(topic string, partition int32) [][4]int64 {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var out [][4]int64
	for _, b := range fc.topics[topic].parts[partition].batches {
		out = append(out, [4]int64{b.ProducerID(), int64(b.ProducerEpoch()), int64(b.BaseSequence()), int64(b.RecordCount())})
	}
	return out
}

// produceErrorResponse answers every partition of req with code.
func produceErrorResponse(req *protocol.ProduceRequest, code protocol.ErrorCode) *protocol.ProduceResponse {
	resp := &protocol.ProduceResponse{}
	for _, t := range req.Topics {
		tr := protocol.ProduceTopicResponse{Name: t.Name}
		for _, p := range t.Partitions {
			tr.Partitions = append(tr.Partitions, protocol.ProducePartitionResponse{Partition: p.Partition, ErrorCode: code})
		}
		resp.Topics = append(resp.Topics, tr)
	}
	return resp
}

var errInjected = errors.New("injected")
