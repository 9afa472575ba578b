package httpapi_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicemq/sluice/client"
)

// TestConsoleQueueGroupsInBrowser drives the queue groups' pages in a
// headless Chromium against a 3-broker cluster: a queue group that has
// accepted, rejected (dead-lettered) and still holds records is listed,
// its page shows per partition what the client's describe (`sluice queue
// describe`) shows, and the Redrive button, once confirmed, republishes
// the dead letters, which the group then delivers again.
func TestConsoleQueueGroupsInBrowser(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("no chromium (apt-get install chromium): the browser test of the console is skipped")
	}
	c := startConsole(t, 3)
	cl := c.Client()
	createTopic(t, cl, client.TopicSpec{Name: "jobs", Partitions: 1, ReplicationFactor: 3})
	var recs []*client.Record
	for i := range 8 {
		recs = append(recs, &client.Record{Topic: "jobs", Key: fmt.Appendf(nil, "job-%d", i), Value: fmt.Appendf(nil, "work %d", i)})
	}
	produce(t, cl, recs...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q := cl.QueueGroup("workers", "jobs")
	var got []*client.Delivery
	for len(got) < 5 {
		ds, err := q.Receive(ctx, 5-len(got))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ds...)
	}
	// Offset 0 accepted, 1 and 2 rejected (dead letters), 3 and 4 held.
	for _, err := range []error{got[0].Accept(), got[1].Reject("bad input"), got[2].Reject("bad input")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	d, err := cl.DescribeQueueGroup(ctx, "workers")
	if err != nil || len(d.Partitions) != 1 || d.Partitions[0].DeadLettered != 2 || d.Partitions[0].Acquired != 2 {
		t.Fatalf("describe: %+v, %v", d, err)
	}

	p := openPage(t, bin, c.urls[1])
	p.do("open the console", chromedp.Navigate(p.base+"/#/queues"))
	p.waitLoaded("#/queues")
	p.screenshot("queues")
	if got := p.text(`#queues tr[data-group="workers"] td:nth-child(1)`); got != "workers" {
		t.Fatalf("queue groups page: %q", p.text("#app"))
	}
	p.open("#/groups", "groups-without-queues")
	if n := eval[int](p, `document.querySelectorAll('#groups tr[data-group="workers"]').length`); n != 0 {
		t.Errorf("the consumer groups' page lists queue group workers")
	}

	p.open("#/queues/workers", "queue")
	dp := d.Partitions[0]
	row := func(col int) string {
		return p.text(fmt.Sprintf(`#queue-partitions tr[data-topic="jobs"][data-partition="0"] td:nth-child(%d)`, col))
	}
	for _, c := range []struct {
		col  int
		what string
		want int64
	}{{3, "start", dp.Start}, {4, "end", dp.End}, {5, "available", int64(dp.Available)}, {6, "acquired", int64(dp.Acquired)},
		{7, "accepted", int64(dp.Accepted)}, {8, "archived", int64(dp.Archived)}, {9, "dead-lettered", dp.DeadLettered}} {
		if got := row(c.col); got != strconv.FormatInt(c.want, 10) {
			t.Errorf("queue page: %s %s, describe says %d", c.what, got, c.want)
		}
	}
	if age := row(10); age == "-" || !strings.HasSuffix(age, "s") {
		t.Errorf("queue page: oldest unacked %q, describe says %v", age, dp.OldestAcquired)
	}
	if got, want := row(11), map[bool]string{true: "yes", false: "-"}[dp.AtCap]; got != want {
		t.Errorf("queue page: at cap %q, want %q", got, want)
	}
	if got := p.text("#queue-dead"); got != "2" {
		t.Errorf("queue page: %s dead letters, want 2", got)
	}

	// Redrive: nothing happens until it is confirmed.
	ends, err := cl.ListOffsets(ctx, "jobs", client.AtEnd())
	if err != nil {
		t.Fatal(err)
	}
	p.do("ask to redrive", chromedp.Click(chromedp.CSS("#redrive")), chromedp.WaitVisible(chromedp.CSS("#redrive-confirm")))
	p.screenshot("queue-redrive-confirm")
	if now, err := cl.ListOffsets(ctx, "jobs", client.AtEnd()); err != nil || now[0].Offset != ends[0].Offset {
		t.Fatalf("before the confirmation: jobs ends at %v (%v), was %d", now, err, ends[0].Offset)
	}
	p.do("confirm the redrive",
		chromedp.Click(chromedp.CSS("#redrive-confirm")),
		chromedp.Poll[chromedp.Void](`document.querySelector("#redrive-done") !== null`, chromedp.WithPollingTimeout(20*time.Second)))
	p.screenshot("queue-redriven")
	if got := p.text("#redrive-done"); got != "jobs.dlq: 2 dead letters republished" {
		t.Errorf("redrive: %q", got)
	}
	// The group delivers the republished records as new ones, after the
	// three never delivered.
	var values []string
	for len(values) < 5 {
		ds, err := q.Receive(ctx, 5-len(values))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			values = append(values, string(d.Value))
		}
		if err := q.AcceptAll(ds); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(values)
	if want := []string{"work 1", "work 2", "work 5", "work 6", "work 7"}; !slices.Equal(values, want) {
		t.Errorf("after the redrive the group received %q, want %q", values, want)
	}
	// A second redrive has nothing left to republish.
	p.do("redrive again",
		chromedp.Click(chromedp.CSS("#redrive")), chromedp.WaitVisible(chromedp.CSS("#redrive-confirm")),
		chromedp.Click(chromedp.CSS("#redrive-confirm")),
		chromedp.Poll[chromedp.Void](`document.querySelector("#redrive-done") !== null && document.querySelector("#redrive-done").textContent.includes(": 0 ")`,
			chromedp.WithPollingTimeout(20*time.Second)))
	if errs := p.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}
