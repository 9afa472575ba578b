package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
)

// Queue groups in the console: list (the groups of type queue that the
// cluster's coordinators hold), describe (per partition, as `sluice
// queue describe` shows it) and redrive the dead letters (the client's
// RedriveQueueGroup, which `sluice queue redrive` runs too).

// redriveWait bounds the reading of each dead-letter topic by a redrive,
// within apiTimeout.
const redriveWait = 10 * time.Second

// QueueGroupList is the answer of GET /api/queues.
type QueueGroupList struct {
	Groups []client.GroupListing `json:"groups"`
	Error  string                `json:"error,omitempty"` // brokers that could not be asked
}

func (c *console) listQueueGroups(w http.ResponseWriter, r *http.Request) {
	c.answerRead(w, r, func(ctx context.Context, cl *client.Client) (any, error) {
		all, err := cl.ListGroups(ctx)
		if err != nil && len(all) == 0 {
			return nil, err
		}
		out := QueueGroupList{Groups: []client.GroupListing{}}
		for _, g := range all {
			if g.Type == broker.TypeQueue {
				out.Groups = append(out.Groups, g)
			}
		}
		if err != nil {
			out.Error = err.Error()
		}
		return out, nil
	})
}

// QueueGroupDetail is a described queue group, with its totals.
type QueueGroupDetail struct {
	client.QueueGroupDescription
	Available    int   `json:"available"`
	Acquired     int   `json:"acquired"`
	DeadLettered int64 `json:"dead_lettered"`
	AtCap        int   `json:"at_cap"` // partitions at their cap
}

func (c *console) getQueueGroup(w http.ResponseWriter, r *http.Request) {
	c.answerRead(w, r, func(ctx context.Context, cl *client.Client) (any, error) {
		d, err := cl.DescribeQueueGroup(ctx, r.PathValue("group"))
		if err != nil {
			return nil, err
		}
		out := QueueGroupDetail{QueueGroupDescription: d}
		if out.Partitions == nil {
			out.Partitions = []client.QueuePartitionState{}
		}
		for _, p := range d.Partitions {
			out.Available += p.Available
			out.Acquired += p.Acquired
			out.DeadLettered += p.DeadLettered
			if p.AtCap {
				out.AtCap++
			}
		}
		return out, nil
	})
}

// RedriveAnswer is the answer of POST /api/queues/{group}/redrive.
type RedriveAnswer struct {
	Group   string                 `json:"group"`
	Results []client.RedriveResult `json:"results"`
}

// RedriveRequest is the body of POST /api/queues/{group}/redrive: the
// topic whose dead letters to republish, "" for every topic the group
// has read. The body must be JSON, as every other change's, so that a
// form on another site cannot post it.
type RedriveRequest struct {
	Topic string `json:"topic"`
}

func (c *console) redriveQueueGroup(w http.ResponseWriter, r *http.Request) {
	group := r.PathValue("group")
	var req RedriveRequest
	if err := readJSON(r, &req); err != nil {
		c.fail(w, r, err)
		return
	}
	c.answerRead(w, r, func(ctx context.Context, cl *client.Client) (any, error) {
		res, err := cl.RedriveQueueGroup(ctx, group, req.Topic, redriveWait)
		if err != nil {
			return nil, err
		}
		if res == nil {
			res = []client.RedriveResult{}
		}
		return RedriveAnswer{Group: group, Results: res}, nil
	})
}
