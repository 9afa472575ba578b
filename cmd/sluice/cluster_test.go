package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/protocol"
)

// `sluice cluster status --json` and `cluster brokers` against a single
// broker: it is the controller, its only voter and its only broker, alive
// at epoch 1, and a topic's partitions all have a leader.
func TestCLIClusterStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	addr, _ := startBroker(t, bin, t.TempDir())
	sluice(t, bin, addr, "", "topic", "create", "st", "--partitions", "2")

	var st clusterStatusJSON
	out := sluice(t, bin, addr, "", "cluster", "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if !st.ControllerKnown || st.ControllerID != 1 || st.RaftTerm < 1 || len(st.Voters) != 1 || st.Voters[0].ID != 1 || len(st.NonVoters) != 0 {
		t.Fatalf("controller and voters: %+v", st)
	}
	if len(st.Brokers) != 1 || st.Brokers[0].Addr != addr || st.Brokers[0].State != "alive" || st.Brokers[0].Epoch != 1 ||
		st.Brokers[0].RaftAddr != st.Voters[0].RaftAddr {
		t.Fatalf("brokers: %+v", st.Brokers)
	}
	if st.TopicCount != 1 || st.PartitionCount != 2 || len(st.Offline) != 0 || len(st.UnderReplicated) != 0 {
		t.Fatalf("partitions: %+v", st)
	}
	if out := sluice(t, bin, addr, "", "cluster", "status"); !strings.Contains(out, "controller: broker 1, raft term ") ||
		!strings.Contains(out, "without a leader: 0") {
		t.Fatalf("status:\n%s", out)
	}
	out = sluice(t, bin, addr, "", "cluster", "brokers", "--json")
	var brokers []map[string]any
	if err := json.Unmarshal([]byte(out), &brokers); err != nil || len(brokers) != 1 || brokers[0]["state"] != "alive" ||
		brokers[0]["draining"] != false {
		t.Fatalf("brokers --json: %v\n%s", err, out)
	}
	if len(st.Draining) != 0 || st.DrainingError != "" || st.Brokers[0].Draining == nil || *st.Brokers[0].Draining {
		t.Fatalf("draining before the mark: %+v %+v", st.Draining, st.Brokers)
	}

	// With nothing set, auto.balance is on-join, shown as the default.
	var configs []configEntryJSON
	out = sluice(t, bin, addr, "", "cluster", "config", "--json")
	if err := json.Unmarshal([]byte(out), &configs); err != nil {
		t.Fatalf("cluster config --json: %v\n%s", err, out)
	}
	if i := slices.IndexFunc(configs, func(e configEntryJSON) bool { return e.Key == "auto.balance" }); i < 0 ||
		configs[i].Value != "on-join" || !configs[i].IsDefault {
		t.Fatalf("cluster config --json: auto.balance not on-join by default:\n%s", out)
	}

	// The draining mark (what cluster drain sets) shows in status and
	// brokers, text and JSON.
	sluice(t, bin, addr, "", "cluster", "config", "--set", "brokers.draining=1")
	out = sluice(t, bin, addr, "", "cluster", "status", "--json")
	st = clusterStatusJSON{}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if len(st.Draining) != 1 || st.Draining[0] != 1 || st.Brokers[0].Draining == nil || !*st.Brokers[0].Draining {
		t.Fatalf("draining after the mark: %+v %+v", st.Draining, st.Brokers)
	}
	if out := sluice(t, bin, addr, "", "cluster", "status"); !strings.Contains(out, "\ndraining: brokers 1\n") {
		t.Fatalf("status with a draining broker:\n%s", out)
	}
	out = sluice(t, bin, addr, "", "cluster", "brokers")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasSuffix(lines[0], "DRAINING") ||
		!strings.HasSuffix(lines[1], "alive  yes") {
		t.Fatalf("brokers with a draining broker:\n%s", out)
	}
	out = sluice(t, bin, addr, "", "cluster", "brokers", "--json")
	if err := json.Unmarshal([]byte(out), &brokers); err != nil || len(brokers) != 1 || brokers[0]["draining"] != true {
		t.Fatalf("brokers --json with a draining broker: %v\n%s", err, out)
	}
}

// A draining mark that cannot be read (a user without DescribeConfigs on
// the cluster) leaves the rest of cluster status, and says so.
func TestClusterStatusDrainingUnknown(t *testing.T) {
	brokers := brokersView([]client.BrokerDescription{{ID: 1, State: "alive"}, {ID: 2, State: "alive"}}, nil, errors.New("CLUSTER_AUTHORIZATION_FAILED"))
	st := clusterStatusJSON{Brokers: brokers, DrainingError: "describe configs: CLUSTER_AUTHORIZATION_FAILED"}
	var out bytes.Buffer
	if err := printClusterStatus(&out, st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "draining: unknown: describe configs: CLUSTER_AUTHORIZATION_FAILED\n") ||
		strings.Count(out.String(), "alive  ?\n") != 2 {
		t.Fatalf("status:\n%s", out.String())
	}
	js, err := json.Marshal(brokers)
	if err != nil || strings.Contains(string(js), "draining") {
		t.Fatalf("brokers --json with the mark unknown: %v %s", err, js)
	}
	brokers = brokersView([]client.BrokerDescription{{ID: 1}, {ID: 2}, {ID: 3}}, []int32{1, 3}, nil)
	st = clusterStatusJSON{Brokers: brokers, Draining: []int32{1, 3}}
	out.Reset()
	if err := printClusterStatus(&out, st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "\ndraining: brokers 1, 3\n") || strings.Count(out.String(), "yes\n") != 2 {
		t.Fatalf("status:\n%s", out.String())
	}
}

func TestClusterStatusFindsUnhealthyPartitions(t *testing.T) {
	var st clusterStatusJSON
	st.addPartitions("t", []client.PartitionDescription{
		{Partition: 0, Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}},
		{Partition: 1, Leader: -1, Replicas: []int32{2}, ISR: []int32{2}},
		{Partition: 2, Leader: 1, Replicas: []int32{1, 3}, ISR: []int32{1}},
		{Partition: 3, Leader: 3, Replicas: []int32{3}, ISR: []int32{3}, Note: "leader elected by a balanced recovery at leader epoch 2: may lack 7 committed offsets"},
	})
	if st.PartitionCount != 4 || len(st.Offline) != 1 || st.Offline[0].Partition != 1 ||
		len(st.UnderReplicated) != 1 || st.UnderReplicated[0].Partition != 2 || len(st.Recovered) != 1 || st.Recovered[0].Partition != 3 {
		t.Fatalf("status: %+v", st)
	}
	st.FailedStores = []unansweredBroker{{Broker: 2, Error: "controller store failed: store raft log: no space left on device"}}
	var out bytes.Buffer
	if err := printClusterStatus(&out, st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "controller store failed on broker 2 (it does not stand for controller election): controller store failed: store raft log: no space left on device") {
		t.Fatalf("status:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "recovered uncleanly: 1") ||
		!strings.Contains(out.String(), "recovered: t-3 leader 3: leader elected by a balanced recovery at leader epoch 2: may lack 7 committed offsets") {
		t.Fatalf("status:\n%s", out.String())
	}
}

func TestElectionsView(t *testing.T) {
	results := []client.ElectionResult{
		{Topic: "a", Partition: 0, Leader: 1},
		{Topic: "a", Partition: 1, Leader: 2, Err: protocol.ErrElectionNotNeeded.Err()},
		{Topic: "b", Partition: 0, Leader: 3, Err: protocol.ErrPreferredLeaderNotAvailable.ErrWithDetail("broker 1 is not in the ISR")},
	}
	es := electionsView(results)
	want := []electionJSON{
		{Topic: "a", Partition: 0, Leader: 1, Result: electionElected},
		{Topic: "a", Partition: 1, Leader: 2, Result: electionNotNeeded},
		{Topic: "b", Partition: 0, Leader: 3, Result: electionFailed, Error: results[2].Err.Error()},
	}
	if len(es) != len(want) {
		t.Fatalf("%+v", es)
	}
	for i := range want {
		if es[i] != want[i] {
			t.Errorf("election %d: %+v, want %+v", i, es[i], want[i])
		}
	}
	var out bytes.Buffer
	if err := printElections(&out, es); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	for _, w := range [][]string{
		{"TOPIC", "PARTITION", "LEADER", "RESULT", "ERROR"},
		{"a", "0", "1", "elected"},
		{"a", "1", "2", "not_needed"},
		{"b", "0", "3", "failed", "PREFERRED_LEADER_NOT_AVAILABLE", "broker 1 is not in the ISR"},
		{"3 partitions: 1 elected, 1 not needed, 1 failed"},
	} {
		if !hasLine(lines, w) {
			t.Errorf("no line with %q:\n%s", w, out.String())
		}
	}
	b, err := json.Marshal(es[2])
	if err != nil || string(b) != `{"topic":"b","partition":0,"leader":3,"result":"failed","error":"`+results[2].Err.Error()+`"}` {
		t.Errorf("json %s %v", b, err)
	}
	if empty, _ := json.Marshal(electionsView(nil)); string(empty) != "[]" {
		t.Errorf("no elections: %s, want []", empty)
	}
}

// A seed that accepts connections and never answers — a listener nobody
// accepts from, as a SIGSTOPped broker's is — must not hold `cluster
// status` for the client's whole dial timeout: the client moves on to the
// next broker after a few seconds, wherever the hung one is in the list.
func TestCLIClusterStatusPastAHungSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	addr, _ := startBroker(t, bin, t.TempDir())
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hung.Close() })
	for _, seeds := range []string{hung.Addr().String() + "," + addr, addr + "," + hung.Addr().String()} {
		start := time.Now()
		out := sluice(t, bin, seeds, "", "cluster", "status")
		if !strings.Contains(out, "controller: broker 1") {
			t.Fatalf("status with seeds %s:\n%s", seeds, out)
		}
		// Before: 10 s (the dial timeout) or more.
		el := time.Since(start)
		t.Logf("seeds %s: %v", seeds, el)
		if el > 7*time.Second {
			t.Errorf("status with seeds %s took %v", seeds, el)
		}
	}
}
