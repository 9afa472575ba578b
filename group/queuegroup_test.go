package group

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// queueSeedValue is a queue-partition record value: a window with accepted, held and new
// records, for FuzzReplay's seeds.
func queueSeedValue() []byte {
	c, _ := New(Config{})
	k := QueueKey{"t", 0}
	c.QueueSnapshot(t0, "g", []QueueKey{k}, 10)
	c.QueueAcquire(t0, "g", "m", 3, []QueueRead{{k, []int64{0, 1, 2}}})
	_, _, recs, _ := c.QueueAck(t0, "g", "m", []QueueAck{{QueueKey: k, Offsets: []int64{0}, Outcome: Accept}})
	return recs[0].Value
}

// replayAll replays recs into a new Coordinator, as a new coordinator
// loads its offsets partition.
func replayAll(t *testing.T, cfg Config, recs []Record) *Coordinator {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := c.Replay(t0, r.Key, r.Value); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// The records a queue call returns rebuild its state: accepted records
// stay done, held ones come back available with their counts, and one
// held for its last delivery is dead-lettered by the next call.
func TestQueueGroupReplay(t *testing.T) {
	cfg := Config{Queue: QueueConfig{MaxDeliveries: 2}}
	c, _ := New(cfg)
	k := QueueKey{"jobs", 3}
	var log []Record
	snaps, dead, recs := c.QueueSnapshot(t0, "g", []QueueKey{k}, 10)
	if len(snaps) != 1 || snaps[0].End != 0 || len(dead) != 0 || len(recs) != 0 {
		t.Fatalf("snapshot of a new group: %+v %v %v", snaps, dead, recs)
	}
	got, _, recs := c.QueueAcquire(t0, "g", "a", 4, []QueueRead{{k, []int64{10, 11, 12, 13}}})
	log = append(log, recs...)
	if len(got) != 4 || got[0].Offset != 10 || len(recs) != 1 {
		t.Fatalf("acquire: %+v, %d records", got, len(recs))
	}
	errs, dead, recs, err := c.QueueAck(t0, "g", "a", []QueueAck{
		{QueueKey: k, Offsets: []int64{10}, Outcome: Accept},
		{QueueKey: k, Offsets: []int64{11}, Outcome: Reject, Reason: "bad"},
		{QueueKey: k, Offsets: []int64{12}, Outcome: Release},
		{QueueKey: QueueKey{"other", 0}, Offsets: []int64{5}, Outcome: Accept}})
	log = append(log, recs...)
	if err != nil || errs[0][0] != nil || errs[1][0] != nil || errs[2][0] != nil || !errors.Is(errs[3][0], ErrNotDelivered) ||
		len(dead) != 1 || dead[0].Offset != 11 || dead[0].Topic != "jobs" || len(recs) != 1 {
		t.Fatalf("ack: %v %+v %d records, %v", errs, dead, len(recs), err)
	}
	// 11's copy is written: archived.
	log = append(log, c.QueueDeadLettersWritten("g", dead)...)
	// 12 is delivered a second time, the last allowed, and held.
	got, _, recs = c.QueueAcquire(t0, "g", "b", 1, []QueueRead{{QueueKey: k}})
	log = append(log, recs...)
	if len(got) != 1 || got[0].Offset != 12 || got[0].Deliveries != 2 {
		t.Fatalf("redelivery: %+v", got)
	}

	r := replayAll(t, cfg, log)
	d, dead, recs, err := r.DescribeQueue(t0, "g")
	if err != nil || len(d) != 1 {
		t.Fatalf("describe after replay: %+v %v", d, err)
	}
	// 12 was held for its last delivery: archiving and dead-lettered now,
	// with a record saying so; 13 is available again with its count.
	if len(dead) != 1 || dead[0].Offset != 12 || len(recs) != 1 {
		t.Fatalf("dead letters after replay: %+v, %d records", dead, len(recs))
	}
	if p := d[0]; p.Start != 12 || p.End != 14 || p.Available != 1 || p.Acquired != 0 || p.Archiving != 1 || p.DeadLettered != 2 {
		t.Fatalf("after replay: %+v", p)
	}
	if recs := r.QueueDeadLettersWritten("g", dead); len(recs) != 1 {
		t.Fatalf("archive 12: %d records", len(recs))
	}
	if d, _, _, _ := r.DescribeQueue(t0, "g"); d[0].Start != 13 || d[0].Archiving != 0 || d[0].DeadLettered != 2 {
		t.Fatalf("after 12's copy: %+v", d[0])
	}
	got, _, _ = r.QueueAcquire(t0, "g", "c", 5, []QueueRead{{QueueKey: k}})
	if len(got) != 1 || got[0].Offset != 13 || got[0].Deliveries != 2 {
		t.Fatalf("after replay, acquire: %+v", got)
	}
	// The late acknowledgement of a lease from before the failover.
	errs, _, _, _ = r.QueueAck(t0, "g", "a", []QueueAck{{QueueKey: k, Offsets: []int64{13}, Outcome: Accept}})
	if !errors.Is(errs[0][0], ErrLeaseLost) {
		t.Fatalf("ack of an old lease: %v", errs[0][0])
	}
	// Unknown groups.
	if _, _, _, err := r.QueueAck(t0, "nope", "a", nil); !errors.Is(err, ErrQueueGroupNotFound) {
		t.Fatalf("ack in an unknown group: %v", err)
	}
	if _, _, _, err := r.DescribeQueue(t0, "nope"); !errors.Is(err, ErrQueueGroupNotFound) {
		t.Fatalf("describe an unknown group: %v", err)
	}
	// Reset drops the state and is persisted.
	recs = r.ResetQueue("g", map[QueueKey]int64{k: 5})
	if d, _, _, _ := replayAll(t, cfg, append(log, recs...)).DescribeQueue(t0, "g"); len(d) != 1 || d[0].Start != 5 || d[0].End != 5 {
		t.Fatalf("after reset and replay: %+v", d)
	}
	if got := r.ListQueueGroups(); len(got) != 1 || got[0] != "g" {
		t.Fatalf("list: %v", got)
	}
}

// The three steps of a dead letter, with a failure after each: a record
// whose window says archiving (committed before its copy is written) is
// never delivered or accepted again, whatever happens to its copy or to
// the window that archives it; the coordinator that restores it returns
// its dead letter again, and a copy not written comes back at the retry
// time.
func TestQueueGroupArchivingNeverComesBack(t *testing.T) {
	cfg := Config{Queue: QueueConfig{MaxDeliveries: 5}}
	c, _ := New(cfg)
	k := QueueKey{"jobs", 0}
	var log []Record
	_, _, recs := c.QueueAcquire(t0, "g", "a", 3, []QueueRead{{k, []int64{0, 1, 2}}})
	log = append(log, recs...)
	_, dead, intent, err := c.QueueAck(t0, "g", "a", []QueueAck{{QueueKey: k, Offsets: []int64{0}, Outcome: Reject, Reason: "bad"}})
	if err != nil || len(dead) != 1 || dead[0].Offset != 0 || len(intent) != 1 {
		t.Fatalf("reject: %+v, %d records, %v", dead, len(intent), err)
	}
	log = append(log, intent...) // (1) committed; (2) the copy is written
	archive := c.QueueDeadLettersWritten("g", dead)
	if len(archive) != 1 {
		t.Fatalf("archive: %d records", len(archive))
	}
	// (3) The window archiving it is not committed: the coordinator
	// reloads from the intent. Offset 0 is not delivered, its outcomes
	// are refused, and the next call returns its dead letter again.
	r := replayAll(t, cfg, log)
	got, again, recs := r.QueueAcquire(t0, "g", "b", 10, []QueueRead{{QueueKey: k}})
	if len(got) != 2 || got[0].Offset != 1 || got[1].Offset != 2 {
		t.Fatalf("acquired after reload: %+v, want 1 and 2", got)
	}
	if len(again) != 1 || again[0] != dead[0] || len(recs) != 1 {
		t.Fatalf("dead letters after reload: %+v (want %+v), %d records", again, dead, len(recs))
	}
	for _, o := range []Outcome{Accept, Release} {
		if errs, _, _, _ := r.QueueAck(t0, "g", "a", []QueueAck{{QueueKey: k, Offsets: []int64{0}, Outcome: o}}); !errors.Is(errs[0][0], ErrLeaseLost) {
			t.Fatalf("outcome %d of the archiving record: %v", o, errs[0][0])
		}
	}
	// The copy fails this time: returned again at the retry time, not
	// before; the record stays archiving.
	r.QueueDeadLettersNotWritten("g", again, t0.Add(time.Second))
	if _, d, _ := r.QueueSnapshot(t0.Add(time.Second-1), "g", []QueueKey{k}, 10); len(d) != 0 {
		t.Fatalf("dead letters before the retry time: %+v", d)
	}
	got, again, _ = r.QueueAcquire(t0.Add(time.Hour), "g", "c", 10, []QueueRead{{QueueKey: k}})
	if len(got) != 2 || got[0].Offset != 1 {
		t.Fatalf("acquired after a failed copy: %+v, want 1 and 2 again", got)
	}
	if len(again) != 1 || again[0].Offset != 0 {
		t.Fatalf("dead letters at the retry time: %+v", again)
	}
	log = append(log, r.QueueDeadLettersWritten("g", again)...)
	if d, _, _, _ := replayAll(t, cfg, log).DescribeQueue(t0, "g"); d[0].Start != 1 || d[0].Archiving != 0 || d[0].DeadLettered != 1 {
		t.Fatalf("after the copy: %+v", d[0])
	}
}

// A lease that runs out is ended by the next call that looks at the
// partition, with no timer.
func TestQueueGroupLeaseEndsOnLook(t *testing.T) {
	c, _ := New(Config{Queue: QueueConfig{Lease: time.Second}})
	k := QueueKey{"t", 0}
	c.QueueAcquire(t0, "g", "a", 1, []QueueRead{{k, []int64{0}}})
	snaps, _, _ := c.QueueSnapshot(t0.Add(999*time.Millisecond), "g", []QueueKey{k}, 5)
	if len(snaps[0].Available) != 0 {
		t.Fatalf("available before the lease ended: %+v", snaps)
	}
	snaps, _, _ = c.QueueSnapshot(t0.Add(time.Second), "g", []QueueKey{k}, 5)
	if len(snaps[0].Available) != 1 || snaps[0].Available[0] != 0 {
		t.Fatalf("not available once the lease ended: %+v", snaps)
	}
	errs, _, _, _ := c.QueueAck(t0.Add(time.Second), "g", "a", []QueueAck{{QueueKey: k, Offsets: []int64{0}, Outcome: Accept}})
	if !errors.Is(errs[0][0], ErrLeaseLost) {
		t.Fatalf("ack after the lease: %v", errs[0][0])
	}
}

// A corrupt queue-partition value is ErrCorrupt, never a panic.
func TestQueueGroupReplayCorrupt(t *testing.T) {
	c, _ := New(Config{})
	v := queueSeedValue()
	for _, bad := range [][]byte{{}, v[:5], append(v[:10:10], 0xff), append([]byte{0, 1}, v[2:]...)} {
		if err := c.Replay(t0, queueKey("g", "t", 0), bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("value %x: %v, want ErrCorrupt", bad, err)
		}
	}
}

// Each queue group has its own settings: a group with a 1 s lease and 2
// deliveries sees its records back after 1 s and dead-lettered at the
// second expiry, while a group with the coordinator's settings keeps
// them 30 s; a changed config applies to new acquisitions, restored
// windows count against their group's limit, and a lowered limit
// archives the available records that reached it.
func TestQueueGroupOwnConfig(t *testing.T) {
	c, _ := New(Config{})
	c.SetQueueConfigs(map[string]QueueConfig{"fast": {Lease: time.Second, MaxDeliveries: 2}})
	k := QueueKey{"jobs", 0}
	var log []Record
	for _, g := range []string{"fast", "slow"} {
		c.QueueSnapshot(t0, g, []QueueKey{k}, 10)
		got, _, recs := c.QueueAcquire(t0, g, "m", 2, []QueueRead{{k, []int64{0, 1}}})
		log = append(log, recs...)
		if len(got) != 2 {
			t.Fatalf("%s: acquired %+v", g, got)
		}
	}
	if c.QueueConfig("fast").Lease != time.Second || c.QueueConfig("slow").Lease != 30*time.Second {
		t.Fatalf("leases %v and %v", c.QueueConfig("fast").Lease, c.QueueConfig("slow").Lease)
	}
	at := t0.Add(time.Second)
	snaps, dead, _ := c.QueueSnapshot(at, "fast", []QueueKey{k}, 10)
	if len(dead) != 0 || len(snaps[0].Available) != 2 {
		t.Fatalf("fast after 1 s: %+v, dead %v", snaps, dead)
	}
	if snaps, _, _ := c.QueueSnapshot(at, "slow", []QueueKey{k}, 10); len(snaps[0].Available) != 0 {
		t.Fatalf("slow after 1 s: %+v", snaps)
	}
	got, _, recs := c.QueueAcquire(at, "fast", "m", 2, []QueueRead{{k, nil}})
	log = append(log, recs...)
	if len(got) != 2 || got[0].Deliveries != 2 {
		t.Fatalf("second delivery: %+v", got)
	}
	if _, dead, _ := c.QueueSnapshot(at.Add(time.Second), "fast", []QueueKey{k}, 10); len(dead) != 2 || dead[0].Deliveries != 2 {
		t.Fatalf("after the second expiry: dead %+v", dead)
	}

	// A longer lease applies to the next acquisition.
	c.SetQueueConfigs(map[string]QueueConfig{"fast": {Lease: 5 * time.Second, MaxDeliveries: 2}})
	got, _, _ = c.QueueAcquire(at, "fast", "m", 1, []QueueRead{{k, []int64{2}}})
	if len(got) != 1 {
		t.Fatalf("acquire with the new lease: %+v", got)
	}
	if snaps, _, _ := c.QueueSnapshot(at.Add(4*time.Second), "fast", []QueueKey{k}, 10); len(snaps[0].Available) != 0 {
		t.Fatalf("the 5 s lease ended after 4 s: %+v", snaps)
	}

	// "slow" had its records delivered once; restored under a limit of 1,
	// they are dead letters; with the default limit they are available.
	for _, tc := range []struct {
		cfgs map[string]QueueConfig
		dead int
	}{{nil, 0}, {map[string]QueueConfig{"slow": {MaxDeliveries: 1}}, 2}} {
		r, _ := New(Config{})
		r.SetQueueConfigs(tc.cfgs)
		for _, rec := range log {
			if err := r.Replay(t0, rec.Key, rec.Value); err != nil {
				t.Fatal(err)
			}
		}
		if _, dead, _ := r.QueueSnapshot(t0, "slow", []QueueKey{k}, 10); len(dead) != tc.dead {
			t.Fatalf("restored with %v: dead %+v, want %d", tc.cfgs, dead, tc.dead)
		}
	}

	// Lowering the limit of a held group archives what reached it.
	c.SetQueueConfigs(map[string]QueueConfig{"slow": {MaxDeliveries: 1}})
	snaps, dead, recs = c.QueueSnapshot(t0.Add(31*time.Second), "slow", []QueueKey{k}, 10)
	if len(dead) != 2 || len(recs) != 1 || snaps[0].End != 2 || len(snaps[0].Available) != 0 {
		t.Fatalf("limit lowered to 1: dead %+v, %d records, %+v", dead, len(recs), snaps)
	}
}

// A deleted topic takes the queue groups' windows of it along (with a
// tombstone each, so a replay forgets them too); a group left with no
// window is gone.
func TestQueueGroupTopicDeleted(t *testing.T) {
	c, _ := New(Config{})
	a, b := QueueKey{"a", 0}, QueueKey{"b", 0}
	var log []Record
	c.QueueSnapshot(t0, "g", []QueueKey{a, b}, 10)
	_, _, recs := c.QueueAcquire(t0, "g", "m", 4, []QueueRead{{a, []int64{0, 1}}, {b, []int64{0, 1}}})
	log = append(log, recs...)
	c.QueueSnapshot(t0, "h", []QueueKey{a}, 10)
	_, _, recs = c.QueueAcquire(t0, "h", "m", 1, []QueueRead{{a, []int64{0}}})
	log = append(log, recs...)

	recs = c.DeleteTopics([]string{"a"})
	log = append(log, recs...)
	if len(recs) != 2 || recs[0].Value != nil || recs[1].Value != nil {
		t.Fatalf("tombstones: %+v", recs)
	}
	if got := c.ListQueueGroups(); len(got) != 1 || got[0] != "g" {
		t.Fatalf("groups after the delete: %v", got)
	}
	d, _, _, err := c.DescribeQueue(t0, "g")
	if err != nil || len(d) != 1 || d[0].Topic != "b" {
		t.Fatalf("describe after the delete: %+v %v", d, err)
	}
	// A topic of that name again starts at its log start.
	if snaps, _, _ := c.QueueSnapshot(t0, "g", []QueueKey{a}, 10); snaps[0].End != 0 || len(snaps[0].Available) != 0 {
		t.Fatalf("recreated topic: %+v", snaps)
	}
	r := replayAll(t, Config{}, log)
	if got := r.ListQueueGroups(); len(got) != 1 || got[0] != "g" {
		t.Fatalf("replayed groups: %v", got)
	}
	if _, _, _, err := r.DescribeQueue(t0, "h"); !errors.Is(err, ErrQueueGroupNotFound) {
		t.Fatalf("replayed h: %v", err)
	}
}

// A coordinator holds at most MaxQueueGroups queue groups: the next new
// one is refused (definite), those held go on, and one gone (its topic
// deleted) makes room.
func TestQueueGroupLimit(t *testing.T) {
	c, _ := New(Config{MaxQueueGroups: 2})
	k := QueueKey{"t", 0}
	for _, id := range []string{"a", "b"} {
		if err := c.AdmitQueueGroup(id); err != nil {
			t.Fatal(err)
		}
		c.QueueSnapshot(t0, id, []QueueKey{k}, 1)
	}
	if err := c.AdmitQueueGroup("c"); !errors.Is(err, ErrGroupMaxSizeReached) || !strings.Contains(err.Error(), "2 queue groups") {
		t.Fatalf("a third group: %v", err)
	}
	if err := c.AdmitQueueGroup("a"); err != nil {
		t.Fatalf("a group held: %v", err)
	}
	c.DeleteTopics([]string{"t"})
	if err := c.AdmitQueueGroup("c"); err != nil {
		t.Fatalf("after the groups went: %v", err)
	}
	if _, err := New(Config{MaxQueueGroups: -1}); err == nil {
		t.Fatal("a negative MaxQueueGroups is accepted")
	}
}
