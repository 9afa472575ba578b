package kafka

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/internal/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testContext is cancelled when the test ends.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// serveKafka serves the Kafka listener ln over b until the test ends.
func serveKafka(t testing.TB, b *broker.Broker, ln net.Listener, opts ...Option) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	s := New(b, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), opts...)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("kafka serve: %v", err)
		}
	})
	return s
}

// single starts one broker with a Kafka listener and returns the broker
// and the listener's address. configure, when not nil, changes the
// broker's config.
func single(t testing.TB, configure func(*broker.Config)) (*broker.Broker, string) {
	t.Helper()
	b, addr, _ := singleWith(t, configure)
	return b, addr
}

// singleWith is single with the listener's options, returning the
// listener too.
func singleWith(t testing.TB, configure func(*broker.Config), opts ...Option) (*broker.Broker, string, *Server) {
	t.Helper()
	ln := poll.Listen(t, "127.0.0.1:0")
	cfg := broker.Config{ListenAddr: "127.0.0.1:0", DataDir: t.TempDir(), KafkaAdvertisedAddr: ln.Addr().String(),
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
	if configure != nil {
		configure(&cfg)
	}
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	s := serveKafka(t, b, ln, opts...)
	return b, ln.Addr().String(), s
}

// newClient returns a kgo client of addrs, closed when the test ends.
func newClient(t testing.TB, addrs []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.MetadataMinAge(50 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates a topic through kadm and fails the test on error.
func createTopic(t testing.TB, ctx context.Context, adm *kadm.Client, name string, partitions int32, rf int16, configs map[string]*string) {
	t.Helper()
	res, err := adm.CreateTopic(ctx, partitions, rf, configs, name)
	if err != nil {
		t.Fatal(err)
	}
	if res.Err != nil {
		t.Fatalf("create topic %s: %v (%s)", name, res.Err, res.ErrMessage)
	}
}
