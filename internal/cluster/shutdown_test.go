package cluster

import (
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// Controlled shutdown under a plain (not idempotent) acks=all producer:
// each broker in turn stops and starts again. A produce in flight on a
// stopping broker's connection is either answered or refused definitely
// (NOT_LEADER_OR_FOLLOWER), never cut by a reset connection: the plain
// producer would report that as an unknown outcome (R14), since it cannot
// resend without risking a duplicate.
func TestControlledShutdownLeavesNoUnknownOutcome(t *testing.T) {
	addrs := fixedAddrs(t)
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3, Configure: func(cfg *broker.Config) {
		listenFixed(cfg, addrs)
	}})
	cl := c.Client()
	const topic = "shutdown-plain"
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 6, ReplicationFactor: 3})
	wait := verifyAsync(t, c, topic, 8*time.Second, client.Idempotent(false))
	time.Sleep(500 * time.Millisecond) // let records flow before the first stop
	for _, id := range c.IDs() {
		c.Stop(id)
		c.Restart(id)
		testcluster.WaitFullISR(t, cl, topic, 20*time.Second)
	}
	res := checkHistory(t, wait())
	if res.Failed+res.Unknown > 0 {
		t.Errorf("controlled shutdowns failed %d sends and left %d unknown, want none", res.Failed, res.Unknown)
	}
}
