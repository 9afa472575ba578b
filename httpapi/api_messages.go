package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/protocol"
)

// The message browser: records of one partition from an offset or a
// timestamp, read by a client of its own that is assigned the partition
// (no consumer group: nothing is committed, no group is created). A browse
// stops at the partition's end as it was when it started, at its limit,
// or after browseWait.

// Browse limits.
const (
	defaultBrowseLimit = 50
	maxBrowseLimit     = 500
	browseWait         = 5 * time.Second
	// maxBrowseBytes caps what a browse fetches (and so the records it
	// answers with).
	maxBrowseBytes = 8 << 20
	// maxShown is how many bytes of a key, value or header the answer
	// renders as text; the download has them all.
	maxShown = 64 << 10
)

// Bytes is a key, value or header value as the browser shows it.
type Bytes struct {
	Size int `json:"size"`
	// Format is how Text renders the bytes: "null" (none), "json"
	// (pretty-printed), "text" (UTF-8) or "hex" (a hex dump).
	Format    string `json:"format"`
	Text      string `json:"text"`
	Truncated bool   `json:"truncated,omitempty"` // Text shows the first maxShown bytes
	Base64    string `json:"base64,omitempty"`    // the bytes, whole, when no more than maxShown
}

// RecordHeader is one header of a browsed record.
type RecordHeader struct {
	Key   string `json:"key"`
	Value Bytes  `json:"value"`
}

// RecordInfo is one browsed record.
type RecordInfo struct {
	Partition int32          `json:"partition"`
	Offset    int64          `json:"offset"`
	Timestamp int64          `json:"timestamp"` // Unix milliseconds
	Key       Bytes          `json:"key"`
	Value     Bytes          `json:"value"`
	Headers   []RecordHeader `json:"headers"`
}

// Browse is the answer of GET /api/topics/{topic}/records.
type Browse struct {
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Start     int64        `json:"start"` // the partition's log start offset
	End       int64        `json:"end"`   // and end (high watermark) when the browse began
	From      int64        `json:"from"`  // the first offset read
	Next      int64        `json:"next"`  // the offset after the last record answered
	Records   []RecordInfo `json:"records"`
	// Note says why fewer records than asked for were answered before
	// the end, if they were.
	Note string `json:"note,omitempty"`
}

// render shows b in the most readable of the formats.
func render(b []byte) Bytes {
	if b == nil {
		return Bytes{Format: "null"}
	}
	out := Bytes{Size: len(b)}
	shown := b
	if len(b) > maxShown {
		shown, out.Truncated = b[:maxShown], true
		// Drop a character cut at the limit, so the text stays UTF-8.
		for i := 1; i < utf8.UTFMax && i <= len(shown); i++ {
			if r := shown[len(shown)-i]; utf8.RuneStart(r) {
				if !utf8.FullRune(shown[len(shown)-i:]) {
					shown = shown[:len(shown)-i]
				}
				break
			}
		}
	} else {
		out.Base64 = base64.StdEncoding.EncodeToString(b)
	}
	trimmed := bytes.TrimSpace(b)
	if !out.Truncated && len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') && json.Valid(trimmed) {
		var pretty bytes.Buffer
		if json.Indent(&pretty, trimmed, "", "  ") == nil {
			out.Format, out.Text = "json", pretty.String()
			return out
		}
	}
	if printable(shown) {
		out.Format, out.Text = "text", string(shown)
		return out
	}
	out.Format, out.Text = "hex", hex.Dump(shown)
	return out
}

// printable reports whether b is UTF-8 text with no control characters but
// tabs and line breaks.
func printable(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return false
		}
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			return false
		}
		b = b[n:]
	}
	return true
}

// browseQuery is a parsed browse request.
type browseQuery struct {
	partition int32
	offset    int64 // -1: not given
	timestamp int64 // Unix ms, -1: not given
	newest    bool  // the last limit records
	limit     int
}

func parseBrowse(r *http.Request) (browseQuery, error) {
	q := browseQuery{offset: -1, timestamp: -1, limit: defaultBrowseLimit}
	v := r.URL.Query()
	intArg := func(name string, lo, hi int64) (int64, bool, error) {
		s := v.Get(name)
		if s == "" {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < lo || n > hi {
			return 0, false, badf("%s=%q: want an integer from %d to %d", name, s, lo, hi)
		}
		return n, true, nil
	}
	p, _, err := intArg("partition", 0, 1<<31-1)
	if err != nil {
		return q, err
	}
	q.partition = int32(p)
	if n, ok, err := intArg("limit", 1, maxBrowseLimit); err != nil {
		return q, err
	} else if ok {
		q.limit = int(n)
	}
	given := 0
	if n, ok, err := intArg("offset", 0, 1<<63-1); err != nil {
		return q, err
	} else if ok {
		q.offset, given = n, given+1
	}
	if s := v.Get("timestamp"); s != "" {
		given++
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
			q.timestamp = n
		} else if t, err := time.Parse(time.RFC3339, s); err == nil {
			q.timestamp = t.UnixMilli()
		} else {
			return q, badf("timestamp=%q: want Unix milliseconds or RFC 3339 (2026-12-04T10:00:00Z)", s)
		}
	}
	switch from := v.Get("from"); from {
	case "", "oldest":
	case "newest":
		q.newest, given = true, given+1
	default:
		return q, badf("from=%q: want oldest or newest", from)
	}
	if given > 1 {
		return q, badf("give one of offset, timestamp and from=newest")
	}
	return q, nil
}

func (c *console) browse(w http.ResponseWriter, r *http.Request) {
	q, err := parseBrowse(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	b, err := c.read(r.Context(), r.PathValue("topic"), q)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// partitionOffset lists one partition's offset at a point.
func partitionOffset(ctx context.Context, cl *client.Client, topic string, partition int32, at client.Offset) (int64, error) {
	offs, err := cl.ListOffsets(ctx, topic, at)
	if err != nil {
		return -1, err
	}
	if int(partition) >= len(offs) {
		return -1, &protocol.Error{Code: protocol.ErrUnknownTopicOrPartition,
			Detail: fmt.Sprintf("topic %q has %d partitions", topic, len(offs))}
	}
	o := offs[partition]
	if o.Err != nil {
		return -1, fmt.Errorf("%s[%d]: list offset %v: %w", topic, partition, at, o.Err)
	}
	return o.Offset, nil
}

// read answers a browse of topic.
func (c *console) read(ctx context.Context, topic string, q browseQuery) (Browse, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	out := Browse{Topic: topic, Partition: q.partition, Records: []RecordInfo{}}
	cl, err := c.client(ctx)
	if err != nil {
		return out, err
	}
	if out.Start, err = partitionOffset(ctx, cl, topic, q.partition, client.AtStart()); err != nil {
		return out, err
	}
	if out.End, err = partitionOffset(ctx, cl, topic, q.partition, client.AtEnd()); err != nil {
		return out, err
	}
	switch {
	case q.offset >= 0:
		out.From = q.offset
	case q.timestamp >= 0:
		if out.From, err = partitionOffset(ctx, cl, topic, q.partition, client.AtTime(time.UnixMilli(q.timestamp))); err != nil {
			return out, err
		}
		if out.From < 0 { // no record at or after the time
			out.From = out.End
		}
	case q.newest:
		out.From = max(out.Start, out.End-int64(q.limit))
	default:
		out.From = out.Start
	}
	out.From = max(out.From, out.Start)
	out.Next = out.From
	if out.From >= out.End {
		return out, nil
	}
	bc, done, err := c.browser(ctx, topic, q.partition, out.From)
	if err != nil {
		return out, err
	}
	defer done()
	pollCtx, stop := context.WithTimeout(ctx, browseWait)
	defer stop()
	for len(out.Records) < q.limit && out.Next < out.End {
		f, err := bc.Poll(pollCtx)
		if pollCtx.Err() != nil && ctx.Err() == nil {
			// Answer what arrived. None at all: the offsets up to the end
			// hold no record a consumer sees (control records), or the
			// leader does not answer.
			out.Note = fmt.Sprintf("no more records arrived within %v", browseWait)
			break
		}
		if err != nil {
			return out, fmt.Errorf("read %s[%d] from %d: %w", topic, q.partition, out.From, err)
		}
		if len(f.Errors) > 0 {
			return out, fmt.Errorf("read %s[%d] from %d: %w", topic, q.partition, out.Next, f.Errors[0])
		}
		for _, rec := range f.Records {
			if rec.Offset < out.Next || rec.Offset >= out.End || len(out.Records) >= q.limit {
				continue
			}
			out.Records = append(out.Records, recordInfo(rec))
			out.Next = rec.Offset + 1
		}
	}
	return out, nil
}

// browser takes a browse slot and returns a new client assigned topic's
// partition from offset, and the func that closes it and frees the slot.
func (c *console) browser(ctx context.Context, topic string, partition int32, offset int64) (*client.Client, func(), error) {
	select {
	case c.browsing <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("wait for a browse slot (%d at once): %w", maxBrowses, ctx.Err())
	}
	bc, err := c.newClient(ctx, client.FetchMaxBytes(maxBrowseBytes, maxBrowseBytes), client.MaxBufferedFetchBytes(maxBrowseBytes))
	if err != nil {
		<-c.browsing
		return nil, nil, err
	}
	bc.Assign(map[client.TopicPartition]client.Offset{{Topic: topic, Partition: partition}: client.At(offset)})
	return bc, func() { bc.Close(); <-c.browsing }, nil
}

func recordInfo(rec *client.Record) RecordInfo {
	ri := RecordInfo{Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp.UnixMilli(),
		Key: render(rec.Key), Value: render(rec.Value), Headers: make([]RecordHeader, len(rec.Headers))}
	for i, h := range rec.Headers {
		ri.Headers[i] = RecordHeader{Key: string(h.Key), Value: render(h.Value)}
	}
	return ri
}

// downloadRecord answers one record's key or value, raw.
func (c *console) downloadRecord(w http.ResponseWriter, r *http.Request) {
	topic, part := r.PathValue("topic"), r.PathValue("part")
	p, err1 := strconv.ParseInt(r.PathValue("partition"), 10, 32)
	o, err2 := strconv.ParseInt(r.PathValue("offset"), 10, 64)
	if err1 != nil || err2 != nil || p < 0 || o < 0 || (part != "key" && part != "value") {
		c.fail(w, r, badf("want /api/topics/TOPIC/records/PARTITION/OFFSET/key or value"))
		return
	}
	b, err := c.readRaw(r.Context(), topic, int32(p), o)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data := b.Value
	if part == "key" {
		data = b.Key
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%d-%d.%s"`, safeName(topic), p, o, part))
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

// readRaw reads the record at offset of topic's partition.
func (c *console) readRaw(ctx context.Context, topic string, partition int32, offset int64) (*client.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	bc, done, err := c.browser(ctx, topic, partition, offset)
	if err != nil {
		return nil, err
	}
	defer done()
	pollCtx, stop := context.WithTimeout(ctx, browseWait)
	defer stop()
	for {
		f, err := bc.Poll(pollCtx)
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, &protocol.Error{Code: protocol.ErrOffsetOutOfRange, Detail: fmt.Sprintf("no record at %s[%d] offset %d", topic, partition, offset)}
		}
		if err != nil {
			return nil, err
		}
		if len(f.Errors) > 0 {
			return nil, fmt.Errorf("read %s[%d] at %d: %w", topic, partition, offset, f.Errors[0])
		}
		for _, rec := range f.Records {
			switch {
			case rec.Offset == offset:
				return rec, nil
			case rec.Offset > offset: // compacted away, or a control record
				return nil, &protocol.Error{Code: protocol.ErrOffsetOutOfRange, Detail: fmt.Sprintf("no record at %s[%d] offset %d", topic, partition, offset)}
			}
		}
	}
}

// safeName keeps the characters of a topic name that need no quoting in a
// file name (topic names are [a-zA-Z0-9._-] already; this is belt and
// braces for the header).
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}
