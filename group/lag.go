package group

import (
	"maps"
	"slices"
)

// Consumption is what one group consumes and where it is, for the broker
// to compute its lag against the partitions' end offsets.
type Consumption struct {
	GroupID string
	// Members counts the group's members.
	Members int
	// Topics are the topics the group consumes, by name: those a member
	// subscribes to (by name or regular expression, among the topics that
	// exist) and those the group committed an offset of.
	Topics []ConsumedTopic
}

// ConsumedTopic is one topic of a Consumption.
type ConsumedTopic struct {
	Topic string
	// Committed has one entry per partition of the topic (as the
	// coordinator knows the topic, or up to the highest committed
	// partition when it does not): the committed offset, -1 for none.
	Committed []int64
}

// Consumption returns every group's consumption, by group id.
func (c *Coordinator) Consumption() []Consumption {
	out := make([]Consumption, 0, len(c.groups))
	for _, id := range slices.Sorted(maps.Keys(c.groups)) {
		g := c.groups[id]
		parts := map[string]int32{}
		for _, m := range g.members {
			for t := range c.memberTopics(m) {
				parts[t] = c.topics[t]
			}
		}
		for k := range g.offsets {
			n, ok := parts[k.topic]
			if !ok {
				n = c.topics[k.topic]
			}
			parts[k.topic] = max(n, k.part+1)
		}
		gc := Consumption{GroupID: id, Members: len(g.members), Topics: make([]ConsumedTopic, 0, len(parts))}
		for _, t := range slices.Sorted(maps.Keys(parts)) {
			committed := make([]int64, parts[t])
			for i := range committed {
				committed[i] = -1
				if v, ok := g.offsets[tp{t, int32(i)}]; ok {
					committed[i] = v.offset
				}
			}
			gc.Topics = append(gc.Topics, ConsumedTopic{Topic: t, Committed: committed})
		}
		out = append(out, gc)
	}
	return out
}
