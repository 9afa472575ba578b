package broker

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"go.uber.org/zap"
)

// The process limits a broker with many partitions runs into. Each
// segment of each partition replica keeps one file open (its log) and up
// to three memory maps (the log, its offset index and its time index), so
// 10,000 replicas of one segment each need 10,000 descriptors and 30,000
// maps on top of the connections: more than common defaults (ulimit -n
// 1024; vm.max_map_count 65,530 maps, with the Go runtime's and the
// sockets'). A broker past a limit fails to open
// logs or to accept connections with errors that do not name the cause,
// so it says so first: at start, and every limitsCheckInterval, a line at
// warn past limitWarnShare of a limit and at error past limitErrorShare,
// with what to raise.

const (
	limitWarnShare  = 0.8
	limitErrorShare = 0.95
)

// limitUse is how much of one limit the process uses.
type limitUse struct {
	name        string // "open files", "memory maps"
	used, limit int64
	fix         string // how to raise it
}

// processLimits reads the process's open files and memory maps and their
// limits from /proc. A limit it cannot read is left out.
func processLimits() []limitUse {
	var out []limitUse
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
			out = append(out, limitUse{name: "open files", used: int64(len(fds)), limit: int64(rl.Cur),
				fix: "raise the open-file limit (ulimit -n; LimitNOFILE= in a systemd unit)"})
		}
	}
	if b, err := os.ReadFile("/proc/sys/vm/max_map_count"); err == nil {
		limit, perr := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
		if maps, err := os.ReadFile("/proc/self/maps"); err == nil && perr == nil {
			out = append(out, limitUse{name: "memory maps", used: int64(bytes.Count(maps, []byte{'\n'})), limit: limit,
				fix: "raise vm.max_map_count (sysctl -w vm.max_map_count=262144)"})
		}
	}
	return out
}

// checkLimits logs each limit the process is close to, and returns how
// many it logged.
func checkLimits(logger *zap.Logger, uses []limitUse) int {
	n := 0
	for _, u := range uses {
		if u.limit <= 0 {
			continue
		}
		share := float64(u.used) / float64(u.limit)
		if share < limitWarnShare {
			continue
		}
		n++
		msg := fmt.Sprintf("%s: %d of the limit of %d in use; each segment of each partition replica takes 1 file descriptor and 1 to 3 memory maps (3 while its indexes are read, and for the active segment): %s",
			u.name, u.used, u.limit, u.fix)
		fields := []zap.Field{zap.String("limit_name", u.name), zap.Int64("used", u.used), zap.Int64("limit", u.limit)}
		if share >= limitErrorShare {
			logger.Error(msg, fields...)
		} else {
			logger.Warn(msg, fields...)
		}
	}
	return n
}
