package balance

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// cluster returns n alive brokers (racks by rackOf, "" for none) and
// topics×partitions of RF rf placed round robin on the first `on` brokers.
func cluster(n, on, topics, partitions, rf int, rackOf func(int32) string) ([]Broker, []Partition) {
	var bs []Broker
	for i := 1; i <= n; i++ {
		bs = append(bs, Broker{ID: int32(i), Rack: rackOf(int32(i)), Alive: true})
	}
	var ps []Partition
	k := 0
	for t := range topics {
		for p := range partitions {
			var reps []int32
			for r := range rf {
				reps = append(reps, int32((k+r)%on+1))
			}
			k++
			ps = append(ps, Partition{Topic: fmt.Sprintf("t%d", t), Index: int32(p), Replicas: reps, Bytes: int64(1000 + p)})
		}
	}
	return bs, ps
}

func noRack(int32) string { return "" }

// apply returns the partitions after the plan.
func apply(ps []Partition, plan Plan) []Partition {
	out := slices.Clone(ps)
	for _, m := range plan.Moves {
		for i := range out {
			if out[i].Topic == m.Topic && out[i].Index == m.Partition {
				if !slices.Equal(out[i].Replicas, m.From) {
					panic("move from a list the partition does not have")
				}
				out[i].Replicas = m.To
			}
		}
	}
	return out
}

func counts(ps []Partition) (replicas, leaders map[int32]int) {
	replicas, leaders = map[int32]int{}, map[int32]int{}
	for _, p := range ps {
		for i, r := range p.Replicas {
			replicas[r]++
			if i == 0 {
				leaders[r]++
			}
		}
	}
	return
}

func spread(m map[int32]int, ids ...int32) int {
	lo, hi := -1, -1
	for _, id := range ids {
		if lo < 0 || m[id] < lo {
			lo = m[id]
		}
		if m[id] > hi {
			hi = m[id]
		}
	}
	return hi - lo
}

func checkValid(t *testing.T, ps []Partition, rf int) {
	t.Helper()
	for _, p := range ps {
		if len(p.Replicas) != rf {
			t.Fatalf("%s-%d: %d replicas, want %d", p.Topic, p.Index, len(p.Replicas), rf)
		}
		seen := map[int32]bool{}
		for _, r := range p.Replicas {
			if seen[r] {
				t.Fatalf("%s-%d: broker %d twice in %v", p.Topic, p.Index, r, p.Replicas)
			}
			seen[r] = true
		}
	}
}

// A 4th broker joins a cluster of 3: it gets its share of replicas and of
// preferred leaders, and nothing else moves more than needed.
func TestNewBrokerGetsItsShare(t *testing.T) {
	bs, ps := cluster(4, 3, 2, 12, 3, noRack)
	plan := Rebalance(bs, ps, Options{})
	after := apply(ps, plan)
	checkValid(t, after, 3)
	reps, leaders := counts(after)
	if spread(reps, 1, 2, 3, 4) > 1 || spread(leaders, 1, 2, 3, 4) > 1 {
		t.Fatalf("replicas %v, leaders %v: not within one", reps, leaders)
	}
	// 72 replicas, 18 each: broker 4 needs 18, so at least 18 data moves
	// and no more than that.
	data := 0
	for _, m := range plan.Moves {
		if !m.Reorder {
			for _, r := range m.To {
				if !slices.Contains(m.From, r) {
					data++
				}
			}
		}
	}
	if data != 18 {
		t.Fatalf("%d replicas copied, want 18 (the new broker's share)", data)
	}
	if len(plan.Notes) != 0 {
		t.Fatalf("notes: %v", plan.Notes)
	}
	// The same input plans the same moves.
	if again := Rebalance(bs, ps, Options{}); !reflect.DeepEqual(again, plan) {
		t.Fatal("plan not deterministic")
	}
}

func TestBalancedClusterPlansNothing(t *testing.T) {
	bs, ps := cluster(3, 3, 3, 6, 3, noRack)
	if plan := Rebalance(bs, ps, Options{}); len(plan.Moves) != 0 || len(plan.Notes) != 0 {
		t.Fatalf("plan for a balanced cluster: %+v", plan)
	}
}

// A drained broker ends with nothing, the others stay even.
func TestDrain(t *testing.T) {
	bs, ps := cluster(4, 4, 1, 20, 3, noRack)
	bs[1].Remove = true // broker 2
	plan := Rebalance(bs, ps, Options{})
	after := apply(ps, plan)
	checkValid(t, after, 3)
	reps, leaders := counts(after)
	if reps[2] != 0 || leaders[2] != 0 {
		t.Fatalf("broker 2 still holds %d replicas, leads %d", reps[2], leaders[2])
	}
	if spread(reps, 1, 3, 4) > 1 || spread(leaders, 1, 3, 4) > 1 {
		t.Fatalf("replicas %v, leaders %v", reps, leaders)
	}
}

// With a rack per broker pair, no partition keeps two replicas in a rack,
// and a move never breaks that to even counts.
func TestRacksApart(t *testing.T) {
	rack := func(id int32) string { return fmt.Sprintf("r%d", (id+1)/2) } // 1,2→r1 3,4→r2 5,6→r3
	bs, ps := cluster(6, 6, 1, 18, 3, rack)
	// Put every partition's first two replicas in one rack.
	for i := range ps {
		base := int32(i%3)*2 + 1
		ps[i].Replicas = []int32{base, base + 1, (base+2)%6 + 1}
	}
	plan := Rebalance(bs, ps, Options{})
	after := apply(ps, plan)
	checkValid(t, after, 3)
	for _, p := range after {
		racks := map[string]bool{}
		for _, r := range p.Replicas {
			racks[rack(r)] = true
		}
		if len(racks) != 3 {
			t.Fatalf("%s-%d: replicas %v on racks %v", p.Topic, p.Index, p.Replicas, racks)
		}
	}
	reps, _ := counts(after)
	if spread(reps, 1, 2, 3, 4, 5, 6) > 1 {
		t.Fatalf("replica counts %v", reps)
	}
}

// A broker above its disk threshold sheds its smallest replicas to one
// with room, and a full cluster says why it cannot.
func TestDiskThreshold(t *testing.T) {
	bs := []Broker{{ID: 1, Alive: true, DiskCapacity: 10_000}, {ID: 2, Alive: true, DiskCapacity: 10_000}, {ID: 3, Alive: true, DiskCapacity: 100_000}}
	ps := []Partition{
		{Topic: "a", Index: 0, Replicas: []int32{1}, Bytes: 5000},
		{Topic: "a", Index: 1, Replicas: []int32{1}, Bytes: 4000},
		{Topic: "b", Index: 0, Replicas: []int32{2}, Bytes: 1000},
	}
	bs[0].DiskBytes, bs[1].DiskBytes = 9000, 1000
	plan := Rebalance(bs, ps, Options{})
	after := apply(ps, plan)
	disk := map[int32]int64{}
	for _, p := range after {
		for _, r := range p.Replicas {
			disk[r] += p.Bytes
		}
	}
	if disk[1] > 8000 {
		t.Fatalf("broker 1 still holds %d bytes (threshold 8000): %+v", disk[1], plan)
	}
	if plan.Moves[0].Topic != "a" || plan.Moves[0].Partition != 1 {
		t.Fatalf("moved %+v first, want the smaller a-1", plan.Moves[0])
	}

	full := []Broker{{ID: 1, Alive: true, DiskCapacity: 1000, DiskBytes: 950}, {ID: 2, Alive: true, DiskCapacity: 1000, DiskBytes: 950}}
	plan = Rebalance(full, []Partition{{Topic: "a", Replicas: []int32{1}, Bytes: 950}, {Topic: "b", Replicas: []int32{2}, Bytes: 950}}, Options{})
	if len(plan.Moves) != 0 || len(plan.Notes) == 0 {
		t.Fatalf("full cluster: %+v", plan)
	}
}

// Too few brokers to drain into: the plan says so and moves what it can.
func TestDrainWithoutRoom(t *testing.T) {
	bs, ps := cluster(3, 3, 1, 3, 3, noRack)
	bs[2].Remove = true
	plan := Rebalance(bs, ps, Options{})
	if len(plan.Notes) == 0 {
		t.Fatal("no note on replicas that cannot leave")
	}
	checkValid(t, apply(ps, plan), 3)
}

func TestMaxMoves(t *testing.T) {
	bs, ps := cluster(4, 3, 1, 30, 3, noRack)
	plan := Rebalance(bs, ps, Options{MaxMoves: 5})
	data := 0
	for _, m := range plan.Moves {
		if !m.Reorder {
			data++
		}
	}
	if data > 5 {
		t.Fatalf("%d data moves, budget 5", data)
	}
}

// Random clusters: every plan is valid, keeps replica counts per
// partition, never places a replica on a removed or dead broker, and
// leaves counts within one when nothing blocks it.
func TestRandomPlansAreValid(t *testing.T) {
	for seed := range 200 {
		n := 2 + seed%6
		rf := 1 + seed%3
		if rf > n {
			rf = n
		}
		on := max(rf, 1+seed%n) // brokers holding the initial replicas
		bs, ps := cluster(n, on, 1+seed%3, 1+seed%17, rf, noRack)
		if n > 3 && seed%4 == 0 {
			bs[seed%n].Remove = true
		}
		if n > 3 && seed%5 == 0 {
			bs[(seed+1)%n].Alive = false
		}
		plan := Rebalance(bs, ps, Options{})
		after := apply(ps, plan)
		checkValid(t, after, rf)
		for _, m := range plan.Moves {
			for _, r := range m.To {
				if !slices.Contains(m.From, r) && (bs[r-1].Remove || !bs[r-1].Alive) {
					t.Fatalf("seed %d: replica placed on broker %d (%+v)", seed, r, bs[r-1])
				}
			}
		}
		if len(plan.Notes) > 0 {
			continue
		}
		var eligible []int32
		for _, b := range bs {
			if b.Alive && !b.Remove {
				eligible = append(eligible, b.ID)
			}
		}
		reps, leaders := counts(after)
		for _, b := range bs {
			if b.Remove && reps[b.ID] != 0 {
				t.Fatalf("seed %d: removed broker %d keeps %d replicas and no note says why", seed, b.ID, reps[b.ID])
			}
		}
		if spread(reps, eligible...) > 1 || spread(leaders, eligible...) > 1 {
			t.Fatalf("seed %d: replicas %v, leaders %v uneven over %v, and no note says why", seed, reps, leaders, eligible)
		}
	}
}

func BenchmarkRebalance(b *testing.B) {
	bs, ps := cluster(12, 6, 20, 100, 3, func(id int32) string { return fmt.Sprint(id % 3) })
	for b.Loop() {
		Rebalance(bs, ps, Options{})
	}
}
