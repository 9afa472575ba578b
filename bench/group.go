package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/client"
)

// GroupConfig is what VerifyGroup adds to a Config: the group and how its
// consumers are disturbed.
type GroupConfig struct {
	// Group is the consumer group's id. It should be new: its committed
	// offsets must start below the topic's records.
	Group string
	// KillInterval, if positive, is the time between kills while the
	// producers run: a random consumer is closed without committing (what
	// it read since its last commit is read again by the partition's next
	// owner) and a new consumer takes its place.
	KillInterval time.Duration
	// CommitInterval is how often each consumer commits what it read
	// (default 200ms).
	CommitInterval time.Duration
}

// GroupRead is one record as a group consumer read it. Seq and Returned
// place it among every read and hand-over of the run (one counter): Seq
// is taken when the Poll that returned the record began, Returned when it
// returned; the Poll took the record from the client's buffer somewhere
// between. A hand-over of the record's partition by its reader comes
// after Seq (the records of a revoked partition are dropped before the
// hand-over); one that let this reader have the partition comes before
// Returned.
type GroupRead struct {
	Consumer  int    `json:"consumer"` // incarnation: a restarted consumer is a new one
	Seq       int64  `json:"seq"`
	Returned  int64  `json:"returned"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Value     string `json:"value"`
}

// HandOver is a consumer giving up a partition: revoked, lost, or closed;
// or, in GroupHistory.Assigns, taking one.
type HandOver struct {
	Consumer  int   `json:"consumer"`
	Seq       int64 `json:"seq"`
	Partition int32 `json:"partition"`
}

// GroupHistory is what a group verify run observed.
type GroupHistory struct {
	Sends     []Send      `json:"sends"`
	Reads     []GroupRead `json:"reads"`
	HandOvers []HandOver  `json:"hand_overs"`
	// Assigns are consumers taking partitions: stamped in OnAssigned,
	// which returns before the partitions' records are fetched.
	Assigns []HandOver `json:"assigns"`
	// Commits are the group's committed offsets sampled during the run,
	// per partition (-1: none yet), in sample order.
	Commits [][]int64 `json:"commits"`
	// Ends are the end offsets once the producers were done; Final the
	// committed offsets once the consumers were closed.
	Ends  []int64 `json:"ends"`
	Final []int64 `json:"final"`
	Kills int     `json:"kills"`
}

// GroupResult is CheckGroup's verdict.
type GroupResult struct {
	Sent  int64 `json:"sent"`
	Acked int64 `json:"acked"`
	Reads int64 `json:"reads"`
	Kills int   `json:"kills"`
	// Lost: acknowledged, never read by any consumer of the group.
	Lost int64 `json:"lost"`
	// Unexpected: read, never sent.
	Unexpected int64 `json:"unexpected"`
	// Duplicates: reads of a record already read, after the first reader
	// handed its partition over: by the partition's next owner, or by the
	// first reader itself once the partition came back to it. Expected
	// (at least once), counted.
	Duplicates int64 `json:"duplicates"`
	// UnexplainedDuplicates: reads of a record already read with no
	// hand-over of its partition between (the same consumer twice while
	// it kept the partition, or two consumers owning one partition at
	// once).
	UnexplainedDuplicates int64 `json:"unexplained_duplicates"`
	// Unowned: reads by a consumer that did not own the record's
	// partition while the read's Poll ran (no assignment of it to the
	// reader before the Poll returned that the reader had not handed over
	// before the Poll began): records of a partition returned before
	// OnAssigned or after its hand-over.
	Unowned int64 `json:"unowned"`
	// Backwards: a partition's sampled committed offset lower than an
	// earlier sample.
	Backwards int64 `json:"backwards"`
	// NotCommitted: partitions whose final committed offset is not the
	// end offset.
	NotCommitted int64    `json:"not_committed"`
	Examples     []string `json:"examples,omitempty"`
}

// Anomalies is how many times a check failed.
func (r *GroupResult) Anomalies() int64 {
	return r.Lost + r.Unexpected + r.UnexplainedDuplicates + r.Unowned + r.Backwards + r.NotCommitted
}

func (r *GroupResult) example(format string, args ...any) {
	if len(r.Examples) < maxExamples {
		r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
	}
}

// CheckGroup judges a GroupHistory. It is a pure function of h.
func CheckGroup(h GroupHistory) GroupResult {
	r := GroupResult{Sent: int64(len(h.Sends)), Reads: int64(len(h.Reads)), Kills: h.Kills}
	ids := newValueIDs(h.Sends)
	reads := slices.Clone(h.Reads)
	slices.SortStableFunc(reads, func(a, b GroupRead) int { return int(a.Returned - b.Returned) })
	handOvers := bySeq(h.HandOvers) // (consumer, partition) → seqs, ascending
	assigns := bySeq(h.Assigns)
	// owned: consumer c owned partition p at some point between seqs from
	// and to: an assignment before to whose next hand-over (if any) comes
	// after from.
	owned := func(c int, p int32, from, to int64) bool {
		k := [2]int64{int64(c), int64(p)}
		hos := handOvers[k]
		for _, a := range assigns[k] {
			if a > to {
				break
			}
			i, _ := slices.BinarySearch(hos, a)
			if i == len(hos) || hos[i] > from {
				return true
			}
		}
		return false
	}
	// handedOver: consumer c gave partition p up after seq from and
	// before seq to.
	handedOver := func(c int, p int32, from, to int64) bool {
		for _, s := range handOvers[[2]int64{int64(c), int64(p)}] {
			if s >= from && s <= to {
				return true
			}
		}
		return false
	}
	// explained: the record's partition was handed over between reads a
	// and b (a returned first): a's reader gave it up after a's Poll
	// began and before b's returned. b's reader is the next owner, or
	// a's reader again once the partition came back to it (it starts
	// again at the last commit). A Poll takes its records somewhere in
	// [Seq, Returned], so when b's Poll began before a's returned either
	// read may have been first: then a hand-over by b's reader after b's
	// Poll began and before a's returned explains it as well. With no
	// hand-over in the window, the reads overlapped an ownership: two
	// owners at once, or one owner reading a record twice.
	explained := func(a, b *GroupRead) bool {
		return handedOver(a.Consumer, a.Partition, a.Seq, b.Returned) ||
			b.Seq < a.Returned && handedOver(b.Consumer, b.Partition, b.Seq, a.Returned)
	}
	last := make([]*GroupRead, len(h.Sends))
	unexpected := map[string]bool{}
	for i := range reads {
		rd := &reads[i]
		id := ids.id(rd.Value)
		if int(id) >= len(h.Sends) {
			if !unexpected[rd.Value] {
				unexpected[rd.Value] = true
				r.Unexpected++
				r.example("unexpected: %q at %d@%d was never sent", rd.Value, rd.Partition, rd.Offset)
			}
			continue
		}
		if !owned(rd.Consumer, rd.Partition, rd.Seq, rd.Returned) {
			r.Unowned++
			r.example("unowned: %q at %d@%d read by consumer %d (Poll seq %d-%d), which did not own the partition then (assigned at %v, handed over at %v)",
				rd.Value, rd.Partition, rd.Offset, rd.Consumer, rd.Seq, rd.Returned,
				assigns[[2]int64{int64(rd.Consumer), int64(rd.Partition)}], handOvers[[2]int64{int64(rd.Consumer), int64(rd.Partition)}])
		}
		if prev := last[id]; prev != nil {
			if explained(prev, rd) {
				r.Duplicates++
			} else {
				r.UnexplainedDuplicates++
				r.example("unexplained duplicate: %q at %d@%d read by consumer %d (Poll seq %d-%d) and again by consumer %d (Poll seq %d-%d) with no hand-over of the partition between (hand-overs of it by %d at %v, by %d at %v)",
					rd.Value, rd.Partition, rd.Offset, prev.Consumer, prev.Seq, prev.Returned, rd.Consumer, rd.Seq, rd.Returned,
					prev.Consumer, handOvers[[2]int64{int64(prev.Consumer), int64(prev.Partition)}],
					rd.Consumer, handOvers[[2]int64{int64(rd.Consumer), int64(rd.Partition)}])
			}
		}
		last[id] = rd
	}
	for id, s := range h.Sends {
		if s.Outcome != Acked {
			continue
		}
		r.Acked++
		if last[id] == nil {
			r.Lost++
			r.example("lost: %q acknowledged at %d@%d, never read by the group", s.Value, s.Partition, s.Offset)
		}
	}
	for p := range h.Ends {
		prev := int64(-1)
		for i, sample := range h.Commits {
			if p >= len(sample) {
				continue
			}
			if sample[p] < prev {
				r.Backwards++
				r.example("backwards: partition %d's committed offset went from %d to %d (sample %d)", p, prev, sample[p], i)
			}
			prev = max(prev, sample[p])
		}
		if p >= len(h.Final) || h.Final[p] != h.Ends[p] {
			r.NotCommitted++
			final := int64(-1)
			if p < len(h.Final) {
				final = h.Final[p]
			}
			r.example("not committed: partition %d's committed offset is %d after the run, its end %d", p, final, h.Ends[p])
		}
	}
	return r
}

// bySeq is the seqs of events by (consumer, partition), ascending.
func bySeq(events []HandOver) map[[2]int64][]int64 {
	out := map[[2]int64][]int64{}
	for _, e := range events {
		k := [2]int64{int64(e.Consumer), int64(e.Partition)}
		out[k] = append(out[k], e.Seq)
	}
	for _, seqs := range out {
		slices.Sort(seqs)
	}
	return out
}

// VerifyGroup runs a verifiable workload through a consumer group:
// cfg.Producers producers write records with unique values while
// cfg.Consumers consumers, members of gcfg.Group, read them, committing
// what they read every gcfg.CommitInterval; every gcfg.KillInterval one
// consumer is closed without committing and replaced. An observer samples
// the group's committed offsets. Once the producers are done the
// consumers read on until the group has committed every partition's end
// offset (at most cfg.ReadTimeout), then commit and close. CheckGroup
// judges the history. The error is about running the workload.
func VerifyGroup(ctx context.Context, cfg Config, gcfg GroupConfig) (GroupHistory, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return GroupHistory{}, err
	}
	if gcfg.Group == "" {
		return GroupHistory{}, errors.New("bench: verify: a group is required")
	}
	if gcfg.CommitInterval <= 0 {
		gcfg.CommitInterval = 200 * time.Millisecond
	}
	if cfg.Records == 0 && cfg.Duration == 0 {
		cfg.Records = DefaultVerifyRecords
	}
	prods, err := openProducers(ctx, &cfg)
	if err != nil {
		return GroupHistory{}, err
	}
	defer closeAll(prods)
	nparts, err := cfg.prepareTopic(ctx, prods[0])
	if err != nil {
		return GroupHistory{}, err
	}
	admin := prods[0]

	gr := &groupRun{cfg: &cfg, gcfg: &gcfg, nparts: nparts}
	var h GroupHistory
	stopObs := make(chan struct{})
	obsDone := make(chan struct{})
	go func() {
		defer close(obsDone)
		h.Commits = gr.observe(ctx, admin, stopObs)
	}()
	stopObserver := func() {
		if stopObs != nil {
			close(stopObs)
			<-obsDone
			stopObs = nil
		}
	}
	defer stopObserver()

	cctx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()
	slots := make([]*groupConsumer, cfg.Consumers)
	for i := range slots {
		if slots[i], err = gr.start(cctx); err != nil {
			gr.stopAll(slots, false)
			return GroupHistory{}, err
		}
	}

	vr := startVerifyProducers(ctx, &cfg, prods, "verify --group (acknowledged)")
	produced := vr.done
	var errs []error
	if gcfg.KillInterval > 0 {
		tick := time.NewTicker(gcfg.KillInterval)
	kills:
		for {
			select {
			case <-produced:
				break kills
			case <-tick.C:
				i := rand.IntN(len(slots))
				slots[i].stop(false)
				h.Kills++
				if slots[i], err = gr.start(cctx); err != nil {
					errs = append(errs, fmt.Errorf("restart consumer %d: %w", i, err))
					slots[i] = nil
				}
			}
		}
		tick.Stop()
	}
	h.Sends = vr.wait()

	h.Ends, err = endOffsets(ctx, admin, cfg.Topic, nparts, cfg.ReadTimeout)
	if err != nil {
		stopConsumers()
		gr.stopAll(slots, false)
		return h, errors.Join(append(errs, fmt.Errorf("end offsets after the producers: %w", err))...)
	}
	// Read on until the group has committed every end offset.
	deadline := time.Now().Add(cfg.ReadTimeout)
	var committed []int64
	for {
		committed, err = gr.committed(ctx, admin)
		if err == nil && slices.Equal(committed, h.Ends) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("the group did not commit the end offsets %v within %v: committed %v (%v)",
				h.Ends, cfg.ReadTimeout, committed, err))
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	stopConsumers()
	gr.stopAll(slots, true)
	stopObserver()
	h.Final, err = gr.committed(ctx, admin)
	if err != nil {
		errs = append(errs, fmt.Errorf("final committed offsets: %w", err))
	}
	h.Reads, h.HandOvers, h.Assigns = gr.history()
	for _, c := range gr.all {
		if c.err != nil {
			errs = append(errs, fmt.Errorf("consumer %d: %w", c.id, c.err))
		}
	}
	return h, errors.Join(errs...)
}

// groupRun is the consumers' shared state in a VerifyGroup run.
type groupRun struct {
	cfg    *Config
	gcfg   *GroupConfig
	nparts int32
	seq    atomic.Int64

	mu        sync.Mutex
	reads     []GroupRead
	handOvers []HandOver
	assigns   []HandOver
	all       []*groupConsumer
}

// groupConsumer is one incarnation of a group consumer.
type groupConsumer struct {
	id     int
	cl     *client.Client
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (gr *groupRun) history() (reads []GroupRead, handOvers, assigns []HandOver) {
	gr.mu.Lock()
	defer gr.mu.Unlock()
	return gr.reads, gr.handOvers, gr.assigns
}

// start starts a new consumer incarnation.
func (gr *groupRun) start(ctx context.Context) (*groupConsumer, error) {
	gr.mu.Lock()
	c := &groupConsumer{id: len(gr.all), done: make(chan struct{})}
	gr.all = append(gr.all, c)
	gr.mu.Unlock()
	// stamp records the consumer taking or giving up partitions in to.
	stamp := func(to *[]HandOver) func([]client.TopicPartition) {
		return func(tps []client.TopicPartition) {
			seq := gr.seq.Add(1)
			gr.mu.Lock()
			for _, tp := range tps {
				*to = append(*to, HandOver{Consumer: c.id, Seq: seq, Partition: tp.Partition})
			}
			gr.mu.Unlock()
		}
	}
	handOver := stamp(&gr.handOvers)
	opts := append(append([]client.Opt(nil), gr.cfg.Consumer...),
		client.ConsumerGroup(gr.gcfg.Group, client.GroupTopics(gr.cfg.Topic), client.GroupResetOffset(client.AtStart()),
			client.AutoCommit(false, 0), client.OnAssigned(stamp(&gr.assigns)), client.OnRevoked(handOver), client.OnLost(handOver)))
	cl, err := gr.cfg.newClient(ctx, fmt.Sprintf("sluice-verify-group-%d", c.id), opts)
	if err != nil {
		close(c.done)
		return nil, err
	}
	c.cl = cl
	cctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	go func() {
		defer close(c.done)
		c.err = gr.consume(cctx, c)
	}()
	return c, nil
}

// consume polls, records every read and commits every CommitInterval.
func (gr *groupRun) consume(ctx context.Context, c *groupConsumer) error {
	lastCommit := time.Now()
	for {
		seq := gr.seq.Add(1)
		// Poll returns at least every CommitInterval, so what was read
		// last is committed too once the records stop coming.
		pctx, cancel := context.WithTimeout(ctx, gr.gcfg.CommitInterval)
		fs, err := c.cl.Poll(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if len(fs.Records) > 0 {
			returned := gr.seq.Add(1)
			gr.mu.Lock()
			for _, r := range fs.Records {
				gr.reads = append(gr.reads, GroupRead{Consumer: c.id, Seq: seq, Returned: returned,
					Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
			}
			gr.mu.Unlock()
		}
		// A partition error pauses the partition; the group's next
		// owner, or a restart, reads it again. Not expected here.
		if len(fs.Errors) > 0 {
			return fs.Errors[0]
		}
		if time.Since(lastCommit) >= gr.gcfg.CommitInterval {
			// A failed commit (the member joining again, a coordinator
			// moving) is retried at the next interval.
			_ = c.cl.Commit(ctx)
			lastCommit = time.Now()
		}
	}
}

// stop ends a consumer: with commit, what it read is committed first;
// without, it is closed as is (AutoCommit is off: Close commits nothing).
func (c *groupConsumer) stop(commit bool) {
	if c == nil {
		return
	}
	c.cancel()
	<-c.done
	if commit {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = c.cl.Commit(cctx)
		cancel()
	}
	c.cl.Close()
}

func (gr *groupRun) stopAll(slots []*groupConsumer, commit bool) {
	for _, c := range slots {
		c.stop(commit)
	}
}

// committed is the group's committed offset of every partition, -1 for
// none.
func (gr *groupRun) committed(ctx context.Context, admin *client.Client) ([]int64, error) {
	offs, err := admin.CommittedOffsets(ctx, gr.gcfg.Group)
	if err != nil {
		return nil, err
	}
	out := make([]int64, gr.nparts)
	for p := range out {
		out[p] = -1
		if o, ok := offs[client.TopicPartition{Topic: gr.cfg.Topic, Partition: int32(p)}]; ok {
			out[p] = o
		}
	}
	return out, nil
}

// observe samples the committed offsets every 20ms until stop.
func (gr *groupRun) observe(ctx context.Context, admin *client.Client, stop <-chan struct{}) [][]int64 {
	var samples [][]int64
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return samples
		case <-ctx.Done():
			return samples
		case <-tick.C:
		}
		if s, err := gr.committed(ctx, admin); err == nil {
			samples = append(samples, s)
		}
	}
}

// groupStarts moves starts up to group's committed offsets of topic.
func groupStarts(ctx context.Context, cl *client.Client, group, topic string, starts []int64) error {
	offs, err := cl.CommittedOffsets(ctx, group)
	if err != nil {
		return fmt.Errorf("bench: committed offsets of group %s: %w", group, err)
	}
	for p := range starts {
		if o, ok := offs[client.TopicPartition{Topic: topic, Partition: int32(p)}]; ok && o > starts[p] {
			starts[p] = o
		}
	}
	return nil
}

// runGroupConsumers runs one consumer loop per group member until ctx
// ends, stop reports true, or the members together have read as many
// records as lie between from and ends (a member does not know which
// partitions the group will give it, so no member has ends of its own).
func runGroupConsumers(ctx context.Context, cls []*client.Client, from, ends []int64, t *tally, stop func() bool) (time.Time, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var total int64
	for p := range ends {
		total += max(0, ends[p]-from[p])
	}
	if total == 0 {
		return time.Time{}, nil
	}
	var last atomic.Int64
	errs := make([]error, len(cls))
	var wg sync.WaitGroup
	for i, cl := range cls {
		w := &consumer{cl: cl, idx: i, t: t}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.loop(ctx, func() bool {
				last.Store(time.Now().UnixNano())
				if n, _, _ := t.sum(); stop() || n >= total {
					cancel()
					return true
				}
				return false
			})
		}()
	}
	wg.Wait()
	var at time.Time
	if ns := last.Load(); ns != 0 {
		at = time.Unix(0, ns)
	}
	return at, errors.Join(errs...)
}
