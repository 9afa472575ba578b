package group

import (
	"cmp"
	"math"
	"slices"
)

// The server-side assignors a member may ask for (ServerAssignor).
const (
	// AssignorUniform spreads the subscribed partitions evenly and is
	// sticky: it keeps every partition where the previous target had it
	// unless balance needs it elsewhere, so a change moves as few
	// partitions as possible.
	AssignorUniform = "uniform"
	// AssignorRange gives each member a contiguous range of each topic's
	// partitions, in member id order (co-partitioned topics line up).
	AssignorRange = "range"
)

// assignMember is an assignor's view of one member.
type assignMember struct {
	id     string
	topics map[string]bool // subscribed topics that exist
	prev   partSet         // the previous target
}

// assign computes the target assignment of members (sorted by id) over
// topics (name → partition count). Every partition of a subscribed topic
// is assigned to exactly one member subscribed to it.
func assign(name string, members []assignMember, topics map[string]int32) map[string]partSet {
	if name == AssignorRange {
		return assignRange(members, topics)
	}
	return assignUniform(members, topics)
}

// assignUniform: keep what each member had and may still have, give the
// partitions nobody keeps to the least loaded eligible member, then move
// partitions from the most to the least loaded eligible member while they
// differ by more than one. With identical subscriptions the result is
// balanced to within one partition and moves at most what balance needs.
func assignUniform(members []assignMember, topics map[string]int32) map[string]partSet {
	out := make(map[string]partSet, len(members))
	taken := make(map[tp]bool)
	for _, m := range members {
		s := make(partSet)
		for k := range m.prev {
			if m.topics[k.topic] && k.part < topics[k.topic] && !taken[k] {
				s[k] = struct{}{}
				taken[k] = true
			}
		}
		out[m.id] = s
	}
	// Every subscribed partition, in a fixed order.
	var names []string
	for t := range topics {
		for _, m := range members {
			if m.topics[t] {
				names = append(names, t)
				break
			}
		}
	}
	slices.Sort(names)
	// leastLoaded is the member subscribed to topic with the fewest
	// partitions, fewer than below; "" if none.
	leastLoaded := func(topic string, below int) string {
		best, n := "", below
		for _, m := range members {
			if m.topics[topic] && len(out[m.id]) < n {
				best, n = m.id, len(out[m.id])
			}
		}
		return best
	}
	for _, t := range names {
		for p := range topics[t] {
			k := tp{t, p}
			if taken[k] {
				continue
			}
			if id := leastLoaded(t, math.MaxInt); id != "" {
				out[id][k] = struct{}{}
				taken[k] = true
			}
		}
	}
	// Balance: from the most loaded member, move a partition some less
	// loaded member (by two or more) may take. Each move lowers the sum of
	// squares of the loads, so this ends.
	byLoad := slices.Clone(members)
	for {
		slices.SortStableFunc(byLoad, func(a, b assignMember) int {
			return cmp.Compare(len(out[b.id]), len(out[a.id]))
		})
		moved := false
		for _, from := range byLoad {
			n := len(out[from.id])
			for _, k := range sortedParts(out[from.id]) {
				if to := leastLoaded(k.topic, n-1); to != "" {
					delete(out[from.id], k)
					out[to][k] = struct{}{}
					moved = true
					break
				}
			}
			if moved {
				break
			}
		}
		if !moved {
			return out
		}
	}
}

// assignRange: per topic, members subscribed to it in id order get
// contiguous ranges, the first (count mod members) one partition more.
func assignRange(members []assignMember, topics map[string]int32) map[string]partSet {
	out := make(map[string]partSet, len(members))
	for _, m := range members {
		out[m.id] = make(partSet)
	}
	for t, n := range topics {
		var subs []string
		for _, m := range members {
			if m.topics[t] {
				subs = append(subs, m.id)
			}
		}
		if len(subs) == 0 {
			continue
		}
		per, extra := int(n)/len(subs), int(n)%len(subs)
		p := int32(0)
		for i, id := range subs {
			c := per
			if i < extra {
				c++
			}
			for range c {
				out[id][tp{t, p}] = struct{}{}
				p++
			}
		}
	}
	return out
}

// sortedParts is s in (topic, partition) order, highest partition first,
// so the balance step moves the partitions a member got last.
func sortedParts(s partSet) []tp {
	out := make([]tp, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b tp) int {
		if c := cmp.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return cmp.Compare(b.part, a.part)
	})
	return out
}
