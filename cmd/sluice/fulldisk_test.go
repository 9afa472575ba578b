package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/vfs"
	"github.com/sluicemq/sluice/vfs/errorfs"
)

// TestCLIShowsFullDisk runs `sluice topic describe` and `sluice cluster
// status` against a broker whose disk is full under one partition (ENOSPC
// from the file-system seam): both name the failed replica and the reason,
// and the metadata, told by the broker, lists it offline (the OFFLINE
// column) with the reason in the partition's note.
func TestCLIShowsFullDisk(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	fs := errorfs.New(vfs.Default)
	b, err := broker.New(broker.Config{ListenAddr: "127.0.0.1:0", DataDir: dir, FS: fs, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() }) // ErrOffline: the full log cannot close cleanly
	addr := b.Addr()
	sluice(t, bin, addr, "", "topic", "create", "full", "--partitions", "2")
	sluice(t, bin, addr, "a\nb\n", "produce", "full")
	fs.Arm(errorfs.Fault{Ops: errorfs.OpWrite | errorfs.OpTruncate | errorfs.OpCreate,
		Path: filepath.Join(dir, "full-1"), Err: syscall.ENOSPC})
	// The idempotent producer retries the indeterminate STORAGE_ERROR
	// until --timeout; the error it gives up with names the cause.
	if _, errOut, err := sluiceResult(bin, addr, "x\n", "produce", "full", "--partition", "1", "--timeout", "5s"); err == nil {
		t.Fatal("produce to a full partition succeeded")
	} else if !strings.Contains(errOut, "no space left on device") || !strings.Contains(errOut, "maybe written") && !strings.Contains(errOut, "indeterminate") {
		t.Fatalf("produce to a full partition: %v\n%q", err, errOut)
	}

	// The broker reported the offline log to the controller: the
	// metadata lists the replica offline, with the reason in the note.
	var tj topicJSON
	poll.Until(t, 10*time.Second, "the full replica offline in the metadata", func() error {
		tj = topicJSON{}
		if err := json.Unmarshal([]byte(sluice(t, bin, addr, "", "topic", "describe", "full", "--json")), &tj); err != nil {
			return err
		}
		for _, p := range tj.Partitions {
			offline := len(p.OfflineReplicas) == 1 && p.OfflineReplicas[0] == 1 && strings.Contains(p.Note, "replica 1 offline") &&
				strings.Contains(p.Note, "no space left on device")
			if offline != (p.Partition == 1) {
				return fmt.Errorf("partition %d: offline replicas %v, note %q", p.Partition, p.OfflineReplicas, p.Note)
			}
		}
		return nil
	})
	for _, p := range tj.Partitions {
		r := p.ReplicaStatus[0]
		failed := r.Role == roleError && strings.Contains(r.Error, "STORAGE_ERROR") && strings.Contains(r.Error, "no space left on device")
		if failed != (p.Partition == 1) {
			t.Fatalf("topic describe, partition %d: replica %+v", p.Partition, r)
		}
	}
	text := sluice(t, bin, addr, "", "topic", "describe", "full")
	if !strings.Contains(text, "no space left on device") {
		t.Fatalf("topic describe does not say why:\n%s", text)
	}
	t.Logf("topic describe:\n%s", text)

	var st clusterStatusJSON
	if err := json.Unmarshal([]byte(sluice(t, bin, addr, "", "cluster", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.FailedReplicas) != 1 || st.FailedReplicas[0].Topic != "full" || st.FailedReplicas[0].Partition != 1 ||
		!strings.Contains(st.FailedReplicas[0].Error, "no space left on device") {
		t.Fatalf("cluster status failed replicas: %+v", st.FailedReplicas)
	}
	text = sluice(t, bin, addr, "", "cluster", "status")
	t.Logf("cluster status:\n%s", text)
	if !strings.Contains(text, "failed: full-1 on broker 1") || !strings.Contains(text, "no leader: full-1") || !strings.Contains(text, "replica 1 offline") {
		t.Fatalf("cluster status does not list the failed replica, and its partition without a leader:\n%s", text)
	}
}
