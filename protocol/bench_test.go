package protocol

import (
	"bytes"
	"fmt"
	"testing"
)

const (
	benchPartitions = 16
	benchRecordSize = 64 << 10
)

func benchProduce() *ProduceRequest {
	r := &ProduceRequest{Acks: AcksAll, TimeoutMs: 30000, Topics: []ProduceTopic{{Name: "bench"}}}
	for p := range benchPartitions {
		r.Topics[0].Partitions = append(r.Topics[0].Partitions,
			ProducePartition{Partition: int32(p), Records: bytes.Repeat([]byte{byte(p)}, benchRecordSize)})
	}
	return r
}

func benchFetch() (*FetchResponse, [][]byte) {
	r := &FetchResponse{Topics: []FetchTopicResponse{{Name: "bench"}}}
	var records [][]byte
	for p := range benchPartitions {
		rec := bytes.Repeat([]byte{byte(p)}, benchRecordSize)
		records = append(records, rec)
		r.Topics[0].Partitions = append(r.Topics[0].Partitions,
			FetchPartitionResponse{Partition: int32(p), HighWatermark: 1e6, LastStableOffset: 1e6, Records: rec})
	}
	return r, records
}

// benchEncode benchmarks appending a frame of size bytes into a reused
// buffer.
func benchEncode(size int64, appendFrame func([]byte) []byte) func(*testing.B) {
	return func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(size)
		buf := make([]byte, 0, size)
		for b.Loop() {
			buf = appendFrame(buf[:0])
		}
	}
}

func BenchmarkProduceRequest(b *testing.B) {
	req := benchProduce()
	h := RequestHeader{Key: Produce, CorrelationID: 1, ClientID: "bench-client"}
	frame, _ := AppendRequest(nil, &h, req)
	size := int64(len(frame))

	b.Run("encode", benchEncode(size, func(buf []byte) []byte {
		buf, _ = AppendRequest(buf, &h, req)
		return buf
	}))
	b.Run("decode", func(b *testing.B) {
		// The broker's path: frame → header → body into reused structs.
		b.ReportAllocs()
		b.SetBytes(size)
		var (
			hdr RequestHeader
			d   Decoder
			r   ProduceRequest
		)
		for b.Loop() {
			body, err := hdr.Decode(frame[4:])
			if err != nil {
				b.Fatal(err)
			}
			d.Reset(body)
			if err := r.Decode(&d, hdr.Version); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read+decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(size)
		src := bytes.NewReader(frame)
		fr := NewFrameReader(src, 0)
		var (
			hdr RequestHeader
			d   Decoder
			r   ProduceRequest
		)
		for b.Loop() {
			src.Reset(frame)
			f, err := fr.Next()
			if err != nil {
				b.Fatal(err)
			}
			body, _ := hdr.Decode(f)
			d.Reset(body)
			if err := r.Decode(&d, hdr.Version); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkFetchResponse(b *testing.B) {
	resp, records := benchFetch()
	sizes := sizesOf(records)
	frame, _ := AppendResponse(nil, 1, 0, resp)
	size := int64(len(frame))

	b.Run("encode-copy", benchEncode(size, func(buf []byte) []byte {
		buf, _ = AppendResponse(buf, 1, 0, resp)
		return buf
	}))
	b.Run("encode-split", func(b *testing.B) {
		// The broker's path: head bytes plus holes, records never copied.
		b.ReportAllocs()
		b.SetBytes(size)
		var (
			f    SplitFrame
			bufs = make([][]byte, 0, 2*benchPartitions+1)
		)
		for b.Loop() {
			if err := resp.AppendSplitFrame(&f, 1, 0, sizes); err != nil {
				b.Fatal(err)
			}
			var err error
			if bufs, err = f.Buffers(bufs[:0], records); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		// The client's path: records alias the frame buffer.
		b.ReportAllocs()
		b.SetBytes(size)
		var (
			d Decoder
			r FetchResponse
		)
		for b.Loop() {
			_, body, _ := ParseResponse(frame[4:])
			d.Reset(body)
			if err := r.Decode(&d, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMetadataResponseDecode measures a control-plane message with
// many small fields, for scale.
func BenchmarkMetadataResponseDecode(b *testing.B) {
	r := &MetadataResponse{ClusterID: "c", ControllerID: 1}
	for i := range 3 {
		r.Brokers = append(r.Brokers, BrokerMetadata{ID: int32(i), Host: fmt.Sprintf("broker-%d", i), Port: 9092})
	}
	for t := range 10 {
		tm := TopicMetadata{Name: fmt.Sprintf("topic-%d", t)}
		for p := range 12 {
			tm.Partitions = append(tm.Partitions, PartitionMetadata{Partition: int32(p), Leader: int32(p % 3),
				Replicas: []int32{0, 1, 2}, ISR: []int32{0, 1, 2}})
		}
		r.Topics = append(r.Topics, tm)
	}
	enc := r.Append(nil, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	var (
		d   Decoder
		got MetadataResponse
	)
	for b.Loop() {
		d.Reset(enc)
		if err := got.Decode(&d, 0); err != nil {
			b.Fatal(err)
		}
	}
}
