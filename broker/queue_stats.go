package broker

import (
	"time"

	"github.com/sluicemq/sluice/group"
)

// queueStats returns the queue groups of every coordinator this broker
// has loaded and serves (one still loading is left out), as of now: each
// group is on exactly one coordinator, so summed over the brokers the
// metrics count each group once. It holds each coordinator's lock for
// one pass over its windows and writes nothing (group.QueueStats).
func (b *Broker) queueStats(now time.Time) []group.QueueGroupStats {
	var out []group.QueueGroupStats
	for _, co := range b.groups.loaded() {
		co.mu.Lock()
		if co.c != nil && b.coordinatorReady(co) {
			out = append(out, co.c.QueueStats(now)...)
		}
		co.mu.Unlock()
	}
	return out
}
