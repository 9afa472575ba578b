package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// The console's JSON API: cluster and topics here, records in
// api_messages.go, consumer groups in api_groups.go. Every answer is JSON;
// an error is {"error": "...", "code": "PROTOCOL_CODE"} with an HTTP status
// from its protocol code (apiStatus).

func (c *console) registerAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/cluster", c.getCluster)
	mux.HandleFunc("GET /api/throughput", c.getThroughput)
	mux.HandleFunc("GET /api/stats", c.getStats)
	mux.HandleFunc("GET /api/topics", c.listTopics)
	mux.HandleFunc("POST /api/topics", c.createTopic)
	mux.HandleFunc("GET /api/topics/{topic}", c.getTopic)
	mux.HandleFunc("DELETE /api/topics/{topic}", c.deleteTopic)
	mux.HandleFunc("PATCH /api/topics/{topic}/configs", c.alterConfigs)
	mux.HandleFunc("GET /api/topics/{topic}/records", c.browse)
	mux.HandleFunc("GET /api/topics/{topic}/records/{partition}/{offset}/{part}", c.downloadRecord)
	mux.HandleFunc("GET /api/groups", c.listGroups)
	mux.HandleFunc("GET /api/groups/{group}", c.getGroup)
	mux.HandleFunc("POST /api/groups/{group}/reset", c.resetOffsets)
	mux.HandleFunc("GET /api/queues", c.listQueueGroups)
	mux.HandleFunc("GET /api/queues/{group}", c.getQueueGroup)
	mux.HandleFunc("POST /api/queues/{group}/redrive", c.redriveQueueGroup)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", fmt.Errorf("no API %s %s", r.Method, r.URL.Path))
	})
}

// maxBody bounds a request body the API reads.
const maxBody = 1 << 20

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"` // the protocol error code's name
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v) // the status is sent: a failed write has no one to tell
}

func writeError(w http.ResponseWriter, status int, code string, err error) {
	writeJSON(w, status, apiError{Error: err.Error(), Code: code})
}

// fail answers err with the status its protocol code calls for.
func (c *console) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := apiStatus(err)
	if status >= 500 {
		c.logger.Warn("console api failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	}
	writeError(w, status, code, err)
}

// apiStatus maps an error of the core or of the client to an HTTP status
// and the name of its protocol code ("" for none).
func apiStatus(err error) (int, string) {
	var bad *badRequest
	var unsupported *unsupportedType
	switch {
	case errors.As(err, &bad):
		return http.StatusBadRequest, ""
	case errors.As(err, &unsupported):
		return http.StatusUnsupportedMediaType, ""
	case errors.Is(err, errNotServing):
		return http.StatusServiceUnavailable, ""
	case errors.Is(err, client.ErrGroupNotEmpty):
		return http.StatusConflict, protocol.ErrNonEmptyGroup.String()
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, ""
	}
	if code, _ := broker.ErrorCode(err); code == protocol.ErrTopicAuthorizationFailed ||
		code == protocol.ErrGroupAuthorizationFailed || code == protocol.ErrClusterAuthorizationFailed {
		return http.StatusForbidden, code.String()
	}
	code, _ := broker.ErrorCode(err)
	switch code {
	case protocol.ErrUnknownTopicOrPartition, protocol.ErrGroupIDNotFound:
		return http.StatusNotFound, code.String()
	case protocol.ErrTopicAlreadyExists, protocol.ErrNonEmptyGroup:
		return http.StatusConflict, code.String()
	case protocol.ErrInvalidTopic, protocol.ErrInvalidPartitions, protocol.ErrInvalidReplicationFactor,
		protocol.ErrInvalidConfig, protocol.ErrInvalidRequest, protocol.ErrPolicyViolation,
		protocol.ErrInvalidGroupID, protocol.ErrOffsetOutOfRange:
		return http.StatusBadRequest, code.String()
	case protocol.ErrUnknownServerError:
		return http.StatusInternalServerError, ""
	}
	if code.Retriable() {
		return http.StatusServiceUnavailable, code.String()
	}
	return http.StatusInternalServerError, code.String()
}

// answerRead answers a read that needs the console's client: read's
// value as JSON, or its error.
func (c *console) answerRead(w http.ResponseWriter, r *http.Request, read func(context.Context, *client.Client) (any, error)) {
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	cl, err := c.client(ctx)
	var v any
	if err == nil {
		v, err = read(ctx, cl)
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// unsupportedType refuses a body that is not declared JSON.
type unsupportedType struct{ got string }

func (e *unsupportedType) Error() string {
	return fmt.Sprintf("Content-Type %q: want application/json", e.got)
}

// badRequest is a request the API refuses before calling anything.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

// readJSON decodes r's body into v, refusing unknown fields and bodies
// over maxBody. The body must be declared JSON: a form another site's page
// posts (text/plain, no CORS preflight) cannot change the cluster.
func readJSON(r *http.Request, v any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &unsupportedType{r.Header.Get("Content-Type")}
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badf("request body: %v", err)
	}
	if dec.More() {
		return badf("request body: more than one JSON value")
	}
	return nil
}

// BrokerInfo is one broker of the cluster overview.
type BrokerInfo struct {
	ID         int32  `json:"id"`
	Addr       string `json:"addr"`
	Rack       string `json:"rack,omitempty"`
	State      string `json:"state"`
	Epoch      int64  `json:"epoch"`
	Controller bool   `json:"controller"`
	Leaders    int    `json:"leaders"`  // partitions it leads
	Replicas   int    `json:"replicas"` // partition replicas it holds
}

// Alert is a condition of docs/observability.md's alert table that holds
// now, as this broker's copy of the metadata shows it.
type Alert struct {
	Name   string `json:"name"`
	Detail string `json:"detail"`
}

// ClusterInfo is the cluster overview.
type ClusterInfo struct {
	Broker          int32        `json:"broker"` // the broker answering
	Controller      int32        `json:"controller"`
	MetadataVersion uint64       `json:"metadata_version"`
	Brokers         []BrokerInfo `json:"brokers"`
	Topics          int          `json:"topics"`
	Partitions      int          `json:"partitions"`
	UnderReplicated int          `json:"under_replicated"`
	UnderMinISR     int          `json:"under_min_isr"`
	Offline         int          `json:"offline"`
	Alerts          []Alert      `json:"alerts"`
}

// partitionHealth counts a topic's partitions by condition.
type partitionHealth struct{ underReplicated, underMinISR, offline int }

func healthOf(t *controller.Topic) partitionHealth {
	var h partitionHealth
	minISR, err := strconv.Atoi(t.Config(controller.ConfigMinInsyncReplica))
	if err != nil {
		minISR = 1
	}
	for _, p := range t.Partitions {
		if p.Leader < 0 {
			h.offline++
		}
		if len(p.ISR) < len(p.Replicas) {
			h.underReplicated++
		}
		if len(p.ISR) < minISR {
			h.underMinISR++
		}
	}
	return h
}

func (c *console) getCluster(w http.ResponseWriter, r *http.Request) {
	md := c.coreOf(r).Metadata()
	out := ClusterInfo{Broker: c.id, Controller: md.ControllerID, MetadataVersion: md.Version, Brokers: []BrokerInfo{}, Alerts: []Alert{}}
	byID := map[int32]*BrokerInfo{}
	for _, b := range md.Brokers {
		out.Brokers = append(out.Brokers, BrokerInfo{ID: b.ID, Addr: b.Addr, Rack: b.Rack, State: b.State.String(),
			Epoch: b.Epoch, Controller: b.ID == md.ControllerID})
	}
	slices.SortFunc(out.Brokers, func(a, b BrokerInfo) int { return cmp.Compare(a.ID, b.ID) })
	for i := range out.Brokers {
		byID[out.Brokers[i].ID] = &out.Brokers[i]
	}
	offlineBrokers := 0
	for _, b := range out.Brokers {
		if b.State != controller.BrokerAlive.String() {
			offlineBrokers++
		}
	}
	for _, t := range md.Topics {
		out.Topics++
		out.Partitions += len(t.Partitions)
		h := healthOf(t)
		out.UnderReplicated += h.underReplicated
		out.UnderMinISR += h.underMinISR
		out.Offline += h.offline
		for _, p := range t.Partitions {
			if b := byID[p.Leader]; b != nil {
				b.Leaders++
			}
			for _, id := range p.Replicas {
				if b := byID[id]; b != nil {
					b.Replicas++
				}
			}
		}
	}
	alert := func(cond bool, name, format string, args ...any) {
		if cond {
			out.Alerts = append(out.Alerts, Alert{Name: name, Detail: fmt.Sprintf(format, args...)})
		}
	}
	alert(md.ControllerID < 0, "no controller", "no broker leads the metadata group: no topic changes, elections or ISR changes")
	alert(out.Offline > 0, "offline partitions", "%d partitions have no leader: they take no produce and serve no fetch", out.Offline)
	alert(out.UnderMinISR > 0, "under min ISR", "%d partitions have fewer in-sync replicas than min.insync.replicas: acks=all produces to them fail", out.UnderMinISR)
	alert(out.UnderReplicated > 0, "under-replicated", "%d partitions have replicas out of the ISR", out.UnderReplicated)
	alert(offlineBrokers > 0, "offline brokers", "%d registered brokers are offline", offlineBrokers)
	writeJSON(w, http.StatusOK, out)
}

// Throughput is what GET /api/throughput answers: the end offsets (high
// watermarks) of every topic, summed over its partitions, at a time. Two
// answers give the rate of records appended between them; the console's
// overview charts it.
type Throughput struct {
	Time int64 `json:"time"` // Unix milliseconds, when the offsets were asked for
	// Total sums the topics' ends, but the internal topic's.
	Total  int64           `json:"total"`
	Topics []TopicEndTotal `json:"topics"`
	Error  string          `json:"error,omitempty"` // topics whose ends could not all be listed
}

// TopicEndTotal is one topic's end offsets, summed.
type TopicEndTotal struct {
	Topic    string `json:"topic"`
	Internal bool   `json:"internal"`
	End      int64  `json:"end"`
	// Complete is false when a partition's end could not be listed: End
	// then lacks it, and a rate from it is wrong.
	Complete bool `json:"complete"`
}

func (c *console) getThroughput(w http.ResponseWriter, r *http.Request) {
	c.answerRead(w, r, func(ctx context.Context, cl *client.Client) (any, error) {
		names := slices.Sorted(maps.Keys(c.coreOf(r).Metadata().Topics))
		out := Throughput{Time: time.Now().UnixMilli(), Topics: make([]TopicEndTotal, 0, len(names))}
		var errs []error
		for _, name := range names {
			te := TopicEndTotal{Topic: name, Internal: name == broker.OffsetsTopic, Complete: true}
			offs, err := cl.ListOffsets(ctx, name, client.AtEnd())
			if err != nil {
				errs = append(errs, err)
				te.Complete = false
			}
			for _, o := range offs {
				if o.Err != nil {
					errs = append(errs, fmt.Errorf("%s[%d]: %w", name, o.Partition, o.Err))
					te.Complete = false
					continue
				}
				te.End += o.Offset
			}
			if !te.Internal {
				out.Total += te.End
			}
			out.Topics = append(out.Topics, te)
		}
		if err := errors.Join(errs...); err != nil {
			out.Error = err.Error()
		}
		return out, nil
	})
}

// TopicSummary is one topic of the topic list.
type TopicSummary struct {
	Name              string `json:"name"`
	Internal          bool   `json:"internal"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	UnderReplicated   int    `json:"under_replicated"`
	Offline           int    `json:"offline"`
}

func (c *console) listTopics(w http.ResponseWriter, r *http.Request) {
	md := c.coreOf(r).Metadata()
	out := make([]TopicSummary, 0, len(md.Topics))
	for _, t := range md.Topics {
		s := TopicSummary{Name: t.Name, Internal: t.Name == broker.OffsetsTopic, Partitions: len(t.Partitions)}
		if len(t.Partitions) > 0 {
			s.ReplicationFactor = len(t.Partitions[0].Replicas)
		}
		h := healthOf(t)
		s.UnderReplicated, s.Offline = h.underReplicated, h.offline
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b TopicSummary) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, out)
}

// PartitionInfo is one partition of a topic's detail. Start and End are
// the leader's log start offset and end (high watermark), -1 with Error
// when they could not be listed.
type PartitionInfo struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	Start       int64   `json:"start"`
	End         int64   `json:"end"`
	Error       string  `json:"error,omitempty"`
}

// TopicDetail is a topic's partitions, offsets and configs.
type TopicDetail struct {
	Name       string          `json:"name"`
	Internal   bool            `json:"internal"`
	Partitions []PartitionInfo `json:"partitions"`
	Configs    []ConfigInfo    `json:"configs"`
	Records    int64           `json:"records"` // sum of End - Start over the partitions listed
}

func (c *console) getTopic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	t, ok := c.coreOf(r).Metadata().Topics[name]
	if !ok {
		c.fail(w, r, &protocol.Error{Code: protocol.ErrUnknownTopicOrPartition, Detail: fmt.Sprintf("topic %q does not exist", name)})
		return
	}
	configs, err := c.coreOf(r).DescribeTopicConfigs(name, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	out := TopicDetail{Name: name, Internal: name == broker.OffsetsTopic, Configs: configInfos(configs)}
	for _, p := range t.Partitions {
		out.Partitions = append(out.Partitions, PartitionInfo{Partition: p.Index, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
			Replicas: p.Replicas, ISR: p.ISR, Start: -1, End: -1})
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	setErr := func(msg string) {
		for i := range out.Partitions {
			if out.Partitions[i].Error == "" {
				out.Partitions[i].Error = msg
			}
		}
	}
	cl, err := c.client(ctx)
	if err != nil {
		setErr(err.Error())
		writeJSON(w, http.StatusOK, out)
		return
	}
	for i, at := range []client.Offset{client.AtStart(), client.AtEnd()} {
		offs, err := cl.ListOffsets(ctx, name, at)
		if err != nil {
			setErr(err.Error())
			break
		}
		for _, o := range offs {
			if int(o.Partition) >= len(out.Partitions) {
				continue
			}
			p := &out.Partitions[o.Partition]
			switch {
			case o.Err != nil:
				p.Error = o.Err.Error()
			case i == 0:
				p.Start = o.Offset
			default:
				p.End = o.Offset
			}
		}
	}
	for _, p := range out.Partitions {
		if p.Start >= 0 && p.End >= p.Start {
			out.Records += p.End - p.Start
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// NewTopicRequest is the body of POST /api/topics. Partitions and
// ReplicationFactor 0 take the broker's defaults.
type NewTopicRequest struct {
	Name              string            `json:"name"`
	Partitions        int32             `json:"partitions"`
	ReplicationFactor int16             `json:"replication_factor"`
	Configs           map[string]string `json:"configs"`
	ValidateOnly      bool              `json:"validate_only"`
}

func (c *console) createTopic(w http.ResponseWriter, r *http.Request) {
	var req NewTopicRequest
	if err := readJSON(r, &req); err != nil {
		c.fail(w, r, err)
		return
	}
	nt := broker.NewTopic{Name: req.Name, Partitions: req.Partitions, ReplicationFactor: req.ReplicationFactor}
	if nt.Partitions == 0 {
		nt.Partitions = -1
	}
	if nt.ReplicationFactor == 0 {
		nt.ReplicationFactor = -1
	}
	for _, k := range slices.Sorted(maps.Keys(req.Configs)) {
		nt.Configs = append(nt.Configs, broker.TopicConfig{Name: k, Value: req.Configs[k]})
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	if err := c.coreOf(r).CreateTopics(ctx, []broker.NewTopic{nt}, req.ValidateOnly)[0]; err != nil {
		c.fail(w, r, fmt.Errorf("create topic %q: %w", req.Name, err))
		return
	}
	status := http.StatusCreated
	if req.ValidateOnly {
		status = http.StatusOK
	}
	writeJSON(w, status, map[string]string{"topic": req.Name})
}

func (c *console) deleteTopic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	if name == broker.OffsetsTopic {
		c.fail(w, r, badf("%s is internal: it holds the consumer groups' offsets", name))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	if err := c.coreOf(r).DeleteTopics(ctx, []string{name})[0]; err != nil {
		c.fail(w, r, fmt.Errorf("delete topic %q: %w", name, err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

// ConfigChangeRequest is the body of PATCH /api/topics/{topic}/configs:
// keys to set and keys to revert to their defaults.
type ConfigChangeRequest struct {
	Set          map[string]string `json:"set"`
	Remove       []string          `json:"remove"`
	ValidateOnly bool              `json:"validate_only"`
}

func (c *console) alterConfigs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	var req ConfigChangeRequest
	if err := readJSON(r, &req); err != nil {
		c.fail(w, r, err)
		return
	}
	if len(req.Set) == 0 && len(req.Remove) == 0 {
		c.fail(w, r, badf("nothing to change: give set or remove"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	change := broker.ConfigAlteration{Topic: name, Set: req.Set, Remove: req.Remove}
	if err := c.coreOf(r).AlterTopicConfigs(ctx, []broker.ConfigAlteration{change}, req.ValidateOnly)[0]; err != nil {
		c.fail(w, r, fmt.Errorf("alter configs of topic %q: %w", name, err))
		return
	}
	configs, err := c.coreOf(r).DescribeTopicConfigs(name, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, configInfos(configs))
}

// ConfigInfo is a topic config's effective value; Default: it is the
// broker's or sluice's default, not set on the topic.
type ConfigInfo struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	Default bool   `json:"default"`
}

func configInfos(cvs []broker.ConfigValue) []ConfigInfo {
	out := make([]ConfigInfo, len(cvs))
	for i, cv := range cvs {
		out[i] = ConfigInfo{Name: cv.Name, Value: cv.Value, Default: cv.IsDefault}
	}
	return out
}
