package broker

import (
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/vfs"
)

// cpuTime is the process's user + system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReconcileManyPartitions is a broker's share of a topic of 3,000
// partitions RF 3 on 3 brokers (it leads 1,000, follows 2,000): "create"
// opens them all (files, fsyncs); "isr-change" applies a metadata change
// of one partition to them all. cpu-ms/op is the process's CPU (user +
// system), steadier than the clock on a shared machine.
//
//	go test -run '^$' -bench BenchmarkReconcileManyPartitions -benchtime 3x ./broker/
func BenchmarkReconcileManyPartitions(b *testing.B) {
	const n = 3000
	base := controller.NewMetadata()
	for id := int32(1); id <= 3; id++ {
		base = mustApply(b, base, controller.RegisterBroker{ID: id, Addr: "127.0.0.1:1", PreviousEpoch: controller.PreviousEpochEmpty})
	}
	create, err := controller.PlanCreateTopic(base, controller.TopicSpec{Name: "many", Partitions: n, ReplicationFactor: 3})
	if err != nil {
		b.Fatal(err)
	}
	created := mustApply(b, base, create)
	newParts := func() *partitions {
		repl := &replication{addr: func(int32) (string, bool) { return "", false }, brokerEpoch: func() int64 { return 1 }}
		return newPartitions(vfs.Default, b.TempDir(), 1, nil, zap.NewNop(), repl)
	}
	report := func(b *testing.B, cpu time.Duration) {
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
	}

	b.Run("create", func(b *testing.B) {
		var cpu time.Duration
		b.StopTimer()
		for range b.N {
			m := newParts()
			c0 := cpuTime(b)
			b.StartTimer()
			m.reconcile(created)
			b.StopTimer()
			cpu += cpuTime(b) - c0
			if err := m.closeAll(); err != nil {
				b.Fatal(err)
			}
		}
		report(b, cpu)
	})

	b.Run("isr-change", func(b *testing.B) {
		m := newParts()
		defer m.closeAll()
		m.reconcile(created)
		md := created
		var cpu time.Duration
		b.ResetTimer()
		for i := range b.N {
			// Shrink, then expand, the ISR of a partition broker 1 leads.
			b.StopTimer()
			var k int32 = -1
			for _, p := range md.Topics["many"].Partitions {
				if p.Leader == 1 {
					k = p.Index
					break
				}
			}
			p := md.Topics["many"].Partitions[k]
			isr, epochs := []int32{1}, []int64(nil)
			if i%2 == 1 {
				isr = slicesWith(p.ISR, p.Replicas)
				epochs = make([]int64, len(isr))
				for j, id := range isr {
					epochs[j] = md.Brokers[id].Epoch
				}
			}
			md = mustApply(b, md, controller.AlterPartition{Topic: "many", Partition: k, PartitionEpoch: p.PartitionEpoch, Leader: 1, ISR: isr, BrokerEpochs: epochs})
			c0 := cpuTime(b)
			b.StartTimer()
			m.reconcile(md)
			b.StopTimer()
			cpu += cpuTime(b) - c0
		}
		report(b, cpu)
	})
}

// slicesWith is replicas, the ISR's members first.
func slicesWith(isr, replicas []int32) []int32 {
	out := append([]int32(nil), isr...)
	for _, r := range replicas {
		found := false
		for _, x := range out {
			found = found || x == r
		}
		if !found {
			out = append(out, r)
		}
	}
	return out
}
