package broker

import (
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/group"
)

// Consumer lag, as the group's coordinator computes it when the metrics
// are scraped (Stats): for each group this broker coordinates and each
// topic it consumes (group.Coordinator.Consumption), the sum over the
// topic's partitions of end offset − committed offset. The end offset is
// the high watermark: this broker's own replica's when it holds one (its
// leader's exact one, or a follower's, a fetch behind), or else the
// committed high watermark the partition's leader last reported to the
// controller (HighWatermarkReportInterval behind at most), whichever is
// higher. A partition with no commit counts from its log start offset,
// as `sluice group describe` counts it, when this broker holds a replica
// of it; from 0 when it does not (the start is not known here). A
// partition the metadata does not have (a deleted topic) is left out and
// counted in Unknown.

// GroupStats is one group this broker coordinates.
type GroupStats struct {
	Group string
	// Members counts its members.
	Members int
	// Topics is its lag on each topic it consumes, by topic.
	Topics []GroupLag
}

// GroupLag is one group's lag on one topic.
type GroupLag struct {
	Topic string
	// Lag is the sum of the partitions' lags (each never negative).
	Lag int64
	// Unknown counts the partitions whose end offset this broker does not
	// know (not in Lag).
	Unknown int
	// Partitions is filled only when Stats is asked for partitions.
	Partitions []PartitionLag
}

// PartitionLag is one partition of a GroupLag.
type PartitionLag struct {
	Partition int32
	// Committed is -1 with no commit.
	Committed, End, Lag int64
}

// groupStats returns every group this broker coordinates (a coordinator
// still loading is left out) with its lag per topic.
func (b *Broker) groupStats(md *controller.Metadata, partitions bool) []GroupStats {
	var out []GroupStats
	for _, co := range b.groups.loaded() {
		for _, gc := range b.consumption(co) {
			gs := GroupStats{Group: gc.GroupID, Members: gc.Members}
			for _, ct := range gc.Topics {
				gl := GroupLag{Topic: ct.Topic}
				t := md.Topics[ct.Topic]
				for i, committed := range ct.Committed {
					if t == nil || i >= len(t.Partitions) {
						gl.Unknown++
						continue
					}
					end, start := t.Partitions[i].CommittedHW, int64(0)
					if p := b.parts.get(ct.Topic, int32(i)); p != nil {
						if s, hw, ok := p.lagOffsets(); ok {
							end, start = max(end, hw), s
						}
					}
					base := committed
					if base < 0 {
						base = start
					}
					lag := max(0, end-base)
					gl.Lag += lag
					if partitions {
						gl.Partitions = append(gl.Partitions, PartitionLag{Partition: int32(i), Committed: committed, End: end, Lag: lag})
					}
				}
				gs.Topics = append(gs.Topics, gl)
			}
			out = append(out, gs)
		}
	}
	return out
}

// consumption is co's groups' consumption, nil while co is loading or
// dropped.
func (b *Broker) consumption(co *coordinator) []group.Consumption {
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.c == nil || !b.coordinatorReady(co) {
		return nil
	}
	return co.c.Consumption()
}

// lagOffsets returns p's log start offset and high watermark; false when
// its log is not open. It reads p's view, not its lock (Stats).
func (p *partition) lagOffsets() (start, hw int64, ok bool) {
	v := p.view.Load()
	if v == nil || !v.open {
		return 0, 0, false
	}
	return v.log.StartOffset(), v.highWatermark(), true
}
