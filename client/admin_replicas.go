package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sluicemq/sluice/protocol"
)

// describeReplicasConcurrency bounds the brokers asked at once by
// DescribeReplicas, so a large cluster does not get a burst of dials.
const describeReplicasConcurrency = 8

// ReplicaInfo is one partition replica as the broker holding it sees it.
// Metadata (DescribeTopic) says what the controller believes; this says
// what each broker actually has.
type ReplicaInfo struct {
	Topic     string
	Partition int32
	// Leader is true when the broker considers itself the partition's
	// leader; LeaderEpoch is the epoch it is in.
	Leader      bool
	LeaderEpoch int32
	// StartOffset and EndOffset bound the replica's log; HighWatermark is
	// the highest offset it knows to be committed; below SyncedOffset its
	// log is fsynced.
	StartOffset   int64
	EndOffset     int64
	HighWatermark int64
	SyncedOffset  int64
	// Checksum is the CRC-32C of the log's whole batches from StartOffset
	// up to ChecksumEnd, which is -1 when no checksum was asked for
	// (DescribeReplicas) or no whole batch lies below the limit.
	Checksum    uint32
	ChecksumEnd int64
	// LogBytes is the size of the replica's log on disk (0 from a broker
	// too old to say).
	LogBytes int64
	// Cleaner is the log cleaner's state of a compacted replica
	// (cleanup.policy=compact), nil for another or from a broker too old
	// to say.
	Cleaner *CleanerInfo
	// Err is the replica's own failure (its storage, say); the other
	// fields are then meaningless.
	Err error
}

// CleanerInfo is the log cleaner's state of one compacted replica.
type CleanerInfo struct {
	CleanBytes int64 // bytes of the cleaned part of the log
	DirtyBytes int64 // cleanable bytes not yet cleaned
	// LastClean is when the last cleaning ended; zero if none since the
	// broker started.
	LastClean time.Time
	// Failures counts consecutive failed cleanings (the broker retries
	// with a backoff); Err is the last one's error, "" when it worked.
	Failures int
	Err      string
}

// DirtyRatio is DirtyBytes over the cleanable bytes, 0 for an empty log.
func (c *CleanerInfo) DirtyRatio() float64 {
	if t := c.CleanBytes + c.DirtyBytes; t > 0 {
		return float64(c.DirtyBytes) / float64(t)
	}
	return 0
}

// BrokerReplicas is one broker's answer to DescribeReplicas.
type BrokerReplicas struct {
	Broker int32
	Addr   string
	// Replicas are the replicas the broker holds, by topic and partition.
	Replicas []ReplicaInfo
	// ControllerStoreErr, when set, says why the broker's controller
	// (Raft) store cannot be written: the broker then neither leads the
	// controller nor stands for election. Nil from a broker too old to
	// say.
	ControllerStoreErr error
	// DiskFree and DiskCapacity are the bytes free (to the broker's
	// user) and the size of the file system of the broker's data
	// directory; both 0 when unknown (a broker too old to say).
	DiskFree, DiskCapacity int64
	// Err says why the broker gave no answer: unreachable, timed out, or
	// it does not serve DescribeReplicas (errors.Is(Err,
	// protocol.ErrUnsupportedVersion)). Replicas is then empty.
	Err error
}

// DescribeReplicas asks every alive broker (as a fresh metadata request
// lists them) which replicas of topics it holds — all of its replicas for
// no topics — with each replica's role, epoch and offsets as its own log
// has them. Brokers are asked concurrently, each once and without retries:
// a broker that does not answer is reported in its BrokerReplicas.Err, not
// waited for beyond ctx or the request timeout. The error is non-nil only
// when the broker list could not be had. Results are by broker id.
func (c *Client) DescribeReplicas(ctx context.Context, topics ...string) ([]BrokerReplicas, error) {
	return c.describeReplicas(ctx, -1, topics)
}

// DescribeReplicaChecksums is DescribeReplicas with, for each replica, the
// checksum of its log from its start up to upTo (whole batches only): two
// replicas with the same StartOffset and ChecksumEnd hold identical bytes
// up to ChecksumEnd exactly when their Checksums are equal. Hashing reads
// the logs, so it costs what reading them costs.
func (c *Client) DescribeReplicaChecksums(ctx context.Context, upTo int64, topics ...string) ([]BrokerReplicas, error) {
	if upTo < 0 {
		return nil, fmt.Errorf("describe replica checksums: upTo %d is negative", upTo)
	}
	return c.describeReplicas(ctx, upTo, topics)
}

func (c *Client) describeReplicas(ctx context.Context, upTo int64, topics []string) ([]BrokerReplicas, error) {
	// A fresh broker list (bootstrap is a metadata refresh with retries):
	// the cached one may predate a broker's joining or leaving.
	if err := c.bootstrap(ctx); err != nil {
		return nil, fmt.Errorf("describe replicas: %w", err)
	}
	c.mu.Lock()
	out := make([]BrokerReplicas, 0, len(c.brokers))
	for id, b := range c.brokers {
		out = append(out, BrokerReplicas{Broker: id, Addr: b.addr})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b BrokerReplicas) int { return cmp.Compare(a.Broker, b.Broker) })

	var wg sync.WaitGroup
	sem := make(chan struct{}, describeReplicasConcurrency)
	for i := range out {
		sem <- struct{}{}
		wg.Add(1)
		go func(br *BrokerReplicas) {
			defer func() { <-sem; wg.Done() }()
			br.Replicas, br.ControllerStoreErr, br.DiskFree, br.DiskCapacity, br.Err = c.describeBrokerReplicas(ctx, br.Broker, upTo, topics)
		}(&out[i])
	}
	wg.Wait()
	return out, nil
}

// describeBrokerReplicas asks one broker, once: its replicas, its
// controller store's failure, and its disk's free bytes and size.
func (c *Client) describeBrokerReplicas(ctx context.Context, id int32, upTo int64, topics []string) (_ []ReplicaInfo, storeErr error, free, capacity int64, _ error) {
	req := &protocol.DescribeReplicasRequest{Topics: topics, ChecksumUpTo: upTo}
	m, _, err := c.roundTripOnce(ctx, id, req, new(protocol.DescribeReplicasResponse))
	if err != nil {
		return nil, nil, 0, 0, fmt.Errorf("broker %d: describe replicas: %w", id, err)
	}
	r := m.(*protocol.DescribeReplicasResponse)
	if r.BrokerID != id {
		// The address now belongs to another broker: its replicas are not
		// broker id's, and showing them as such would mislead.
		return nil, nil, 0, 0, fmt.Errorf("broker %d: describe replicas: answered by broker %d", id, r.BrokerID)
	}
	if r.ControllerStoreError != "" {
		storeErr = errors.New(r.ControllerStoreError)
	}
	out := make([]ReplicaInfo, 0, len(r.Replicas))
	for _, ri := range r.Replicas {
		out = append(out, ReplicaInfo{Topic: ri.Topic, Partition: ri.Partition, Leader: ri.Leader, LeaderEpoch: ri.LeaderEpoch,
			StartOffset: ri.StartOffset, EndOffset: ri.EndOffset, HighWatermark: ri.HighWatermark, SyncedOffset: ri.SyncedOffset,
			Checksum: ri.Checksum, ChecksumEnd: ri.ChecksumEnd, LogBytes: ri.LogBytes, Err: ri.ErrorCode.ErrWithDetail(ri.ErrorMessage)})
		if ri.Compacted {
			ci := &CleanerInfo{CleanBytes: ri.CleanBytes, DirtyBytes: ri.DirtyBytes, Failures: int(ri.CleanerFailures), Err: ri.CleanerError}
			if ri.LastCleanMs >= 0 {
				ci.LastClean = time.UnixMilli(ri.LastCleanMs)
			}
			out[len(out)-1].Cleaner = ci
		}
	}
	slices.SortFunc(out, func(a, b ReplicaInfo) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out, storeErr, r.DiskFree, r.DiskCapacity, nil
}

// ElectionResult is one partition's preferred-leader election.
type ElectionResult struct {
	Topic     string
	Partition int32
	// Leader is the partition's leader after the election, -1 for none.
	Leader int32
	// Err is nil when the preferred replica became leader. Otherwise
	// errors.Is(Err, protocol.ErrElectionNotNeeded) when it already was,
	// protocol.ErrPreferredLeaderNotAvailable when it is not alive or not
	// in the ISR, or another code.
	Err error
}

// ElectPreferredLeaders moves the leadership of every partition of topics
// (all topics for none) back to its preferred replica, the first of its
// replica list, wherever that replica is alive and in the ISR. Any broker
// takes the request and forwards it to the controller. Results are by
// topic and partition; the error is for the request as a whole.
func (c *Client) ElectPreferredLeaders(ctx context.Context, topics ...string) ([]ElectionResult, error) {
	req := &protocol.ElectLeadersRequest{Topics: topics, TimeoutMs: c.adminTimeoutMs()}
	// Idempotent: electing the preferred leader again changes nothing.
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.ElectLeadersResponse) }, true)
	if err != nil {
		return nil, fmt.Errorf("elect preferred leaders: %w", err)
	}
	rs := m.(*protocol.ElectLeadersResponse).Results
	out := make([]ElectionResult, 0, len(rs))
	for _, r := range rs {
		out = append(out, ElectionResult{Topic: r.Topic, Partition: r.Partition, Leader: r.Leader,
			Err: r.ErrorCode.ErrWithDetail(r.Message)})
	}
	slices.SortFunc(out, func(a, b ElectionResult) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	c.meta.requestRefresh()
	return out, nil
}
