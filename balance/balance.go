// Package balance plans partition moves: a pure function from the brokers
// and the partitions' replica lists (with sizes) to new replica lists. It
// owns no state and does no I/O; the controller runs its plans with the
// move primitive (issue 20), and `sluice cluster rebalance --dry-run`
// prints them.
//
// The goals, in priority order as in Cruise Control: (1) nothing on a
// broker being removed (drained, or dead too long); (2) replicas of a
// partition on distinct racks while there are racks enough; (3) no broker
// above its disk threshold when another has room; (4) replica counts within
// one of each other; (5) preferred leaders (the first replica) within one
// of each other, by reordering replica lists, which moves no data. A lower
// goal never undoes a higher one, and each step moves the least data it
// can: among equal choices, the smallest partition. The plan is
// deterministic: the same input gives the same moves.
package balance

import (
	"cmp"
	"fmt"
	"slices"
)

// Broker is one broker as the planner sees it.
type Broker struct {
	ID   int32
	Rack string // "" when none is configured
	// Alive brokers may receive replicas.
	Alive bool
	// Remove asks for every replica to leave the broker (a drain, or a
	// broker dead longer than the cluster allows); it receives nothing.
	Remove bool
	// DiskBytes is what the broker's replicas use; DiskCapacity its disk
	// (0: unknown, the disk goal is skipped for it).
	DiskBytes    int64
	DiskCapacity int64
}

// Partition is one partition's replica list (preferred leader first) and
// its size.
type Partition struct {
	Topic    string
	Index    int32
	Replicas []int32
	Bytes    int64
}

// Options tunes a plan.
type Options struct {
	// DiskThreshold is the fraction of DiskCapacity above which a broker
	// sheds replicas (default 0.8).
	DiskThreshold float64
	// MaxMoves bounds the data moves of one plan (0: no bound); reorders
	// are not counted.
	MaxMoves int
}

// Move is one partition's change: its replica list from From to To (To[0]
// the preferred leader). Reorder is true when the set is unchanged and
// only the preferred leader moves.
type Move struct {
	Topic     string
	Partition int32
	From, To  []int32
	Reorder   bool
	Bytes     int64 // data to copy: Bytes times the replicas added
	Reasons   []string
}

// Plan is the moves, in a stable order (topic, partition), and notes on
// goals that could not be met and why.
type Plan struct {
	Moves []Move
	Notes []string
}

// state is the planner's working copy.
type state struct {
	brokers map[int32]*Broker
	ids     []int32 // every broker, ascending
	parts   []*part
	count   map[int32]int   // replicas per broker
	leaders map[int32]int   // preferred leaders per broker
	disk    map[int32]int64 // bytes per broker, as moves change it
	racks   int             // distinct racks among eligible brokers
	moves   int
	opt     Options
	notes   []string
}

type part struct {
	p       Partition
	to      []int32
	reasons []string
}

// Rebalance plans moves for the goals in the package doc.
func Rebalance(brokers []Broker, parts []Partition, opt Options) Plan {
	if opt.DiskThreshold <= 0 {
		opt.DiskThreshold = 0.8
	}
	s := &state{brokers: map[int32]*Broker{}, count: map[int32]int{}, leaders: map[int32]int{}, disk: map[int32]int64{}, opt: opt}
	racks := map[string]bool{}
	for i := range brokers {
		b := brokers[i]
		s.brokers[b.ID] = &b
		s.ids = append(s.ids, b.ID)
		s.disk[b.ID] = b.DiskBytes
		if s.eligible(b.ID) {
			racks[b.Rack] = true
		}
	}
	slices.Sort(s.ids)
	s.racks = len(racks)
	for _, p := range parts {
		pp := &part{p: p, to: slices.Clone(p.Replicas)}
		s.parts = append(s.parts, pp)
		for i, r := range p.Replicas {
			s.count[r]++
			if i == 0 {
				s.leaders[r]++
			}
		}
	}
	// Smallest first: every goal prefers moving less data.
	slices.SortStableFunc(s.parts, func(a, b *part) int {
		return cmp.Or(cmp.Compare(a.p.Bytes, b.p.Bytes), cmp.Compare(a.p.Topic, b.p.Topic), cmp.Compare(a.p.Index, b.p.Index))
	})
	s.evacuate()
	s.spreadRacks()
	s.relieveDisks()
	s.evenReplicas()
	s.evenLeaders()
	return s.plan()
}

func (s *state) eligible(id int32) bool {
	b, ok := s.brokers[id]
	return ok && b.Alive && !b.Remove
}

// budget reports whether another data move is allowed.
func (s *state) budget() bool { return s.opt.MaxMoves == 0 || s.moves < s.opt.MaxMoves }

// rackUsed reports whether a replica of p other than skip is on rack.
func (s *state) rackUsed(p *part, rack string, skip int32) bool {
	for _, r := range p.to {
		if r != skip && s.brokers[r] != nil && s.brokers[r].Rack == rack {
			return true
		}
	}
	return false
}

// placeable reports whether replica from of p may move to broker to
// without breaking the higher goals: an eligible broker not holding p,
// and a rack not used by p's other replicas (or the rack of from, or any
// rack once racks are fewer than replicas).
func (s *state) placeable(p *part, from, to int32) bool {
	if !s.eligible(to) || slices.Contains(p.to, to) {
		return false
	}
	rack := s.brokers[to].Rack
	if len(p.to) <= s.racks && s.rackUsed(p, rack, from) {
		return s.brokers[from] != nil && s.brokers[from].Rack == rack
	}
	return true
}

// move replaces from with to in p's list, keeping positions (a moved
// preferred leader's replacement becomes preferred leader).
func (s *state) move(p *part, from, to int32, reason string) {
	i := slices.Index(p.to, from)
	p.to[i] = to
	s.count[from]--
	s.count[to]++
	s.disk[from] -= p.p.Bytes
	s.disk[to] += p.p.Bytes
	if i == 0 {
		s.leaders[from]--
		s.leaders[to]++
	}
	s.moves++
	p.reasons = append(p.reasons, fmt.Sprintf("%s: broker %d → %d", reason, from, to))
}

// target is the best eligible broker for a replica of p leaving from:
// fewest replicas, then least disk, then lowest id; -1 when none.
func (s *state) target(p *part, from int32) int32 {
	best := int32(-1)
	for _, id := range s.ids {
		if !s.placeable(p, from, id) {
			continue
		}
		if best < 0 || s.count[id] < s.count[best] ||
			(s.count[id] == s.count[best] && s.disk[id] < s.disk[best]) {
			best = id
		}
	}
	return best
}

// evacuate moves every replica off brokers being removed or unknown.
func (s *state) evacuate() {
	for _, p := range s.parts {
		for _, r := range slices.Clone(p.to) {
			b := s.brokers[r]
			if b != nil && !b.Remove {
				continue
			}
			if !s.budget() {
				s.note("move budget spent: %s-%d keeps a replica on broker %d", p.p.Topic, p.p.Index, r)
				continue
			}
			if to := s.target(p, r); to >= 0 {
				s.move(p, r, to, "leave a broker being removed")
			} else {
				s.note("%s-%d: no broker can take its replica on broker %d (every eligible broker holds it already or its rack is taken)", p.p.Topic, p.p.Index, r)
			}
		}
	}
}

// spreadRacks moves a replica that shares a rack with another replica of
// its partition to an unused rack, while there are racks enough.
func (s *state) spreadRacks() {
	for _, p := range s.parts {
		if len(p.to) > s.racks {
			continue
		}
		for i := 1; i < len(p.to); i++ {
			r := p.to[i]
			if b := s.brokers[r]; b == nil || !s.rackUsedBefore(p, i) || !s.budget() {
				continue
			}
			best := int32(-1)
			for _, id := range s.ids {
				if s.eligible(id) && !slices.Contains(p.to, id) && !s.rackUsed(p, s.brokers[id].Rack, -1) &&
					(best < 0 || s.count[id] < s.count[best]) {
					best = id
				}
			}
			if best >= 0 {
				s.move(p, r, best, "put replicas on distinct racks")
			}
		}
	}
}

// rackUsedBefore reports whether p.to[i]'s rack holds one of p.to[:i].
func (s *state) rackUsedBefore(p *part, i int) bool {
	rack := s.brokers[p.to[i]].Rack
	for _, r := range p.to[:i] {
		if b := s.brokers[r]; b != nil && b.Rack == rack {
			return true
		}
	}
	return false
}

// over reports whether broker id is above its disk threshold.
func (s *state) over(id int32) bool {
	b := s.brokers[id]
	return b.DiskCapacity > 0 && float64(s.disk[id]) > s.opt.DiskThreshold*float64(b.DiskCapacity)
}

// relieveDisks moves replicas, smallest first, off brokers above their
// disk threshold to brokers that stay below theirs.
func (s *state) relieveDisks() {
	for _, id := range s.ids {
		for s.over(id) && s.budget() {
			moved := false
			for _, p := range s.parts {
				if !slices.Contains(p.to, id) {
					continue
				}
				best := int32(-1)
				for _, to := range s.ids {
					b := s.brokers[to]
					fits := b.DiskCapacity == 0 || float64(s.disk[to]+p.p.Bytes) <= s.opt.DiskThreshold*float64(b.DiskCapacity)
					if fits && s.placeable(p, id, to) && (best < 0 || s.disk[to] < s.disk[best]) {
						best = to
					}
				}
				if best >= 0 {
					s.move(p, id, best, "bring a disk under its threshold")
					moved = true
					break
				}
			}
			if !moved {
				s.note("broker %d stays above its disk threshold: no other broker has room for any of its replicas", id)
				break
			}
		}
	}
}

// evenReplicas moves replicas from the most to the least loaded eligible
// broker until counts are within one.
func (s *state) evenReplicas() {
	for s.budget() {
		hi, lo := s.extremes(s.count)
		if hi < 0 || s.count[hi]-s.count[lo] <= 1 {
			return
		}
		moved := false
		for _, p := range s.parts {
			if slices.Contains(p.to, hi) && s.placeable(p, hi, lo) && !s.overAfter(lo, p) {
				s.move(p, hi, lo, "even out replica counts")
				moved = true
				break
			}
		}
		if !moved {
			s.note("replica counts stay uneven: broker %d has %d, broker %d has %d, and no replica of %d can move to %d without breaking a rack or disk goal",
				hi, s.count[hi], lo, s.count[lo], hi, lo)
			return
		}
	}
}

// overAfter reports whether taking p would put broker id over its
// disk threshold.
func (s *state) overAfter(id int32, p *part) bool {
	b := s.brokers[id]
	return b.DiskCapacity > 0 && float64(s.disk[id]+p.p.Bytes) > s.opt.DiskThreshold*float64(b.DiskCapacity)
}

// extremes returns the eligible brokers with the most and fewest of m
// (lowest ids on ties); hi is -1 without two eligible brokers. A broker
// being removed counts as the most loaded until empty.
func (s *state) extremes(m map[int32]int) (hi, lo int32) {
	hi, lo = -1, -1
	for _, id := range s.ids {
		if !s.eligible(id) {
			continue
		}
		if hi < 0 || m[id] > m[hi] {
			hi = id
		}
		if lo < 0 || m[id] < m[lo] {
			lo = id
		}
	}
	if hi == lo {
		return -1, -1
	}
	return hi, lo
}

// evenLeaders reorders replica lists so preferred leaders are within one
// per broker. It moves no data.
func (s *state) evenLeaders() {
	for range len(s.parts) + 1 {
		hi, lo := s.extremes(s.leaders)
		if hi < 0 || s.leaders[hi]-s.leaders[lo] <= 1 {
			return
		}
		swapped := false
		for _, p := range s.parts {
			if p.to[0] != hi {
				continue
			}
			if i := slices.Index(p.to, lo); i > 0 {
				p.to[0], p.to[i] = p.to[i], p.to[0]
				s.leaders[hi]--
				s.leaders[lo]++
				p.reasons = append(p.reasons, fmt.Sprintf("even out preferred leaders: broker %d → %d", hi, lo))
				swapped = true
				break
			}
		}
		if !swapped {
			s.note("preferred leaders stay uneven: broker %d leads %d, broker %d leads %d, and no partition led by %d has a replica on %d",
				hi, s.leaders[hi], lo, s.leaders[lo], hi, lo)
			return
		}
	}
}

func (s *state) note(format string, args ...any) { s.notes = append(s.notes, fmt.Sprintf(format, args...)) }

func (s *state) plan() Plan {
	var out Plan
	for _, p := range s.parts {
		if slices.Equal(p.p.Replicas, p.to) {
			continue
		}
		added := 0
		for _, r := range p.to {
			if !slices.Contains(p.p.Replicas, r) {
				added++
			}
		}
		out.Moves = append(out.Moves, Move{Topic: p.p.Topic, Partition: p.p.Index, From: slices.Clone(p.p.Replicas), To: p.to,
			Reorder: added == 0, Bytes: int64(added) * p.p.Bytes, Reasons: p.reasons})
	}
	slices.SortFunc(out.Moves, func(a, b Move) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	out.Notes = s.notes
	return out
}
