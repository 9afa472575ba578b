package kafka

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCompat runs one of scripts/kafka-compat's checks (a real Kafka client
// of another language) against addr for the given steps, and fails the
// test on a step it reports failed. It skips when the script's tools are
// missing.
func runCompat(t *testing.T, script string, tools []string, addr string, steps ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %s skipped", tool, script)
		}
	}
	path, err := filepath.Abs(filepath.Join("..", "scripts", "kafka-compat", script))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{addr}, steps...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	t.Logf("%s:\n%s", script, out.String())
	for _, step := range steps {
		if !strings.Contains(out.String(), "ok "+step+" ") {
			t.Errorf("step %s did not pass", step)
		}
	}
	if err != nil {
		t.Fatalf("%s: %v\nstderr (last 2 KiB): %s", script, err, tail(errOut.String(), 2048))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Apache Kafka's own Java client (kafka-clients 4.4.0 from Maven Central):
// AdminClient round trip, idempotent produce with every codec, consume in
// order per key, and a consumer group with commits read back through the
// AdminClient, over the classic protocol and KIP-848's
// (group.protocol=consumer: ConsumerGroupHeartbeat).
func TestJavaClient(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Java program")
	}
	_, addr, srv := singleWith(t, nil)
	runCompat(t, "run-java.sh", []string{"java", "mvn"}, addr, "admin", "produce", "consume", "group", "group-consumer", "acls", "records")
	// The Java consumer fetches through sessions (KIP-227).
	if st := srv.FetchSessionStats(); st.Created < 1 || st.Incremental < 1 {
		t.Errorf("the Java client's fetches: %+v, want sessions and incremental fetches", st)
	} else {
		t.Logf("fetch sessions: %+v", st)
	}
}

// confluent-kafka (librdkafka, from PyPI): AdminClient round trip,
// idempotent produce with every codec, consume by assignment (its
// consumer finds a group coordinator even then), and a consumer group
// with commits read back.
func TestPythonClient(t *testing.T) {
	if testing.Short() {
		t.Skip("installs confluent-kafka into a virtualenv")
	}
	_, addr := single(t, nil)
	runCompat(t, "run-python.sh", []string{"python3"}, addr, "admin", "produce", "consume", "group")
}

// kafka-python (Debian's python3-kafka 2.0.2, pure Python): old versions
// (Metadata v0-1, JoinGroup v2, OffsetCommit v2, OffsetFetch v1) through a
// consumer group with commits. Skipped when the package is missing.
func TestKafkaPythonClient(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import kafka.admin").Run(); err != nil {
		t.Skip("python3-kafka not installed (apt-get install python3-kafka)")
	}
	_, addr := single(t, nil)
	path, err := filepath.Abs(filepath.Join("..", "scripts", "kafka-compat", "python", "kafka_python.py"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", path, addr).CombinedOutput()
	t.Logf("kafka_python.py:\n%s", out)
	for _, step := range []string{"produce", "group"} {
		if !strings.Contains(string(out), "ok "+step+" ") {
			t.Errorf("step %s did not pass", step)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

// kafkajs (a pure JavaScript client, from npm): admin round trip,
// idempotent produce with gzip, and a consumer group (kafkajs consumers
// always are one, over the classic protocol) with commits.
func TestNodeClient(t *testing.T) {
	if testing.Short() {
		t.Skip("installs kafkajs from npm")
	}
	_, addr := single(t, nil)
	runCompat(t, "run-node.sh", []string{"node", "npm"}, addr, "admin", "produce", "group")
}

// Apache Kafka's KafkaShareConsumer (kafka-clients 4.4.0; KIP-932 share
// groups served by sluice queue groups): two share consumers of one
// partition both receive records, acknowledge each explicitly (one
// REJECT), every record is consumed exactly once, and the rejected one is
// in the dead-letter topic; then the AdminClient's listShareGroupOffsets,
// alterShareGroupOffsets and deleteShareGroupOffsets (step share-offsets).
func TestJavaShareConsumer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Java program")
	}
	_, addr := single(t, nil)
	runCompat(t, "run-java.sh", []string{"java", "mvn"}, addr, "share", "share-offsets")
}
