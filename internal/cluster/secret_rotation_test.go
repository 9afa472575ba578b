package cluster

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// A rolling rotation of the cluster secret, as docs/operations.md says:
// every broker restarted in turn accepting old and new (logging in with
// old), then logging in with new (accepting old), then with new alone.
// After every restart the brokers replicate to each other (a full ISR,
// acks=all with min.insync.replicas=3, which needs every follower's
// fetches, and the others' logins to it) before the next one goes.
// (auth's TestBrokerCredentialsRotation checks that a skipped step is
// refused.)
func TestClusterSecretRollingRotation(t *testing.T) {
	newS := []byte("the new cluster secret, rotated in")
	var mu sync.Mutex
	secrets := map[int32][][]byte{}
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(cfg *broker.Config) {
		mu.Lock()
		defer mu.Unlock()
		if s := secrets[cfg.BrokerID]; s != nil {
			cfg.Security.ClusterSecret, cfg.Security.AcceptedClusterSecrets = s[0], s[1:]
		}
	}})
	oldS := c.Secret()
	cl := c.Client()
	ctx := testContext(t)
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "rot", Partitions: 3, ReplicationFactor: 3,
		Configs: map[string]string{"min.insync.replicas": "3"}})
	testcluster.WaitFullISR(t, cl, "rot", 15*time.Second)
	n := 0
	check := func(what string) {
		t.Helper()
		testcluster.WaitFullISR(t, cl, "rot", 30*time.Second)
		var recs []*client.Record
		for range 30 {
			recs = append(recs, &client.Record{Topic: "rot", Key: []byte(strconv.Itoa(n)), Value: []byte(strconv.Itoa(n))})
			n++
		}
		if err := cl.ProduceSync(ctx, recs...); err != nil {
			t.Fatalf("%s: produce acks=all over min.insync.replicas=3: %v", what, err)
		}
	}
	for _, step := range [][][]byte{{oldS, newS}, {newS, oldS}, {newS}} {
		for _, id := range c.IDs() {
			c.Stop(id)
			mu.Lock()
			secrets[id] = step
			mu.Unlock()
			c.Restart(id)
			check("broker " + strconv.Itoa(int(id)) + " restarted with " + strconv.Itoa(len(step)) + " secrets")
		}
	}
	t.Logf("%d records acknowledged by all three replicas through the rotation", n)
}
