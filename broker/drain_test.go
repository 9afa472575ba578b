package broker

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// A broker that stops answers every request a client sent before the
// connection ends: those it reads once it began to drain its connections
// are refused with BROKER_NOT_AVAILABLE (definite: not served; those read
// before, while leadership moved away, get NOT_LEADER_OR_FOLLOWER), and the
// connection then ends with an orderly close, not a reset. Here the client
// pipelines fetches of about 1 MiB each and produces, and reads nothing
// until the broker has begun to close: the broker's writes stall on the
// full socket, so it still has requests unread when Close begins. Before
// the drain, Close stopped reading at once: the produces left unread got
// no answer (an unknown outcome for a producer, R14), and the unread bytes
// turned the close into a reset.
func TestCloseAnswersEveryRequestSent(t *testing.T) {
	b := startBroker(t, "", func(cfg *Config) { cfg.MaxInflightPerConn = 1 })
	c := dial(t, b.Addr())
	c.createTopic("drain", 1)
	for i := range 5 {
		c.produce("drain", 0, 1, makeBatch(t, record.None, fmt.Sprintf("fill%d", i), 10000, 0))
	}
	small := makeBatch(t, record.None, "d", 1, 0)

	const fetches, produces = 32, 32
	fetchCorr := map[int32]bool{}
	var buf []byte
	for i := range fetches + produces {
		c.corr++
		h := protocol.RequestHeader{Key: protocol.Fetch, CorrelationID: c.corr, ClientID: "test"}
		var req protocol.Message = fetchRequest("drain", 0, 0, 0, 1)
		if i < fetches {
			fetchCorr[c.corr] = true
		} else {
			h.Key, req = protocol.Produce, produceRequest("drain", 0, 1, small)
		}
		buf, _ = protocol.AppendRequest(buf, &h, req)
	}
	c.write(buf)

	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	// Read once the broker drains its connections or, without a drain,
	// has stopped them.
	poll.Until(t, 10*time.Second, "the broker to stop its connections", func() bool {
		return b.refusing.Load() || b.connCtx.Err() != nil
	})
	answered, refused := 0, 0
	var readErr error
	for {
		c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		frame, err := c.fr.Next()
		if err != nil {
			readErr = err
			break
		}
		corr, body, err := protocol.ParseResponse(frame)
		if err != nil {
			t.Fatal(err)
		}
		answered++
		if fetchCorr[corr] {
			continue
		}
		var resp protocol.ProduceResponse
		if err := protocol.Decode(&resp, body, 0); err != nil {
			t.Fatalf("produce response %d: %v", corr, err)
		}
		code := resp.ErrorCode
		if code == protocol.NoError && len(resp.Topics) == 1 && len(resp.Topics[0].Partitions) == 1 {
			code = resp.Topics[0].Partitions[0].ErrorCode
		}
		switch {
		case code == protocol.ErrBrokerNotAvailable:
			refused++
		case code.Indeterminate():
			t.Errorf("produce %d: %+v, an unknown outcome", corr, resp)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	sent := fetches + produces
	t.Logf("%d requests sent, %d answered (%d produces refused by the drain); the reads ended with %v", sent, answered, refused, readErr)
	if answered != sent {
		t.Errorf("%d requests sent, %d answered: %d cut by the close", sent, answered, sent-answered)
	}
	if !errors.Is(readErr, io.EOF) {
		t.Errorf("the connection ended with %v, want an orderly close (EOF)", readErr)
	}
}
