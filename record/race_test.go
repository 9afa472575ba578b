//go:build race

package record

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation counts through a pool are not meaningful under it.
const raceEnabled = true
