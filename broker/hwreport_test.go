package broker

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// TestReplicaLogsReport checks what a starting broker tells the
// controller of its partition logs (R11): each log's end offset after
// recovery and whether recovery truncated it, and nothing for a directory
// without its topic id or that is not a partition's.
func TestReplicaLogsReport(t *testing.T) {
	dir := t.TempDir()
	// write makes <topic>-<p> with n one-record batches and the topic id
	// (none when id is empty), and returns its first segment's path.
	write := func(name, id string, n int) string {
		t.Helper()
		pdir := filepath.Join(dir, name)
		l, err := log.Open(pdir, log.Config{})
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			if _, err := l.Append(record.Batch(makeBatch(t, record.None, name, 1, 0))); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if id != "" {
			if err := os.WriteFile(filepath.Join(pdir, topicIDFile), []byte(id+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return segment.LogPath(pdir, 0)
	}
	write("a-0", "7", 3)
	torn := write("a-1", "7", 4)
	write("b-0", "", 2) // a crash before its id was written: wiped later
	write("not_a_partition", "1", 1)
	st, err := os.Stat(torn)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(torn, st.Size()-3); err != nil {
		t.Fatal(err)
	}

	m := newPartitions(vfs.Default, dir, 1, nil, zap.NewNop(), &replication{})
	got := m.replicaLogs(controller.NewMetadata())
	want := []controller.ReplicaLog{
		{Topic: "a", TopicID: 7, Partition: 0, EndOffset: 3},
		{Topic: "a", TopicID: 7, Partition: 1, EndOffset: 3, RecoveryTruncated: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("report %+v, want %+v", got, want)
	}
	// A broker that crashes before its registration commits reports the
	// loss again at its next start: the log keeps it.
	if again := m.replicaLogs(controller.NewMetadata()); !reflect.DeepEqual(again, want) {
		t.Fatalf("report after a restart before registering %+v, want %+v", again, want)
	}
	// Once a registration carrying it is committed, it is forgotten. The
	// logs were closed cleanly: the open that follows scans nothing and
	// finds them as reported.
	m.clearRecoveryTruncated(got)
	l, err := log.Open(filepath.Join(dir, "a-1"), log.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.RecoveryTruncated() || l.EndOffset() != 3 {
		t.Fatalf("reopened after the registration: truncated %v, end %d", l.RecoveryTruncated(), l.EndOffset())
	}
}
