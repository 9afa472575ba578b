package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// kcat runs kcat with args and stdin, bounded by 60 s, and returns its
// stdout and stderr. The test is skipped when kcat is not installed
// (Debian's kcat; CI installs it, .ci/run).
func kcat(t *testing.T, stdin string, args ...string) (string, string) {
	t.Helper()
	out, errOut, err := kcatRun(t, stdin, args...)
	if err != nil {
		t.Fatalf("kcat %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out, errOut
}

// kcatRun is kcat returning kcat's failure instead of failing the test.
func kcatRun(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed (apt-get install kcat): librdkafka checks skipped")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestKcat drives librdkafka through kcat: metadata, produce with every
// codec actually compressed (librdkafka silently sends uncompressed
// batches to a broker it thinks cannot take them, so its debug log is
// checked), idempotent produce, consume from the beginning and from an
// offset.
func TestKcat(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed (apt-get install kcat): librdkafka checks skipped")
	}
	ctx := testContext(t)
	_, addr := single(t, nil)
	adm := kadm.NewClient(newClient(t, []string{addr}))
	createTopic(t, ctx, adm, "kc", 1, 1, nil)

	out, _ := kcat(t, "", "-b", addr, "-L", "-J")
	var md struct {
		Brokers []struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		} `json:"brokers"`
		Topics []struct {
			Topic      string `json:"topic"`
			Partitions []struct {
				Leader int32 `json:"leader"`
			} `json:"partitions"`
		} `json:"topics"`
	}
	if err := json.Unmarshal([]byte(out), &md); err != nil {
		t.Fatalf("kcat -L -J: %v: %s", err, out)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].ID != 1 || md.Brokers[0].Name != addr {
		t.Fatalf("kcat -L brokers: %+v, want node 1 at %s", md.Brokers, addr)
	}
	if len(md.Topics) != 1 || md.Topics[0].Topic != "kc" || md.Topics[0].Partitions[0].Leader != 1 {
		t.Fatalf("kcat -L topics: %+v", md.Topics)
	}

	const per = 200
	total := 0
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		var in strings.Builder
		for i := range per {
			fmt.Fprintf(&in, "k%d:%s-%d %s\n", i%5, codec, i, strings.Repeat("x", 50))
		}
		_, stderr := kcat(t, in.String(), "-b", addr, "-P", "-t", "kc", "-K:", "-z", codec,
			"-X", "acks=all", "-X", "enable.idempotence=true", "-d", "msg")
		total += per
		if strings.Contains(stderr, "not compressing batch") {
			t.Fatalf("%s: librdkafka did not compress: %s", codec, firstLine(stderr, "not compressing"))
		}
		want := "uncompressed"
		if codec != "none" {
			want = codec + ")"
		}
		if !strings.Contains(stderr, want) {
			t.Fatalf("%s: no batch sent %s in kcat's debug log:\n%s", codec, want, stderr)
		}
		if !strings.Contains(stderr, "PID{Id:") || strings.Contains(stderr, "PID{Invalid}") {
			t.Fatalf("%s: produce was not idempotent: %s", codec, firstLine(stderr, "PID{"))
		}
	}

	out, _ = kcat(t, "", "-b", addr, "-C", "-t", "kc", "-o", "beginning", "-e", "-q", "-f", "%k:%s\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != total {
		t.Fatalf("consumed %d records from the beginning, want %d", len(lines), total)
	}
	if lines[0] != "k0:none-0 "+strings.Repeat("x", 50) || !strings.HasPrefix(lines[total-1], "k4:zstd-199 ") {
		t.Fatalf("first and last records: %q, %q", lines[0], lines[total-1])
	}
	out, _ = kcat(t, "", "-b", addr, "-C", "-t", "kc", "-p", "0", "-o", "650", "-c", "1", "-e", "-q", "-f", "%o %s\n")
	if !strings.HasPrefix(out, "650 lz4-50 ") {
		t.Fatalf("record at offset 650: %q", out)
	}
	// By timestamp: the first record at or after a time (ListOffsets).
	out, _ = kcat(t, "", "-b", addr, "-C", "-t", "kc", "-p", "0", "-o", "650", "-c", "1", "-e", "-q", "-f", "%T\n")
	ts := strings.TrimSpace(out)
	out, _ = kcat(t, "", "-b", addr, "-Q", "-t", "kc:0:"+ts)
	if !strings.Contains(out, "offset ") {
		t.Fatalf("kcat -Q at %s: %q", ts, out)
	}
	var off int
	if _, err := fmt.Sscanf(out[strings.Index(out, "offset "):], "offset %d", &off); err != nil || off > 650 {
		t.Fatalf("kcat -Q at the timestamp of offset 650: %q", out)
	}
}

// firstLine is the first line of s holding sub.
func firstLine(s, sub string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}

// TestKcatGroup consumes through a librdkafka consumer group (kcat -G:
// FindCoordinator, JoinGroup, SyncGroup, Heartbeat, OffsetFetch,
// OffsetCommit, LeaveGroup) and checks every record came once and the
// group's commits reached the end of each partition; a second run of the
// group reads nothing (it resumes from the commits).
func TestKcatGroup(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed (apt-get install kcat): librdkafka checks skipped")
	}
	ctx := testContext(t)
	_, addr := single(t, nil)
	adm := kadm.NewClient(newClient(t, []string{addr}))
	createTopic(t, ctx, adm, "kg", 3, 1, nil)
	const n = 600
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "k%d:%d\n", i%31, i)
	}
	kcat(t, in.String(), "-b", addr, "-P", "-t", "kg", "-K:")

	out, _ := kcat(t, "", "-b", addr, "-G", "kgroup", "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", "%s\n", "kg")
	seen := map[string]bool{}
	for _, line := range strings.Fields(out) {
		if seen[line] {
			t.Fatalf("record %s consumed twice", line)
		}
		seen[line] = true
	}
	if len(seen) != n {
		t.Fatalf("kcat -G consumed %d records, want %d", len(seen), n)
	}
	offs, err := adm.FetchOffsets(ctx, "kgroup")
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, "kg")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(e kadm.ListedOffset) {
		if o, ok := offs.Lookup("kg", e.Partition); !ok || o.At != e.Offset {
			t.Errorf("partition %d: committed %+v, end %d", e.Partition, o, e.Offset)
		}
	})
	out, _ = kcat(t, "", "-b", addr, "-G", "kgroup", "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", "%s\n", "kg")
	if strings.TrimSpace(out) != "" {
		t.Fatalf("second run of the group read %d bytes, want nothing (resumed from the commits)", len(out))
	}
}
