package broker

import (
	"context"
	"errors"
	"slices"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// The core of growing topics and moving partitions (controller/move.go),
// shared by every front end.

// PartitionCount is a topic's new partition count, as a client asks for it.
type PartitionCount struct {
	Topic string
	Count int32
}

// CreatePartitions grows each topic to its count of partitions, or with
// validateOnly checks that it could. It returns one error per topic, in
// order (nil: grown). The new partitions are placed as creation places
// them; keyed records map to hash(key) mod the new count from then on.
func (b *Broker) CreatePartitions(ctx context.Context, counts []PartitionCount, validateOnly bool) []error {
	errs := make([]error, len(counts))
	grown := false
	for i, c := range counts {
		errs[i] = b.createPartitions(ctx, c, validateOnly)
		if errs[i] == nil && !validateOnly {
			grown = true
			b.logger.Info("topic grown", zap.String("topic", c.Topic), zap.Int32("partitions", c.Count))
		}
	}
	if grown {
		b.parts.reconcile(b.store.Metadata())
	}
	return errs
}

// createPartitionsTries bounds the plans of one CreatePartitions made
// again after a refusal as stale.
const createPartitionsTries = 5

func (b *Broker) createPartitions(ctx context.Context, c PartitionCount, validateOnly bool) error {
	for try := 1; ; try++ {
		changed := b.store.Changed()
		cmd, err := controller.PlanCreatePartitions(b.store.Metadata(), c.Topic, c.Count)
		if err != nil || validateOnly {
			return err
		}
		_, err = b.store.Propose(ctx, cmd)
		// Planned on metadata that changed since (the topic grew or was
		// created again): plan again once this broker's metadata moved
		// on, which says whether the count is still more than the topic
		// has.
		if !errors.Is(err, controller.ErrStalePartitionEpoch) || try == createPartitionsTries {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return err
		}
	}
}

// Reassignment is one partition's target replica list (preferred leader
// first), or, empty, a cancel of its move.
type Reassignment struct {
	Topic     string
	Partition int32
	Replicas  []int32
}

// AlterReassignments starts or cancels moves, one per entry; it returns
// one error per entry, in order (nil: started, completed at once, or
// cancelled). A partition named twice is refused both times.
func (b *Broker) AlterReassignments(ctx context.Context, moves []Reassignment) []error {
	type key struct {
		topic string
		part  int32
	}
	count := make(map[key]int, len(moves))
	for _, m := range moves {
		count[key{m.Topic, m.Partition}]++
	}
	errs := make([]error, len(moves))
	changed := false
	for i, m := range moves {
		if count[key{m.Topic, m.Partition}] > 1 {
			errs[i] = &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: "partition named more than once in the request"}
			continue
		}
		_, errs[i] = b.store.Propose(ctx, controller.AlterReassignment{Topic: m.Topic, Partition: m.Partition, Target: slices.Clone(m.Replicas)})
		if errs[i] == nil {
			changed = true
			what := "partition move started"
			if len(m.Replicas) == 0 {
				what = "partition move cancelled"
			}
			b.logger.Info(what, zap.String("topic", m.Topic), zap.Int32("partition", m.Partition), zap.Int32s("target", m.Replicas))
		}
	}
	if changed {
		b.parts.reconcile(b.store.Metadata())
	}
	return errs
}

// Moves lists the partitions of the named topics (all when none) that
// are moving or queued, by topic and partition, with progress for those this
// broker leads (the protocol type has exactly the fields a front end
// needs: target then removing replicas, adding and removing ones, and
// the leader's log end, adding replicas' positions and estimate of the
// bytes the slowest has yet to copy).
func (b *Broker) Moves(topics []string) []protocol.MovingPartition {
	md := b.store.Metadata()
	var out []protocol.MovingPartition
	for _, name := range md.TopicNames() {
		if len(topics) > 0 && !slices.Contains(topics, name) {
			continue
		}
		t := md.Topics[name]
		for i := range t.Partitions {
			mp := &t.Partitions[i]
			if !mp.Moving() && len(mp.Queued) == 0 {
				continue
			}
			mv := protocol.MovingPartition{Topic: name, Partition: mp.Index, Leader: mp.Leader, Replicas: slices.Clone(mp.Replicas),
				Adding: slices.Clone(mp.Adding), Removing: slices.Clone(mp.Removing), Queued: slices.Clone(mp.Queued)}
			if mp.Leader == b.cfg.BrokerID && mp.Moving() {
				if p := b.parts.get(name, mp.Index); p != nil {
					p.moveProgress(&mv)
				}
			}
			out = append(out, mv)
		}
	}
	return out
}

// moveProgress fills in mv's progress from p's leader state, if p leads.
func (p *partition) moveProgress(mv *protocol.MovingPartition) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.state != stateOpen || p.role != roleLeader {
		return
	}
	start, end := p.log.StartOffset(), p.log.EndOffset()
	size := p.log.Stats().Bytes
	mv.Progress, mv.LeaderEnd = true, end
	behind := int64(0)
	for _, r := range mv.Adding {
		pos := p.leader.Position(r)
		mv.Positions = append(mv.Positions, pos)
		behind = max(behind, end-max(pos, start))
	}
	if end > start {
		mv.BytesRemaining = int64(float64(size) * float64(behind) / float64(end-start))
	}
}

// AlterClusterConfigs sets cluster configs and reverts others to their
// defaults (controller/clusterconfig.go), or with validateOnly checks
// that it could.
func (b *Broker) AlterClusterConfigs(ctx context.Context, set map[string]string, remove []string, validateOnly bool) error {
	if err := controller.ValidateClusterConfigs(set, remove); err != nil || validateOnly {
		return err
	}
	if _, err := b.store.Propose(ctx, controller.AlterClusterConfigs{Set: set, Remove: remove}); err != nil {
		return err
	}
	b.logger.Info("cluster config altered", zap.Any("set", set), zap.Strings("removed", remove))
	b.parts.reconcile(b.store.Metadata())
	return nil
}

// DescribeClusterConfigs returns the cluster configs named (all when
// none), by key, with their values and whether each is the default.
// Unknown keys are left out, as for topics.
func (b *Broker) DescribeClusterConfigs(keys []string) []ConfigValue {
	md := b.store.Metadata()
	var out []ConfigValue
	for _, d := range controller.ClusterConfigDefs() {
		if len(keys) > 0 && !slices.Contains(keys, d.Key) {
			continue
		}
		_, set := md.Configs[d.Key]
		out = append(out, ConfigValue{Name: d.Key, Value: md.ClusterConfig(d.Key), IsDefault: !set})
	}
	return out
}
