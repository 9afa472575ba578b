package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// The queue groups of this broker (docs/queues.md): the half of the
// broker core that runs group.Coordinator's queue calls. A queue group
// lives on the coordinator of its id (the leader of its partition of the
// offsets topic, as a consumer group), and its windows are written to
// that partition with acks=all, through coordinate, before a receive or
// an outcome is answered.
//
// The coordinator reads the records it hands out: through the broker
// core for partitions this broker leads, from the leader with a Fetch
// (the inter-broker call of forward.go) for the others. A receive
// snapshots the windows (ending expired leases), reads the partitions
// without holding the coordinator's lock, acquires what it read under
// the lock, and answers with the records once the new windows are
// committed. Records archived by a call — rejected, out of deliveries —
// are copied to the dead-letter topic (`<topic>.dlq`, created on first
// use) in three steps (coordinateQueue): the windows marking them
// archiving are committed under the coordinator's lock, then the copies
// written without it, then the windows archiving them appended under it
// again. A record archiving is never delivered or accepted again, so a
// record ends accepted or in the dead-letter topic, never both; a copy
// not written is tried again, by this coordinator or the next one (dead
// letters are at least once).

// Bounds of the queue calls.
const (
	maxQueueRecords     = 10000                  // records of one receive
	maxQueueWait        = 30 * time.Second       // long-poll of one receive (and Config.MaxFetchWait)
	queuePollInterval   = 20 * time.Millisecond  // a waiting receive looks again
	maxQueueRaces       = 3                      // looks again at once after another member took what a look read
	queueRemotePoll     = 200 * time.Millisecond // and reads partitions led elsewhere again
	queueReadBytes      = 1 << 20                // bytes read of one partition per look
	maxQueueAckRange    = 1 << 16                // offsets of one outcome range
	maxQueueAckOffsets  = 1 << 18                // offsets of one QueueAck, all ranges
	queueDLQWait        = 10 * time.Second       // a dead-letter topic gets a leader
	queueDLQPollBackoff = 100 * time.Millisecond // while waiting for it
	queueDLQRetry       = 2 * time.Second        // a dead letter not written is tried again
)

// DeadLetterSuffix makes a topic's dead-letter topic name.
const DeadLetterSuffix = ".dlq"

// QueueMessage is one record a queue member acquired.
type QueueMessage struct {
	Topic      string
	Partition  int32
	Offset     int64
	Deliveries int
	Timestamp  int64
	Key, Value []byte
	Headers    []record.Header
}

// QueueReceive acquires up to max records of topics for member of the
// queue group, waiting up to wait for one, and returns them with their
// lease once the windows recording the acquisition are committed.
func (b *Broker) QueueReceive(ctx context.Context, groupID, member string, topics []string, max int, wait time.Duration) ([]QueueMessage, time.Duration, error) {
	keys, err := b.queueTopicKeys(topics)
	if err != nil {
		return nil, 0, err
	}
	return b.QueueReceivePartitions(ctx, groupID, member, keys, max, wait)
}

func (b *Broker) queueTopicKeys(topics []string) ([]group.QueueKey, error) {
	if len(topics) == 0 {
		return nil, &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: "a queue receive needs a member id, topics and a positive record count"}
	}
	return b.queueKeys(topics)
}

// QueueReceivePartitions is QueueReceive of the partitions keys only (a
// Kafka share fetch asks the leader of each partition for it).
func (b *Broker) QueueReceivePartitions(ctx context.Context, groupID, member string, keys []group.QueueKey, max int, wait time.Duration) ([]QueueMessage, time.Duration, error) {
	msgs, _, lease, err := b.QueueSettleAndReceive(ctx, nil, groupID, member, nil, keys, max, wait)
	return msgs, lease, err
}

// QueueSettleAndReceive applies member's outcomes, as QueueAck, then
// receives as QueueReceivePartitions, in one pass of the coordinator for
// both (the outcomes' windows are appended with the receive's first
// look). The outcomes are committed before anything is acquired; their
// refusals come back whatever the receive finds. An error means no
// outcome was applied, or (an indeterminate code) they may have been;
// once they are committed, a failure of a later look ends the receive
// with what it has, without an error. A receive with outcomes whose first
// look finds nothing answers at once, without waiting for records.
// ctx bounds the whole call; poll, once closed, ends only the wait for
// records, as at the end of wait (a front end's long-poll context,
// ended when its connection drains: drain.go); nil never does.
func (b *Broker) QueueSettleAndReceive(ctx context.Context, poll <-chan struct{}, groupID, member string, outcomes []QueueOutcome, keys []group.QueueKey, max int, wait time.Duration) ([]QueueMessage, []QueueRefusal, time.Duration, error) {
	if member == "" || len(keys) == 0 || max <= 0 {
		return nil, nil, 0, &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: "a queue receive needs a member id, topics and a positive record count"}
	}
	if err := b.queueCheckKeys(keys); err != nil {
		return nil, nil, 0, err
	}
	acks, err := queueAcks(outcomes)
	if err != nil {
		return nil, nil, 0, err
	}
	max = min(max, maxQueueRecords)
	wait = min(wait, maxQueueWait, b.cfg.MaxFetchWait)
	keys = slices.Clone(keys) // rotated below
	co, err := b.coordinatorFor(groupID)
	if err != nil {
		return nil, nil, 0, err
	}
	lease := b.queueConfig(groupID).Lease
	// Start at a different partition each time, so that one busy
	// partition does not starve the others.
	if n := len(keys); n > 1 {
		r := int(b.queueTurn.Add(1) % uint64(n))
		keys = append(keys[r:], keys[:r]...)
	}
	deadline := time.Now().Add(wait)
	var timer *time.Timer
	var remoteRead time.Time // the last look that read partitions led elsewhere
	var refused []QueueRefusal
	settled := false // the outcomes are committed
	races := 0
	for {
		// A waiting receive looks every queuePollInterval, but reads a
		// partition led by another broker (a Fetch on a new connection)
		// with nothing available at most every queueRemotePoll.
		full := time.Since(remoteRead) >= queueRemotePoll
		if full {
			remoteRead = time.Now()
		}
		out, acked, raced, err := b.queueReceiveOnce(ctx, co, groupID, member, acks, keys, max, !full)
		if acked != nil {
			refused, acks, settled = queueRefusals(acks, acked), nil, true
		}
		if err != nil && settled {
			// The outcomes are committed: their answer stands.
			b.logger.Debug("queue receive after outcomes", zap.String("group", groupID), zap.Error(err))
			return nil, refused, lease, nil
		}
		if err != nil || len(out) > 0 || acked != nil {
			// A receive that carried outcomes does not wait when it finds
			// nothing: their answer goes at once.
			return out, refused, lease, err
		}
		if raced && races < maxQueueRaces && time.Now().Before(deadline) {
			// Another member took what this look read: look again at once.
			races++
			continue
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, refused, lease, nil
		}
		if timer == nil {
			timer = time.NewTimer(min(left, queuePollInterval))
			defer timer.Stop()
		} else {
			timer.Reset(min(left, queuePollInterval))
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return nil, refused, lease, nil
		case <-poll:
			return nil, refused, lease, nil
		}
	}
}

// queueKeys lists the partitions of topics, refusing unknown and
// internal topics.
func (b *Broker) queueKeys(topics []string) ([]group.QueueKey, error) {
	md := b.store.Metadata()
	var keys []group.QueueKey
	for _, t := range topics {
		if t == OffsetsTopic {
			return nil, errInternalTopic
		}
		mt := md.Topics[t]
		if mt == nil {
			return nil, &protocol.Error{Code: protocol.ErrUnknownTopicOrPartition, Detail: "topic " + strconv.Quote(t) + " does not exist"}
		}
		for i := range mt.Partitions {
			keys = append(keys, group.QueueKey{Topic: t, Partition: int32(i)})
		}
	}
	return keys, nil
}

// queueCheckKeys refuses partitions of unknown and internal topics.
func (b *Broker) queueCheckKeys(keys []group.QueueKey) error {
	md := b.store.Metadata()
	for _, k := range keys {
		if k.Topic == OffsetsTopic {
			return errInternalTopic
		}
		if mt := md.Topics[k.Topic]; mt == nil || k.Partition < 0 || int(k.Partition) >= len(mt.Partitions) {
			return &protocol.Error{Code: protocol.ErrUnknownTopicOrPartition, Detail: fmt.Sprintf("%s/%d does not exist", k.Topic, k.Partition)}
		}
	}
	return nil
}

// queueData is what a receive read of one partition.
type queueData struct {
	next []int64                // offsets at and after the window's end
	recs map[int64]QueueMessage // the records it may hand out
}

// queueReceiveOnce is one look: snapshot (after applying acks, when
// there are any), read, acquire. With localOnly, partitions led
// elsewhere are read only for the records available in their windows.
// It returns the acks' per-offset answers (non-nil once they are
// committed), and raced when what it read was taken by another member
// between the snapshot and the acquisition (a look again may find more).
func (b *Broker) queueReceiveOnce(ctx context.Context, co *coordinator, groupID, member string, acks []group.QueueAck, keys []group.QueueKey, max int, localOnly bool) (out []QueueMessage, acked [][]error, raced bool, err error) {
	var snaps []group.QueueSnapshot
	var applied [][]error
	err = b.coordinateQueue(ctx, co, groupID, func(c *group.Coordinator) ([]group.QueueDead, []group.Record, error) {
		if err := c.AdmitQueueGroup(groupID); err != nil {
			return nil, nil, err
		}
		now := time.Now()
		var dead []group.QueueDead
		var recs []group.Record
		if len(acks) > 0 {
			applied, dead, recs = queueApply(c, now, groupID, member, acks)
		}
		s, d, r := c.QueueSnapshot(now, groupID, keys, max)
		snaps, dead, recs = s, append(dead, d...), append(recs, r...)
		return dead, recs, nil
	})
	if err != nil {
		return nil, nil, false, err
	}
	acked = applied // committed
	data := map[group.QueueKey]*queueData{}
	var reads []group.QueueRead
	found := 0
	for _, s := range snaps {
		if found >= max {
			break
		}
		if len(s.Available) == 0 && (s.AtCap || localOnly && !b.leads(s.Topic, s.Partition)) {
			continue
		}
		d, err := b.queueReadPartition(ctx, s, max-found)
		if err != nil {
			b.logger.Debug("queue read", zap.String("topic", s.Topic), zap.Int32("partition", s.Partition), zap.Error(err))
			continue
		}
		if len(d.recs) == 0 && len(s.Available) == 0 {
			continue
		}
		found += len(d.recs)
		data[s.QueueKey] = d
		reads = append(reads, group.QueueRead{QueueKey: s.QueueKey, Next: d.next})
	}
	if len(reads) == 0 {
		return nil, acked, false, nil
	}
	var got []group.QueueDelivery
	err = b.coordinateQueue(ctx, co, groupID, func(c *group.Coordinator) ([]group.QueueDead, []group.Record, error) {
		var dead []group.QueueDead
		var recs []group.Record
		got, dead, recs = c.QueueAcquire(time.Now(), groupID, member, max, reads)
		return dead, recs, nil
	})
	if err != nil {
		return nil, acked, false, err
	}
	out = make([]QueueMessage, 0, len(got))
	for _, g := range got {
		m, ok := data[g.QueueKey].recs[g.Offset]
		if !ok {
			// Available after the snapshot (a lease ran out meanwhile):
			// not read. Its lease runs out and it is delivered again.
			continue
		}
		m.Deliveries = g.Deliveries
		out = append(out, m)
	}
	return out, acked, len(got) == 0 && found > 0, nil
}

// queueReadPartition reads a partition for a receive: from the first
// available offset (or the window's end), the records available and up
// to want new ones.
func (b *Broker) queueReadPartition(ctx context.Context, s group.QueueSnapshot, want int) (*queueData, error) {
	avail := make(map[int64]bool, len(s.Available))
	from := s.End
	for _, off := range s.Available {
		avail[off] = true
		from = min(from, off)
	}
	d := &queueData{recs: make(map[int64]QueueMessage, min(len(s.Available)+want, 1024))}
	newOnes := 0
	err := b.queueRead(ctx, s.Topic, s.Partition, from, func(r record.Record) bool {
		switch {
		case avail[r.Offset]:
			d.recs[r.Offset] = queueMessage(s.Topic, s.Partition, r)
		case r.Offset >= s.End && !s.AtCap && newOnes < want:
			d.next = append(d.next, r.Offset)
			d.recs[r.Offset] = queueMessage(s.Topic, s.Partition, r)
			newOnes++
		}
		return r.Offset < s.End || newOnes < want
	})
	return d, err
}

// leads reports whether this broker leads the partition with its log open.
func (b *Broker) leads(topic string, part int32) bool {
	p := b.parts.get(topic, part)
	if p == nil {
		return false
	}
	_, ok := p.leading()
	return ok
}

// queueMessage copies a record out of the reader's buffers (key and
// value into one allocation).
func queueMessage(topic string, part int32, r record.Record) QueueMessage {
	m := QueueMessage{Topic: topic, Partition: part, Offset: r.Offset, Timestamp: r.Timestamp}
	kv := make([]byte, len(r.Key)+len(r.Value))
	if r.Key != nil {
		m.Key = kv[:len(r.Key):len(r.Key)]
		copy(m.Key, r.Key)
	}
	if r.Value != nil {
		m.Value = kv[len(r.Key):]
		copy(m.Value, r.Value)
	}
	if len(r.Headers) > 0 {
		m.Headers = make([]record.Header, len(r.Headers))
		for i, h := range r.Headers {
			m.Headers[i] = record.Header{Key: bytesCopy(h.Key), Value: bytesCopy(h.Value)}
		}
	}
	return m
}

func bytesCopy(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// queueRead reads committed records of a partition from offset (from the
// log start when offset is below it), one read of up to queueReadBytes,
// calling fn for each record until it returns false. A record passed to
// fn aliases the log's buffers (fn copies what it keeps).
func (b *Broker) queueRead(ctx context.Context, topic string, part int32, offset int64, fn func(record.Record) bool) error {
	parse := func(buf []byte) error {
		rd := record.NewReader(record.Limits{})
		for len(buf) > 0 {
			batch, err := record.ParseHeader(buf, 0)
			if err != nil {
				return fmt.Errorf("%s/%d: %w", topic, part, err)
			}
			buf = buf[batch.Size():]
			if batch.Attributes().Control() || batch.LastOffset() < offset {
				continue
			}
			if err := rd.Reset(batch); err != nil {
				return fmt.Errorf("%s/%d batch at %d: %w", topic, part, batch.BaseOffset(), err)
			}
			rd.SkipTo(offset) // a receive reads on from the middle of a large batch
			for rd.Next() {
				if rec := rd.Record(); rec.Offset >= offset && !fn(*rec) {
					return nil
				}
			}
			if err := rd.Err(); err != nil {
				return fmt.Errorf("%s/%d batch at %d: %w", topic, part, batch.BaseOffset(), err)
			}
		}
		return nil
	}
	logStart, err := b.queueFetch(ctx, topic, part, offset, parse)
	if errors.Is(err, protocol.ErrOffsetOutOfRange) && logStart > offset {
		offset = logStart
		_, err = b.queueFetch(ctx, topic, part, logStart, parse)
	}
	return err
}

// queueFetch reads whole batches of a partition from offset, below its
// high watermark, and passes them to fn: through the core when this
// broker leads it (fn reads the log's view in place, without a copy),
// else from its leader. It returns the log start offset along (with
// OFFSET_OUT_OF_RANGE too).
func (b *Broker) queueFetch(ctx context.Context, topic string, part int32, offset int64, fn func([]byte) error) (int64, error) {
	f := Fetch{MaxBytes: queueReadBytes, Parts: []FetchPart{{Topic: topic, Partition: part, Offset: offset, MaxBytes: queueReadBytes, LeaderEpoch: -1}}}
	b.StartFetch(&f)
	fp := &f.Parts[0]
	if fp.Err == nil {
		err := fn(fp.Result.Records.Bytes())
		logStart := fp.Result.LogStartOffset
		f.Release()
		return logStart, err
	}
	logStart := fp.Result.LogStartOffset
	err := fp.Err
	f.Release()
	if !errors.Is(err, protocol.ErrNotLeaderOrFollower) {
		return logStart, err
	}
	t := b.store.Metadata().Topics[topic]
	if t == nil || int(part) >= len(t.Partitions) {
		return -1, protocol.ErrUnknownTopicOrPartition
	}
	addr, ok := b.brokerAddr(t.Partitions[part].Leader)
	if !ok {
		return -1, protocol.ErrLeaderNotAvailable
	}
	req := &protocol.FetchRequest{ReplicaID: -1, ReplicaEpoch: -1, MaxBytes: queueReadBytes,
		Topics: []protocol.FetchTopic{{Name: topic, Partitions: []protocol.FetchPartition{{Partition: part, CurrentLeaderEpoch: -1,
			FetchOffset: offset, LogStartOffset: -1, PartitionMaxBytes: queueReadBytes}}}}}
	var resp protocol.FetchResponse
	if err := b.fwd.call(ctx, addr, groupWriteTimeout, req, &resp); err != nil {
		return -1, fmt.Errorf("fetch %s/%d from the leader at %s: %w", topic, part, addr, err)
	}
	if resp.ErrorCode != protocol.NoError {
		return -1, resp.ErrorCode.Err()
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return -1, fmt.Errorf("fetch %s/%d from %s: %w", topic, part, addr, protocol.ErrInvalidRequest)
	}
	pr := resp.Topics[0].Partitions[0]
	if err := pr.ErrorCode.Err(); err != nil {
		return pr.LogStartOffset, err
	}
	return pr.LogStartOffset, fn(pr.Records)
}

// coordinateQueue is coordinate for the queue calls, with fn's dead
// letters in three steps (the path of dead letters only: a call without
// one writes its windows once, as coordinate does):
//
//  1. under co's lock, fn's records, which hold the windows marking the
//     dead letters' records archiving, are appended and waited for
//     (acks=all), so that no copy is written for a record the log could
//     still hand out;
//  2. without the lock, the copies are written to the dead-letter topics
//     (up to queueDLQWait while a topic has no leader: the other calls on
//     co do not wait for it). No other call or retry writes them
//     meanwhile: taken by fn, they are in this call's hands only;
//  3. under the lock again, if co still holds the Coordinator of step 1,
//     the windows archiving the records copied are appended (and waited
//     for by coordinate), and the copies not written are handed back, to
//     be tried again by the first call on their partition (or
//     retryDeadLetters) after queueDLQRetry. If co was dropped or
//     reloaded meanwhile, nothing is applied: the Coordinator that loads
//     the windows writes the copies again (at least once).
//
// A failure at step 1 drops the coordinator and is answered as any
// failed write of group records (definite when nothing was appended). Once
// step 1 is committed the call's outcomes stand, whatever happens to the
// copies or to step 3: its records stay archiving in the committed
// windows, and the coordinator that loads them writes their copies again.
func (b *Broker) coordinateQueue(ctx context.Context, co *coordinator, groupID string, fn func(*group.Coordinator) ([]group.QueueDead, []group.Record, error)) error {
	var dead []group.QueueDead
	var holder *group.Coordinator // the Coordinator that committed step 1
	err := b.coordinate(ctx, co, func(c *group.Coordinator) ([]group.Record, error) {
		b.syncQueueConfigs(co)
		d, recs, err := fn(c)
		if len(d) == 0 {
			return recs, err
		}
		if err != nil {
			// A refusal with dead letters: c holds archiving records its
			// log does not. (No call returns both.)
			co.c = nil // coordinate holds co.mu
			kick(b.groups.kick)
			return nil, err
		}
		if err := b.commitQueueRecords(ctx, co, recs); err != nil {
			return nil, err
		}
		dead, holder = d, c
		return nil, nil
	})
	if holder == nil {
		return err
	}
	if err != nil {
		// Step 1 is committed (coordinate's wait for it failed after):
		// the copies are written all the same.
		b.logger.Debug("queue call after its dead letters' windows", zap.String("group", groupID), zap.Error(err))
	}
	written, failed, werr := b.writeDeadLetters(ctx, groupID, dead)
	// Step 3 archives copies written: a member gone meanwhile does not
	// abandon it (that would only write them twice).
	err = b.coordinate(context.WithoutCancel(ctx), co, func(c *group.Coordinator) ([]group.Record, error) {
		if c != holder {
			return nil, nil
		}
		if len(failed) > 0 {
			c.QueueDeadLettersNotWritten(groupID, failed, time.Now().Add(queueDLQRetry))
		}
		return c.QueueDeadLettersWritten(groupID, written), nil
	})
	if len(failed) > 0 {
		b.logger.Warn("dead letters not written; their records stay archiving and are tried again", zap.String("group", groupID),
			zap.Int("records", len(failed)), zap.Duration("retry", queueDLQRetry), zap.Error(werr))
	}
	if err != nil {
		// Step 3 was not committed: the call's outcomes stand (step 1),
		// the coordinator that loads them writes the copies again.
		b.logger.Debug("window archiving dead letters not committed", zap.String("group", groupID), zap.Error(err))
	}
	return nil
}

// retryDeadLetters writes the dead letters due of the loaded
// coordinators' queue groups (restored archiving after a load, or not
// written and their retry time come), so that they do not wait for a
// call on their partitions. groupLoop runs it at its ticks, one at a
// time.
func (b *Broker) retryDeadLetters(ctx context.Context) {
	for _, co := range b.groups.loaded() {
		co.mu.Lock()
		var ids []string
		if co.c != nil {
			ids = co.c.QueueDeadLettersDue(time.Now())
		}
		co.mu.Unlock()
		for _, id := range ids {
			err := b.coordinateQueue(ctx, co, id, func(c *group.Coordinator) ([]group.QueueDead, []group.Record, error) {
				_, dead, recs, err := c.DescribeQueue(time.Now(), id)
				return dead, recs, err
			})
			if err != nil {
				b.logger.Debug("dead letters due not written", zap.String("group", id), zap.Error(err))
				break
			}
		}
	}
}

// commitQueueRecords appends recs and waits for them with acks=all,
// under co's lock (held by the caller, who returns what it returns to
// coordinate). A failure drops co, as coordinate does.
func (b *Broker) commitQueueRecords(ctx context.Context, co *coordinator, recs []group.Record) error {
	if len(recs) == 0 {
		return nil
	}
	waits, err := b.appendGroupRecords(co, recs)
	if len(waits) > 0 {
		co.last = &waits[len(waits)-1]
	}
	if err == nil {
		wctx, cancel := context.WithTimeout(ctx, groupWriteTimeout)
		for _, w := range waits {
			if err = w.Wait(wctx); err != nil {
				break
			}
		}
		cancel()
	}
	if err == nil {
		return nil
	}
	co.c = nil
	kick(b.groups.kick)
	b.logger.Warn("group records archiving dead letters not committed; reloading the coordinator", zap.Int32("partition", co.index), zap.Error(err))
	return errGroupAppend(err, len(waits) > 0)
}

// writeDeadLetters copies archived records to their topics' dead-letter
// topics with acks=all, with headers naming why and where from, one
// batch per partition. It returns the dead letters written and those
// that were not (or may not have been), with the last error.
func (b *Broker) writeDeadLetters(ctx context.Context, groupID string, dead []group.QueueDead) (written, failed []group.QueueDead, err error) {
	byPart := map[group.QueueKey][]group.DeadLetter{}
	var order []group.QueueKey
	for _, d := range dead {
		if byPart[d.QueueKey] == nil {
			order = append(order, d.QueueKey)
		}
		byPart[d.QueueKey] = append(byPart[d.QueueKey], d.DeadLetter)
	}
	for _, k := range order {
		dls := byPart[k]
		if perr := b.writePartitionDeadLetters(ctx, groupID, k, dls); perr != nil {
			err = perr
			for _, dl := range dls {
				failed = append(failed, group.QueueDead{QueueKey: k, DeadLetter: dl})
			}
			continue
		}
		for _, dl := range dls {
			written = append(written, group.QueueDead{QueueKey: k, DeadLetter: dl})
		}
		b.logger.Info("dead letters written", zap.String("group", groupID), zap.String("topic", k.Topic), zap.Int32("partition", k.Partition), zap.Int("records", len(dls)))
	}
	return written, failed, err
}

// writePartitionDeadLetters copies the archived records dls of k to its
// dead-letter topic in one batch.
func (b *Broker) writePartitionDeadLetters(ctx context.Context, groupID string, k group.QueueKey, dls []group.DeadLetter) error {
	slices.SortFunc(dls, func(a, b group.DeadLetter) int { return int(a.Offset - b.Offset) })
	// The records themselves: read from the first, as far as one read
	// goes, then on from the first still missing.
	recs := map[int64]QueueMessage{}
	want := map[int64]bool{}
	for _, dl := range dls {
		want[dl.Offset] = true
	}
	for _, dl := range dls {
		if _, ok := recs[dl.Offset]; ok {
			continue
		}
		last := dls[len(dls)-1].Offset
		if err := b.queueRead(ctx, k.Topic, k.Partition, dl.Offset, func(r record.Record) bool {
			if want[r.Offset] {
				recs[r.Offset] = queueMessage(k.Topic, k.Partition, r)
			}
			return r.Offset < last
		}); err != nil {
			return fmt.Errorf("read the dead letters of %s/%d: %w", k.Topic, k.Partition, err)
		}
	}
	bld := record.NewBuilder(record.None)
	for _, dl := range dls {
		m, ok := recs[dl.Offset]
		if !ok {
			// Gone from the log (retention): the headers still say
			// what it was.
			m = QueueMessage{Timestamp: -1}
		}
		hs := append(slices.Clip(m.Headers),
			record.Header{Key: []byte(protocol.DeadLetterReason), Value: []byte(dl.Reason)},
			record.Header{Key: []byte(protocol.DeadLetterDeliveries), Value: []byte(strconv.Itoa(dl.Deliveries))},
			record.Header{Key: []byte(protocol.DeadLetterTopic), Value: []byte(k.Topic)},
			record.Header{Key: []byte(protocol.DeadLetterPartition), Value: []byte(strconv.Itoa(int(k.Partition)))},
			record.Header{Key: []byte(protocol.DeadLetterOffset), Value: []byte(strconv.FormatInt(dl.Offset, 10))},
			record.Header{Key: []byte(protocol.DeadLetterTimestamp), Value: []byte(strconv.FormatInt(m.Timestamp, 10))})
		bld.Append(time.Now().UnixMilli(), m.Key, m.Value, hs)
	}
	batch, err := bld.Build()
	if err != nil {
		return err
	}
	return b.produceDeadLetters(ctx, b.deadLetterTopic(groupID, k.Topic), k, batch)
}

// produceDeadLetters appends batch to topic, the dead-letter topic of
// k's (created on first use with k's topic's partition count), on the
// partition of the same index (modulo its partitions), with acks=all,
// trying again for up to queueDLQWait while the error is retriable.
func (b *Broker) produceDeadLetters(ctx context.Context, topic string, k group.QueueKey, batch record.Batch) error {
	if hook := b.deadLetterHook.Load(); hook != nil {
		(*hook)(ctx)
	}
	md := b.store.Metadata()
	if md.Topics[topic] == nil {
		n := int32(1)
		if t := md.Topics[k.Topic]; t != nil {
			n = int32(len(t.Partitions))
		}
		rf := int16(min(3, len(md.PlacementBrokers())))
		errs := b.CreateTopics(ctx, []NewTopic{{Name: topic, Partitions: n, ReplicationFactor: max(rf, 1)}}, false)
		if err := errs[0]; err != nil && !errors.Is(err, controller.ErrTopicExists) {
			return fmt.Errorf("create the dead-letter topic %s: %w", topic, err)
		}
	}
	deadline := time.Now().Add(queueDLQWait)
	for {
		err := b.produceOnce(ctx, topic, k.Partition, batch)
		if err == nil {
			return nil
		}
		if !codeOf(err).Retriable() || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("write to the dead-letter topic %s: %w", topic, err)
		}
		t := time.NewTimer(queueDLQPollBackoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

func codeOf(err error) protocol.ErrorCode {
	c, _ := ErrorCode(err)
	return c
}

// produceOnce appends batch to partition part (modulo the topic's
// partitions) of topic with acks=all, here or at its leader.
func (b *Broker) produceOnce(ctx context.Context, topic string, part int32, batch record.Batch) error {
	t := b.store.Metadata().Topics[topic]
	if t == nil || len(t.Partitions) == 0 {
		return protocol.ErrUnknownTopicOrPartition
	}
	part %= int32(len(t.Partitions))
	leader := t.Partitions[part].Leader
	if leader == b.cfg.BrokerID {
		// The builder's bytes are stamped by the append: give it its own copy.
		la, err := b.Append(nil, topic, part, slices.Clone([]byte(batch)), AcksAll)
		if err != nil {
			return err
		}
		return la.Wait(ctx)
	}
	addr, ok := b.brokerAddr(leader)
	if !ok {
		return protocol.ErrLeaderNotAvailable
	}
	req := &protocol.ProduceRequest{Acks: protocol.AcksAll, TimeoutMs: int32(groupWriteTimeout.Milliseconds()),
		Topics: []protocol.ProduceTopic{{Name: topic, Partitions: []protocol.ProducePartition{{Partition: part, Records: batch}}}}}
	var resp protocol.ProduceResponse
	if err := b.fwd.call(ctx, addr, groupWriteTimeout, req, &resp); err != nil {
		if errors.Is(err, protocol.ErrNotSent) {
			return protocol.ErrLeaderNotAvailable
		}
		// Sent, and the answer lost: it may have been appended.
		return &protocol.Error{Code: protocol.ErrRequestTimedOut, Detail: fmt.Sprintf("produce to %s/%d at %s: %v", topic, part, addr, err)}
	}
	if resp.ErrorCode != protocol.NoError {
		return resp.ErrorCode.Err()
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return fmt.Errorf("produce to %s/%d at %s: %w", topic, part, addr, protocol.ErrInvalidRequest)
	}
	pr := resp.Topics[0].Partitions[0]
	return pr.ErrorCode.ErrWithDetail(pr.ErrorMessage)
}

// QueueOutcome is a member's outcome for a range of offsets.
type QueueOutcome struct {
	Topic       string
	Partition   int32
	First, Last int64
	Outcome     group.Outcome
	Delay       time.Duration
	Reason      string
}

// QueueRefusal is a range of offsets whose outcome was refused.
type QueueRefusal struct {
	Topic       string
	Partition   int32
	First, Last int64
	Err         error
}

// QueueAck applies a member's outcomes at the queue group's coordinator
// and answers once the windows are committed (after the dead letters
// they archive are written). Offsets refused — not held by the member,
// never delivered — come back as ranges, each with a definite error.
func (b *Broker) QueueAck(ctx context.Context, groupID, member string, outcomes []QueueOutcome) ([]QueueRefusal, error) {
	acks, err := queueAcks(outcomes)
	if err != nil {
		return nil, err
	}
	co, err := b.coordinatorFor(groupID)
	if err != nil {
		return nil, err
	}
	var errs [][]error
	err = b.coordinateQueue(ctx, co, groupID, func(c *group.Coordinator) ([]group.QueueDead, []group.Record, error) {
		var dead []group.QueueDead
		var recs []group.Record
		var err error
		errs, dead, recs, err = c.QueueAck(time.Now(), groupID, member, acks)
		return dead, recs, err
	})
	if err != nil {
		return nil, err
	}
	return queueRefusals(acks, errs), nil
}

// queueAcks checks outcomes (bounds checked before anything is
// allocated for their offsets) and lists their offsets.
func queueAcks(outcomes []QueueOutcome) ([]group.QueueAck, error) {
	if len(outcomes) == 0 {
		return nil, nil
	}
	acks := make([]group.QueueAck, len(outcomes))
	total := int64(0)
	for _, o := range outcomes {
		if o.Last < o.First || o.First < 0 || o.Last-o.First >= maxQueueAckRange {
			return nil, &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: fmt.Sprintf("offset range %d to %d of %s/%d: must be ascending, at most %d offsets", o.First, o.Last, o.Topic, o.Partition, maxQueueAckRange)}
		}
		// Checked before anything is allocated for the offsets.
		if total += o.Last - o.First + 1; total > maxQueueAckOffsets {
			return nil, &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: fmt.Sprintf("more than %d offsets in one acknowledgement", maxQueueAckOffsets)}
		}
	}
	for i, o := range outcomes {
		if o.Outcome < group.Accept || o.Outcome > group.Renew || o.Delay < 0 {
			return nil, &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: fmt.Sprintf("outcome %d, delay %v", o.Outcome, o.Delay)}
		}
		offs := make([]int64, 0, o.Last-o.First+1)
		for off := o.First; off <= o.Last; off++ {
			offs = append(offs, off)
		}
		acks[i] = group.QueueAck{QueueKey: group.QueueKey{Topic: o.Topic, Partition: o.Partition}, Offsets: offs, Outcome: o.Outcome, Delay: o.Delay, Reason: o.Reason}
	}
	return acks, nil
}

// queueApply is group.Coordinator.QueueAck for outcomes that ride on a
// receive: a group the coordinator does not hold refuses each offset
// (GROUP_ID_NOT_FOUND) instead of the whole receive.
func queueApply(c *group.Coordinator, now time.Time, groupID, member string, acks []group.QueueAck) ([][]error, []group.QueueDead, []group.Record) {
	errs, dead, recs, err := c.QueueAck(now, groupID, member, acks)
	if err != nil {
		errs = make([][]error, len(acks))
		for i, a := range acks {
			errs[i] = make([]error, len(a.Offsets))
			for j := range errs[i] {
				errs[i][j] = err
			}
		}
	}
	return errs, dead, recs
}

// queueRefusals folds the offsets refused into ranges of one error code.
func queueRefusals(acks []group.QueueAck, errs [][]error) []QueueRefusal {
	var out []QueueRefusal
	for i, a := range acks {
		for j, e := range errs[i] {
			if e == nil {
				continue
			}
			off := a.Offsets[j]
			if n := len(out); n > 0 && out[n-1].Topic == a.Topic && out[n-1].Partition == a.Partition && out[n-1].Last == off-1 && codeOf(out[n-1].Err) == codeOf(e) {
				out[n-1].Last = off
				continue
			}
			out = append(out, QueueRefusal{Topic: a.Topic, Partition: a.Partition, First: off, Last: off, Err: e})
		}
	}
	return out
}

// DescribeQueueGroup describes a queue group at its coordinator.
func (b *Broker) DescribeQueueGroup(ctx context.Context, groupID string) ([]group.QueuePartitionDescription, time.Duration, error) {
	co, err := b.coordinatorFor(groupID)
	if err != nil {
		return nil, 0, err
	}
	var out []group.QueuePartitionDescription
	err = b.coordinateQueue(ctx, co, groupID, func(c *group.Coordinator) ([]group.QueueDead, []group.Record, error) {
		var dead []group.QueueDead
		var recs []group.Record
		var err error
		out, dead, recs, err = c.DescribeQueue(time.Now(), groupID)
		return dead, recs, err
	})
	return out, b.queueConfig(groupID).Lease, err
}

// ResetQueueGroup moves a queue group's windows of the partitions named
// to their offsets, dropping every state in them.
func (b *Broker) ResetQueueGroup(ctx context.Context, groupID string, to map[group.QueueKey]int64) error {
	md := b.store.Metadata()
	for k := range to {
		if t := md.Topics[k.Topic]; k.Topic == OffsetsTopic || t == nil || k.Partition < 0 || int(k.Partition) >= len(t.Partitions) {
			return &protocol.Error{Code: protocol.ErrUnknownTopicOrPartition, Detail: fmt.Sprintf("%s/%d", k.Topic, k.Partition)}
		}
	}
	co, err := b.coordinatorFor(groupID)
	if err != nil {
		return err
	}
	return b.coordinateQueue(ctx, co, groupID, func(c *group.Coordinator) ([]group.QueueDead, []group.Record, error) {
		if err := c.AdmitQueueGroup(groupID); err != nil {
			return nil, nil, err
		}
		return nil, c.ResetQueue(groupID, to), nil
	})
}
