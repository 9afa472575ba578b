package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/vfs"
	"github.com/sluicemq/sluice/vfs/errorfs"
)

// TestCLIShowsFullDisk runs `sluice topic describe` and `sluice cluster
// status` against a broker whose disk is full under one partition (ENOSPC
// from the file-system seam): both name the failed replica and the reason.
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
	if _, errOut, err := sluiceResult(bin, addr, "x\n", "produce", "full", "--partition", "1"); err == nil {
		t.Fatal("produce to a full partition succeeded")
	} else if !strings.Contains(errOut, "STORAGE_ERROR") {
		t.Fatalf("produce to a full partition: %v\n%s", err, errOut)
	}

	var tj topicJSON
	if err := json.Unmarshal([]byte(sluice(t, bin, addr, "", "topic", "describe", "full", "--json")), &tj); err != nil {
		t.Fatal(err)
	}
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
	if !strings.Contains(text, "failed: full-1 on broker 1") {
		t.Fatalf("cluster status does not list the failed replica:\n%s", text)
	}
}
