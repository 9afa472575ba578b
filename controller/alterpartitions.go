package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// MaxAlterPartitions bounds the changes of one AlterPartitions call.
const MaxAlterPartitions = 1000

// maxAppendEntries is the Raft config's MaxAppendEntries: the most
// entries of one log write, one AppendEntries and one FSM.ApplyBatch
// (Raft allows at most 1,024).
const maxAppendEntries = 512

// AlterPartitions applies many partition changes — the ISR changes one
// broker found in one pass over its partitions — as one write: forwarded
// to the leader once, and proposed there back to back, so that Raft
// commits them in groups (hashicorp/raft writes every apply waiting for it
// in one log write) instead of a round trip and a log write each. A broker
// restarted with thousands of partitions is back in their ISRs in a few
// passes rather than at tens of changes a second.
//
// Each change is applied or refused on its own: errs[i] is cs[i]'s refusal
// (ErrStalePartitionEpoch when the partition changed since the change was
// planned), nil when it was applied. The error is for the call as a whole
// (no leader, timeout, leadership lost): some changes may have been
// applied, and a change planned again is refused as stale if so.
func (n *Node) AlterPartitions(ctx context.Context, cs []AlterPartition) (errs []error, err error) {
	if len(cs) > MaxAlterPartitions {
		return nil, fmt.Errorf("%w: %d partition changes in one call, at most %d", ErrInvalidPartition, len(cs), MaxAlterPartitions)
	}
	if len(cs) == 0 {
		return nil, nil
	}
	_, out, err := n.write(ctx, request{op: opAlterPartitions, changes: cs})
	if err != nil {
		return nil, err
	}
	if len(out) != len(cs) {
		return nil, fmt.Errorf("%w: %d outcomes for %d partition changes", ErrCorrupt, len(out), len(cs))
	}
	errs = make([]error, len(cs))
	for i := range out {
		errs[i] = out[i].Err
	}
	return errs, nil
}

// alterPartitions proposes cs back to back on this leader and waits for
// each. The Result's index is the last one applied, so a forwarding node
// can wait for every change.
func (n *Node) alterPartitions(ctx context.Context, cs []AlterPartition) (Result, []Election, error) {
	futures := make([]raft.ApplyFuture, len(cs))
	started := time.Now()
	for i, c := range cs {
		futures[i] = n.start(ctx, c)
	}
	var res Result
	out := make([]Election, len(cs))
	var failed error
	committed := false
	for i, c := range cs {
		out[i] = Election{Topic: c.Topic, Partition: c.Partition, Leader: c.Leader}
		resp, err := n.finish(ctx, c, futures[i], started)
		if err != nil {
			// Raft's error, not the FSM's: not leader (then none of the
			// rest was proposed either), leadership lost, timeout.
			if failed == nil {
				failed = err
			}
			out[i].Err = err
			continue
		}
		committed = true
		res.Index = max(res.Index, resp.Result.Index)
		out[i].Err = resp.Err
	}
	if failed != nil && !committed {
		// Nothing applied: the request as a whole failed (and is retried
		// on the next leader when Raft says this node does not lead).
		return Result{}, nil, fmt.Errorf("alter partitions: %w", failed)
	}
	if failed != nil {
		n.log.Debug("partition changes partly applied", zap.Int("changes", len(cs)), zap.Error(failed))
	}
	return res, out, nil
}

// alterPartitions reads an opAlterPartitions list: each change a
// length-prefixed AlterPartition command.
func (d *decoder) alterPartitions() []AlterPartition {
	// A change is at least a length byte, a version and a kind.
	n := d.count(3)
	if n > MaxAlterPartitions {
		d.fail("%d partition changes, at most %d", n, MaxAlterPartitions)
		return nil
	}
	if n == 0 || d.err != nil {
		return nil
	}
	out := make([]AlterPartition, 0, n)
	for range n {
		b := d.string()
		if d.err != nil {
			return nil
		}
		c, err := DecodeCommand([]byte(b))
		if err != nil {
			d.fail("partition change %d: %v", len(out), err)
			return nil
		}
		ap, ok := c.(AlterPartition)
		if !ok {
			d.fail("partition change %d is a %v", len(out), c.Kind())
			return nil
		}
		out = append(out, ap)
	}
	return out
}
