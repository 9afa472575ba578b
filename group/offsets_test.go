package group

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/record"
)

func commit(h *harness, g, member string, epoch int32, topic string, part int32, off int64) ([]CommitTopic, error) {
	res, recs, err := h.c.CommitOffsets(h.now, OffsetCommit{GroupID: g, MemberID: member, MemberEpoch: epoch,
		Topics: []CommitTopic{{Topic: topic, Partitions: []CommitPartition{{Partition: part, Offset: off, LeaderEpoch: -1}}}}})
	h.log = append(h.log, recs...)
	return res, err
}

func fetchOne(t *testing.T, h *harness, g, topic string, part int32) int64 {
	t.Helper()
	got, err := h.c.FetchOffsets(OffsetFetch{GroupID: g, Topics: []TopicPartitions{{topic, []int32{part}}}})
	if err != nil || len(got) != 1 {
		t.Fatalf("fetch: %v %v", got, err)
	}
	return got[0].Offset
}

func TestCommitFencedByMemberEpoch(t *testing.T) {
	h := newHarness(t, map[string]int32{"t": 2})
	a := &client{names: []string{"t"}}
	h.settle("g", a)
	if _, err := commit(h, "g", a.id, a.epoch, "t", 0, 42); err != nil {
		t.Fatal(err)
	}
	if got := fetchOne(t, h, "g", "t", 0); got != 42 {
		t.Fatalf("fetched %d", got)
	}
	for _, tc := range []struct {
		name   string
		member string
		epoch  int32
		want   error
	}{
		{"stale epoch", a.id, a.epoch - 1, ErrStaleMemberEpoch},
		{"future epoch", a.id, a.epoch + 1, ErrFencedMemberEpoch},
		{"unknown member", "never-issued", 1, ErrUnknownMemberID},
		{"no member while the group has members", "", -1, ErrUnknownMemberID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := commit(h, "g", tc.member, tc.epoch, "t", 0, 7); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if got := fetchOne(t, h, "g", "t", 0); got != 42 {
				t.Fatalf("a refused commit changed the offset to %d", got)
			}
		})
	}
	// A fetch at a stale epoch is refused the same way.
	if _, err := h.c.FetchOffsets(OffsetFetch{GroupID: "g", MemberID: a.id, MemberEpoch: a.epoch - 1}); !errors.Is(err, ErrStaleMemberEpoch) {
		t.Fatalf("fetch at a stale epoch: %v", err)
	}
}

func TestCommitWithoutMemberToEmptyGroup(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := commit(h, "admin", "", -1, "t", 3, 9); err != nil {
		t.Fatal(err)
	}
	if got := fetchOne(t, h, "admin", "t", 3); got != 9 {
		t.Fatalf("fetched %d", got)
	}
	if got := fetchOne(t, h, "nobody", "t", 3); got != -1 {
		t.Fatalf("unknown group fetched %d", got)
	}
	res, err := commit(h, "admin", "", -1, "t", -1, 9)
	if err != nil || !errors.Is(res[0].Partitions[0].Err, ErrInvalidRequest) {
		t.Fatalf("negative partition: %v %v", res, err)
	}
	res, _, err = h.c.CommitOffsets(h.now, OffsetCommit{GroupID: "admin", MemberEpoch: -1, Topics: []CommitTopic{{Topic: "t",
		Partitions: []CommitPartition{{Partition: 0, Offset: 1, Metadata: strings.Repeat("x", DefaultMaxMetadataBytes+1)}, {Partition: 1, Offset: 5}}}}})
	if err != nil || !errors.Is(res[0].Partitions[0].Err, ErrOffsetMetadataTooLarge) || res[0].Partitions[1].Err != nil {
		t.Fatalf("metadata bound: %+v %v", res, err)
	}
	if got := fetchOne(t, h, "admin", "t", 0); got != -1 {
		t.Fatalf("the partition with too much metadata was committed: %d", got)
	}
}

func TestOffsetsExpire(t *testing.T) {
	h := newHarness(t, map[string]int32{"t": 1})
	commit(h, "empty", "", -1, "t", 0, 1)
	a := &client{names: []string{"t"}}
	h.settle("busy", a)
	commit(h, "busy", a.id, a.epoch, "t", 0, 1)
	commit(h, "busy", a.id, a.epoch, "gone", 0, 1) // a topic the group does not subscribe to
	for range 7 * 24 * 12 {                        // a week of 5-minute ticks with a heartbeating member
		h.now = h.now.Add(5 * time.Minute)
		h.mustBeat("busy", a)
		h.log = append(h.log, h.c.Tick(h.now)...)
	}
	if h.c.HasGroup("empty") {
		t.Fatal("the empty group's offsets did not expire after 7 days")
	}
	if got := fetchOne(t, h, "busy", "t", 0); got != 1 {
		t.Fatalf("a group with members lost its offset: %d", got)
	}
	if got := fetchOne(t, h, "busy", "gone", 0); got != -1 {
		t.Fatalf("the offset of a topic the group does not subscribe to was kept: %d", got)
	}
}

func TestDeleteTopicsAndGroups(t *testing.T) {
	h := newHarness(t, map[string]int32{"t": 1, "u": 1})
	commit(h, "g", "", -1, "t", 0, 1)
	commit(h, "g", "", -1, "u", 0, 2)
	h.log = append(h.log, h.c.DeleteTopics([]string{"t"})...)
	if got := fetchOne(t, h, "g", "t", 0); got != -1 {
		t.Fatalf("offset of a deleted topic: %d", got)
	}
	if got := fetchOne(t, h, "g", "u", 0); got != 2 {
		t.Fatalf("offset of another topic: %d", got)
	}
	a := &client{names: []string{"u"}}
	h.settle("busy", a)
	if _, err := h.c.DeleteGroup("busy"); !errors.Is(err, ErrNonEmptyGroup) {
		t.Fatalf("delete with members: %v", err)
	}
	if _, err := h.c.DeleteGroup("none"); !errors.Is(err, ErrGroupIDNotFound) {
		t.Fatalf("delete unknown: %v", err)
	}
	if _, err := h.c.DescribeGroup("none"); !errors.Is(err, ErrGroupIDNotFound) {
		t.Fatalf("describe unknown: %v", err)
	}
	recs, err := h.c.DeleteGroup("g")
	if err != nil {
		t.Fatal(err)
	}
	h.log = append(h.log, recs...)
	if got := h.c.ListGroups(); len(got) != 1 || got[0].GroupID != "busy" || got[0].State != StateStable {
		t.Fatalf("groups after delete: %+v", got)
	}
	r := replayed(t, h, h.log)
	if r.HasGroup("g") || fmt.Sprint(r.ListGroups()) != fmt.Sprint(h.c.ListGroups()) {
		t.Fatalf("replayed groups %+v", r.ListGroups())
	}
}

func replayed(t *testing.T, h *harness, log []Record) *Coordinator {
	t.Helper()
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	r.SetTopics(h.c.topics)
	for _, rec := range log {
		if err := r.Replay(h.now, rec.Key, rec.Value); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// Replay with every record duplicated (as a log is before compaction,
// and after a leader's append was retried) and through record batches
// gives the same state; a compacted log (the last record per key, in
// order) too.
func TestReplayDuplicatesAndCompaction(t *testing.T) {
	h := newHarness(t, map[string]int32{"t": 4})
	a, b := &client{names: []string{"t"}}, &client{names: []string{"t"}, inst: "i"}
	h.settle("g", a, b)
	for i := range 20 {
		commit(h, "g", a.id, a.epoch, "t", int32(i%4), int64(i))
	}
	commit(h, "other", "", -1, "t", 0, 5)
	var dup []Record
	for _, r := range h.log {
		dup = append(dup, r, r)
	}
	// Through batches: encode the log as the broker appends it.
	var data []byte
	bld := record.NewBuilder(record.None)
	for i, rec := range dup {
		bld.Append(0, rec.Key, rec.Value, nil)
		if i%7 == 6 || i == len(dup)-1 {
			var err error
			if data, err = bld.AppendBatch(data); err != nil {
				t.Fatal(err)
			}
			bld.Reset()
		}
	}
	r, _ := New(Config{})
	r.SetTopics(h.c.topics)
	if _, err := r.ReplayBatches(h.now, data, record.NewReader(record.Limits{})); err != nil {
		t.Fatal(err)
	}
	last := map[string]int{}
	for i, rec := range h.log {
		last[string(rec.Key)] = i
	}
	var compacted []Record
	for i, rec := range h.log {
		if last[string(rec.Key)] == i {
			compacted = append(compacted, rec)
		}
	}
	for name, got := range map[string]*Coordinator{"duplicates": r, "compacted": replayed(t, h, compacted)} {
		for _, g := range []string{"g", "other"} {
			want, _ := h.c.DescribeGroup(g)
			d, err := got.DescribeGroup(g)
			if err != nil || fmt.Sprint(d) != fmt.Sprint(want) {
				t.Fatalf("%s: group %s replayed as\n%+v\nwant\n%+v", name, g, d, want)
			}
		}
	}
	// The replayed coordinator goes on: a heartbeats and commits at its epoch.
	h.c = r
	h.mustBeat("g", a, b)
	if _, err := commit(h, "g", a.id, a.epoch, "t", 0, 100); err != nil {
		t.Fatal(err)
	}
}

func TestReplayRefusesCorruptRecords(t *testing.T) {
	m := &member{topicNames: []string{"t"}, assigned: partSet{{"t", 1}: {}}, target: partSet{}}
	good := memberValue(m)
	for _, tc := range []struct {
		name       string
		key, value []byte
	}{
		{"short key", []byte{0}, nil},
		{"key string past end", enc(nil).i16(keyGroup).i16(10), nil},
		{"key left over", append(groupKey("g"), 1), nil},
		{"offset version", offsetKey("g", "t", 0), enc(nil).i16(9).i64(1).i32(0).str("").i64(0)},
		{"offset short", offsetKey("g", "t", 0), enc(nil).i16(0).i64(1)},
		{"member truncated", memberKey("g", "m"), good[:len(good)-3]},
		{"member huge count", memberKey("g", "m"), enc(nil).i16(0).str("").str("").str("").str("").i32(0).i32(1 << 30)},
		{"member state", memberKey("g", "m"), func() []byte { b := *m; b.state = 9; return memberValue(&b) }()},
		{"negative string", groupKey("g"), enc(nil).i16(0).i16(-4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := New(Config{})
			err := c.Replay(time.Now(), tc.key, tc.value)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v", err)
			}
			// A count is checked against the bytes left before anything
			// is allocated for it.
			if tc.name == "member huge count" && !strings.Contains(err.Error(), "topic names: count") {
				t.Fatalf("huge count not refused by its check: %v", err)
			}
		})
	}
	// An unknown key type (a later version's) is skipped.
	c, _ := New(Config{})
	if err := c.Replay(time.Now(), enc(nil).i16(99).str("x"), []byte{1}); err != nil {
		t.Fatal(err)
	}
}

func FuzzReplay(f *testing.F) {
	m := &member{topicNames: []string{"t"}, topicRegex: "a.*", assigned: partSet{{"t", 1}: {}}, revoking: partSet{{"t", 2}: {}}, target: partSet{{"t", 1}: {}}}
	f.Add(memberKey("g", "m"), memberValue(m))
	f.Add(offsetKey("g", "t", 3), offsetValueBytes(offsetValue{offset: 5, metadata: "x"}))
	f.Add(groupKey("g"), groupValue(&consumerGroup{epoch: 3, assignmentEpoch: 3}))
	cg := newClassic()
	cg.generation, cg.protocolType, cg.protocol, cg.leader = 2, "consumer", "range", "m"
	cg.members["m"] = &classicMember{id: "m", sessionTimeout: time.Second, protocols: []ClassicProtocol{{Name: "range", Metadata: []byte("md")}}, assignment: []byte("as")}
	f.Add(classicKey("g"), classicValue(cg))
	f.Add(queueKey("g", "t", 0), queueSeedValue())
	f.Fuzz(func(t *testing.T, key, value []byte) {
		c, _ := New(Config{})
		if err := c.Replay(time.Unix(0, 0), key, value); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error not ErrCorrupt: %v", err)
		}
		_ = c.ListGroups()
	})
}
