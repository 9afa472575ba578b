package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzDecodeRequest feeds arbitrary frames to the request decoder: it
// must never panic, and whatever it decides to answer must encode.
func FuzzDecodeRequest(f *testing.F) {
	for key, vr := range Table {
		for _, v := range []int16{vr.Min, vr.Max} {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			f.Add(frame(key, v, 1, req.IsFlexible(), req.AppendTo(nil))[4:])
		}
	}
	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(7)
	produce.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: make([]byte, 70)}}}}
	f.Add(frame(0, 7, 2, false, produce.AppendTo(nil))[4:])
	f.Add(frame(apiVersionsKey, 9, 3, true, nil)[4:])
	f.Add([]byte{0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := decodeRequest(b)
		if d.close != "" {
			return
		}
		answer := d.answer
		if answer == nil {
			if d.req == nil {
				t.Fatal("no request, no answer and no reason to close")
			}
			answer = failed(d.req, 0)
		}
		if answer == nil {
			t.Fatalf("key %d: no response to encode", d.h.key)
		}
		appendResponse(nil, d.h.correlation, d.flexible, answer)
	})
}
