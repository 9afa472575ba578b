package log

import (
	"errors"
	"fmt"
	"slices"
)

// UnmapIdleIndexes unmaps the index files of the log's inactive segments
// that went unread since the last call (segment.Segment.UnmapIdleIndexes),
// and reports how many files it unmapped. A read or a write maps one again
// on demand. Called every idle period, it keeps mapped only the indexes of
// the active segment and of segments read lately: a broker with many
// partitions and segments holds far fewer memory maps (vm.max_map_count).
func (l *Log) UnmapIdleIndexes() (int, error) {
	l.segMu.RLock()
	inactive := slices.Clone(l.segs[:max(len(l.segs)-1, 0)])
	l.segMu.RUnlock()
	n := 0
	var errs []error
	for _, s := range inactive {
		k, err := s.UnmapIdleIndexes()
		n += k
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("log %s: %w", l.dir, err)
	}
	return n, nil
}
