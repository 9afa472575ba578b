package broker

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/vfs"
	"github.com/sluicemq/sluice/vfs/errorfs"
)

// TestFullDiskPartitionGoesOffline fills the disk under one partition's
// directory (ENOSPC from the file-system seam) on a broker serving two:
// the full partition's log goes offline with an error line and
// STORAGE_ERROR (indeterminate) for the append the fault hit, a definite
// NOT_LEADER_OR_FOLLOWER (or LEADER_NOT_AVAILABLE) for those after it,
// the other partition goes on taking produces and serving
// fetches, the replica reports itself failed with the reason (the core's
// Replicas and DescribeReplicas v1), and after a restart every record
// acknowledged before the fault is still there.
func TestFullDiskPartitionGoesOffline(t *testing.T) {
	dir := t.TempDir()
	fs := errorfs.New(vfs.Default)
	obs, logs := observer.New(zapcore.ErrorLevel)
	b, err := New(Config{ListenAddr: "127.0.0.1:0", DataDir: dir, FS: fs, Logger: zap.New(obs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			b.Close()
		}
	})
	c := dial(t, b.Addr())
	c.createTopic("full", 2)

	// Acknowledged before the disk fills.
	var acked [2][][]byte
	produce := func(p int32, tag string, want protocol.ErrorCode, alt ...protocol.ErrorCode) {
		t.Helper()
		batch := makeBatch(t, record.None, tag, 3, 0)
		r := c.produce("full", p, protocol.AcksLeader, batch)
		if r.ErrorCode != want && !slices.Contains(alt, r.ErrorCode) {
			t.Fatalf("produce %s to partition %d: %v %q, want %v (or %v)", tag, p, r.ErrorCode, r.ErrorMessage, want, alt)
		}
		if want == protocol.NoError {
			acked[p] = append(acked[p], batch)
		}
	}
	for i := range 4 {
		produce(0, "before-"+string(rune('a'+i)), protocol.NoError)
		produce(1, "before-"+string(rune('a'+i)), protocol.NoError)
	}

	enospc := fs.Arm(errorfs.Fault{Ops: errorfs.OpWrite | errorfs.OpTruncate | errorfs.OpCreate,
		Path: filepath.Join(dir, "full-0"), Err: syscall.ENOSPC})
	produce(0, "full", protocol.ErrStorageError)
	if enospc.Hits() == 0 {
		t.Fatal("the fault never fired")
	}
	// The log is offline now: a produce is refused before a byte is
	// written, with a definite code (R14), NOT_LEADER_OR_FOLLOWER; or
	// LEADER_NOT_AVAILABLE once the controller took leadership from the
	// offline replica (it was the only one).
	for _, tag := range []string{"still-full", "still-full-2"} {
		produce(0, tag, protocol.ErrNotLeaderOrFollower, protocol.ErrLeaderNotAvailable)
	}
	// A registration while running (after a fence) does not offer the
	// offline log as fit to lead.
	for _, l := range b.parts.openLogs() {
		if l.Topic == "full" && l.Partition == 0 {
			t.Fatalf("openLogs reports the offline log: %+v", l)
		}
	}
	// The broker keeps serving its other partition.
	produce(1, "after", protocol.NoError)
	if f := c.fetch("full", 1, 0); f.ErrorCode != protocol.NoError || f.HighWatermark != 15 {
		t.Fatalf("fetch of the healthy partition: %v, high watermark %d; want 15", f.ErrorCode, f.HighWatermark)
	}

	// An operator sees it: one error line naming the partition, and the
	// replica reported failed, with the reason.
	offline := logs.FilterMessageSnippet("offline").FilterField(zap.String("topic", "full")).FilterField(zap.Int32("partition", 0))
	if offline.Len() == 0 {
		t.Fatalf("no error line for the offline log; error lines: %v", logs.All())
	}
	for _, r := range b.Replicas([]string{"full"}, -1) {
		code, msg := ErrorCode(r.Err)
		switch r.Partition {
		case 0:
			if code != protocol.ErrStorageError || !strings.Contains(msg, "no space left on device") {
				t.Fatalf("replica full-0: %v %q, want STORAGE_ERROR naming ENOSPC", code, msg)
			}
		case 1:
			if r.Err != nil || r.EndOffset != 15 {
				t.Fatalf("replica full-1: %v, end %d", r.Err, r.EndOffset)
			}
		}
	}
	got := describeReplicasV1(t, c)
	if len(got.Replicas) != 2 || got.Replicas[0].ErrorCode != protocol.ErrStorageError ||
		!strings.Contains(got.Replicas[0].ErrorMessage, "no space left on device") || got.Replicas[1].ErrorCode != protocol.NoError {
		t.Fatalf("DescribeReplicas v1: %+v", got.Replicas)
	}

	// Space comes back; a restart recovers the log with everything
	// acknowledged, and it takes produces again.
	enospc.Disarm()
	closed = true
	if err := b.Close(); !errors.Is(err, log.ErrOffline) {
		t.Fatalf("Close: %v, want the offline log's error", err)
	}
	b2 := startBroker(t, dir, nil)
	c2 := dial(t, b2.Addr())
	for p := range int32(2) {
		f := c2.fetch("full", p, 0)
		if f.ErrorCode != protocol.NoError {
			t.Fatalf("fetch partition %d after restart: %v", p, f.ErrorCode)
		}
		var want []byte
		off := int64(0)
		for _, batch := range acked[p] {
			s := stamped(batch, off, record.Batch(f.Records[len(want):]).LeaderEpoch())
			want = append(want, s...)
			off += 3
		}
		if !bytes.Equal(f.Records, want) {
			t.Fatalf("partition %d after restart: %d bytes, want the %d acknowledged batches (%d bytes)", p, len(f.Records), len(acked[p]), len(want))
		}
	}
	if r := c2.produce("full", 0, protocol.AcksLeader, makeBatch(t, record.None, "again", 1, 0)); r.ErrorCode != protocol.NoError {
		t.Fatalf("produce after space came back and a restart: %v", r.ErrorCode)
	}
}

// describeReplicasV1 asks DescribeReplicas at version 1 (with messages).
func describeReplicasV1(t *testing.T, c *testClient) protocol.DescribeReplicasResponse {
	t.Helper()
	c.corr++
	h := protocol.RequestHeader{Key: protocol.DescribeReplicas, Version: 1, CorrelationID: c.corr, ClientID: "test"}
	buf, err := protocol.AppendRequest(nil, &h, &protocol.DescribeReplicasRequest{ChecksumUpTo: -1})
	if err != nil {
		t.Fatal(err)
	}
	c.write(buf)
	_, body := c.recvRaw()
	var resp protocol.DescribeReplicasResponse
	if err := protocol.Decode(&resp, body, 1); err != nil {
		t.Fatal(err)
	}
	return resp
}
