package bench

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/protocol"
)

// QueueVerifyConfig is what VerifyQueue adds to a Config: the queue group
// and how its workers misbehave.
type QueueVerifyConfig struct {
	Group string
	// RejectPercent of the records (chosen by a hash of the value, so
	// every delivery of one record gets the same verdict) are rejected.
	RejectPercent int
	// KillInterval: this often a worker stops at once, leaving what it
	// holds unsettled, and a new one takes its place (0: never).
	KillInterval time.Duration
	// HangPercent of the batches a worker holds past their lease before
	// it settles them: every one of those outcomes must be refused (a
	// lease that ended is ended, whether or not another member took the
	// record meanwhile).
	HangPercent int
	// MaxDeliveries is the brokers' delivery limit (group.QueueConfig),
	// which no delivery may pass (default 5).
	MaxDeliveries int
}

// QueueSettle is one outcome a worker was told succeeded.
type QueueSettle struct {
	Value      string `json:"value"`
	Partition  int32  `json:"partition"`
	Offset     int64  `json:"offset"`
	Deliveries int    `json:"deliveries"`
	Rejected   bool   `json:"rejected"`
	Worker     int    `json:"worker"`
	// Maybe: the outcome's answer was indeterminate (R14): it may or may
	// not have been applied.
	Maybe bool `json:"maybe,omitempty"`
}

// QueueDeadLetter is one record read back from the dead-letter topic.
type QueueDeadLetter struct {
	Value   string            `json:"value"`
	Headers map[string]string `json:"headers"`
}

// QueueHistory is what a queue verify run observed.
type QueueHistory struct {
	Topic         string
	MaxDeliveries int
	Sends         []Send
	Settles       []QueueSettle
	// MaxSeen is the highest delivery count any worker saw, per value.
	MaxSeen     map[string]int
	DeadLetters []QueueDeadLetter
	// LateRefused and LateAccepted count the accepts of batches held past
	// their lease: refused as they must be, or applied (a violation).
	LateRefused, LateAccepted int64
	Kills                     int64
}

// QueueResult is CheckQueue's verdict.
type QueueResult struct {
	Sent, Acked, Accepted, DeadLettered int64
	LateRefused, Kills                  int64
	// Indeterminate outcomes (R14): records that may or may not have
	// been settled as asked; they are not held lost.
	Indeterminate int64
	// Violations.
	Lost            int64 // acknowledged, neither accepted nor dead-lettered
	AcceptedTwice   int64 // accepted by two deliveries
	AcceptedAndDead int64 // accepted and dead-lettered
	OverLimit       int64 // delivered more times than the limit
	BadHeaders      int64 // a dead letter whose headers do not match the record
	Unexpected      int64 // settled or dead-lettered, never acknowledged to a producer (and not unknown)
	LateAccepted    int64 // an accept after the lease ended was applied
	Examples        []string
}

// Violations is how many times a check failed.
func (r *QueueResult) Violations() int64 {
	return r.Lost + r.AcceptedTwice + r.AcceptedAndDead + r.OverLimit + r.BadHeaders + r.Unexpected + r.LateAccepted
}

func (r *QueueResult) example(format string, args ...any) {
	if len(r.Examples) < maxExamples {
		r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
	}
}

// queueRejects is the verdict on a value: reject it or accept it.
func queueRejects(value string, percent int) bool {
	if percent <= 0 {
		return false
	}
	h := fnv.New32a()
	h.Write([]byte(value))
	return int(h.Sum32()%100) < percent
}

// CheckQueue judges a QueueHistory (a pure function of h): every record
// acknowledged to its producer ends accepted exactly once or
// dead-lettered, never both, never neither; nothing unknown appears; no
// delivery count passes the limit; every dead letter's headers name its
// record's topic, partition and offset, a count within the limit and a
// reason; an accept after the lease ended is never applied.
func CheckQueue(h QueueHistory) QueueResult {
	r := QueueResult{Sent: int64(len(h.Sends)), LateRefused: h.LateRefused, LateAccepted: h.LateAccepted, Kills: h.Kills}
	if h.LateAccepted > 0 {
		r.example("%d accepts of records held past their lease were applied", h.LateAccepted)
	}
	sends := make(map[string]*Send, len(h.Sends))
	for i := range h.Sends {
		s := &h.Sends[i]
		sends[s.Value] = s
		if s.Outcome == Acked {
			r.Acked++
		}
	}
	known := func(v, what string) *Send {
		s := sends[v]
		if s == nil || s.Outcome == Failed {
			r.Unexpected++
			r.example("unexpected: %s %q was never sent (or failed for sure)", what, v)
			return nil
		}
		return s
	}
	accepted := map[string]int{}
	maybe := map[string]bool{}
	for _, st := range h.Settles {
		if known(st.Value, "settled") == nil {
			continue
		}
		if st.Maybe {
			maybe[st.Value] = true
			r.Indeterminate++
			continue
		}
		if st.Deliveries > h.MaxDeliveries {
			r.OverLimit++
			r.example("over the limit: %q settled at delivery %d (limit %d)", st.Value, st.Deliveries, h.MaxDeliveries)
		}
		if !st.Rejected {
			accepted[st.Value]++
			r.Accepted++
		}
	}
	for v, n := range h.MaxSeen {
		if n > h.MaxDeliveries {
			r.OverLimit++
			r.example("over the limit: %q delivered %d times (limit %d)", v, n, h.MaxDeliveries)
		}
	}
	dead := map[string]bool{}
	for _, d := range h.DeadLetters {
		s := known(d.Value, "dead letter")
		if s == nil {
			continue
		}
		if !dead[d.Value] {
			r.DeadLettered++
		}
		dead[d.Value] = true
		n, err := strconv.Atoi(d.Headers[protocol.DeadLetterDeliveries])
		bad := d.Headers[protocol.DeadLetterTopic] != h.Topic || d.Headers[protocol.DeadLetterReason] == "" ||
			err != nil || n < 1 || n > h.MaxDeliveries
		if s.Outcome == Acked {
			bad = bad || d.Headers[protocol.DeadLetterPartition] != strconv.Itoa(int(s.Partition)) ||
				d.Headers[protocol.DeadLetterOffset] != strconv.FormatInt(s.Offset, 10)
		}
		if bad {
			r.BadHeaders++
			r.example("bad headers: dead letter %q (acknowledged at %d@%d): %v", d.Value, s.Partition, s.Offset, d.Headers)
		}
	}
	for v, n := range accepted {
		if n > 1 {
			r.AcceptedTwice++
			r.example("accepted twice: %q, %d times", v, n)
		}
		if dead[v] {
			r.AcceptedAndDead++
			r.example("accepted and dead-lettered: %q", v)
		}
	}
	for _, s := range h.Sends {
		if s.Outcome == Acked && accepted[s.Value] == 0 && !dead[s.Value] && !maybe[s.Value] {
			r.Lost++
			r.example("lost: %q acknowledged at %d@%d, neither accepted nor dead-lettered", s.Value, s.Partition, s.Offset)
		}
	}
	return r
}

// VerifyQueue runs a verifiable workload through a queue group:
// cfg.Producers producers write records with unique values while
// cfg.Consumers workers, members of qcfg.Group, receive them, reject
// qcfg.RejectPercent (by value) and accept the rest; qcfg.HangPercent of
// their batches are held past the lease before the accept, and every
// qcfg.KillInterval one worker stops holding what it has. Once the
// producers are done the workers go on until the group's windows reach
// the topic's end (at most cfg.ReadTimeout after the last change), then
// the dead-letter topic is read back. CheckQueue judges the history.
func VerifyQueue(ctx context.Context, cfg Config, qcfg QueueVerifyConfig) (QueueHistory, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return QueueHistory{}, err
	}
	if qcfg.Group == "" {
		return QueueHistory{}, errors.New("bench: verify: a queue group is required")
	}
	if qcfg.MaxDeliveries <= 0 {
		qcfg.MaxDeliveries = 5
	}
	if cfg.Records == 0 && cfg.Duration == 0 {
		cfg.Records = DefaultVerifyRecords
	}
	prods, err := openProducers(ctx, &cfg)
	if err != nil {
		return QueueHistory{}, err
	}
	defer closeAll(prods)
	nparts, err := cfg.prepareTopic(ctx, prods[0])
	if err != nil {
		return QueueHistory{}, err
	}
	admin := prods[0]
	h := QueueHistory{Topic: cfg.Topic, MaxDeliveries: qcfg.MaxDeliveries, MaxSeen: map[string]int{}}
	qr := &queueRun{cfg: &cfg, qcfg: &qcfg, h: &h, last: time.Now()}

	wctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	workers := make([]*queueWorker, cfg.Consumers)
	for i := range workers {
		if workers[i], err = qr.start(wctx); err != nil {
			qr.stopAll(workers)
			return h, err
		}
	}
	vr := startVerifyProducers(ctx, &cfg, prods, "verify --queue (acknowledged)")
	// The killer runs until the workers are stopped: while the producers
	// write and while the group drains the topic.
	var errs []error
	var killMu sync.Mutex // workers and errs
	stopKills, killsDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(killsDone)
		if qcfg.KillInterval <= 0 {
			return
		}
		tick := time.NewTicker(qcfg.KillInterval)
		defer tick.Stop()
		for {
			select {
			case <-stopKills:
				return
			case <-tick.C:
			}
			killMu.Lock()
			i := rand.IntN(len(workers))
			workers[i].stop()
			qr.mu.Lock()
			h.Kills++
			qr.mu.Unlock()
			var err error
			if workers[i], err = qr.start(wctx); err != nil {
				errs = append(errs, fmt.Errorf("restart worker %d: %w", i, err))
				workers[i] = nil
			}
			killMu.Unlock()
		}
	}()
	h.Sends = vr.wait()
	ends, err := endOffsets(ctx, admin, cfg.Topic, nparts, cfg.ReadTimeout)
	var drainErr error
	if err != nil {
		drainErr = fmt.Errorf("end offsets after the producers: %w", err)
	} else {
		drainErr = qr.waitDrained(ctx, admin, ends)
	}
	close(stopKills)
	<-killsDone
	errs = append(errs, drainErr)
	stopWorkers()
	qr.stopAll(workers)
	for _, w := range qr.all {
		if w.err != nil && !errors.Is(w.err, context.Canceled) {
			errs = append(errs, fmt.Errorf("worker %d: %w", w.id, w.err))
		}
	}
	dl, err := readDeadLetters(ctx, admin, cfg.Topic+".dlq", cfg.ReadTimeout)
	if err != nil {
		errs = append(errs, err)
	}
	h.DeadLetters = dl
	return h, errors.Join(errs...)
}

// queueRun is the workers' shared state in a VerifyQueue run.
type queueRun struct {
	cfg  *Config
	qcfg *QueueVerifyConfig
	mu   sync.Mutex
	h    *QueueHistory
	all  []*queueWorker
	last time.Time // the last settle
}

type queueWorker struct {
	id     int
	cl     *client.Client
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (qr *queueRun) start(ctx context.Context) (*queueWorker, error) {
	qr.mu.Lock()
	w := &queueWorker{id: len(qr.all), done: make(chan struct{})}
	qr.all = append(qr.all, w)
	qr.mu.Unlock()
	cl, err := qr.cfg.newClient(ctx, fmt.Sprintf("sluice-verify-queue-%d", w.id), qr.cfg.Consumer)
	if err != nil {
		close(w.done)
		return nil, err
	}
	w.cl = cl
	wctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	go func() {
		defer close(w.done)
		w.err = qr.work(wctx, w)
	}()
	return w, nil
}

// stop ends a worker at once: what it holds stays unsettled.
func (w *queueWorker) stop() {
	if w == nil {
		return
	}
	w.cancel()
	<-w.done
	w.cl.Close()
}

func (qr *queueRun) stopAll(ws []*queueWorker) {
	for _, w := range ws {
		w.stop()
	}
}

// work receives and settles until ctx ends. Half the batches (those not
// held past the lease) accept with AcceptAsync, so that the acceptance
// rides on the next receive; their answers are recorded as they come.
func (qr *queueRun) work(ctx context.Context, w *queueWorker) error {
	q := w.cl.QueueGroup(qr.qcfg.Group, qr.cfg.Topic)
	var async sync.WaitGroup // answers of AcceptAsync: always come, within the request timeout
	defer async.Wait()
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ds, err := q.Receive(rctx, 50)
		cancel()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || client.IsRetriable(err) {
				continue
			}
			return err
		}
		qr.mu.Lock()
		for _, d := range ds {
			if v := string(d.Value); d.DeliveryCount > qr.h.MaxSeen[v] {
				qr.h.MaxSeen[v] = d.DeliveryCount
			}
		}
		qr.mu.Unlock()
		hang := qr.qcfg.HangPercent > 0 && rand.IntN(100) < qr.qcfg.HangPercent
		if hang && len(ds) > 0 {
			t := time.NewTimer(time.Until(ds[0].LeaseEnd) + 200*time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
		}
		if !hang && rand.IntN(2) == 0 {
			var accept []*client.Delivery
			for _, d := range ds {
				if !queueRejects(string(d.Value), qr.qcfg.RejectPercent) {
					accept = append(accept, d)
				}
			}
			answer := q.AcceptAsync(accept)
			async.Add(1)
			go func() {
				defer async.Done()
				err := <-answer
				for _, d := range accept {
					// The answer joins the refusals, each naming its offset.
					derr := err
					if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("[%d] offset %d:", d.Partition, d.Offset)) {
						derr = nil
					}
					qr.settled(w, d, derr, false, false)
				}
			}()
			ds = slices.DeleteFunc(ds, func(d *client.Delivery) bool { return slices.Contains(accept, d) })
		}
		for _, d := range ds {
			v := string(d.Value)
			reject := queueRejects(v, qr.qcfg.RejectPercent)
			if reject {
				err = d.Reject("verify rejects " + v)
			} else {
				err = d.Accept()
			}
			if qr.settled(w, d, err, reject, hang) && ctx.Err() != nil {
				return nil
			}
		}
	}
	return nil
}

// settled records the outcome err of settling d (reject or accept; hang:
// after its lease) and reports whether it failed.
func (qr *queueRun) settled(w *queueWorker, d *client.Delivery, err error, reject, hang bool) bool {
	v := string(d.Value)
	qr.mu.Lock()
	defer qr.mu.Unlock()
	switch {
	case err == nil && hang:
		qr.h.LateAccepted++
	case err == nil:
		qr.h.Settles = append(qr.h.Settles, QueueSettle{Value: v, Partition: d.Partition, Offset: d.Offset,
			Deliveries: d.DeliveryCount, Rejected: reject, Worker: w.id})
		qr.last = time.Now()
	case client.IsIndeterminate(err):
		qr.h.Settles = append(qr.h.Settles, QueueSettle{Value: v, Partition: d.Partition, Offset: d.Offset,
			Deliveries: d.DeliveryCount, Rejected: reject, Worker: w.id, Maybe: true})
		qr.last = time.Now()
	case hang && (errors.Is(err, client.ErrLeaseLost) || errors.Is(err, client.ErrNotDelivered)):
		qr.h.LateRefused++
	}
	return err != nil
}

// waitDrained waits until the group's window of every partition starts
// at its end offset: every record settled or dead-lettered. It gives up
// after cfg.ReadTimeout with no settle.
func (qr *queueRun) waitDrained(ctx context.Context, admin *client.Client, ends []int64) error {
	for {
		d, err := admin.DescribeQueueGroup(ctx, qr.qcfg.Group)
		if err == nil {
			done := 0
			for _, p := range d.Partitions {
				if int(p.Partition) < len(ends) && p.Start >= ends[p.Partition] {
					done++
				}
			}
			for p, e := range ends {
				if e == 0 && !hasPartition(d, int32(p)) {
					done++ // nothing to deliver there
				}
			}
			if done >= len(ends) {
				return nil
			}
		}
		qr.mu.Lock()
		idle := time.Since(qr.last)
		qr.mu.Unlock()
		if idle > qr.cfg.ReadTimeout {
			return fmt.Errorf("the queue group did not settle the topic's end offsets %v: nothing settled for %v (%v)", ends, qr.cfg.ReadTimeout, err)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func hasPartition(d client.QueueGroupDescription, p int32) bool {
	for _, s := range d.Partitions {
		if s.Partition == p {
			return true
		}
	}
	return false
}

// readDeadLetters reads the dead-letter topic from its start to its end
// now (nothing when it does not exist).
func readDeadLetters(ctx context.Context, cl *client.Client, topic string, bound time.Duration) ([]QueueDeadLetter, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	ends, err := cl.ListOffsets(ctx, topic, client.AtEnd())
	if errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dead-letter topic %s: %w", topic, err)
	}
	assign := map[client.TopicPartition]client.Offset{}
	left := 0
	next := map[int32]int64{}
	for _, e := range ends {
		if e.Offset > 0 {
			assign[client.TopicPartition{Topic: topic, Partition: e.Partition}] = client.AtStart()
			left++
			next[e.Partition] = e.Offset
		}
	}
	if left == 0 {
		return nil, nil
	}
	cl.Assign(assign)
	defer cl.Assign(nil)
	var out []QueueDeadLetter
	for left > 0 {
		fs, err := cl.Poll(ctx)
		if err != nil {
			return out, fmt.Errorf("read the dead-letter topic %s: %w", topic, err)
		}
		for _, r := range fs.Records {
			end, ok := next[r.Partition]
			if !ok || r.Offset >= end {
				continue
			}
			hs := map[string]string{}
			for _, h := range r.Headers {
				hs[string(h.Key)] = string(h.Value)
			}
			out = append(out, QueueDeadLetter{Value: string(r.Value), Headers: hs})
			if r.Offset+1 >= end {
				delete(next, r.Partition)
				left--
			}
		}
	}
	return out, nil
}
