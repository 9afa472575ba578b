package protocol

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// bombs are bodies that declare more than they hold, for every API: counts,
// lengths and strings far past the end, negative lengths, truncations.
func bombs() [][]byte {
	return [][]byte{
		nil,
		{0},
		body(int32(1e9)),
		body(int32(-1)),
		body(int32(-2)),
		body(int16(0), int32(0), int32(0x7fffffff)),
		body(int16(1), int32(0), int32(1), "t", int32(1), int32(0), int32(100<<20)),
		body(int16(1), int32(0), int32(1), "t", int32(1), int32(0), int32(-7)),
		body(int32(1), int16(0x7fff)),
		body(int32(1), int16(-1)),
		body(int16(ErrNotController)),
		body(fetchHead(), int32(1), "t", int32(1000000), make([]byte, 12)),
	}
}

// fuzzMessages is the shared body of FuzzRequest and FuzzResponse: decode
// arbitrary bytes as the chosen API's message; whatever decodes must
// re-encode to the same bytes (every field has one encoding), and decoding
// into a reused struct must give the same result.
func fuzzMessages(f *testing.F, samples []Message, newMsg func(APIKey) Message, errorOnlyOK bool) {
	for _, m := range samples {
		f.Add(int16(m.Key()), int16(0), m.Append(nil, 0))
		enc := m.Append(nil, 0)
		f.Add(int16(m.Key()), int16(0), enc[:len(enc)/2]) // truncated
		if _, v, _ := m.Key().Versions(); v > 0 {
			f.Add(int16(m.Key()), v, m.Append(nil, v))
		}
	}
	for _, k := range allKeys() {
		for _, b := range bombs() {
			f.Add(int16(k), int16(0), b)
		}
	}
	f.Add(int16(Produce), int16(5), []byte{})
	f.Fuzz(func(t *testing.T, key, version int16, b []byte) {
		m := newMsg(APIKey(key))
		if m == nil {
			return
		}
		var d Decoder
		d.Reset(b)
		if err := m.Decode(&d, version); err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("untyped decode error: %v", err)
			}
			return
		}
		enc := m.Append(nil, version)
		if errorOnlyOK && len(b) == 2 {
			b = enc // an error-only body re-encodes as a whole response
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("%T: decoded body re-encodes differently:\n in  % x\n out % x", m, b, enc)
		}
		d.Reset(enc)
		if err := m.Decode(&d, version); err != nil {
			t.Fatalf("%T: re-decode into the reused struct: %v", m, err)
		}
		if again := m.Append(nil, version); !bytes.Equal(again, enc) {
			t.Fatalf("%T: decode into a reused struct differs", m)
		}
	})
}

func FuzzRequest(f *testing.F) {
	fuzzMessages(f, sampleRequests(), NewRequest, false)
}

func FuzzResponse(f *testing.F) {
	fuzzMessages(f, sampleResponses(), NewResponse, true)
}

// FuzzProduceRequest gives the broker's busiest decoder a target of its own,
// so the fuzzer's time is not spread over every API.
func FuzzProduceRequest(f *testing.F) {
	f.Add(sampleRequests()[0].Append(nil, 0))
	for _, b := range bombs() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r ProduceRequest
		if !decodes(t, &r, b) {
			return
		}
		if enc := r.Append(nil, 0); !bytes.Equal(enc, b) {
			t.Fatalf("re-encodes differently")
		}
	})
}

// decodes decodes b into m at v0, failing the test on an untyped error.
func decodes(t *testing.T, m Message, b []byte) bool {
	err := Decode(m, b, 0)
	if err != nil && !errors.Is(err, ErrMalformed) {
		t.Fatalf("untyped error %v", err)
	}
	return err == nil
}

// FuzzFetchResponse is the client's busiest decoder; it also checks the
// split-frame encoding of whatever decodes against the copying one.
func FuzzFetchResponse(f *testing.F) {
	f.Add(sampleResponses()[1].Append(nil, 0))
	for _, b := range bombs() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r FetchResponse
		if !decodes(t, &r, b) {
			return
		}
		var records [][]byte
		for _, tp := range r.Topics {
			for _, p := range tp.Partitions {
				records = append(records, p.Records)
			}
		}
		want, _ := AppendResponse(nil, 77, 0, &r)
		if !bytes.Equal(splitWire(t, &r, records), want) {
			t.Fatal("split frame differs from the copied encoding")
		}
	})
}

// FuzzFrameReader feeds arbitrary streams to a FrameReader with a small
// maximum and checks it against a direct parse of the same bytes: same
// frames, and the right kind of error where the stream goes bad.
func FuzzFrameReader(f *testing.F) {
	f.Add(append(frameOf([]byte("hello")), frameOf(nil)...), uint16(64))
	f.Add(appendInt32(nil, -1), uint16(64))
	f.Add(appendInt32(nil, DefaultMaxFrameSize), uint16(0))
	f.Add(append(appendInt32(nil, 100), "short"...), uint16(200))
	f.Add([]byte{0, 0, 1}, uint16(10))
	f.Add(frameOf(make([]byte, 65)), uint16(64))
	f.Fuzz(func(t *testing.T, stream []byte, max uint16) {
		limit := int(max)
		if limit == 0 {
			limit = DefaultMaxFrameSize
		}
		fr := NewFrameReader(bytes.NewReader(stream), int(max))
		rest := stream
		for {
			got, err := fr.Next()
			switch {
			case len(rest) == 0:
				if err != io.EOF {
					t.Fatalf("at end of stream: %v", err)
				}
				return
			case len(rest) < 4:
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("truncated length: %v", err)
				}
				return
			}
			n := int64(int32(be.Uint32(rest)))
			rest = rest[4:]
			switch {
			case n < 0 || n > int64(limit):
				var fse *FrameSizeError
				if !errors.As(err, &fse) || fse.Length != n {
					t.Fatalf("length %d (max %d): %v", n, limit, err)
				}
				return
			case n > int64(len(rest)):
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("truncated frame: %v", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, rest[:n]) {
				t.Fatalf("frame of %d: got %d bytes, %v", n, len(got), err)
			}
			rest = rest[n:]
		}
	})
}

// FuzzRequestHeader checks the header parser never fails untyped and that
// what it accepts re-encodes to the same bytes (a null client id aside).
func FuzzRequestHeader(f *testing.F) {
	f.Add(body(int16(1), int16(0), int32(7), "cli", []byte("BODY")))
	f.Add(body(int16(1), int16(0), int32(7), int16(-1)))
	f.Add(body(int16(1), int16(0), int32(7), int16(0x7fff)))
	f.Add([]byte{0, 1})
	f.Fuzz(func(t *testing.T, frame []byte) {
		var h RequestHeader
		b, err := h.Decode(frame)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		re := append(h.Append(nil), b...)
		if int16(be.Uint16(frame[8:])) == -1 {
			re = append(append(body(int16(h.Key), h.Version, h.CorrelationID), 0xff, 0xff), b...)
		}
		if !bytes.Equal(re, frame) {
			t.Fatalf("header re-encodes differently:\n% x\n% x", frame, re)
		}
	})
}
