package httpapi_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicemq/sluice/client"
)

// screenshotEnv names the PNG TestConsoleScreenshot writes.
const screenshotEnv = "SLUICE_CONSOLE_PNG"

// TestConsoleScreenshot writes the screenshot of the console's overview
// that docs/operations.md and docs/console.md show (make screenshot): a
// 3-broker cluster, two topics produced to and consumed from for
// screenshotSamples refreshes a second apart, so that every chart has a
// line. It checks that they have; it runs only when $SLUICE_CONSOLE_PNG
// names the file to write, and then fails without a Chromium.
func TestConsoleScreenshot(t *testing.T) {
	out := os.Getenv(screenshotEnv)
	if out == "" {
		t.Skipf("set %s to the PNG to write (make screenshot)", screenshotEnv)
	}
	bin := chromium()
	if bin == "" {
		t.Fatalf("%s is set but there is no chromium (apt-get install chromium)", screenshotEnv)
	}
	const screenshotSamples = 15
	c := startConsole(t, 3)
	cl := c.Client(client.RecordPartitioner(client.ManualPartitioner()))
	topics := []client.TopicSpec{{Name: "orders", Partitions: 6, ReplicationFactor: 3}, {Name: "payments", Partitions: 3, ReplicationFactor: 3}}
	assigned := map[client.TopicPartition]client.Offset{}
	for _, spec := range topics {
		createTopic(t, cl, spec)
		for p := range spec.Partitions {
			assigned[client.TopicPartition{Topic: spec.Name, Partition: p}] = client.AtStart()
		}
	}
	consumer := c.Client()
	consumer.Assign(assigned)

	// A first produce to each partition and a poll before the first
	// sample: connections, metadata and first appends are not what the
	// latency chart is for.
	var warm []*client.Record
	for tp := range assigned {
		warm = append(warm, &client.Record{Topic: tp.Topic, Partition: tp.Partition, Value: []byte("warm-up")})
	}
	produce(t, cl, warm...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := consumer.Poll(ctx); err != nil {
		t.Fatal(err)
	}

	p := openPage(t, bin, c.urls[1])
	p.do("open the console", chromedp.Navigate(p.base+"/#/"))
	p.waitLoaded("#/")
	tick := time.NewTicker(time.Second) // the pace of the samples: a chart's x axis
	defer tick.Stop()
	for i := range screenshotSamples {
		// A load that rises and falls, so that the lines are not flat.
		n := 20 + 15*(i%5)
		var recs []*client.Record
		for j := range n {
			spec := topics[j%len(topics)]
			recs = append(recs, &client.Record{Topic: spec.Name, Partition: int32(j) % spec.Partitions,
				Key: fmt.Appendf(nil, "key-%d", j), Value: fmt.Appendf(nil, `{"sample":%d,"record":%d,"items":["tea","cups"]}`, i, j)})
		}
		produce(t, cl, recs...)
		if i%3 != 2 { // a consumer that falls behind, then catches up
			if _, err := consumer.Poll(ctx); err != nil {
				t.Fatal(err)
			}
		}
		<-tick.C
		p.do("refresh the overview", chromedp.Evaluate[chromedp.Void](`document.body.dataset.loaded = ""; route()`))
		p.waitLoaded("#/")
	}
	for _, chart := range []string{"throughput", "bytes-chart", "latency-chart"} {
		if n := eval[int](p, `Number(document.querySelector("canvas#`+chart+`").dataset.points)`); n < screenshotSamples/2 {
			t.Errorf("chart %s: %d points after %d refreshes", chart, n, screenshotSamples)
		}
	}
	p.screenshotTo(out)
	if errs := p.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", errs)
	}
	t.Logf("wrote %s", out)
}
