package broker

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/vfs"
)

// hwCheckpointFile holds the high watermark of every partition of this
// broker, written every few seconds and at shutdown. A broker that starts
// again (as leader or follower) starts from it rather than from zero, so
// consumers do not see the high watermark go back while the followers
// report in. It is a hint: a leader never raises its high watermark above
// its own log, and raises it from the followers in its epoch (R12).
const hwCheckpointFile = "high-watermarks"

// hwKey names a partition of one incarnation of a topic.
type hwKey struct {
	topic   string
	topicID uint64
	index   int32
}

// loadHighWatermarks reads the checkpoint; a missing or damaged one gives
// none (logged), which only costs availability.
func loadHighWatermarks(fs vfs.FS, dataDir string, logger *zap.Logger) map[hwKey]int64 {
	out := map[hwKey]int64{}
	payload, err := log.NewCheckpoint(fs, filepath.Join(dataDir, hwCheckpointFile)).Read(nil)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			logger.Warn("high-watermark checkpoint unreadable; starting from the logs", zap.Error(err))
		}
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(payload))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) != 4 {
			continue
		}
		id, err1 := strconv.ParseUint(string(f[1]), 10, 64)
		idx, err2 := strconv.ParseInt(string(f[2]), 10, 32)
		hw, err3 := strconv.ParseInt(string(f[3]), 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || hw < 0 {
			continue
		}
		out[hwKey{string(f[0]), id, int32(idx)}] = hw
	}
	return out
}

// checkpointHighWatermarks writes every open partition's high watermark.
func (m *partitions) checkpointHighWatermarks() {
	var b []byte
	m.mu.RLock()
	for name, tp := range m.topics {
		for _, p := range tp.parts {
			if p == nil {
				continue
			}
			p.mu.RLock()
			if p.state == stateOpen {
				b = append(b, name...)
				b = append(b, ' ')
				b = strconv.AppendUint(b, tp.id, 10)
				b = append(b, ' ')
				b = strconv.AppendInt(b, int64(p.index), 10)
				b = append(b, ' ')
				b = strconv.AppendInt(b, p.highWatermark(), 10)
				b = append(b, '\n')
			}
			p.mu.RUnlock()
		}
	}
	m.mu.RUnlock()
	if err := m.hwCheckpoint.Write(b); err != nil {
		m.logger.Warn("write high-watermark checkpoint", zap.Error(err))
	}
}
