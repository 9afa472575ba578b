package cluster

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
)

// initProducerID sends InitProducerId to the broker at addr over a
// connection of its own and returns the answer.
func initProducerID(ctx context.Context, addr string, id int64, epoch int16) (protocol.InitProducerIDResponse, error) {
	var resp protocol.InitProducerIDResponse
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return resp, err
	}
	c := protocol.NewConn(ctx, nc, "producer-id-test", protocol.DefaultMaxFrameSize)
	defer c.Close()
	err = c.RoundTrip(time.Now().Add(15*time.Second), &protocol.InitProducerIDRequest{ProducerID: id, ProducerEpoch: epoch}, &resp, 0)
	return resp, err
}

// Producer ids are unique across brokers and across the kill of the
// controller leader: blocks come from the Raft metadata, so the new
// controller continues after the last block the old one allocated, and
// the killed broker, restarted, abandons what was left of its block.
func TestProducerIDsUniqueAcrossBrokersAndControllerFailover(t *testing.T) {
	const block = 4
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(cfg *broker.Config) { cfg.ProducerIDBlockSize = block }})
	ctx := testContext(t)
	seen := map[int64]int32{}
	take := func(id int32, n int) {
		t.Helper()
		for range n {
			// Retried on a retriable refusal, as a client does: a
			// controller write lost with its leader is answered
			// COORDINATOR_NOT_AVAILABLE.
			var r protocol.InitProducerIDResponse
			poll.Until(t, 15*time.Second, "a producer id from broker "+strconv.Itoa(int(id)), func() error {
				var err error
				if r, err = initProducerID(ctx, c.Broker(id).Addr(), -1, -1); err == nil && r.ErrorCode.Retriable() {
					err = r.ErrorCode
				}
				return err
			})
			if r.ErrorCode != protocol.NoError || r.ProducerEpoch != 0 {
				t.Fatalf("new producer on broker %d: %+v", id, r)
			}
			if other, dup := seen[r.ProducerID]; dup {
				t.Fatalf("producer id %d given by broker %d and again by broker %d", r.ProducerID, other, id)
			}
			seen[r.ProducerID] = id
		}
	}
	// Each broker uses one block and starts a second.
	for _, id := range c.IDs() {
		take(id, block+1)
	}
	controllerID := c.Broker(1).Metadata().ControllerID
	if controllerID < 1 {
		t.Fatalf("no controller leader known: %d", controllerID)
	}
	c.Kill(controllerID)
	var survivors []int32
	for _, id := range c.IDs() {
		if id != controllerID {
			survivors = append(survivors, id)
		}
	}
	poll.Until(t, 15*time.Second, "a new controller leader", func() bool {
		l := c.Broker(survivors[0]).Metadata().ControllerID
		return l > 0 && l != controllerID
	})
	// Past their blocks, so each asks the new controller for more.
	for _, id := range survivors {
		take(id, 2*block)
	}
	c.Restart(controllerID)
	take(controllerID, block+1)

	// Every id handed out lies below what the controller allocated, and
	// far fewer Raft writes than producers were needed.
	next := c.Broker(controllerID).Metadata().NextProducerID
	for id := range seen {
		if id < 0 || id >= next {
			t.Errorf("producer id %d outside the allocated ids [0, %d)", id, next)
		}
	}
	if blocks := next / block; blocks > int64(len(seen)/block+len(c.IDs())+1) {
		t.Errorf("%d blocks allocated for %d producers in blocks of %d", blocks, len(seen), block)
	}
}
