package client

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/sluicemq/sluice/protocol"
)

// metadata is the client's cache of cluster metadata: per topic its
// partitions and their leaders. A topicInfo is never modified once
// published — a refresh replaces it — so readers hold the read lock only
// for the map lookup.
type metadata struct {
	mu      sync.RWMutex
	topics  map[string]*topicInfo
	wanted  map[string]struct{} // topics every refresh asks for
	lastErr error               // of the last refresh; nil after a success
	count   uint64              // refreshes completed (for tests)

	trigger chan struct{} // capacity 1: coalesces refresh requests
	updated notifier      // notified after every refresh attempt
}

type topicInfo struct {
	err        protocol.ErrorCode
	id         uint64          // the topic's id; 0 from a broker that does not say
	partitions []partitionInfo // index = partition id
}

// keepNewer keeps, for each partition, what old (the topic's previous
// info) knew if it is of a later leader epoch than what ti says: a broker
// whose metadata lags (one cut off from the controller still believes it
// leads) must not send the client back to a deposed leader. Only for the
// same topic id: a topic created again starts its epochs over.
func (ti *topicInfo) keepNewer(old *topicInfo) {
	if old == nil || old.id == 0 || old.id != ti.id || old.err != protocol.NoError || ti.err != protocol.NoError {
		return
	}
	for j := range min(len(ti.partitions), len(old.partitions)) {
		if old.partitions[j].epoch > ti.partitions[j].epoch {
			ti.partitions[j] = old.partitions[j]
		}
	}
}

type partitionInfo struct {
	leader int32 // -1: none
	epoch  int32
	err    protocol.ErrorCode
}

func (m *metadata) init() {
	m.topics = map[string]*topicInfo{}
	m.wanted = map[string]struct{}{}
	m.trigger = make(chan struct{}, 1)
}

// requestRefresh asks the metadata loop for a refresh soon; requests that
// arrive while one is pending merge into it.
func (m *metadata) requestRefresh() { kick(m.trigger) }

func (m *metadata) topic(name string) *topicInfo {
	m.mu.RLock()
	t := m.topics[name]
	m.mu.RUnlock()
	return t
}

// want adds topics to those every refresh asks for.
func (m *metadata) want(topics ...string) {
	m.mu.Lock()
	for _, t := range topics {
		m.wanted[t] = struct{}{}
	}
	m.mu.Unlock()
}

// leader returns the leader of a partition as the cache knows it.
func (m *metadata) leader(topic string, partition int32) (id, epoch int32, ok bool) {
	t := m.topic(topic)
	if t == nil || partition < 0 || int(partition) >= len(t.partitions) {
		return -1, -1, false
	}
	p := t.partitions[partition]
	return p.leader, p.epoch, p.leader >= 0
}

// metadataLoop refreshes on request and every MetadataMaxAge, retrying a
// failed refresh after a backoff.
func (c *Client) metadataLoop() {
	defer c.wg.Done()
	t := time.NewTimer(c.cfg.metadataMaxAge)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-c.meta.trigger:
		case <-t.C:
		case <-c.ctx.Done():
			return
		}
		if err := c.refreshMetadata(c.ctx); err != nil {
			failures++
			if c.sleep(c.ctx, c.backoff(failures)) != nil {
				return
			}
			c.meta.requestRefresh()
		} else {
			failures = 0
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(c.cfg.metadataMaxAge)
	}
}

// anyFirstTry bounds the first try of a metadata refresh (see
// refreshMetadata) and of the other requests any broker can serve (see
// roundTrip).
const anyFirstTry = time.Second

// refreshMetadata fetches metadata for every wanted topic from any broker
// and publishes it.
func (c *Client) refreshMetadata(ctx context.Context) error {
	c.meta.mu.RLock()
	req := &protocol.MetadataRequest{Topics: make([]string, 0, len(c.meta.wanted))}
	for t := range c.meta.wanted {
		req.Topics = append(req.Topics, t)
	}
	c.meta.mu.RUnlock()
	var resp *protocol.MetadataResponse
	var err error
	for try := range 2 {
		// The first try gets anyFirstTry, dial and answer: a hung
		// broker (paused, its host gone) must not hold the refresh that
		// would tell the producer its partitions moved away from it. The
		// second goes to the next broker with the whole RequestTimeout.
		// The first try's limit is its context's, not the request timeout,
		// which would close the connection and fail what else waits on it
		// (an admin request the broker answers before this one, say).
		tctx, cancel := ctx, context.CancelFunc(func() {})
		if try == 0 && c.cfg.requestTimeout > anyFirstTry {
			tctx, cancel = context.WithTimeout(ctx, anyFirstTry)
		}
		var cn *conn
		cn, err = c.anyConn(tctx)
		if err == nil {
			resp = new(protocol.MetadataResponse)
			err = cn.do(tctx, req, resp, c.cfg.requestTimeout, false)
			if err == nil && resp.ErrorCode != protocol.NoError {
				err = resp.ErrorCode.Err()
			}
			if err != nil && try == 0 && tctx.Err() != nil && ctx.Err() == nil {
				c.suspect(cn.addr) // the next try, and the next refreshes, go elsewhere first
			}
		}
		cancel()
		if err == nil || ctx.Err() != nil || c.closed() {
			break
		}
	}
	if err != nil {
		err = fmt.Errorf("metadata: %w", err)
		c.meta.mu.Lock()
		c.meta.lastErr = err
		c.meta.count++
		c.meta.mu.Unlock()
		c.meta.updated.notify()
		return err
	}
	c.applyMetadata(resp)
	c.cons.metadataChanged()
	c.prod.leadersChanged()
	return nil
}

// applyMetadata publishes a Metadata response: the broker table (closing
// connections to brokers whose address changed or that left) and the
// topics it describes.
func (c *Client) applyMetadata(resp *protocol.MetadataResponse) {
	var stale []*broker
	c.mu.Lock()
	seen := make(map[int32]bool, len(resp.Brokers))
	for _, bm := range resp.Brokers {
		addr := net.JoinHostPort(bm.Host, strconv.Itoa(int(bm.Port)))
		seen[bm.ID] = true
		if b := c.brokers[bm.ID]; b != nil {
			if b.addr == addr {
				continue
			}
			stale = append(stale, b)
		}
		c.brokers[bm.ID] = &broker{id: bm.ID, addr: addr}
	}
	for id, b := range c.brokers {
		if !seen[id] {
			stale = append(stale, b)
			delete(c.brokers, id)
		}
	}
	c.mu.Unlock()
	for _, b := range stale {
		b.mu.Lock()
		for k, cn := range b.cns {
			if cn != nil {
				c.retire(cn)
				b.cns[k] = nil
			}
		}
		b.mu.Unlock()
	}

	c.meta.mu.Lock()
	topics := make(map[string]*topicInfo, len(c.meta.topics)+len(resp.Topics))
	for k, v := range c.meta.topics {
		topics[k] = v
	}
	for i := range resp.Topics {
		tm := &resp.Topics[i]
		ti := &topicInfo{err: tm.ErrorCode, id: tm.ID}
		if tm.ErrorCode == protocol.NoError {
			ti.partitions = make([]partitionInfo, len(tm.Partitions))
			for j := range ti.partitions {
				ti.partitions[j] = partitionInfo{leader: -1, epoch: -1, err: protocol.ErrLeaderNotAvailable}
			}
			for _, pm := range tm.Partitions {
				if pm.Partition >= 0 && int(pm.Partition) < len(ti.partitions) {
					ti.partitions[pm.Partition] = partitionInfo{leader: pm.Leader, epoch: pm.LeaderEpoch, err: pm.ErrorCode}
				}
			}
		}
		ti.keepNewer(topics[tm.Name])
		topics[tm.Name] = ti
	}
	c.meta.topics = topics
	c.meta.lastErr = nil
	c.meta.count++
	c.meta.mu.Unlock()
	c.meta.updated.notify()
}

// topicInfo returns the partitions of topic, waiting for metadata to
// describe it. A topic the cluster says does not exist is retried for
// RequestRetries refreshes (it may have just been created) before its error
// is returned.
func (c *Client) topicInfo(ctx context.Context, topic string) (*topicInfo, error) {
	if t := c.meta.topic(topic); t != nil && t.err == protocol.NoError && len(t.partitions) > 0 {
		return t, nil
	}
	c.meta.want(topic)
	for attempt := 0; ; attempt++ {
		ch := c.meta.updated.wait()
		t := c.meta.topic(topic)
		if t != nil && t.err == protocol.NoError && len(t.partitions) > 0 {
			return t, nil
		}
		if attempt > c.cfg.requestRetries {
			if t != nil && t.err != protocol.NoError {
				return nil, fmt.Errorf("topic %q: %w", topic, t.err.Err())
			}
			c.meta.mu.RLock()
			err := c.meta.lastErr
			c.meta.mu.RUnlock()
			if err == nil {
				err = fmt.Errorf("topic %q: no partitions in metadata", topic)
			}
			return nil, err
		}
		if attempt > 0 {
			if err := c.sleep(ctx, c.backoff(attempt)); err != nil {
				return nil, err
			}
		}
		c.meta.requestRefresh()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}
