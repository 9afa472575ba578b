package kafka

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/poll"
)

// kadm moves a partition (AlterPartitionReassignments, the core call
// sluice cluster reassign uses), lists it while it copies (throttled to
// 1 KiB/s), cancels it back to the original replicas, then moves it
// again unthrottled to the end; a cancel with nothing moving is
// NO_REASSIGNMENT_IN_PROGRESS.
func TestFranzReassignPartitions(t *testing.T) {
	ctx := testContext(t)
	kc := startKafkaCluster(t, 4)
	if err := kc.Client().AlterClusterConfigs(ctx, client.SetConfig(controller.ConfigReassignmentThrottle, "1024")); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(newClient(t, kc.seeds()))
	createTopic(t, ctx, adm, "mv", 1, 3, nil)
	pr := newClient(t, kc.seeds(), kgo.DefaultProduceTopic("mv"))
	for range 20 {
		if err := pr.ProduceSync(ctx, &kgo.Record{Value: make([]byte, 4096)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	details, err := adm.ListTopics(ctx, "mv")
	if err != nil {
		t.Fatal(err)
	}
	orig := details["mv"].Partitions[0].Replicas
	free := slices.DeleteFunc([]int32{1, 2, 3, 4}, func(id int32) bool { return slices.Contains(orig, id) })[0]
	target := append(slices.Clone(orig[1:]), free)
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign("mv", 0, target)
	res, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil || res["mv"][0].Err != nil {
		t.Fatalf("assign: %v, %+v", err, res)
	}
	poll.Until(t, 10*time.Second, "the move listed", func() error {
		ls, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{"mv": {0: {}}})
		if err != nil {
			return err
		}
		r := ls["mv"][0]
		if !slices.Equal(r.AddingReplicas, []int32{free}) || !slices.Equal(r.RemovingReplicas, orig[:1]) {
			return fmt.Errorf("listed %+v", ls)
		}
		return nil
	})
	var cancel kadm.AlterPartitionAssignmentsReq
	cancel.CancelAssign("mv", 0)
	if res, err := adm.AlterPartitionAssignments(ctx, cancel); err != nil || res["mv"][0].Err != nil {
		t.Fatalf("cancel: %v, %+v", err, res)
	}
	if res, err := adm.AlterPartitionAssignments(ctx, cancel); err != nil || !errors.Is(res["mv"][0].Err, kerr.NoReassignmentInProgress) {
		t.Fatalf("second cancel: %v, %+v", err, res)
	}
	if err := kc.Client().AlterClusterConfigs(ctx, client.DeleteConfig(controller.ConfigReassignmentThrottle)); err != nil {
		t.Fatal(err)
	}
	if res, err := adm.AlterPartitionAssignments(ctx, req); err != nil || res["mv"][0].Err != nil {
		t.Fatalf("assign again: %v, %+v", err, res)
	}
	poll.Until(t, 30*time.Second, "the move done", func() error {
		details, err := adm.ListTopics(ctx, "mv")
		if err != nil {
			return err
		}
		p := details["mv"].Partitions[0]
		if !slices.Equal(p.Replicas, target) || len(p.ISR) != 3 {
			return fmt.Errorf("replicas %v, ISR %v", p.Replicas, p.ISR)
		}
		return nil
	})
}
