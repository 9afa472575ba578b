package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/httpapi"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// consoleCluster is a cluster whose brokers each serve the console.
type consoleCluster struct {
	*testcluster.Cluster
	urls map[int32]string // http://host:port of each broker's endpoint
}

// startConsole starts n brokers, each with metrics (its Observer) and an
// HTTP endpoint serving the console.
func startConsole(t testing.TB, n int) *consoleCluster {
	t.Helper()
	var mu sync.Mutex
	metrics := map[int32]*httpapi.Metrics{}
	c := &consoleCluster{Cluster: testcluster.Start(t, n, testcluster.Options{Configure: func(cfg *broker.Config) {
		m := httpapi.NewMetrics(httpapi.LevelInfo)
		cfg.Observer = m
		mu.Lock()
		metrics[cfg.BrokerID] = m
		mu.Unlock()
	}}), urls: map[int32]string{}}
	for _, id := range c.IDs() {
		b := c.Broker(id)
		mu.Lock()
		m := metrics[id]
		mu.Unlock()
		srv, err := httpapi.Start(context.Background(), httpapi.Config{Addr: "127.0.0.1:0", Broker: b,
			Metrics: m, Console: b,
			ClientOpts: []client.Opt{client.RetryBackoff(10*time.Millisecond, 200*time.Millisecond)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		c.urls[id] = "http://" + srv.Addr()
	}
	return c
}

// call sends a JSON API request and decodes the answer into out (when not
// nil), returning the status.
func call(t testing.TB, method, url string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q, body %s", method, url, ct, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// wantStatus calls and fails unless the status is want; it returns the
// error answer's message.
func wantStatus(t testing.TB, want int, method, url string, body any) string {
	t.Helper()
	var e struct{ Error, Code string }
	if got := call(t, method, url, body, &e); got != want {
		t.Fatalf("%s %s: status %d (%s %s), want %d", method, url, got, e.Code, e.Error, want)
	}
	return e.Code + " " + e.Error
}

func TestConsoleAPITopics(t *testing.T) {
	c := startConsole(t, 1)
	api := c.urls[1] + "/api"

	var cl httpapi.ClusterInfo
	if s := call(t, "GET", api+"/cluster", nil, &cl); s != 200 || cl.Controller != 1 || cl.Broker != 1 ||
		len(cl.Brokers) != 1 || cl.Brokers[0].State != "alive" || !cl.Brokers[0].Controller || len(cl.Alerts) != 0 {
		t.Fatalf("GET /cluster: %d %+v", s, cl)
	}

	create := httpapi.NewTopicRequest{Name: "orders", Partitions: 3, ReplicationFactor: 1,
		Configs: map[string]string{"retention.ms": "3600000"}}
	wantStatus(t, http.StatusCreated, "POST", api+"/topics", create)
	if msg := wantStatus(t, http.StatusConflict, "POST", api+"/topics", create); !strings.Contains(msg, "TOPIC_ALREADY_EXISTS") {
		t.Errorf("second create: %s", msg)
	}
	wantStatus(t, http.StatusBadRequest, "POST", api+"/topics", httpapi.NewTopicRequest{Name: "bad name!", Partitions: 1})
	wantStatus(t, http.StatusBadRequest, "POST", api+"/topics", httpapi.NewTopicRequest{Name: "x", Configs: map[string]string{"retention.ms": "soon"}})
	wantStatus(t, http.StatusBadRequest, "POST", api+"/topics", map[string]any{"name": "x", "partitionz": 2})
	wantStatus(t, http.StatusOK, "POST", api+"/topics", httpapi.NewTopicRequest{Name: "checked", ValidateOnly: true})
	// A body not declared JSON (a cross-site form post) is refused.
	resp, err := http.Post(api+"/topics", "text/plain", strings.NewReader(`{"name":"csrf"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("POST /topics as text/plain: %d", resp.StatusCode)
	}

	var topics []httpapi.TopicSummary
	call(t, "GET", api+"/topics", nil, &topics)
	found := false
	for _, ts := range topics {
		if ts.Name == "checked" || ts.Name == "csrf" {
			t.Errorf("topic %s was created", ts.Name)
		}
		if ts.Name == "orders" {
			found = ts.Partitions == 3 && ts.ReplicationFactor == 1 && !ts.Internal
		}
	}
	if !found {
		t.Fatalf("GET /topics: %+v", topics)
	}

	var d httpapi.TopicDetail
	call(t, "GET", api+"/topics/orders", nil, &d)
	if len(d.Partitions) != 3 || d.Partitions[0].End != 0 || d.Partitions[0].Leader != 1 || d.Records != 0 {
		t.Fatalf("GET /topics/orders: %+v", d)
	}
	if v, def := config(d.Configs, "retention.ms"); v != "3600000" || def {
		t.Errorf("retention.ms = %q (default %v), want 3600000 set on the topic", v, def)
	}
	var cfgs []httpapi.ConfigInfo
	call(t, "PATCH", api+"/topics/orders/configs", httpapi.ConfigChangeRequest{Set: map[string]string{"retention.ms": "7200000"}}, &cfgs)
	if v, _ := config(cfgs, "retention.ms"); v != "7200000" {
		t.Errorf("after set: retention.ms = %q", v)
	}
	call(t, "PATCH", api+"/topics/orders/configs", httpapi.ConfigChangeRequest{Remove: []string{"retention.ms"}}, &cfgs)
	if _, def := config(cfgs, "retention.ms"); !def {
		t.Errorf("after remove: retention.ms is not the default: %+v", cfgs)
	}
	wantStatus(t, http.StatusBadRequest, "PATCH", api+"/topics/orders/configs", httpapi.ConfigChangeRequest{Set: map[string]string{"segment.bytes": "-4"}})
	wantStatus(t, http.StatusBadRequest, "PATCH", api+"/topics/orders/configs", httpapi.ConfigChangeRequest{})
	wantStatus(t, http.StatusNotFound, "PATCH", api+"/topics/nope/configs", httpapi.ConfigChangeRequest{Remove: []string{"retention.ms"}})
	wantStatus(t, http.StatusNotFound, "GET", api+"/topics/nope", nil)

	wantStatus(t, http.StatusBadRequest, "DELETE", api+"/topics/__consumer_offsets", nil)
	wantStatus(t, http.StatusOK, "DELETE", api+"/topics/orders", nil)
	wantStatus(t, http.StatusNotFound, "DELETE", api+"/topics/orders", nil)
	wantStatus(t, http.StatusNotFound, "GET", api+"/topics/orders", nil)
	wantStatus(t, http.StatusNotFound, "GET", api+"/nothing", nil)
}

func config(cfgs []httpapi.ConfigInfo, key string) (string, bool) {
	for _, c := range cfgs {
		if c.Name == key {
			return c.Value, c.Default
		}
	}
	return "<missing>", false
}

// createTopic creates a topic and waits for its replicas to be in sync,
// retrying a create whose outcome the cluster could not tell (a Raft
// leadership change in the middle of it, on a loaded machine).
func createTopic(t testing.TB, cl *client.Client, spec client.TopicSpec) {
	t.Helper()
	poll.Until(t, 30*time.Second, "create topic "+spec.Name, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := cl.CreateTopics(ctx, spec)
		if errors.Is(err, protocol.ErrTopicAlreadyExists) {
			return nil // a retried create that was applied
		}
		return err
	})
	testcluster.WaitFullISR(t, cl, spec.Name, 20*time.Second)
}

// produce writes recs to topic's partition p with the cluster's client.
func produce(t testing.TB, cl *client.Client, recs ...*client.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
}

func TestConsoleAPIMessages(t *testing.T) {
	c := startConsole(t, 1)
	api := c.urls[1] + "/api"
	cl := c.Client(client.RecordPartitioner(client.ManualPartitioner()))
	createTopic(t, cl, client.TopicSpec{Name: "m", Partitions: 2, ReplicationFactor: 1})
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	binary := []byte{0, 1, 2, 0xff}
	recs := []*client.Record{
		{Topic: "m", Key: []byte("k0"), Value: []byte(`{"id":1,"tags":["a"]}`), Timestamp: t0,
			Headers: []record.Header{{Key: []byte("trace"), Value: []byte("abc")}}},
		{Topic: "m", Key: nil, Value: binary, Timestamp: t0.Add(time.Minute)},
		{Topic: "m", Key: []byte("k2"), Value: []byte("plain text"), Timestamp: t0.Add(2 * time.Minute)},
	}
	for i := 3; i < 10; i++ {
		recs = append(recs, &client.Record{Topic: "m", Value: fmt.Appendf(nil, "v%d", i), Timestamp: t0.Add(time.Duration(i) * time.Minute)})
	}
	produce(t, cl, recs...)
	produce(t, cl, &client.Record{Topic: "m", Partition: 1, Value: []byte("other")})

	var tp httpapi.Throughput
	call(t, "GET", api+"/throughput", nil, &tp)
	if tp.Total != 11 || tp.Error != "" || tp.Time <= 0 || !slices.ContainsFunc(tp.Topics, func(te httpapi.TopicEndTotal) bool {
		return te.Topic == "m" && te.End == 11 && te.Complete && !te.Internal
	}) {
		t.Errorf("GET /throughput: %+v, want 11 records appended to m", tp)
	}

	var b httpapi.Browse
	call(t, "GET", api+"/topics/m/records?partition=0&limit=3", nil, &b)
	if b.Start != 0 || b.End != 10 || b.From != 0 || b.Next != 3 || len(b.Records) != 3 {
		t.Fatalf("browse from oldest: %+v", b)
	}
	r0, r1, r2 := b.Records[0], b.Records[1], b.Records[2]
	if r0.Key.Format != "text" || r0.Key.Text != "k0" || r0.Value.Format != "json" ||
		r0.Value.Text != "{\n  \"id\": 1,\n  \"tags\": [\n    \"a\"\n  ]\n}" || r0.Timestamp != t0.UnixMilli() ||
		len(r0.Headers) != 1 || r0.Headers[0].Key != "trace" || r0.Headers[0].Value.Text != "abc" {
		t.Errorf("record 0: %+v", r0)
	}
	if r1.Key.Format != "null" || r1.Value.Format != "hex" || !strings.HasPrefix(r1.Value.Text, "00000000  00 01 02 ff") || r1.Value.Size != 4 {
		t.Errorf("record 1: %+v", r1)
	}
	if r2.Value.Format != "text" || r2.Value.Text != "plain text" {
		t.Errorf("record 2: %+v", r2)
	}
	call(t, "GET", api+"/topics/m/records?partition=0&offset=8", nil, &b)
	if b.From != 8 || len(b.Records) != 2 || b.Records[0].Offset != 8 || b.Next != 10 {
		t.Errorf("browse from offset 8: %+v", b)
	}
	call(t, "GET", api+"/topics/m/records?partition=0&from=newest&limit=4", nil, &b)
	if b.From != 6 || len(b.Records) != 4 || b.Records[3].Offset != 9 {
		t.Errorf("browse newest 4: %+v", b)
	}
	ts := url.QueryEscape(t0.Add(5*time.Minute - time.Second).UTC().Format(time.RFC3339))
	call(t, "GET", api+"/topics/m/records?partition=0&limit=1&timestamp="+ts, nil, &b)
	if b.From != 5 || len(b.Records) != 1 || b.Records[0].Offset != 5 {
		t.Errorf("browse from a time: %+v", b)
	}
	call(t, "GET", api+fmt.Sprintf("/topics/m/records?partition=0&timestamp=%d", time.Now().Add(time.Hour).UnixMilli()), nil, &b)
	if b.From != 10 || len(b.Records) != 0 {
		t.Errorf("browse from after the last record: %+v", b)
	}
	call(t, "GET", api+"/topics/m/records?partition=1", nil, &b)
	if len(b.Records) != 1 || b.Records[0].Value.Text != "other" {
		t.Errorf("browse partition 1: %+v", b)
	}
	for _, q := range []string{"partition=-1", "limit=0", "limit=501", "offset=x", "offset=1&from=newest", "timestamp=yesterday", "from=middle"} {
		wantStatus(t, http.StatusBadRequest, "GET", api+"/topics/m/records?"+q, nil)
	}
	wantStatus(t, http.StatusNotFound, "GET", api+"/topics/m/records?partition=2", nil)
	wantStatus(t, http.StatusNotFound, "GET", api+"/topics/nope/records", nil)

	resp, err := http.Get(api + "/topics/m/records/0/1/value")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(raw, binary) || !strings.Contains(resp.Header.Get("Content-Disposition"), `filename="m-0-1.value"`) {
		t.Errorf("download value: %d %q %q", resp.StatusCode, raw, resp.Header.Get("Content-Disposition"))
	}
	wantStatus(t, http.StatusBadRequest, "GET", api+"/topics/m/records/0/1/body", nil)

	// A browse creates no group.
	var gl struct{ Groups []client.GroupListing }
	call(t, "GET", api+"/groups", nil, &gl)
	if len(gl.Groups) != 0 {
		t.Errorf("groups after browsing: %+v", gl.Groups)
	}
}

func TestConsoleAPIGroups(t *testing.T) {
	c := startConsole(t, 1)
	api := c.urls[1] + "/api"
	cl := c.Client(client.RecordPartitioner(client.ManualPartitioner()))
	createTopic(t, cl, client.TopicSpec{Name: "g", Partitions: 2, ReplicationFactor: 1})
	var recs []*client.Record
	for i := range 10 {
		recs = append(recs, &client.Record{Topic: "g", Partition: int32(i % 2), Value: []byte("x")})
	}
	produce(t, cl, recs...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	poll.Until(t, 20*time.Second, "the group's first commit (its coordinator loads the offsets topic first)", func() error {
		_, err := cl.ResetOffsets(ctx, "workers", "g", client.ResetToOffset(2), true)
		return err
	})

	var gl struct{ Groups []client.GroupListing }
	call(t, "GET", api+"/groups", nil, &gl)
	if len(gl.Groups) != 1 || gl.Groups[0].Group != "workers" {
		t.Fatalf("GET /groups: %+v", gl)
	}
	var d httpapi.GroupDetail
	call(t, "GET", api+"/groups/workers", nil, &d)
	want, err := cl.DescribeGroup(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	if d.Lag != 6 || len(d.Offsets) != 2 || d.Offsets[0].Committed != 2 || d.Offsets[0].End != 5 || d.Offsets[0].Lag != 3 ||
		len(d.Members) != 0 || d.State != want.State {
		t.Fatalf("GET /groups/workers: %+v, client says %+v", d, want)
	}
	wantStatus(t, http.StatusNotFound, "GET", api+"/groups/nobody", nil)

	var plan httpapi.ResetAnswer
	call(t, "POST", api+"/groups/workers/reset", httpapi.ResetRequest{Topic: "g", To: "earliest"}, &plan)
	if plan.Executed || len(plan.Offsets) != 2 || plan.Offsets[0].Current != 2 || plan.Offsets[0].New != 0 {
		t.Fatalf("preview: %+v", plan)
	}
	call(t, "GET", api+"/groups/workers", nil, &d)
	if d.Lag != 6 {
		t.Fatalf("a preview changed the offsets: lag %d", d.Lag)
	}
	call(t, "POST", api+"/groups/workers/reset", httpapi.ResetRequest{Topic: "g", To: "shift", Value: 1, Execute: true}, &plan)
	if !plan.Executed || plan.Offsets[1].New != 3 {
		t.Fatalf("execute: %+v", plan)
	}
	call(t, "GET", api+"/groups/workers", nil, &d)
	if d.Lag != 4 {
		t.Fatalf("after shift by 1: lag %d, want 4", d.Lag)
	}
	for _, bad := range []httpapi.ResetRequest{{To: "earliest"}, {Topic: "g", To: "somewhere"}, {Topic: "g", To: "offset", Value: -1}} {
		wantStatus(t, http.StatusBadRequest, "POST", api+"/groups/workers/reset", bad)
	}

	// A group with a member is refused.
	member := c.Client(client.ConsumerGroup("workers", client.GroupTopics("g")))
	pollCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	if _, err := member.Poll(pollCtx); err != nil {
		t.Fatal(err)
	}
	if msg := wantStatus(t, http.StatusConflict, "POST", api+"/groups/workers/reset", httpapi.ResetRequest{Topic: "g", To: "latest", Execute: true}); !strings.Contains(msg, "members") {
		t.Errorf("reset of a group with members: %s", msg)
	}
	poll.Until(t, 10*time.Second, "the member's assignment in GET /groups/workers", func() error {
		call(t, "GET", api+"/groups/workers", nil, &d)
		if len(d.Members) != 1 || len(d.Members[0].Assignment) != 2 || d.Offsets[0].Member != d.Members[0].MemberID {
			return fmt.Errorf("%+v", d)
		}
		return nil
	})
}
