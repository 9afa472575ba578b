package httpapi_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
)

// chromium returns the path of a Chromium (Debian package chromium) or
// Chrome binary, or "".
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// page is a headless Chromium tab on a console, recording every console
// error, uncaught exception and failed load of the page.
type page struct {
	t    *testing.T
	ctx  context.Context
	base string // http://host:port of the console
	dir  string // screenshots

	mu     sync.Mutex
	errors []string
}

func openPage(t *testing.T, bin, base string) *page {
	t.Helper()
	dir := os.Getenv("SLUICE_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	p := &page{t: t, ctx: ctx, base: base, dir: dir}
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-done
	})
	msgs := chromedp.Console(ctx)
	// Start the browser (the first Run, on a context without a deadline).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		close(done)
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() || m.Type == chromedp.ConsoleWarning {
				p.mu.Lock()
				p.errors = append(p.errors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// do runs actions with a deadline, failing the test on an error.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v (console errors: %q)", what, err, p.consoleErrors())
	}
}

// text returns the text of the element sel selects.
func (p *page) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("text of %s: %v (console errors: %q)", sel, err, p.consoleErrors())
	}
	return strings.TrimSpace(s)
}

// eval evaluates a JavaScript expression.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// open goes to the page at fragment (the app routes on it) and waits until
// it has loaded, then takes a screenshot named name.
func (p *page) open(fragment, name string) {
	p.t.Helper()
	p.do("open "+fragment, chromedp.Evaluate[chromedp.Void](fmt.Sprintf("location.hash = %q", fragment)))
	p.waitLoaded(fragment)
	p.screenshot(name)
}

// waitLoaded waits until the app says it has rendered the page of
// fragment, and fails if it rendered an error.
func (p *page) waitLoaded(fragment string) {
	p.t.Helper()
	loaded := chromedp.Poll[chromedp.Void](
		fmt.Sprintf(`document.body.dataset.loaded === %q || document.body.dataset.loaded === "error"`, fragment),
		chromedp.WithPollingTimeout(10*time.Second))
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
		err := chromedp.Do(ctx, loaded)
		cancel()
		if err == nil {
			break
		}
		// A poll started while the page was still replacing about:blank
		// loses its JavaScript context; poll again in the new one.
		if attempt < 3 && strings.Contains(err.Error(), "Cannot find context") {
			continue
		}
		p.t.Fatalf("load %s: %v (console errors: %q)", fragment, err, p.consoleErrors())
	}
	if got := eval[string](p, "document.body.dataset.loaded"); got != fragment {
		p.t.Fatalf("page %s: %s", fragment, p.text("#app"))
	}
}

func (p *page) screenshot(name string) {
	p.t.Helper()
	p.screenshotTo(filepath.Join(p.dir, name+".png"))
}

// screenshotTo writes a PNG of the whole page to path.
func (p *page) screenshotTo(path string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", path, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *page) consoleErrors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errors...)
}

// rateRE matches a rate as the overview shows it, and the others bytes,
// byte rates and durations.
var (
	rateRE     = regexp.MustCompile(`^[0-9]+(\.[0-9])? records/s$`)
	bytesRE    = regexp.MustCompile(`^[0-9]+(\.[0-9])? (B|KiB|MiB|GiB)$`)
	byteRateRE = regexp.MustCompile(`^[0-9]+(\.[0-9])? (B|KiB|MiB|GiB)/s$`)
	secondsRE  = regexp.MustCompile(`^[0-9]+(\.[0-9]+)? (µs|ms|s)$`)
)

// TestConsoleInBrowser drives every page of the console in a headless
// Chromium against a 3-broker cluster: each page loads with no console
// error, shows what the client reads of the same cluster, and creating a
// topic, deleting it and resetting a group's offsets work end to end.
func TestConsoleInBrowser(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("no chromium (apt-get install chromium): the browser test of the console is skipped")
	}
	c := startConsole(t, 3)
	cl := c.Client(client.RecordPartitioner(client.ManualPartitioner()))
	createTopic(t, cl, client.TopicSpec{Name: "orders", Partitions: 3, ReplicationFactor: 3})
	var recs []*client.Record
	for i := range 12 {
		recs = append(recs, &client.Record{Topic: "orders", Partition: int32(i % 3), Key: fmt.Appendf(nil, "order-%d", i),
			Value: fmt.Appendf(nil, `{"order":%d,"items":["tea"]}`, i)})
	}
	recs = append(recs, &client.Record{Topic: "orders", Partition: 0, Value: []byte{0xde, 0xad, 0xbe, 0xef}})
	produce(t, cl, recs...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	poll.Until(t, 20*time.Second, "group billing's first commit", func() error {
		_, err := cl.ResetOffsets(ctx, "billing", "orders", client.ResetToOffset(1), true)
		return err
	})

	// The console of a broker that is not the controller: it shows the
	// whole cluster all the same.
	served := int32(1)
	if c.Broker(1).Metadata().ControllerID == 1 {
		served = 2
	}
	p := openPage(t, bin, c.urls[served])
	// The controller can move under a loaded machine: the page must show
	// the one before or the one after it loaded.
	controllerName := func(id int32) string {
		if id < 0 {
			return "none"
		}
		return fmt.Sprintf("broker %d", id)
	}
	before := controllerName(c.Broker(served).Metadata().ControllerID)
	p.do("open the console", chromedp.Navigate(p.base+"/#/"))
	p.waitLoaded("#/")
	p.screenshot("overview")
	after := controllerName(c.Broker(served).Metadata().ControllerID)
	controller := p.text("#controller")
	if controller != before && controller != after {
		t.Errorf("overview: controller %q, want %q (or %q)", controller, after, before)
	}
	topics, err := cl.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.text("#served-by"), fmt.Sprintf("broker %d", served); got != want {
		t.Errorf("overview: served by %q, want %q", got, want)
	}
	if got := p.text("#broker-count"); got != "3" {
		t.Errorf("overview: %s brokers", got)
	}
	if got := p.text("#topic-count"); got != strconv.Itoa(len(topics)) {
		t.Errorf("overview: %s topics, the client lists %d: %q", got, len(topics), topics)
	}
	if got := eval[int](p, `document.querySelectorAll("#brokers tbody tr").length`); got != 3 {
		t.Errorf("overview: %d broker rows", got)
	}
	wantAlerts := "No alert condition holds."
	if controller == "none" { // an election in progress
		wantAlerts = "no controller: no broker leads the metadata group: no topic changes, elections or ISR changes"
	}
	if got := p.text("#alerts"); got != wantAlerts {
		t.Errorf("overview alerts: %q, want %q", got, wantAlerts)
	}

	p.open("#/topics", "topics")
	rows := eval[[]string](p, `[...document.querySelectorAll("#topics tbody tr")].map(r => r.dataset.topic)`)
	if strings.Join(rows, ",") != strings.Join(topics, ",") {
		t.Errorf("topics page lists %q, the client %q", rows, topics)
	}
	if got := p.text(`#topics tr[data-topic="orders"] td:nth-child(2)`); got != "3" {
		t.Errorf("topics page: orders has %s partitions", got)
	}

	// Create a topic from the form.
	p.do("fill the create form",
		chromedp.SendKeys(chromedp.CSS("#new-name"), "created-in-browser"),
		chromedp.SendKeys(chromedp.CSS("#new-partitions"), "2"),
		chromedp.SendKeys(chromedp.CSS("#new-rf"), "3"),
		chromedp.SendKeys(chromedp.CSS("#new-configs"), "retention.ms=600000"),
		chromedp.Click(chromedp.CSS("#create")))
	p.waitLoaded("#/topics/created-in-browser")
	p.screenshot("topic-created")
	d, err := cl.DescribeTopic(ctx, "created-in-browser")
	if err != nil || len(d.Partitions) != 2 || len(d.Partitions[0].Replicas) != 3 {
		t.Fatalf("the topic created in the browser: %+v, %v", d, err)
	}
	cfgs, err := cl.DescribeConfigs(ctx, "created-in-browser", "retention.ms")
	if err != nil || len(cfgs) != 1 || cfgs[0].Value != "600000" {
		t.Errorf("its retention.ms: %+v, %v", cfgs, err)
	}

	// The topic's page shows the leaders' offsets.
	p.open("#/topics/orders", "topic")
	ends, err := cl.ListOffsets(ctx, "orders", client.AtEnd())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ends {
		sel := fmt.Sprintf(`#partitions tr[data-partition="%d"] td:nth-child(7)`, e.Partition)
		if got := p.text(sel); got != strconv.FormatInt(e.Offset, 10) {
			t.Errorf("topic page: partition %d ends at %s, the client says %d", e.Partition, got, e.Offset)
		}
	}

	// The message browser reads partition 0 without a group.
	p.open("#/messages/orders?partition=0&mode=oldest&limit=50", "messages")
	if got := eval[int](p, `document.querySelectorAll("#records tbody tr").length`); int64(got) != ends[0].Offset {
		t.Errorf("message browser: %d records of partition 0, its end is %d", got, ends[0].Offset)
	}
	if got := p.text(`#records tr[data-offset="0"] td.value pre`); got != "{\n  \"order\": 0,\n  \"items\": [\n    \"tea\"\n  ]\n}" {
		t.Errorf("message browser: value of offset 0 %q", got)
	}
	if got := p.text(`#records tr[data-offset="4"] td.value pre`); !strings.Contains(got, "de ad be ef") {
		t.Errorf("message browser: binary value of offset 4 %q", got)
	}

	// Groups: the list and the lag the client computes.
	p.open("#/groups", "groups")
	if got := p.text(`#groups tr[data-group="billing"] td:nth-child(1)`); got != "billing" {
		t.Errorf("groups page: %q", p.text("#app"))
	}
	p.open("#/groups/billing", "group")
	g, err := cl.DescribeGroup(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	lag := int64(0)
	for _, o := range g.Offsets {
		lag += o.Lag
	}
	if got := p.text("#group-lag"); got != strconv.FormatInt(lag, 10) || lag != int64(len(recs)-3) {
		t.Errorf("group page: lag %s, the client says %d", got, lag)
	}

	// Reset to the earliest offsets: preview, check nothing moved, apply.
	p.do("preview a reset",
		chromedp.SetValue(chromedp.CSS("#reset-to"), "earliest"),
		chromedp.Click(chromedp.CSS("#reset-preview")),
		chromedp.WaitVisible(chromedp.CSS("#reset-plan")))
	if got := eval[int](p, `document.querySelectorAll("#reset-plan tbody tr").length`); got != 3 {
		t.Errorf("reset preview: %d rows", got)
	}
	p.screenshot("group-reset-preview")
	if committed, err := cl.CommittedOffsets(ctx, "billing"); err != nil || committed[client.TopicPartition{Topic: "orders", Partition: 0}] != 1 {
		t.Fatalf("after the preview: committed %v, %v", committed, err)
	}
	p.do("apply the reset",
		chromedp.Click(chromedp.CSS("#reset-apply")),
		chromedp.Poll[chromedp.Void](`document.querySelector("#reset-result .notice") !== null`, chromedp.WithPollingTimeout(10*time.Second)))
	p.screenshot("group-reset-applied")
	committed, err := cl.CommittedOffsets(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ends {
		if off := committed[client.TopicPartition{Topic: "orders", Partition: e.Partition}]; off != 0 {
			t.Errorf("after the reset: billing's offset of orders[%d] is %d, want 0", e.Partition, off)
		}
	}
	if got := p.text("#group-lag"); got != strconv.Itoa(len(recs)) {
		t.Errorf("group page after the reset: lag %s, want %d", got, len(recs))
	}

	// Delete the created topic, confirming with its name.
	p.open("#/topics/created-in-browser", "topic-delete")
	p.do("delete the topic",
		chromedp.SendKeys(chromedp.CSS("#delete-confirm"), "created-in-browser"),
		chromedp.Click(chromedp.CSS("#delete")))
	p.waitLoaded("#/topics")
	if _, err := cl.DescribeTopic(ctx, "created-in-browser"); err == nil {
		t.Errorf("the topic deleted in the browser still exists")
	}

	// Back on the overview after more records: the throughput it charts
	// is the growth of the end offsets since its first visit.
	var more []*client.Record
	for i := range 6 {
		more = append(more, &client.Record{Topic: "orders", Partition: int32(i % 3), Value: []byte("more")})
	}
	produce(t, cl, more...)
	p.open("#/", "overview-throughput")
	if got := p.text("#rate-total"); !rateRE.MatchString(got) || strings.HasPrefix(got, "0 ") {
		t.Errorf("overview: throughput %q, want a rate above 0", got)
	}
	if got, want := p.text(`#topic-rates tr[data-topic="orders"] td:nth-child(2)`), strconv.Itoa(len(recs)+len(more)); got != want {
		t.Errorf("overview: %s records appended to orders, want %s", got, want)
	}
	if got := eval[int](p, `document.querySelectorAll("canvas#throughput").length`); got != 1 {
		t.Errorf("overview: %d throughput charts", got)
	}
	if eval[bool](p, `[...document.getElementById("app").childNodes].some(n => n.nodeType === Node.TEXT_NODE)`) {
		t.Errorf("overview: stray text among its sections: %q", p.text("#app"))
	}

	checkBrokerStats(t, p, c, served)

	// A broker fails: the overview shows it offline and the alerts its
	// partitions raise, as the served broker's metadata has them.
	c.Kill(3)
	poll.Until(t, 20*time.Second, "the overview to show broker 3 offline", func() error {
		p.open("#/topics", "topics")
		p.open("#/", "overview-broker-down")
		state, alerts := p.text(`#brokers tr[data-broker="3"] td:nth-child(4)`), p.text("#alerts")
		if state != "offline" || !strings.Contains(alerts, "offline brokers: 1 registered brokers are offline") ||
			!strings.Contains(alerts, "under-replicated") {
			return fmt.Errorf("broker 3 %q, alerts %q", state, alerts)
		}
		return nil
	})
	if md := c.Broker(served).Metadata(); md.Brokers[3].State.String() != "offline" {
		t.Errorf("the page shows broker 3 offline, the metadata %v", md.Brokers[3].State)
	}

	if errs := p.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
	t.Logf("screenshots in %s", p.dir)
}

// checkBrokerStats checks the overview's bytes and latency of the served
// broker, on a page opened after records were produced since the previous
// visit: the totals are the broker's counters, the rates and the Produce
// latency are those of the produce in between, and the request counts are
// those /metrics has.
func checkBrokerStats(t *testing.T, p *page, c *consoleCluster, served int32) {
	t.Helper()
	led := 0
	for _, part := range c.Broker(served).Metadata().Topics["orders"].Partitions {
		if part.Leader == served {
			led++
		}
	}
	if led == 0 {
		t.Fatalf("broker %d leads no partition of orders: its console has no produce to chart", served)
	}
	if got := p.text("#bytes-in-rate"); !byteRateRE.MatchString(got) || strings.HasPrefix(got, "0 ") {
		t.Errorf("overview: bytes in %q, want a rate above 0", got)
	}
	if got := p.text("#bytes-out-rate"); !byteRateRE.MatchString(got) {
		t.Errorf("overview: bytes out %q", got)
	}
	if n := eval[int](p, `Number(document.querySelector("canvas#bytes-chart").dataset.points)`); n < 2 {
		t.Errorf("overview: the bytes chart has %d points, want in and out since the first visit", n)
	}
	if n := eval[int](p, `Number(document.querySelector("canvas#latency-chart").dataset.points)`); n < 4 {
		t.Errorf("overview: the latency chart has %d points, want a p99 of each Produce stage", n)
	}
	row := `#latency tr[data-listener="sluice"][data-api="Produce"] `
	for _, sel := range []string{"td.mean", "td.p99.queue", "td.p99.local", "td.p99.wait", "td.p99.send"} {
		if got := p.text(row + sel); !secondsRE.MatchString(got) {
			t.Errorf("overview: Produce %s %q, want a duration", sel, got)
		}
	}
	if got := p.text(row + "td.rate"); got == "0.0" || got == "measuring…" {
		t.Errorf("overview: Produce requests/s %q, want above 0", got)
	}
	// The quantile is histogram_quantile's: within the bucket, linear.
	for expr, want := range map[string]float64{
		`quantile(0.5, [1, 2, 4], {count: 4, counts: [0, 2, 4]})`:   2,
		`quantile(0.1, [1, 2, 4], {count: 10, counts: [0, 0, 5]})`:  2.4,
		`quantile(0.99, [1, 2, 4], {count: 10, counts: [0, 0, 5]})`: 4, // in +Inf: the highest bound
	} {
		if got := eval[float64](p, expr); got < want-1e-9 || got > want+1e-9 {
			t.Errorf("%s = %v, want %v", expr, got, want)
		}
	}
	// The totals and the counts against the broker's: a request is
	// observed just after its response is sent, so a page may miss the
	// last one; each try reloads the overview.
	addr := strings.TrimPrefix(c.urls[served], "http://")
	poll.Until(t, 20*time.Second, "the overview to show the broker's counters", func() error {
		var in, out int64
		for _, ts := range c.Broker(served).Stats(false).Topics {
			if ts.Topic != broker.OffsetsTopic {
				in, out = in+ts.BytesIn, out+ts.BytesOut
			}
		}
		produces := value(scrape(t, addr), "sluice_request_duration_seconds", "api", "Produce", "stage", "queue")
		p.open("#/", "overview-bytes-latency")
		for _, x := range []struct {
			sel  string
			want int64
		}{{"#bytes-in-total", in}, {"#bytes-out-total", out}} {
			if got := p.text(x.sel); !bytesRE.MatchString(got) {
				return fmt.Errorf("%s shows %q", x.sel, got)
			}
			if got := eval[string](p, `document.querySelector("`+x.sel+`").dataset.value`); got != strconv.FormatInt(x.want, 10) {
				return fmt.Errorf("%s is %s, the broker counted %d", x.sel, got, x.want)
			}
		}
		if in == 0 {
			return fmt.Errorf("the broker counted no bytes in")
		}
		if got := p.text(row + "td:nth-child(3)"); got != strconv.FormatFloat(produces, 'f', -1, 64) {
			return fmt.Errorf("Produce requests %s, /metrics has %v", got, produces)
		}
		return nil
	})
}
