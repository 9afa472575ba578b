package controller

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

// batchLogs returns a run of command entries — registrations, two topics,
// then ISR shrinks and expansions, stale and unknown changes, reports —
// each made against the metadata the ones before it produced, and what a
// one-by-one Apply answered to each, and that FSM.
func batchLogs(t *testing.T) ([]*raft.Log, []ApplyResponse, *FSM) {
	t.Helper()
	ref := NewFSM()
	var logs []*raft.Log
	var resps []ApplyResponse
	add := func(c Command) {
		l := &raft.Log{Index: uint64(len(logs) + 1), Type: raft.LogCommand, Data: AppendCommand(nil, c)}
		logs = append(logs, l)
		resps = append(resps, ref.Apply(l).(ApplyResponse))
	}
	for id := int32(1); id <= 3; id++ {
		add(RegisterBroker{ID: id, Addr: fmt.Sprintf("b%d:1", id)})
	}
	var replicas [][]int32
	for i := range 40 {
		replicas = append(replicas, []int32{int32(i%3 + 1), int32((i+1)%3 + 1), int32((i+2)%3 + 1)})
	}
	add(CreateTopic{Name: "a", Replicas: replicas})
	add(CreateTopic{Name: "b", Replicas: replicas[:5]})
	// A configuration entry: not a command, answered nil.
	logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Type: raft.LogConfiguration})
	resps = append(resps, ApplyResponse{})
	rng := rand.New(rand.NewPCG(1, 2))
	for range 250 {
		m := ref.Metadata()
		name := []string{"a", "a", "a", "b"}[rng.IntN(4)]
		tp := m.Topics[name]
		p := tp.Partitions[rng.IntN(len(tp.Partitions))]
		c := AlterPartition{Topic: name, Partition: p.Index, PartitionEpoch: p.PartitionEpoch, Leader: p.Leader,
			ISR: slices.Clone(p.ISR), HighWatermark: rng.Int64N(100), TopicID: tp.ID}
		switch op := rng.IntN(10); {
		case op < 4 && len(p.ISR) > 1: // shrink
			c.ISR = slices.DeleteFunc(c.ISR, func(id int32) bool { return id != p.Leader && rng.IntN(2) == 0 })
		case op < 8: // expand
			for _, r := range p.Replicas {
				if !slices.Contains(c.ISR, r) {
					c.ISR = append(c.ISR, r)
					c.BrokerEpochs = append(c.BrokerEpochs, m.Brokers[r].Epoch)
				}
			}
			for len(c.BrokerEpochs) < len(c.ISR) {
				c.BrokerEpochs = append([]int64{-1}, c.BrokerEpochs...)
			}
		case op == 8: // stale: refused
			c.PartitionEpoch--
		default: // a report between the changes, or an unknown partition
			if rng.IntN(2) == 0 {
				add(ReportHighWatermarks{BrokerID: p.Leader, BrokerEpoch: m.Brokers[p.Leader].Epoch,
					Entries: []HighWatermark{{Topic: name, TopicID: tp.ID, Partition: p.Index, LeaderEpoch: p.LeaderEpoch, HighWatermark: 1000}}})
				continue
			}
			c.Partition = 99
		}
		add(c)
	}
	return logs, resps, ref
}

func metadataJSON(t *testing.T, m *Metadata) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ApplyBatch, whatever the runs it is handed, ends where Apply one by one
// ends (snapshot bytes, versions included), answers each entry as Apply
// did, and never changes a metadata it published.
func TestApplyBatchAsOneByOne(t *testing.T) {
	logs, want, ref := batchLogs(t)
	applied, refused := 0, 0
	for _, r := range want {
		if r.Err != nil {
			refused++
		} else {
			applied++
		}
	}
	if applied < 100 || refused < 20 {
		t.Fatalf("the run applied %d and refused %d commands: too few of either to compare", applied, refused)
	}
	wantSnap := snapshotBytes(t, ref)
	for _, size := range []int{1, 2, 7, 64, len(logs)} {
		f := NewFSM()
		var got []interface{}
		for chunk := range slices.Chunk(logs, size) {
			if size == 1 {
				got = append(got, f.ApplyBatch(chunk)...)
				continue
			}
			before := f.Metadata()
			beforeJSON := metadataJSON(t, before)
			got = append(got, f.ApplyBatch(chunk)...)
			if !bytes.Equal(metadataJSON(t, before), beforeJSON) {
				t.Fatalf("runs of %d: a batch changed the metadata published before it", size)
			}
		}
		for i, r := range got {
			w := want[i]
			if logs[i].Type != raft.LogCommand {
				if r != nil {
					t.Fatalf("runs of %d: entry %d (not a command) answered %+v", size, i, r)
				}
				continue
			}
			g := r.(ApplyResponse)
			if fmt.Sprint(g.Err) != fmt.Sprint(w.Err) || g.Result.Index != w.Result.Index || g.Result.BrokerEpoch != w.Result.BrokerEpoch || g.Result.TopicID != w.Result.TopicID {
				t.Fatalf("runs of %d: entry %d answered %+v, one by one %+v", size, i, g, w)
			}
		}
		if !bytes.Equal(snapshotBytes(t, f), wantSnap) {
			t.Fatalf("runs of %d: the metadata differs from the one-by-one apply's", size)
		}
		if f.AppliedIndex() != ref.AppliedIndex() || f.Metadata().Version != ref.Metadata().Version {
			t.Fatalf("runs of %d: applied %d version %d, one by one %d and %d", size, f.AppliedIndex(), f.Metadata().Version, ref.AppliedIndex(), ref.Metadata().Version)
		}
	}
}

// isrExpansions returns an FSM holding one topic of n partitions RF 3
// with broker 3 out of every ISR, and the n entries adding it back.
func isrExpansions(t testing.TB, n int) (*FSM, []*raft.Log) {
	f := NewFSM()
	var replicas [][]int32
	for i := range n {
		replicas = append(replicas, []int32{int32(i%2 + 1), int32((i+1)%2 + 1), 3})
	}
	var index uint64
	apply := func(c Command) {
		index++
		if r := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: AppendCommand(nil, c)}).(ApplyResponse); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	for id := int32(1); id <= 3; id++ {
		apply(RegisterBroker{ID: id, Addr: fmt.Sprintf("b%d:1", id)})
	}
	apply(CreateTopic{Name: "many", Replicas: replicas})
	var logs []*raft.Log
	for _, p := range f.Metadata().Topics["many"].Partitions {
		index++
		logs = append(logs, &raft.Log{Index: index, Type: raft.LogCommand, Data: AppendCommand(nil,
			AlterPartition{Topic: "many", Partition: p.Index, PartitionEpoch: p.PartitionEpoch, Leader: p.Leader, ISR: p.ISR[:2]})})
	}
	for _, r := range f.ApplyBatch(logs) {
		if err := r.(ApplyResponse).Err; err != nil {
			t.Fatal(err)
		}
	}
	m := f.Metadata()
	logs = nil
	for _, p := range m.Topics["many"].Partitions {
		index++
		logs = append(logs, &raft.Log{Index: index, Type: raft.LogCommand, Data: AppendCommand(nil, AlterPartition{Topic: "many",
			Partition: p.Index, PartitionEpoch: p.PartitionEpoch, Leader: p.Leader, ISR: []int32{p.ISR[0], p.ISR[1], 3}, BrokerEpochs: []int64{-1, -1, m.Brokers[3].Epoch}})})
	}
	return f, logs
}

// A run of ISR changes to one topic copies its partitions once, not once
// per change: 500 expansions of a 500-partition topic in runs of 64
// allocate a small fraction of what they do one by one (a copy of the
// whole array each).
func TestApplyBatchCopiesATopicOncePerRun(t *testing.T) {
	allocated := func(batch int) uint64 {
		f, logs := isrExpansions(t, 500)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for chunk := range slices.Chunk(logs, batch) {
			for _, r := range f.ApplyBatch(chunk) {
				if err := r.(ApplyResponse).Err; err != nil {
					t.Fatal(err)
				}
			}
		}
		runtime.ReadMemStats(&after)
		for _, p := range f.Metadata().Topics["many"].Partitions {
			if len(p.ISR) != 3 {
				t.Fatalf("partition %d: ISR %v after the expansions", p.Index, p.ISR)
			}
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	one, runs := allocated(1), allocated(64)
	t.Logf("500 ISR expansions allocated %d bytes one by one, %d in runs of 64", one, runs)
	if runs*10 > one {
		t.Fatalf("runs of 64 allocated %d bytes, one by one %d: want under a tenth", runs, one)
	}
}

func BenchmarkApplyISRExpansions(b *testing.B) {
	for _, batch := range []int{1, 64, 1000} {
		b.Run(fmt.Sprintf("10000-partitions-runs-of-%d", batch), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				f, logs := isrExpansions(b, 10000)
				b.StartTimer()
				for chunk := range slices.Chunk(logs, batch) {
					f.ApplyBatch(chunk)
				}
			}
		})
	}
}
