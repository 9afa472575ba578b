package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/segment"
)

// Whole-cluster restarts (issue 13, item 1): every broker of a cluster
// crashes at once and comes back. A process crash under the same kernel
// boot lost nothing (R11 takes it as a clean stop); a machine crash may
// have lost what was not synced, and the balanced recovery elects the
// replica that lost least once all are back.

// TestWholeClusterSIGKILL: three broker processes (scripts/cluster.sh),
// a topic with the default fsync=interval, RF 3, under bench.Verify's
// acks=all load and a probe producer on a topic of its own. Every broker
// is SIGKILLed at once (the kernel keeps what they wrote) and all three
// are started again: within seconds every partition has a leader and the
// probe's records are acknowledged again; bench.Check finds nothing
// acknowledged lost, every probe record is where it was acknowledged, and
// the replicas end identical.
func TestWholeClusterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-process cluster for about 30 s")
	}
	start := time.Now()
	c, cl, _ := upWithTopic(t, 3, "", "whole", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.CreateTopics(ctx, client.TopicSpec{Name: "probe", Partitions: 3, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFullISR(t, cl, "probe", 20*time.Second)
	verifyStart := time.Now()
	wait := verifyAsync(t, c, "whole", 14*time.Second)
	acks, stopProducing := startProducing(t, c, "probe")
	waitAcked(t, acks, 1500) // a second or two of load

	pids := make([]int, c.n)
	for i := range pids {
		raw, err := os.ReadFile(filepath.Join(c.dir, strconv.Itoa(i+1), "pid"))
		if err != nil {
			t.Fatal(err)
		}
		if pids[i], err = strconv.Atoi(strings.TrimSpace(string(raw))); err != nil {
			t.Fatal(err)
		}
	}
	cd, err := cl.DescribeCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	epochs := map[int32]int64{}
	for _, b := range cd.Brokers {
		epochs[b.ID] = b.Epoch
	}
	before := acks.count()
	for i := 1; i <= c.n; i++ {
		c.run("kill", strconv.Itoa(i))
	}
	t.Logf("%5.1fs SIGKILL of every broker (%d probe records acknowledged)", time.Since(verifyStart).Seconds(), before)
	for _, pid := range pids {
		waitGone(t, pid)
	}
	for i := 1; i <= c.n; i++ {
		c.run("start", strconv.Itoa(i))
	}
	restarted := time.Now()
	// Until a broker registers again, the metadata still has its old
	// incarnation alive, perhaps leading: only leaders elected after
	// every registration count.
	waitCond(t, 20*time.Second, "every broker registered again", func(ctx context.Context) error {
		cd, err := cl.DescribeCluster(ctx)
		if err != nil {
			return err
		}
		for _, b := range cd.Brokers {
			if b.Epoch <= epochs[b.ID] || b.State != "alive" {
				return fmt.Errorf("broker %d: epoch %d (%d before the kill), %s", b.ID, b.Epoch, epochs[b.ID], b.State)
			}
		}
		return nil
	})
	for _, topic := range []string{"whole", "probe"} {
		waitCond(t, 20*time.Second, "a leader for every partition of "+topic, func(ctx context.Context) error {
			d, err := cl.DescribeTopic(ctx, topic)
			if err != nil {
				return err
			}
			for _, p := range d.Partitions {
				if p.Leader < 0 {
					return fmt.Errorf("partition %d: no leader, ISR %v: %s", p.Partition, p.ISR, p.Note)
				}
			}
			return nil
		})
	}
	led := time.Since(restarted)
	for _, topic := range []string{"whole", "probe"} {
		// Under the same boot the last in-sync replicas are eligible: a
		// recovery happens only where a SIGKILL tore a write.
		d, err := cl.DescribeTopic(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Partitions {
			if p.Note != "" {
				t.Logf("%s-%d: %s", topic, p.Partition, p.Note)
			}
		}
	}
	n := acks.count()
	waitAcked(t, acks, n+100)
	acked := time.Since(restarted)
	t.Logf("%5.1fs restarted every broker: every partition led after %v, the probe acknowledged again after %v",
		time.Since(verifyStart).Seconds(), led.Round(time.Millisecond), acked.Round(time.Millisecond))
	if acked > 15*time.Second {
		t.Errorf("acknowledgements resumed %v after the restart, want within 15 s", acked)
	}
	stopProducing()

	res := bench.Check(wait())
	t.Logf("%5.1fs checked: sent %d, acked %d, failed %d, unknown %d, duplicates %d", time.Since(verifyStart).Seconds(),
		res.Sent, res.Acked, res.Failed, res.Unknown, res.Duplicates)
	if !res.OK() || res.Acked == 0 {
		t.Fatalf("history fails the checks: %+v", res)
	}
	checkAcked(t, c, "probe", acks)
	waitIdentical(t, cl, "whole", 3)
	waitIdentical(t, cl, "probe", 3)
	t.Logf("replicas identical; %.1fs in all", time.Since(start).Seconds())
}

// waitGone waits until process pid has exited (a zombie counts: it holds
// no file lock and no port).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	poll.Until(t, 10*time.Second, fmt.Sprintf("process %d gone", pid), func() error {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil
		}
		// The state follows the command name in parentheses.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return nil
		}
		return errors.New("still running")
	})
}

// TestWholeClusterRebootBalancedRecovery: three brokers in this process,
// each reading its kernel boot id from a file of the test. A topic with
// RF 3 and fsync=interval gets 30 records, acknowledged by all three, and
// the controller learns they were committed. Every broker crashes, and a
// machine crash is simulated: each log loses a different tail (brokers 1,
// 2, 3 keep 10, 25 and 20 records, as after losing unsynced pages) and
// every boot id changes. At the restart no replica is eligible (R11); the
// balanced recovery elects broker 2, whose log is longest, noting that it
// may lack 5 committed offsets, which `sluice topic describe` and
// `sluice cluster status` show; acknowledgements resume and the 25
// records broker 2 kept are all there.
func TestWholeClusterRebootBalancedRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	bootDir := t.TempDir()
	bootFile := func(id int32) string { return filepath.Join(bootDir, fmt.Sprintf("boot-%d", id)) }
	boot := func(id string) {
		for i := int32(1); i <= 3; i++ {
			if err := os.WriteFile(bootFile(i), []byte(id+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	boot("1f0e3a44-before")
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(cfg *broker.Config) { cfg.BootIDFile = bootFile(cfg.BrokerID) }})
	cl := c.Client()
	const topic, records, winner, lack = "reboot", 30, 2, 5
	keep := map[int32]int{1: 10, 2: records - lack, 3: 20}
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 3})
	testcluster.WaitFullISR(t, cl, topic, 15*time.Second)
	prod := c.Client(client.Acks(client.AcksAll), client.RecordPartitioner(client.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range records {
		if err := prod.ProduceSync(ctx, &client.Record{Topic: topic, Value: []byte(fmt.Sprintf("r-%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	committed := func(id int32) (controller.Partition, error) {
		b := c.Broker(id)
		if b == nil {
			return controller.Partition{}, fmt.Errorf("broker %d is not running", id)
		}
		tp := b.Controller().Metadata().Topics[topic]
		if tp == nil {
			return controller.Partition{}, fmt.Errorf("no topic %s in broker %d's metadata", topic, id)
		}
		return tp.Partitions[0], nil
	}
	poll.Until(t, 15*time.Second, "committed HW reported", func() error {
		p, err := committed(1)
		if err == nil && p.CommittedHW != records {
			err = fmt.Errorf("committed HW %d, want %d", p.CommittedHW, records)
		}
		return err
	})
	testcluster.WaitFullISR(t, cl, topic, 15*time.Second) // every replica holds all 30

	for _, id := range c.IDs() {
		c.Kill(id)
	}
	for id, n := range keep {
		loseTail(t, filepath.Join(c.Dir(id), topic+"-0"), n)
	}
	boot("7c2d9b10-after")
	c.RestartTogether(c.IDs()...)

	cl = c.Client()
	pd := testcluster.WaitPartition(t, cl, topic, 0, 20*time.Second, "the balanced recovery", testcluster.LeaderIs(winner))
	p, err := committed(winner)
	if err != nil {
		t.Fatal(err)
	}
	if p.RecoveredEpoch != pd.LeaderEpoch || p.RecoveryMayLack != lack || p.CommittedHW != records-lack {
		t.Fatalf("partition %+v after the recovery, want recovered in leader epoch %d lacking %d, committed HW %d",
			p, pd.LeaderEpoch, lack, records-lack)
	}
	note := fmt.Sprintf("leader elected by a balanced recovery at leader epoch %d: may lack %d committed offsets", pd.LeaderEpoch, lack)
	addr := c.Broker(1).Addr()
	out := sluice(t, bin, addr, "", "topic", "describe", topic)
	t.Logf("sluice topic describe %s:\n%s", topic, out)
	if !strings.Contains(out, "note: partition 0: "+note) {
		t.Errorf("topic describe does not show the recovery")
	}
	out = sluice(t, bin, addr, "", "cluster", "status")
	t.Logf("sluice cluster status:\n%s", out)
	if !strings.Contains(out, "recovered uncleanly: 1") || !strings.Contains(out, fmt.Sprintf("recovered: %s-0 leader %d: %s", topic, winner, note)) {
		t.Errorf("cluster status does not show the recovery")
	}

	// Acknowledgements resume where broker 2's log ends, and what it
	// kept is there.
	after := &client.Record{Topic: topic, Value: []byte("after")}
	if err := c.Client(client.Acks(client.AcksAll), client.RecordPartitioner(client.ManualPartitioner())).ProduceSync(ctx, after); err != nil {
		t.Fatal(err)
	}
	if after.Offset != records-lack {
		t.Fatalf("produced after the recovery at offset %d, want %d", after.Offset, records-lack)
	}
	got := readAll(t, c.Client(), topic, records-lack+1)
	for i, v := range got {
		want := fmt.Sprintf("r-%d", i)
		if i == records-lack {
			want = "after"
		}
		if v != want {
			t.Fatalf("offset %d holds %q, want %q", i, v, want)
		}
	}
}

// loseTail makes a partition directory look as a machine crash can leave
// it: the log keeps its first n batches (the pages after them were never
// written back), and the log's clean-shutdown marker is gone, so the next
// start recovers it.
func loseTail(t *testing.T, dir string, n int) {
	t.Helper()
	path := segment.LogPath(dir, 0)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pos := 0
	for range n {
		// baseOffset i64, batchLength i32, then batchLength bytes.
		if pos+12 > len(data) {
			t.Fatalf("%s: fewer than %d batches", path, n)
		}
		pos += 12 + int(binary.BigEndian.Uint32(data[pos+8:]))
	}
	if err := os.Truncate(path, int64(pos)); err != nil {
		t.Fatal(err)
	}
	// The log package's marker of a clean close (log/log.go).
	if err := os.Remove(filepath.Join(dir, ".clean-shutdown")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}

// readAll reads partition 0 of topic from its start until it has n
// records and returns their values.
func readAll(t *testing.T, cl *client.Client, topic string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl.Assign(map[client.TopicPartition]client.Offset{{Topic: topic, Partition: 0}: client.AtStart()})
	var got []string
	for len(got) < n {
		fs, err := cl.Poll(ctx)
		if err != nil {
			t.Fatalf("read %s: %d of %d records: %v", topic, len(got), n, err)
		}
		if len(fs.Errors) > 0 {
			t.Fatalf("read %s: %v", topic, fs.Errors[0])
		}
		for _, r := range fs.Records {
			got = append(got, string(r.Value))
		}
	}
	return got
}
