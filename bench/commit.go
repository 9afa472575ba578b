package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluicemq/sluice/client"
)

// Defaults of Commit.
const (
	// DefaultCommitRate is Commit's rate when Config.Rate is 0: commits/s
	// in all.
	DefaultCommitRate = 1000
	// DefaultCommitDuration is how long Commit runs when neither
	// Config.Records nor Config.Duration is set.
	DefaultCommitDuration = 10 * time.Second
)

// Commit measures the latency of consumer-group offset commits.
// cfg.Consumers clients join consumer group cfg.Group, subscribed to
// cfg.Topic with auto-commit off; once every member owns partitions and
// together they own all of them, they commit on a fixed schedule of
// cfg.Rate commits/s in all (DefaultCommitRate when 0), each member an
// equal share, for cfg.Duration or until cfg.Records commits were
// scheduled (DefaultCommitDuration when neither is set). Each commit is
// one Client.CommitOffsets naming every partition the member owns, at an
// offset one higher than its previous commit's: what a consumer
// committing after each poll sends. A member's commits go one at a time,
// as a client's do.
//
// Latency runs from each commit's scheduled time to its answer, so a
// member whose commits take longer than its interval falls behind and
// shows it (no coordinated omission). The Report counts commits as
// records (Bytes 0) and failed commits as errors; its time runs from the
// first scheduled commit to the last answer.
func Commit(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Group == "" {
		return nil, errors.New("bench: commit needs a consumer group")
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultCommitRate
	}
	if cfg.Records == 0 && cfg.Duration == 0 {
		cfg.Duration = DefaultCommitDuration
	}
	cfg.Consumer = append(append([]client.Opt(nil), cfg.Consumer...), client.ConsumerGroup(cfg.Group,
		client.GroupTopics(cfg.Topic), client.AutoCommit(false, 0)))
	cons, nparts, err := openConsumers(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer closeAll(cons)

	// A member that stops polling leaves the group: each keeps one Poll
	// running (the topic's records, if any, are dropped).
	pctx, stopPolls := context.WithCancel(ctx)
	var polls sync.WaitGroup
	defer func() {
		stopPolls()
		polls.Wait()
	}()
	for _, cl := range cons {
		polls.Add(1)
		go func() {
			defer polls.Done()
			for pctx.Err() == nil {
				if _, err := cl.Poll(pctx); err != nil && !errors.Is(err, context.Canceled) {
					return
				}
			}
		}()
	}
	if err := waitAssigned(ctx, cons, nparts, cfg.ReadTimeout); err != nil {
		return nil, err
	}

	t := newTally(len(cons))
	lats := make([]*Histogram, len(cons))
	interval := time.Duration(float64(time.Second) * float64(len(cons)) / cfg.Rate)
	start := time.Now()
	var end time.Time
	if cfg.Duration > 0 {
		end = start.Add(cfg.Duration)
	}
	prog := startProgress(cfg.Progress, "commit", t, start, progressInterval)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		last time.Time
	)
	for i, cl := range cons {
		lats[i] = NewHistogram()
		count := int64(-1)
		if cfg.Records > 0 {
			count = share(cfg.Records, i, len(cons))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Members start spread over one interval, not all at once.
			first := start.Add(interval * time.Duration(i) / time.Duration(len(cons)))
			at := committer{cl: cl, idx: i, t: t, lat: lats[i]}
			done := at.run(ctx, first, interval, end, count)
			mu.Lock()
			if done.After(last) {
				last = done
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	prog.stop()
	lat := NewHistogram()
	for _, h := range lats {
		lat.Merge(h)
	}
	return t.report("commit", sinceOr(start, last), lat), ctx.Err()
}

// committer is one member's commit loop.
type committer struct {
	cl  *client.Client
	idx int
	t   *tally
	lat *Histogram
}

// run commits at first, first+interval, ... until end (when not zero)
// or count commits (when not negative) or ctx ends, and returns when the
// last answer came.
func (c *committer) run(ctx context.Context, first time.Time, interval time.Duration, end time.Time, count int64) time.Time {
	var last time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	offset := int64(0)
	for k := int64(0); count < 0 || k < count; k++ {
		at := first.Add(time.Duration(k) * interval)
		if !end.IsZero() && !at.Before(end) {
			break
		}
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return last
			}
		}
		offset++
		offs := map[client.TopicPartition]int64{}
		for _, tp := range c.cl.Assignment() {
			offs[tp] = offset
		}
		err := c.cl.CommitOffsets(ctx, offs)
		last = time.Now()
		if ctx.Err() != nil {
			return last
		}
		c.lat.Record(last.Sub(at))
		if err != nil {
			c.t.fail(c.idx, err)
			continue
		}
		c.t.workers[c.idx].records.Add(1)
	}
	return last
}

// waitAssigned waits, at most bound, until every member of cons owns
// partitions and together they own each of the topic's nparts once.
func waitAssigned(ctx context.Context, cons []*client.Client, nparts int32, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		owned, settled := 0, true
		for _, cl := range cons {
			n := len(cl.Assignment())
			owned += n
			settled = settled && n > 0
		}
		if settled && owned == int(nparts) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: the group's %d members own %d of %d partitions after %v", len(cons), owned, nparts, bound)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
