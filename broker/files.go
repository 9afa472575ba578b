package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/vfs"
)

// The broker's small files in its data directory (the clean-shutdown
// record and the data-directory id, lifecycle.go; the topic id of each
// partition directory, here; the high watermarks, hwcheckpoint.go) are
// checkpoints (log.Checkpoint): written through a temp file, fsync,
// rename and a directory fsync, read back whole or not at all thanks to
// their CRC (R4). Before they were checkpoints they were written as one
// line of text; those files are still read (ReadLegacy), so a broker
// upgraded in place starts on its old data directory.

// legacyInt64 decodes a number written as a line of text by a version
// before the checkpoint format.
func legacyInt64(old []byte) (int64, error) {
	return strconv.ParseInt(strings.TrimSpace(string(old)), 10, 64)
}

// topicIDCheckpoint is the topic-id file of the partition directory dir.
func topicIDCheckpoint(fs vfs.FS, dir string) *log.Checkpoint {
	return log.NewCheckpoint(fs, filepath.Join(dir, topicIDFile))
}

// readTopicID reads the id of the topic owning the partition directory
// dir. A missing file matches os.ErrNotExist, a damaged one
// log.ErrCorruptCheckpoint.
func readTopicID(fs vfs.FS, dir string) (uint64, error) {
	id, err := topicIDCheckpoint(fs, dir).ReadInt64Legacy(func(old []byte) (int64, error) {
		v, err := strconv.ParseUint(strings.TrimSpace(string(old)), 10, 64)
		return int64(v), err
	})
	return uint64(id), err
}

// claimDir makes dir belong to the topic with the given id: a directory
// left by another topic of the same name, by a crash before its id was
// written, or with a damaged id, is removed first. It reports whether it
// made the directory: then the caller syncs the parent directory (once
// for all it claims: claimedDirs) before the partition takes records.
func claimDir(fs vfs.FS, dir string, id uint64) (bool, error) {
	got, err := readTopicID(fs, dir)
	switch {
	case err == nil && got == id:
		return false, nil
	case err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, log.ErrCorruptCheckpoint):
		return false, err
	}
	if err := fs.RemoveAll(dir); err != nil {
		return false, fmt.Errorf("claim %s: %w", dir, err)
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("claim %s: %w", dir, err)
	}
	if err := topicIDCheckpoint(fs, dir).WriteInt64(int64(id)); err != nil {
		// Made but not claimed: the next claim starts over.
		return false, err
	}
	return true, nil
}

// claimedDirs makes the n directories claimDir made in dataDir durable,
// with one sync of dataDir for them all (one per partition was a tenth of
// the CPU of creating 10,000).
func claimedDirs(fs vfs.FS, dataDir string, n int) error {
	if n == 0 {
		return nil
	}
	if err := vfs.SyncDir(fs, dataDir); err != nil {
		return fmt.Errorf("sync %s after making %d partition directories: %w", dataDir, n, err)
	}
	return nil
}
