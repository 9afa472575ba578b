package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/vfs"
)

// DefaultBootIDFile is where Linux publishes the id of the running
// kernel boot: a random UUID made at every boot.
const DefaultBootIDFile = "/proc/sys/kernel/random/boot_id"

// bootIDFile records, in the data directory beside the clean-shutdown
// record, the kernel boot id under which this broker last registered.
// At the next start, the same id means the machine did not restart in
// between: an unclean stop was then a process crash (SIGKILL, the OOM
// killer, a panic), after which the kernel still holds every write the
// process made, so the logs lost nothing the page cache held. The
// controller takes such a stop as a clean one for R11
// (RegisterBroker.SameBoot).
const bootIDFile = "broker-boot-id"

// boot is what a start knows of the kernel boot: the id running now and
// whether the data directory's last registration was under it.
type boot struct {
	fs      vfs.FS
	dataDir string
	id      string // "" when unknown
	same    bool
}

// readBoot reads the running boot's id from source and the one recorded
// in dataDir. An unreadable source (not Linux, no /proc) makes every
// start count as after a reboot: the safe answer. The record is not
// rewritten here but once the registration that carries the answer is
// committed (record): a crash in between must not leave a record that
// makes a later start of this same boot trust logs whose loss at the
// reboot was never reported.
func readBoot(fs vfs.FS, dataDir, source string, logger *zap.Logger) (boot, error) {
	b := boot{fs: fs, dataDir: dataDir}
	raw, err := os.ReadFile(source)
	if b.id = strings.TrimSpace(string(raw)); err != nil || b.id == "" {
		logger.Warn("kernel boot id unknown: an unclean stop counts as a machine crash (R11)", zap.String("boot_id_file", source), zap.Error(err))
		b.id = ""
		return b, nil
	}
	prev, err := readBootRecord(fs, dataDir)
	if err != nil {
		return boot{}, err
	}
	b.same = prev == b.id
	return b, nil
}

// readBootRecord returns the boot id recorded in dataDir, "" when there
// is none or it is damaged (the next start then counts as after a
// reboot). A checkpoint holding the id as text (files.go).
func readBootRecord(fs vfs.FS, dataDir string) (string, error) {
	b, err := log.NewCheckpoint(fs, filepath.Join(dataDir, bootIDFile)).Read(nil)
	switch {
	case err == nil:
		return string(b), nil
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, log.ErrCorruptCheckpoint):
		return "", nil
	}
	return "", fmt.Errorf("broker: %w", err)
}

// record writes the running boot's id durably into the data directory,
// once a registration under it is committed; nothing when it is already
// there or unknown.
func (b boot) record() error {
	if b.same || b.id == "" {
		return nil
	}
	if err := log.NewCheckpoint(b.fs, filepath.Join(b.dataDir, bootIDFile)).Write([]byte(b.id)); err != nil {
		return fmt.Errorf("broker: record the boot id: %w", err)
	}
	return nil
}
