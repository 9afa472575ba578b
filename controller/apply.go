package controller

import (
	"fmt"
	"maps"
	"math"
)

// Result is what an applied command reports besides its error.
type Result struct {
	// Index is the Raft log index the command was applied at.
	Index uint64
	// BrokerEpoch is the new epoch from RegisterBroker.
	BrokerEpoch int64
	// TopicID is the new topic's id from CreateTopic.
	TopicID uint64
	// Offline lists, for a RegisterBroker, the partitions the broker is
	// the last in-sync replica of but may not lead (R11), and why. They
	// stay without a leader. The controller leader logs them; they are not
	// forwarded.
	Offline []Ineligible
	// ProducerIDs is the block an AllocateProducerIDs gave its broker.
	ProducerIDs ProducerIDBlock
	// Recovered lists, for a RegisterBroker or an AlterConfigs, the
	// partitions a balanced recovery gave a leader that may lack
	// committed records (R11). The controller leader logs them; they are
	// not forwarded.
	Recovered []Recovery
}

// Apply applies c to m and returns the new metadata. It is a pure function:
// m is not modified, and the same m and c give the same result on every
// replica. A refused command returns m itself and an error; it never
// panics, whatever the command holds. A command that changes nothing (a
// broker already offline) returns m and no error.
func Apply(m *Metadata, c Command) (*Metadata, Result, error) {
	var res Result
	var next *Metadata
	var err error
	switch c := c.(type) {
	case RegisterBroker:
		next, res.BrokerEpoch, res.Offline, res.Recovered, err = applyRegisterBroker(m, c)
	case FenceBroker:
		next, err = applyFenceBroker(m, c)
	case CreateTopic:
		next, res.TopicID, err = applyCreateTopic(m, c)
	case DeleteTopic:
		next, err = applyDeleteTopic(m, c)
	case AlterConfigs:
		next, res.Recovered, err = applyAlterConfigs(m, c)
	case AlterPartition:
		next, err = applyAlterPartition(m, c)
	case ReportHighWatermarks:
		next, err = applyReportHighWatermarks(m, c)
	case ReportOfflineReplicas:
		next, err = applyReportOfflineReplicas(m, c)
	case ReportOnlineReplicas:
		next, err = applyReportOnlineReplicas(m, c)
	case AllocateProducerIDs:
		next, res.ProducerIDs, err = applyAllocateProducerIDs(m, c)
	case UpsertCredential:
		next, err = applyUpsertCredential(m, c)
	case DeleteCredential:
		next, err = applyDeleteCredential(m, c)
	case CreateACLs:
		next, err = applyCreateACLs(m, c)
	case DeleteACLs:
		next, err = applyDeleteACLs(m, c)
	case CreatePartitions:
		next, err = applyCreatePartitions(m, c)
	case AlterReassignment:
		next, err = applyAlterReassignment(m, c)
	case AlterClusterConfigs:
		next, err = applyAlterClusterConfigs(m, c)
	case AlterGroupConfigs:
		next, err = applyAlterGroupConfigs(m, c)
	case UnregisterBroker:
		next, err = applyUnregisterBroker(m, c)
	case FinalizeCommandVersion:
		next, err = applyFinalizeCommandVersion(m, c)
	default:
		return m, Result{}, fmt.Errorf("%w: unknown command %T", ErrCorrupt, c)
	}
	if err != nil {
		return m, Result{}, fmt.Errorf("%v: %w", c.Kind(), err)
	}
	return next, res, nil
}

// edit starts a change: a copy of m whose maps may be modified. Brokers and
// topics are still shared with m; replace one (cloneBroker, cloneTopic)
// before changing it.
func edit(m *Metadata) *Metadata {
	n := *m
	n.Brokers = maps.Clone(m.Brokers)
	if n.Brokers == nil {
		n.Brokers = map[int32]*Broker{}
	}
	n.Topics = maps.Clone(m.Topics)
	if n.Topics == nil {
		n.Topics = map[string]*Topic{}
	}
	n.Version++
	return &n
}

func applyRegisterBroker(m *Metadata, c RegisterBroker) (*Metadata, int64, []Ineligible, []Recovery, error) {
	if c.ID < 0 {
		return nil, 0, nil, nil, fmt.Errorf("%w: id %d", ErrInvalidBroker, c.ID)
	}
	if c.Addr == "" {
		return nil, 0, nil, nil, fmt.Errorf("%w: broker %d: empty address", ErrInvalidBroker, c.ID)
	}
	if c.PreviousEpoch < PreviousEpochEmpty {
		return nil, 0, nil, nil, fmt.Errorf("%w: broker %d: previous epoch %d", ErrInvalidBroker, c.ID, c.PreviousEpoch)
	}
	logs, err := replicaLogs(c)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	if rb, removed := m.Removed[c.ID]; removed && rb.DirID != "" && rb.DirID == c.DirID {
		return nil, 0, nil, nil, fmt.Errorf("%w: broker %d was removed (sluice cluster remove) and this is its data directory (%s); start it on an empty data directory to join as a new broker",
			ErrBrokerRemoved, c.ID, c.DirID)
	}
	old, ok := m.Brokers[c.ID]
	if ok && old.State == BrokerAlive && old.DirID != "" && c.DirID != "" && old.DirID != c.DirID {
		return nil, 0, nil, nil, fmt.Errorf("%w: broker id %d is registered and alive at %s with another data directory (%s, not %s)",
			ErrBrokerIDInUse, c.ID, old.Addr, old.DirID, c.DirID)
	}
	var epoch int64 = 1
	if ok {
		epoch = old.Epoch + 1
	} else if rb, removed := m.Removed[c.ID]; removed {
		epoch = rb.Epoch + 1 // epochs of an id only rise (R10)
	}
	n := edit(m)
	if _, removed := m.Removed[c.ID]; removed {
		// A new broker under a removed id: the removal is over.
		n.Removed = maps.Clone(m.Removed)
		delete(n.Removed, c.ID)
	}
	n.Brokers[c.ID] = &Broker{ID: c.ID, Addr: c.Addr, Rack: c.Rack, RaftAddr: c.RaftAddr, GossipAddr: c.GossipAddr, DirID: c.DirID,
		Epoch: epoch, State: BrokerAlive}
	if ok {
		// A restart: the old incarnation leaves every ISR it is not the
		// last member of and leads nothing; it is added back once it has
		// caught up in its new epoch (R10).
		back := &restart{oldEpoch: old.Epoch, previousEpoch: c.PreviousEpoch, sameBoot: c.SameBoot, logsReported: c.LogsReported, logs: logs}
		fenceAll(n, c.ID, back)
		return n, epoch, back.offline, back.recovered, nil
	}
	return n, epoch, nil, nil, nil
}

// replicaLogs indexes a registration's log report by partition, refusing
// entries that cannot describe a log.
func replicaLogs(c RegisterBroker) (map[partitionKey]ReplicaLog, error) {
	if !c.LogsReported {
		if len(c.Logs) > 0 {
			return nil, fmt.Errorf("%w: broker %d: logs without LogsReported", ErrInvalidBroker, c.ID)
		}
		return nil, nil
	}
	logs := make(map[partitionKey]ReplicaLog, len(c.Logs))
	for _, l := range c.Logs {
		k := partitionKey{l.Topic, l.Partition}
		if _, dup := logs[k]; dup || l.EndOffset < 0 || l.Partition < 0 || l.LastEpoch < -1 {
			return nil, fmt.Errorf("%w: broker %d: log %s-%d end offset %d, last epoch %d (reported twice, or out of range)",
				ErrInvalidBroker, c.ID, l.Topic, l.Partition, l.EndOffset, l.LastEpoch)
		}
		logs[k] = l
	}
	return logs, nil
}

// partitionKey names a partition.
type partitionKey struct {
	topic     string
	partition int32
}

// registeredAt returns broker id, refusing it unless it is registered
// at epoch: a command about an earlier incarnation is stale (R10).
func registeredAt(m *Metadata, id int32, epoch int64) (*Broker, error) {
	b, ok := m.Brokers[id]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownBroker, id)
	}
	if b.Epoch != epoch {
		return nil, fmt.Errorf("%w: broker %d is at epoch %d, not %d", ErrStaleBrokerEpoch, id, b.Epoch, epoch)
	}
	return b, nil
}

func applyFenceBroker(m *Metadata, c FenceBroker) (*Metadata, error) {
	b, err := registeredAt(m, c.ID, c.Epoch)
	if err != nil {
		return nil, err
	}
	if b.State == BrokerOffline {
		return m, nil
	}
	n := edit(m)
	nb := *b
	nb.State = BrokerOffline
	n.Brokers[c.ID] = &nb
	fenceAll(n, c.ID, nil)
	return n, nil
}

func applyCreateTopic(m *Metadata, c CreateTopic) (*Metadata, uint64, error) {
	if err := ValidateTopicName(c.Name); err != nil {
		return nil, 0, err
	}
	if err := ValidateConfigs(c.Configs); err != nil {
		return nil, 0, err
	}
	if _, ok := m.Topics[c.Name]; ok {
		return nil, 0, fmt.Errorf("%w: %q", ErrTopicExists, c.Name)
	}
	if len(c.Replicas) < 1 || len(c.Replicas) > MaxPartitions {
		return nil, 0, fmt.Errorf("%w: %d, want 1 to %d", ErrInvalidPartitions, len(c.Replicas), MaxPartitions)
	}
	rf := len(c.Replicas[0])
	if rf < 1 {
		return nil, 0, fmt.Errorf("%w: %d, want at least 1", ErrInvalidReplicationFactor, rf)
	}
	t := &Topic{ID: m.NextTopicID, Name: c.Name, Partitions: make([]Partition, len(c.Replicas))}
	if len(c.Configs) > 0 {
		t.Configs = maps.Clone(c.Configs)
	}
	for i, replicas := range c.Replicas {
		if len(replicas) != rf {
			return nil, 0, fmt.Errorf("%w: partition %d has %d replicas, partition 0 has %d", ErrInvalidReplicationFactor, i, len(replicas), rf)
		}
		if err := checkReplicas(m, replicas); err != nil {
			return nil, 0, fmt.Errorf("partition %d: %w", i, err)
		}
		t.Partitions[i] = newPartition(m, int32(i), replicas)
	}
	n := edit(m)
	n.NextTopicID++
	n.Topics[t.Name] = t
	return n, t.ID, nil
}

// checkReplicas checks that a replica list names registered brokers, each
// once.
func checkReplicas(m *Metadata, replicas []int32) error {
	for i, r := range replicas {
		if _, ok := m.Brokers[r]; !ok {
			return fmt.Errorf("%w: replica %d is not registered", ErrUnknownBroker, r)
		}
		for _, o := range replicas[:i] {
			if o == r {
				return fmt.Errorf("%w: broker %d twice in %v", ErrInvalidReplicationFactor, r, replicas)
			}
		}
	}
	return nil
}

func applyDeleteTopic(m *Metadata, c DeleteTopic) (*Metadata, error) {
	if _, ok := m.Topics[c.Name]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, c.Name)
	}
	n := edit(m)
	delete(n.Topics, c.Name)
	startQueued(n) // its moves ended
	return n, nil
}

func applyAlterConfigs(m *Metadata, c AlterConfigs) (*Metadata, []Recovery, error) {
	if err := validateAlter(c.Set, c.Remove); err != nil {
		return nil, nil, err
	}
	t, ok := m.Topics[c.Name]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %q", ErrUnknownTopic, c.Name)
	}
	n := edit(m)
	nt := t.clone()
	nt.Configs = alterConfigs(nt.Configs, c.Set, c.Remove)
	if uncleanElection(nt) && !uncleanElection(t) {
		electOffline(n, nt)
	}
	var recovered []Recovery
	if nt.Config(ConfigUncleanRecovery) == RecoveryBalanced && t.Config(ConfigUncleanRecovery) != RecoveryBalanced {
		recovered = recoverOffline(n, nt)
	}
	n.Topics[c.Name] = nt
	return n, recovered, nil
}

// alterConfigs returns cfg (a copy the caller owns, or nil) with set
// applied, then remove; nil when nothing is left, the one
// representation of "no overrides".
func alterConfigs(cfg, set map[string]string, remove []string) map[string]string {
	if cfg == nil {
		cfg = map[string]string{}
	}
	maps.Copy(cfg, set)
	for _, k := range remove {
		delete(cfg, k)
	}
	if len(cfg) == 0 {
		return nil
	}
	return cfg
}

// validateAlter checks the keys and values of a config change.
func validateAlter(set map[string]string, remove []string) error {
	if err := ValidateConfigs(set); err != nil {
		return err
	}
	for _, k := range remove {
		if _, ok := topicConfigDefs[k]; !ok {
			return fmt.Errorf("%w: unknown key %q", ErrInvalidConfig, k)
		}
	}
	return nil
}

func applyAlterPartition(m *Metadata, c AlterPartition) (*Metadata, error) {
	t, err := checkAlterPartition(m, c)
	if err != nil {
		return nil, err
	}
	n := edit(m)
	alterPartition(n, t.cloneOne(int(c.Partition)), c)
	return n, nil
}

// checkAlterPartition returns c's topic in m, or why m refuses c.
func checkAlterPartition(m *Metadata, c AlterPartition) (*Topic, error) {
	t, ok := m.Topics[c.Topic]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, c.Topic)
	}
	if c.Partition < 0 || int(c.Partition) >= len(t.Partitions) {
		return nil, fmt.Errorf("%w: %s-%d", ErrUnknownPartition, c.Topic, c.Partition)
	}
	if c.TopicID != 0 && c.TopicID != t.ID {
		return nil, fmt.Errorf("%w: topic %q was created again (id %d, not %d)", ErrStalePartitionEpoch, c.Topic, t.ID, c.TopicID)
	}
	p := &t.Partitions[c.Partition]
	if c.PartitionEpoch != p.PartitionEpoch {
		return nil, fmt.Errorf("%w: %s-%d is at partition epoch %d, not %d", ErrStalePartitionEpoch, c.Topic, c.Partition, p.PartitionEpoch, c.PartitionEpoch)
	}
	if err := checkPartitionChange(m, p, c); err != nil {
		return nil, fmt.Errorf("%s-%d: %w", c.Topic, c.Partition, err)
	}
	return t, nil
}

// alterPartition applies c, which checkAlterPartition accepted, to n, a
// metadata whose maps may be modified: nt is the copy of c's topic the
// change goes into, and n owns its partition c.Partition, slices
// included (cloneOne).
func alterPartition(n *Metadata, nt *Topic, c AlterPartition) {
	np := &nt.Partitions[c.Partition]
	if np.Leader == c.Leader && c.Leader >= 0 {
		// The leader's own ISR change: its high watermark is news.
		np.CommittedHW = max(np.CommittedHW, c.HighWatermark)
	}
	// A running leader changed the ISR: what restarted replicas reported
	// is history now (they rejoin by catching up).
	np.Restarted = nil
	if np.Leader != c.Leader {
		np.LeaderEpoch++
	}
	np.Leader = c.Leader
	np.ISR = append([]int32(nil), c.ISR...)
	np.PartitionEpoch++
	// The last adding replica of a move joined the ISR: the move
	// completes in this same change (move.go), and queued moves may start.
	done := completeMove(n, np)
	n.Topics[c.Topic] = nt
	if done {
		startQueued(n)
	}
}

// applyReportHighWatermarks raises the CommittedHW of the partitions the
// reporting broker leads. An entry from another leader epoch, for a
// partition the broker does not lead (any more), for a topic deleted or
// re-created since, or below what is known, is skipped: reports are
// periodic, so a stale one is normal, not an error. A broker epoch that is
// not the broker's current alive one refuses the whole report (R10): an
// old incarnation's high watermarks say nothing of the current logs.
func applyReportHighWatermarks(m *Metadata, c ReportHighWatermarks) (*Metadata, error) {
	b, ok := m.Brokers[c.BrokerID]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownBroker, c.BrokerID)
	}
	if b.Epoch != c.BrokerEpoch || b.State != BrokerAlive {
		return nil, fmt.Errorf("%w: broker %d is at epoch %d (%v), not %d", ErrStaleBrokerEpoch, c.BrokerID, b.Epoch, b.State, c.BrokerEpoch)
	}
	var n *Metadata
	cloned := map[string]bool{}
	for _, e := range c.Entries {
		t, ok := m.Topics[e.Topic]
		if !ok || t.ID != e.TopicID || e.Partition < 0 || int(e.Partition) >= len(t.Partitions) {
			continue
		}
		if n != nil {
			t = n.Topics[e.Topic]
		}
		p := &t.Partitions[e.Partition]
		if p.Leader != c.BrokerID || p.LeaderEpoch != e.LeaderEpoch || e.HighWatermark <= p.CommittedHW {
			continue
		}
		if n == nil {
			n = edit(m)
		}
		if !cloned[e.Topic] {
			t = t.clone()
			n.Topics[e.Topic] = t
			cloned[e.Topic] = true
		}
		// Committed data moved on under a running leader: what restarted
		// replicas reported is history now.
		t.Partitions[e.Partition].CommittedHW = e.HighWatermark
		t.Partitions[e.Partition].Restarted = nil
	}
	if n == nil {
		return m, nil
	}
	return n, nil
}

// applyReportOfflineReplicas marks the reported replicas offline
// (markOffline). Stale entries are skipped, as in
// applyReportHighWatermarks; a broker epoch that is not the broker's
// current alive one refuses the whole report (R10).
func applyReportOfflineReplicas(m *Metadata, c ReportOfflineReplicas) (*Metadata, error) {
	return editReplicas(m, c.BrokerID, c.BrokerEpoch, len(c.Entries), func(i int) (string, uint64, int32) {
		e := c.Entries[i]
		return e.Topic, e.TopicID, e.Partition
	}, func(m *Metadata, t *Topic, p *Partition, i int) bool {
		return markOffline(m, t, p, c.BrokerID, c.Entries[i].Reason)
	})
}

// applyReportOnlineReplicas clears the offline marks of the reported
// replicas (markOnline), skipping stale entries; a broker epoch that is
// not the broker's current alive one refuses the whole report (R10).
func applyReportOnlineReplicas(m *Metadata, c ReportOnlineReplicas) (*Metadata, error) {
	return editReplicas(m, c.BrokerID, c.BrokerEpoch, len(c.Logs), func(i int) (string, uint64, int32) {
		l := c.Logs[i]
		return l.Topic, l.TopicID, l.Partition
	}, func(m *Metadata, _ *Topic, p *Partition, i int) bool {
		return markOnline(m, p, c.BrokerID, c.Logs[i])
	})
}

// applyAllocateProducerIDs gives the broker the Count ids from
// NextProducerID up. Only NextProducerID changes, so the new metadata
// shares the brokers and topics of m (which nobody modifies).
func applyAllocateProducerIDs(m *Metadata, c AllocateProducerIDs) (*Metadata, ProducerIDBlock, error) {
	b, ok := m.Brokers[c.BrokerID]
	if !ok {
		return nil, ProducerIDBlock{}, fmt.Errorf("%w: %d", ErrUnknownBroker, c.BrokerID)
	}
	if b.Epoch != c.BrokerEpoch || b.State != BrokerAlive {
		return nil, ProducerIDBlock{}, fmt.Errorf("%w: broker %d is at epoch %d (%v), not %d", ErrStaleBrokerEpoch, c.BrokerID, b.Epoch, b.State, c.BrokerEpoch)
	}
	if c.Count < 1 || c.Count > MaxProducerIDBlock {
		return nil, ProducerIDBlock{}, fmt.Errorf("%w: %d, want 1 to %d", ErrInvalidProducerIDs, c.Count, MaxProducerIDBlock)
	}
	if m.NextProducerID > math.MaxInt64-int64(c.Count) {
		return nil, ProducerIDBlock{}, fmt.Errorf("%w: next id %d, %d asked", ErrProducerIDsExhausted, m.NextProducerID, c.Count)
	}
	n := *m
	n.Version++
	n.NextProducerID += int64(c.Count)
	return &n, ProducerIDBlock{First: m.NextProducerID, Count: c.Count}, nil
}

// editReplicas applies change to the partition of each of a broker's n
// report entries (named by entry), after checking that the broker is
// alive at epoch. Entries naming a topic deleted or re-created since, or
// a partition out of range, are skipped, as are those change leaves
// alone (it returns false); it returns m itself when nothing changed.
func editReplicas(m *Metadata, broker int32, epoch int64, n int, entry func(int) (string, uint64, int32),
	change func(*Metadata, *Topic, *Partition, int) bool) (*Metadata, error) {
	b, ok := m.Brokers[broker]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownBroker, broker)
	}
	if b.Epoch != epoch || b.State != BrokerAlive {
		return nil, fmt.Errorf("%w: broker %d is at epoch %d (%v), not %d", ErrStaleBrokerEpoch, broker, b.Epoch, b.State, epoch)
	}
	var next *Metadata
	for i := range n {
		name, id, index := entry(i)
		t, ok := m.Topics[name]
		if next != nil {
			t, ok = next.Topics[name]
		}
		if !ok || t.ID != id || index < 0 || int(index) >= len(t.Partitions) {
			continue
		}
		p := t.Partitions[index] // its slices are only ever replaced, never written
		if !change(m, t, &p, i) {
			continue
		}
		if next == nil {
			next = edit(m)
		}
		if next.Topics[name] == m.Topics[name] {
			next.Topics[name] = t.clone()
		}
		next.Topics[name].Partitions[index] = p
	}
	if next == nil {
		return m, nil
	}
	return next, nil
}

// checkPartitionChange enforces what must hold of every leader and ISR: the
// ISR is a non-empty subset of the replicas without duplicates, a leader
// is an ISR member (R11) on an alive broker, a partition without a leader
// gets one only by the election rules in Apply (R11), and every
// broker added to the ISR is alive and named with its current broker
// epoch (R10).
func checkPartitionChange(m *Metadata, p *Partition, c AlterPartition) error {
	if len(c.ISR) == 0 {
		return fmt.Errorf("%w: empty ISR", ErrInvalidPartition)
	}
	for i, r := range c.ISR {
		if !contains(p.Replicas, r) {
			return fmt.Errorf("%w: ISR member %d is not a replica %v", ErrInvalidPartition, r, p.Replicas)
		}
		if contains(c.ISR[:i], r) {
			return fmt.Errorf("%w: broker %d twice in ISR %v", ErrInvalidPartition, r, c.ISR)
		}
	}
	if len(c.BrokerEpochs) != 0 && len(c.BrokerEpochs) != len(c.ISR) {
		return fmt.Errorf("%w: %d broker epochs for ISR %v", ErrInvalidPartition, len(c.BrokerEpochs), c.ISR)
	}
	if c.Leader != -1 {
		if p.Leader == -1 {
			// Its alive ISR members were refused (R11), or it has none:
			// only the election rules give it a leader.
			return fmt.Errorf("%w: no leader to change; only an election gives one", ErrInvalidPartition)
		}
		if !contains(c.ISR, c.Leader) {
			return fmt.Errorf("%w: leader %d not in ISR %v", ErrInvalidPartition, c.Leader, c.ISR)
		}
		if !m.isAlive(c.Leader) {
			return fmt.Errorf("%w: leader %d is not an alive broker", ErrInvalidPartition, c.Leader)
		}
		if p.IsOffline(c.Leader) {
			return fmt.Errorf("%w: leader %d has its log offline", ErrInvalidPartition, c.Leader)
		}
	}
	for i, r := range c.ISR {
		if contains(p.ISR, r) {
			continue
		}
		if p.IsOffline(r) {
			return fmt.Errorf("%w: broker %d added to ISR %v has its log offline", ErrInvalidPartition, r, c.ISR)
		}
		if len(c.BrokerEpochs) == 0 {
			return fmt.Errorf("%w: broker %d added to ISR %v without its broker epoch", ErrStaleBrokerEpoch, r, c.ISR)
		}
		b, ok := m.Brokers[r]
		if !ok || b.State != BrokerAlive || b.Epoch != c.BrokerEpochs[i] {
			return fmt.Errorf("%w: broker %d added to the ISR at epoch %d, not its current alive one", ErrStaleBrokerEpoch, r, c.BrokerEpochs[i])
		}
	}
	return nil
}

func contains(s []int32, x int32) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// PlanCreateTopic validates spec against m and turns it into a command with
// the replicas placed over m's alive brokers that are not being drained
// (PlaceNew). The controller leader plans, so placement is decided once
// and the log carries the decision.
func PlanCreateTopic(m *Metadata, spec TopicSpec) (CreateTopic, error) {
	if err := spec.Validate(); err != nil {
		return CreateTopic{}, err
	}
	if _, ok := m.Topics[spec.Name]; ok {
		return CreateTopic{}, fmt.Errorf("%w: %q", ErrTopicExists, spec.Name)
	}
	placed, err := PlaceNew(m, spec.Partitions, spec.ReplicationFactor, int(m.NextTopicID))
	if err != nil {
		return CreateTopic{}, err
	}
	return CreateTopic{Name: spec.Name, Configs: maps.Clone(spec.Configs), Replicas: placed}, nil
}
