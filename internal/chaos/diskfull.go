package chaos

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// DataFSBytes is the size of the tmpfs each broker's data dir lives on
// when the schedule holds disk-full: far more than a run writes (a 5 min
// run at 1,000 records/s writes about 40 MiB per broker, Raft included),
// so only the filler fills it.
const DataFSBytes = 256 << 20

// fillerName is the file disk-full writes, at the root of the broker's
// tmpfs, beside (not in) its data dir: the broker never sees it.
const fillerName = "chaos-filler"

// Filled is what Fill did.
type Filled struct {
	Bytes int64 // written
	Full  bool  // a 1-byte write failed with ENOSPC: not a byte is left
}

// fillChunks are the write sizes Fill steps down through on ENOSPC, so
// that it takes the last pages and the last bytes of its own last page.
var fillChunks = []int{1 << 20, 64 << 10, 4 << 10, 512, 1}

// Fill creates path and writes zeros to it until its file system is full
// (a 1-byte write fails with ENOSPC), limit bytes are written, or d has
// passed, whichever comes first, then syncs it. The file stays: removing
// it gives the space back. Any error but ENOSPC is returned.
func Fill(path string, limit int64, d time.Duration) (Filled, error) {
	var res Filled
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return res, fmt.Errorf("chaos: fill: %w", err)
	}
	defer f.Close()
	buf := make([]byte, fillChunks[0])
	deadline := time.Now().Add(d)
	for c := 0; c < len(fillChunks) && res.Bytes < limit && time.Now().Before(deadline); {
		n, err := f.Write(buf[:min(int64(fillChunks[c]), limit-res.Bytes)])
		res.Bytes += int64(n)
		switch {
		case errors.Is(err, syscall.ENOSPC):
			c++ // a smaller chunk may still fit
		case err != nil:
			return res, fmt.Errorf("chaos: fill %s after %d bytes: %w", path, res.Bytes, err)
		}
		res.Full = c == len(fillChunks)
	}
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		return res, fmt.Errorf("chaos: fill: sync %s: %w", path, err)
	}
	return res, nil
}
