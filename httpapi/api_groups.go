package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
)

// Consumer groups in the console: list, describe (members and, per
// partition, committed offset, end and lag, as the client computes them
// for `sluice group describe`), and reset offsets with a preview.

func (c *console) listGroups(w http.ResponseWriter, r *http.Request) {
	c.answerRead(w, r, func(ctx context.Context, cl *client.Client) (any, error) {
		groups, err := cl.ListGroups(ctx)
		if err != nil && len(groups) == 0 {
			return nil, err
		}
		out := GroupList{Groups: []client.GroupListing{}}
		for _, g := range groups {
			if g.Type != broker.TypeQueue { // the queue groups' page lists those
				out.Groups = append(out.Groups, g)
			}
		}
		if err != nil {
			out.Error = err.Error()
		}
		return out, nil
	})
}

// GroupList is the answer of GET /api/groups.
type GroupList struct {
	Groups []client.GroupListing `json:"groups"`
	Error  string                `json:"error,omitempty"` // brokers that could not be asked
}

// GroupDetail is a described group with its total lag.
type GroupDetail struct {
	client.GroupDescription
	Lag int64 `json:"lag"` // sum of the partitions' lag that could be computed
}

func (c *console) getGroup(w http.ResponseWriter, r *http.Request) {
	c.answerRead(w, r, func(ctx context.Context, cl *client.Client) (any, error) {
		d, err := cl.DescribeGroup(ctx, r.PathValue("group"))
		if err != nil {
			return nil, err
		}
		out := GroupDetail{GroupDescription: d}
		if out.Members == nil {
			out.Members = []client.GroupMemberDescription{}
		}
		if out.Offsets == nil {
			out.Offsets = []client.GroupOffset{}
		}
		for _, o := range d.Offsets {
			out.Lag += max(o.Lag, 0)
		}
		return out, nil
	})
}

// ResetRequest is the body of POST /api/groups/{group}/reset: where to
// move the group's offsets of a topic. To is earliest, latest, offset
// (Value: the offset), shift (Value: by how many, negative: back) or time
// (Value: Unix milliseconds). Without Execute the answer is the preview.
type ResetRequest struct {
	Topic   string `json:"topic"`
	To      string `json:"to"`
	Value   int64  `json:"value"`
	Execute bool   `json:"execute"`
}

// ResetAnswer is the plan of a reset, and whether it was applied.
type ResetAnswer struct {
	Group    string               `json:"group"`
	Executed bool                 `json:"executed"`
	Offsets  []client.OffsetReset `json:"offsets"`
}

func resetSpec(req ResetRequest) (client.ResetSpec, error) {
	switch req.To {
	case "earliest":
		return client.ResetToEarliest(), nil
	case "latest":
		return client.ResetToLatest(), nil
	case "offset":
		if req.Value < 0 {
			return client.ResetSpec{}, badf("to offset: value %d: want an offset >= 0", req.Value)
		}
		return client.ResetToOffset(req.Value), nil
	case "shift":
		return client.ResetShiftBy(req.Value), nil
	case "time":
		return client.ResetToTime(time.UnixMilli(req.Value)), nil
	}
	return client.ResetSpec{}, badf("to %q: want earliest, latest, offset, shift or time", req.To)
}

func (c *console) resetOffsets(w http.ResponseWriter, r *http.Request) {
	group := r.PathValue("group")
	var req ResetRequest
	if err := readJSON(r, &req); err != nil {
		c.fail(w, r, err)
		return
	}
	if req.Topic == "" {
		c.fail(w, r, badf("topic: required"))
		return
	}
	spec, err := resetSpec(req)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.answerRead(w, r, func(ctx context.Context, cl *client.Client) (any, error) {
		plan, err := cl.ResetOffsets(ctx, group, req.Topic, spec, req.Execute)
		if errors.Is(err, client.ErrGroupNotEmpty) {
			return nil, fmt.Errorf("%w (offsets are reset only while no consumer of the group runs)", err)
		}
		if err != nil {
			return nil, err
		}
		if plan == nil {
			plan = []client.OffsetReset{}
		}
		return ResetAnswer{Group: group, Executed: req.Execute, Offsets: plan}, nil
	})
}
