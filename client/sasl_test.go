package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
)

// The client logs every connection in: the operator (with the cluster
// secret) creates a user, who then produces and reads topics; a wrong
// password fails at once with ErrAuthentication instead of being retried
// until the request timeout.
func TestSASLLogin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	secret := []byte("0123456789abcdef0123456789abcdef")
	b, err := broker.New(broker.Config{ListenAddr: "127.0.0.1:0", DataDir: t.TempDir(), Security: broker.Security{
		SASLMechanisms: []auth.Mechanism{auth.ScramSHA512}, RequireAuth: true, ClusterSecret: secret}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	op, err := client.New(ctx, client.SeedBrokers(b.Addr()), client.OperatorLogin(secret))
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	if err := op.UpsertUser(ctx, "alice", "alice-pw", auth.ScramSHA512, auth.MinIterations); err != nil {
		t.Fatal(err)
	}

	alice, err := client.New(ctx, client.SeedBrokers(b.Addr()), client.SASL(auth.ScramSHA512, "alice", "alice-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if err := alice.CreateTopics(ctx, client.TopicSpec{Name: "orders", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if err := alice.ProduceSync(ctx, &client.Record{Topic: "orders", Value: []byte("hello")}); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	_, err = client.New(ctx, client.SeedBrokers(b.Addr()), client.SASL(auth.ScramSHA512, "alice", "wrong"),
		client.RequestTimeout(20*time.Second), client.RequestRetries(30), client.RetryBackoff(500*time.Millisecond, 500*time.Millisecond))
	if !errors.Is(err, client.ErrAuthentication) {
		t.Fatalf("wrong password: %v, want ErrAuthentication", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("wrong password refused after %v: retried", d)
	}
	if _, err := client.New(ctx, client.SeedBrokers(b.Addr()), client.SASL("GSSAPI", "alice", "pw")); err == nil {
		t.Fatal("an unknown mechanism accepted by New")
	}
}
