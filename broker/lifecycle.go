package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/replica"
	"github.com/sluicemq/sluice/vfs"
)

// cleanShutdownFile records, in the data directory, the broker epoch of a
// clean shutdown: every log closed cleanly after leadership moved away.
// Start reads and removes it, and registers with it as the previous epoch,
// which the controller uses to decide whether this broker, as the last
// in-sync replica of a partition, may lead it again (R11). A checkpoint
// holding the epoch (files.go).
const cleanShutdownFile = "broker-clean-shutdown"

// writeCleanShutdown records a clean shutdown in epoch.
func writeCleanShutdown(fs vfs.FS, dataDir string, epoch int64) error {
	if err := log.NewCheckpoint(fs, filepath.Join(dataDir, cleanShutdownFile)).WriteInt64(epoch); err != nil {
		return fmt.Errorf("broker: record clean shutdown: %w", err)
	}
	return nil
}

// previousEpoch reads what the last run left: the epoch of a clean
// shutdown, 0 after an unclean stop, -1 for an empty data directory (new,
// or wiped: whatever this broker held is gone). The marker is removed
// durably before the broker registers, so a crash from now on is unclean.
func previousEpoch(fs vfs.FS, dataDir string) (int64, error) {
	c := log.NewCheckpoint(fs, filepath.Join(dataDir, cleanShutdownFile))
	epoch, err := c.ReadInt64Legacy(legacyInt64)
	switch {
	case err == nil || errors.Is(err, log.ErrCorruptCheckpoint):
		if rerr := c.Remove(); rerr != nil {
			return 0, fmt.Errorf("broker: %w", rerr)
		}
		if err != nil || epoch < 1 {
			return 0, nil // damaged: treat as unclean
		}
		return epoch, nil
	case !errors.Is(err, os.ErrNotExist):
		return 0, fmt.Errorf("broker: %w", err)
	}
	entries, err := fs.ReadDir(dataDir)
	if err != nil {
		return 0, fmt.Errorf("broker: data dir: %w", err)
	}
	for _, e := range entries {
		if e.Name() != ".lock" {
			return 0, nil
		}
	}
	return -1, nil
}

// dirIDFile names the data directory: a random id made at the first
// start. The controller refuses a registration from another directory
// while the id is registered alive (two brokers given one id); a wiped
// directory gets a new id, so it waits until its old incarnation is
// fenced. A checkpoint holding the id as text.
const dirIDFile = "broker-dir-id"

// dataDirID reads the directory's id, making it at the first start. An
// empty or damaged id is replaced, as for a wiped directory.
func dataDirID(fs vfs.FS, dataDir string) (string, error) {
	c := log.NewCheckpoint(fs, filepath.Join(dataDir, dirIDFile))
	b, err := c.ReadLegacy(nil, func(old []byte) ([]byte, error) { return bytes.TrimSpace(old), nil })
	switch {
	case err == nil && len(b) > 0:
		return string(b), nil
	case err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, log.ErrCorruptCheckpoint):
		return "", fmt.Errorf("broker: %w", err)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("broker: data dir id: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	if err := c.Write([]byte(id)); err != nil {
		return "", fmt.Errorf("broker: %w", err)
	}
	return id, nil
}

// controlledShutdown moves this broker's leaderships to other in-sync
// replicas before it stops. It refuses new produces (a definite,
// retriable NOT_LEADER_OR_FOLLOWER), lets the followers catch up so the
// acks=all produces already appended are acknowledged rather than failed,
// then fences itself through the controller, which elects new leaders
// from the ISRs at once, and applies the result so its own leader states
// resign. A fence that fails (no leader for the moment, leadership lost
// while committing: a restarted voter's election) is proposed again until
// ControlledShutdownTimeout; fencing an epoch twice changes nothing. Then
// it keeps its connections open while producers still come
// (lingerAfterDrain). Producers see retried requests, not failures.
// Without a controller leader for half of ControlledShutdownTimeout (a
// cluster that lost its quorum) it gives up: the others detect the
// failure.
func (b *Broker) controlledShutdown() {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ControlledShutdownTimeout)
	defer cancel()
	for {
		if _, ok := b.node.Leader(); ok {
			break
		}
		if time.Since(start) > b.cfg.ControlledShutdownTimeout/2 {
			b.logger.Info("controlled shutdown skipped: no controller leader")
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.draining.Store(true)
	drainUntil := time.Now().Add(b.cfg.ControlledShutdownTimeout / 2)
	for (b.appending.Load() > 0 || !b.parts.replicated()) && time.Now().Before(drainUntil) {
		time.Sleep(10 * time.Millisecond)
	}
	epoch := b.epoch.Load()
	for {
		_, err := b.node.Propose(ctx, controller.FenceBroker{ID: b.cfg.BrokerID, Epoch: epoch})
		if err == nil {
			break
		}
		if ctx.Err() != nil || errors.Is(err, controller.ErrStaleBrokerEpoch) || errors.Is(err, controller.ErrClosed) {
			b.logger.Warn("controlled shutdown: leaderships not moved", zap.Error(err))
			return
		}
		b.logger.Debug("controlled shutdown: fence again", zap.Error(err))
		time.Sleep(50 * time.Millisecond)
	}
	b.parts.reconcile(b.store.Metadata())
	b.logger.Info("controlled shutdown: leaderships moved", zap.Int64("broker_epoch", epoch))
	if len(b.store.Metadata().AliveBrokers()) > 0 {
		// Someone took the leaderships over: producers move there.
		b.lingerAfterDrain(time.Now().Add(b.cfg.ControlledShutdownTimeout / 4))
	}
}

// drainQuiet is how long no produce must have come for lingerAfterDrain
// to let the connections close: above a client's retry backoff after a
// refusal, the time its metadata takes to name the new leader.
const drainQuiet = 300 * time.Millisecond

// lingerAfterDrain keeps the connections open, refusing produces, until
// none has come for drainQuiet, or until deadline. A producer whose
// metadata still names this broker retries here, is refused (definite)
// and moves on; closing the connection under a produce it just sent
// would make that produce's outcome unknown (R14): the client cannot tell
// whether it was read.
func (b *Broker) lingerAfterDrain(deadline time.Time) {
	for time.Now().Before(deadline) && time.Since(time.Unix(0, b.refusedAt.Load())) < drainQuiet {
		time.Sleep(10 * time.Millisecond)
	}
}

// isrLoop proposes ISR changes for the partitions this broker leads: a
// follower not caught up for ReplicaMaxLag leaves the ISR, one that
// reached the high watermark in this epoch comes back (with the broker
// epoch it fetched in, R10). It owns the high watermark reports and the
// offline replica reports too (hwReportLoop, offlineLoop), which run
// beside it so a slow ISR change does not hold them up.
func (b *Broker) isrLoop(ctx context.Context) {
	reported, offline := make(chan struct{}), make(chan struct{})
	go func() { defer close(reported); b.hwReportLoop(ctx) }()
	go func() { defer close(offline); b.offlineLoop(ctx) }()
	defer func() { <-reported; <-offline }()
	t := time.NewTicker(min(b.cfg.ReplicaMaxLag/4, 250*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		b.maintainISRs(ctx)
	}
}

// isrChange is one planned ISR change of p and what it changes, for the
// log.
type isrChange struct {
	p           *partition
	c           controller.AlterPartition
	isr, shrink []int32
}

// maintainISRs proposes the ISR changes of every partition led here that
// needs one, all in one controller write (controller.AlterPartitions; in
// chunks past its bound): a broker back from a restart rejoins thousands
// of ISRs in a pass, not at one Raft round trip per partition.
func (b *Broker) maintainISRs(ctx context.Context) {
	var changes []isrChange
	md := b.store.Metadata()
	// The controller adds to an ISR only a broker alive at the epoch it
	// fetched in: proposing another would hold the high watermark for
	// nothing (replica.Leader.ExpandCandidates), a stopping broker's
	// follower, say, until it falls behind.
	eligible := func(m replica.Member) bool {
		br, ok := md.Brokers[m.ID]
		return ok && br.State == controller.BrokerAlive && br.Epoch == m.BrokerEpoch
	}
	for _, h := range b.parts.held() {
		if ch, ok := planISR(h.p, h.topicID, b.cfg.BrokerID, eligible); ok {
			changes = append(changes, ch)
		}
	}
	for chunk := range slices.Chunk(changes, controller.MaxAlterPartitions) {
		if ctx.Err() != nil {
			return
		}
		b.alterISRs(ctx, chunk)
	}
}

// alterISRs proposes changes in one controller write and logs each
// outcome.
func (b *Broker) alterISRs(ctx context.Context, changes []isrChange) {
	cs := make([]controller.AlterPartition, len(changes))
	for i := range changes {
		cs[i] = changes[i].c
		changes[i].p.propose(&cs[i])
	}
	b.isrWrites.Add(1)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	errs, err := b.node.AlterPartitions(wctx, cs)
	if err != nil {
		// The next pass plans again from the metadata it then has.
		b.logger.Debug("ISR changes not made", zap.Int("partitions", len(cs)), zap.Error(err))
		return
	}
	for i, ch := range changes {
		lg := b.logger.With(zap.String("topic", ch.c.Topic), zap.Int32("partition", ch.c.Partition),
			zap.Int32s("isr", ch.isr), zap.Int32s("new_isr", ch.c.ISR))
		if errs[i] != nil {
			// A stale partition epoch means the metadata moved on (the
			// watcher applies it); the next pass decides again.
			lg.Debug("ISR change refused", zap.Error(errs[i]))
			continue
		}
		// Counted where the metadata applies it (countISRChange).
		lg.Info("ISR changed", zap.Int32s("removed", ch.shrink))
	}
}

// propose records c as the ISR change this leader proposes for p.
func (p *partition) propose(c *controller.AlterPartition) {
	p.mu.Lock()
	p.proposed = c
	p.mu.Unlock()
}

// countISRChange counts p's ISR change from old to mp.ISR, which the
// metadata now shows in this broker's leader epoch, as a shrink and/or an
// expansion when it is the change this leader proposed (p.proposed): the
// controller applies an AlterPartition at the partition epoch it names and
// moves it on by one, so the change is ours when the metadata is one epoch
// past the proposal and holds its ISR. A change the controller made (a
// fenced replica removed) is not this leader's and is not counted.
// Counting here rather than on the controller's answer counts a change
// whose answer was lost (a timeout or a controller election after the
// commit) exactly once too. Call with p.mu held.
func (m *partitions) countISRChange(p *partition, old []int32, mp *controller.Partition) {
	c := p.proposed
	if c == nil || mp.PartitionEpoch <= c.PartitionEpoch {
		return
	}
	p.proposed = nil // decided: applied, or superseded
	if mp.PartitionEpoch != c.PartitionEpoch+1 || !slices.Equal(mp.ISR, c.ISR) {
		return
	}
	if slices.ContainsFunc(old, func(id int32) bool { return !slices.Contains(mp.ISR, id) }) {
		m.isrShrinks.Add(1)
	}
	if slices.ContainsFunc(mp.ISR, func(id int32) bool { return !slices.Contains(old, id) }) {
		m.isrExpands.Add(1)
	}
}

// planISR returns p's ISR change, if it needs one; topicID is the id of
// p's topic, self this broker's id, eligible the followers that may be
// added.
func planISR(p *partition, topicID uint64, self int32, eligible func(replica.Member) bool) (isrChange, bool) {
	p.mu.RLock()
	if p.role != roleLeader || p.state != stateOpen {
		p.mu.RUnlock()
		return isrChange{}, false
	}
	ld := p.leader
	shrink, expand := ld.ShrinkCandidates(), ld.ExpandCandidates(eligible)
	isr, partEpoch, hw := slices.Clone(p.isr), p.partEpoch, ld.HighWatermark()
	p.mu.RUnlock()
	if len(shrink) == 0 && len(expand) == 0 {
		return isrChange{}, false
	}
	next := slices.DeleteFunc(slices.Clone(isr), func(id int32) bool { return slices.Contains(shrink, id) })
	epochs := make([]int64, len(next))
	for _, m := range expand {
		if !slices.Contains(next, m.ID) {
			next = append(next, m.ID)
			epochs = append(epochs, m.BrokerEpoch)
		}
	}
	if slices.Equal(next, isr) {
		return isrChange{}, false
	}
	return isrChange{
		p: p,
		c: controller.AlterPartition{Topic: p.topic, Partition: p.index, PartitionEpoch: partEpoch,
			Leader: self, ISR: next, BrokerEpochs: epochs, HighWatermark: hw, TopicID: topicID},
		isr: isr, shrink: shrink,
	}, true
}

// startMembership starts this broker's serf agent, joining no one yet
// (joinGossip does, once the broker is registered).
func (b *Broker) startMembership(advertised string) error {
	m, err := controller.StartMembership(controller.MembershipConfig{
		ID: b.cfg.BrokerID, BindAddr: b.cfg.GossipAddr, Addr: advertised, RaftAddr: b.node.RaftAddr(), Rack: b.cfg.Rack,
		KafkaAddr: b.cfg.KafkaAdvertisedAddr, Node: b.node, Logger: b.logger.Named("membership"), Gossip: b.cfg.Gossip,
		Key: b.cfg.GossipKey, AcceptedKeys: b.cfg.GossipAcceptedKeys,
	})
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	b.mu.Lock()
	b.members = m
	b.mu.Unlock()
	return nil
}

// joinGossip joins, in the background, the configured seeds and the
// gossip address of every other registered broker: a broker needs no
// seed list when the controller group already knows its peers.
func (b *Broker) joinGossip() {
	seeds, err := controller.ParseSeeds(b.cfg.GossipSeeds)
	if err != nil {
		seeds = nil // Validate checked them
	}
	for id, br := range b.store.Metadata().Brokers {
		if id != b.cfg.BrokerID && br.GossipAddr != "" && !slices.Contains(seeds, br.GossipAddr) {
			seeds = append(seeds, br.GossipAddr)
		}
	}
	b.mu.Lock()
	m := b.members
	b.mu.Unlock()
	m.JoinInBackground(seeds)
}

// GossipAddr is the address serf listens on, or "" before Start.
func (b *Broker) GossipAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.members == nil {
		return ""
	}
	return b.members.Addr()
}

// Abandon stops the broker the way a crash would, for tests of failure:
// no controlled shutdown, no graceful leave from serf (the others detect a
// failure), no clean-shutdown record. Its logs are still closed, as the
// kernel keeps written data when a process dies.
func (b *Broker) Abandon() error {
	b.mu.Lock()
	b.abandon = true
	b.mu.Unlock()
	return b.Close()
}

// reregisterLoop registers this broker again when the controller fenced it
// while it kept running (a network cut, or a gossip false alarm): with a
// new epoch, so its old incarnation stays out of the ISRs (R10), with its
// current epoch as the previous one, since its data did not go away, and
// with its open logs' end offsets (R11).
// Serf would do the same once it sees the broker again, but only after its
// reconnect interval; until then the broker could not rejoin any ISR.
func (b *Broker) reregisterLoop(ctx context.Context) {
	for {
		select {
		case <-b.reregister:
		case <-ctx.Done():
			return
		}
		me, ok := b.store.Metadata().Brokers[b.cfg.BrokerID]
		b.mu.Lock()
		closing := b.closing
		b.mu.Unlock()
		if !ok || me.State == controller.BrokerAlive || b.draining.Load() || closing {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := b.node.Propose(rctx, controller.RegisterBroker{ID: b.cfg.BrokerID, Addr: me.Addr, Rack: b.cfg.Rack,
			RaftAddr: b.node.RaftAddr(), GossipAddr: b.GossipAddr(), DirID: b.dirID, PreviousEpoch: me.Epoch, SameBoot: true,
			LogsReported: true, Logs: b.parts.openLogs()})
		cancel()
		epoch := res.BrokerEpoch
		if err != nil {
			b.logger.Debug("re-register after a fence", zap.Error(err))
			select { // try again shortly, unless stopping
			case <-time.After(500 * time.Millisecond):
				kick(b.reregister)
			case <-ctx.Done():
				return
			}
			continue
		}
		b.logger.Info("fenced while running; registered again", zap.Int64("fenced_broker_epoch", me.Epoch), zap.Int64("broker_epoch", epoch))
		b.parts.kickOffline(nil) // the registration cleared the offline marks: report them again
	}
}

// kick does a non-blocking send on a wake-up channel of capacity 1.
func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Controller is this broker's controller node (nil before Start): for
// tools and tests that read or write the cluster metadata directly.
func (b *Broker) Controller() *controller.Node {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.node
}
