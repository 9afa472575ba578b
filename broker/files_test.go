package broker

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/vfs"
)

// writeLegacy writes a small file as versions before the checkpoint
// format did: one line of text.
func writeLegacy(t *testing.T, path, line string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSmallFilesLegacyFormat reads each small file in the format of the
// versions before the checkpoint format, and in the checkpoint format.
func TestSmallFilesLegacyFormat(t *testing.T) {
	fs := vfs.Default
	t.Run("clean shutdown", func(t *testing.T) {
		dir := t.TempDir()
		writeLegacy(t, filepath.Join(dir, cleanShutdownFile), "17")
		if got, err := previousEpoch(fs, dir); err != nil || got != 17 {
			t.Fatalf("previous epoch from a legacy file: %d, %v; want 17", got, err)
		}
		if got, err := previousEpoch(fs, dir); err != nil || got != -1 {
			t.Fatalf("previous epoch once read: %d, %v; want -1 (the file is removed)", got, err)
		}
		if err := writeCleanShutdown(fs, dir, 18); err != nil {
			t.Fatal(err)
		}
		if got, err := previousEpoch(fs, dir); err != nil || got != 18 {
			t.Fatalf("previous epoch: %d, %v; want 18", got, err)
		}
		writeLegacy(t, filepath.Join(dir, cleanShutdownFile), "garbage")
		if got, err := previousEpoch(fs, dir); err != nil || got != 0 {
			t.Fatalf("previous epoch from a damaged file: %d, %v; want 0 (unclean)", got, err)
		}
	})
	t.Run("data dir id", func(t *testing.T) {
		dir := t.TempDir()
		const old = "00112233445566778899aabbccddeeff"
		writeLegacy(t, filepath.Join(dir, dirIDFile), old)
		if got, err := dataDirID(fs, dir); err != nil || got != old {
			t.Fatalf("data dir id from a legacy file: %q, %v; want %q", got, err, old)
		}
		writeLegacy(t, filepath.Join(dir, dirIDFile), "")
		made, err := dataDirID(fs, dir)
		if err != nil || len(made) != 32 {
			t.Fatalf("data dir id replacing an empty one: %q, %v", made, err)
		}
		if got, err := dataDirID(fs, dir); err != nil || got != made {
			t.Fatalf("data dir id read back: %q, %v; want %q", got, err, made)
		}
	})
	t.Run("topic id", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "t-0")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeLegacy(t, filepath.Join(dir, topicIDFile), "42")
		data := filepath.Join(dir, "00000000000000000000.log")
		if err := os.WriteFile(data, []byte("kept"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := claimDir(fs, dir, 42); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(data); err != nil {
			t.Fatalf("claiming a directory with its legacy topic id removed its data: %v", err)
		}
		if _, err := claimDir(fs, dir, 43); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("another topic's data kept: %v", err)
		}
		if got, err := readTopicID(fs, dir); err != nil || got != 43 {
			t.Fatalf("topic id after claiming: %d, %v; want 43", got, err)
		}
	})
}

// TestUpgradeInPlace starts a broker on a data directory whose small
// files a version before the checkpoint format wrote: it starts, keeps
// its directory id, and serves the records it held.
func TestUpgradeInPlace(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, nil)
	c := dial(t, b.Addr())
	c.createTopic("up", 1)
	for i := range 3 {
		if r := c.produce("up", 0, protocol.AcksLeader, makeBatch(t, record.None, "u", 1, int64(i))); r.ErrorCode != protocol.NoError {
			t.Fatalf("produce: %v", r.ErrorCode)
		}
	}
	id := b.dirID
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	epoch, err := log.NewCheckpoint(vfs.Default, filepath.Join(dir, cleanShutdownFile)).ReadInt64()
	if err != nil {
		t.Fatal(err)
	}
	topicID, err := readTopicID(vfs.Default, filepath.Join(dir, "up-0"))
	if err != nil {
		t.Fatal(err)
	}
	writeLegacy(t, filepath.Join(dir, cleanShutdownFile), strconv.FormatInt(epoch, 10))
	writeLegacy(t, filepath.Join(dir, dirIDFile), id)
	writeLegacy(t, filepath.Join(dir, "up-0", topicIDFile), strconv.FormatUint(topicID, 10))

	b2 := startBroker(t, dir, nil)
	if b2.dirID != id {
		t.Fatalf("data dir id %q after the upgrade, want %q", b2.dirID, id)
	}
	c2 := dial(t, b2.Addr())
	if end := c2.listOffset("up", 0, protocol.LatestTimestamp).Offset; end != 3 {
		t.Fatalf("log ends at %d after the upgrade, want 3", end)
	}
}
