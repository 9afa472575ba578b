package broker

import (
	"context"
	"slices"
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

// TypeQueue is the type ListGroups gives a queue group on the sluice
// listener (the Kafka listener lists consumer groups only), and
// StateQueue its state: a queue group has no membership to be in a
// state of, only windows.
const (
	TypeQueue  = "queue"
	StateQueue = "Active"
)

// ListQueueGroups returns the ids of the queue groups this broker
// coordinates, sorted; a coordinator whose state does not commit in
// time is left out, as ListGroups leaves it out.
func (b *Broker) ListQueueGroups() []string {
	var out []string
	ctx, cancel := context.WithTimeout(context.Background(), groupWriteTimeout)
	defer cancel()
	for _, co := range b.groups.loaded() {
		var ids []string
		if err := b.coordinate(ctx, co, func(c *group.Coordinator) ([]group.Record, error) {
			ids = c.ListQueueGroups()
			return nil, nil
		}); err == nil {
			out = append(out, ids...)
		}
	}
	slices.Sort(out)
	return out
}
