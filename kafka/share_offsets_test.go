package kafka

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestShareGroupOffsetsAdmin drives DescribeShareGroupOffsets,
// AlterShareGroupOffsets and DeleteShareGroupOffsets through kadm over a
// share group that a member read: the start offset and lag follow what it
// accepted; altering or deleting with a member is NON_EMPTY_GROUP; once
// it left, altering moves the start (the next acquisition begins there)
// and deleting sends the topic back to its log start (delivered again).
func TestShareGroupOffsetsAdmin(t *testing.T) {
	ctx := testContext(t)
	_, addr := single(t, nil)
	cl := newClient(t, []string{addr}, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	id := shareTopicOf(t, ctx, cl, "so", 2, numbered("v", 10)...)

	m1 := &shareClient{t: t, ctx: ctx, cl: cl, group: "readers", member: "reader-one"}
	if hb := m1.heartbeat(0, []string{"so"}); hb.ErrorCode != 0 {
		t.Fatalf("join: %+v", hb)
	}
	m1.epoch = 1
	if v, _ := acquired(t, onePartition(t, m1.fetch(id, 4, time.Second))); !slices.Equal(sortedKeys(v), []int64{0, 1, 2, 3}) {
		t.Fatalf("acquired %v", v)
	}
	if ar := m1.ack(id, false, shareAck{0, 3, []int8{1}}); ar.ErrorCode != 0 || ar.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("accept: %+v", ar)
	}

	describe := func() map[int32]kadm.ShareOffset {
		t.Helper()
		ds, err := adm.DescribeShareGroupOffsets(ctx, "readers")
		if err != nil || ds["readers"].Err != nil {
			t.Fatalf("describe: %v %+v", err, ds)
		}
		return ds["readers"].Offsets["so"]
	}
	if so := describe(); len(so) != 1 || so[0].StartOffset != 4 || so[0].Lag != 6 || so[0].TopicID != kadm.TopicID(id) || so[0].Err != nil {
		t.Fatalf("after 4 accepted: %+v", so)
	}

	// With a member, nothing moves.
	to := kadm.Offsets{}
	to.Add(kadm.Offset{Topic: "so", Partition: 0, At: 8})
	if _, err := adm.AlterShareGroupOffsets(ctx, "readers", to); !errors.Is(err, kerr.NonEmptyGroup) {
		t.Fatalf("alter with a member: %v, want NON_EMPTY_GROUP", err)
	}
	if _, err := adm.DeleteShareGroupOffsets(ctx, "readers", "so"); !errors.Is(err, kerr.NonEmptyGroup) {
		t.Fatalf("delete with a member: %v, want NON_EMPTY_GROUP", err)
	}
	if hb := m1.heartbeat(-1, nil); hb.ErrorCode != 0 {
		t.Fatalf("leave: %+v", hb)
	}

	// Alter partition 0 to 8, and an unknown partition.
	to.Add(kadm.Offset{Topic: "so", Partition: 7, At: 1})
	res, err := adm.AlterShareGroupOffsets(ctx, "readers", to)
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := res.Lookup("so", 0); e != nil {
		t.Fatalf("alter partition 0: %v", e)
	}
	if e, _ := res.Lookup("so", 7); !errors.Is(e, kerr.UnknownTopicOrPartition) {
		t.Fatalf("alter partition 7: %v", e)
	}
	if so := describe(); so[0].StartOffset != 8 || so[0].Lag != 2 {
		t.Fatalf("after the alter: %+v", so)
	}
	m2 := &shareClient{t: t, ctx: ctx, cl: cl, group: "readers", member: "reader-two"}
	if v, _ := acquired(t, onePartition(t, m2.fetch(id, 10, time.Second))); !slices.Equal(sortedKeys(v), []int64{8, 9}) {
		t.Fatalf("acquired after the alter %v, want 8 and 9", v)
	}

	// Delete: the topic starts again at the log start, and what m2 holds
	// is no longer its own.
	dres, err := adm.DeleteShareGroupOffsets(ctx, "readers", "so", "nope")
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := dres.Lookup("so"); e != nil {
		t.Fatalf("delete so: %v", e)
	}
	if e, _ := dres.Lookup("nope"); !errors.Is(e, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete an unknown topic: %v", e)
	}
	if so := describe(); so[0].StartOffset != 0 || so[0].Lag != 10 {
		t.Fatalf("after the delete: %+v", so)
	}
	if ar := m2.ack(id, false, shareAck{8, 9, []int8{1}}); ar.Topics[0].Partitions[0].ErrorCode != kerr.InvalidRecordState.Code {
		t.Fatalf("m2 accepting what it held before the delete: %+v", ar)
	}
	v, c := acquired(t, onePartition(t, m2.fetch(id, 3, time.Second)))
	if !slices.Equal(sortedKeys(v), []int64{0, 1, 2}) || v[0] != "v0" || c[0] != 1 {
		t.Fatalf("acquired after the delete %v counts %v", v, c)
	}

	// A group that never read anything, as Kafka answers it.
	if ds, err := adm.DescribeShareGroupOffsets(ctx, "nobody"); err != nil || !errors.Is(ds["nobody"].Err, kerr.GroupIDNotFound) {
		t.Fatalf("an unknown group: %v %+v", err, ds["nobody"])
	}
}
