package protocol

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// peer serves the far end of a pipe: for each request frame it calls
// answer with the decoded header and body and writes what it returns (nil:
// no answer, the peer keeps reading). It stops when the pipe closes.
func peer(t *testing.T, answer func(h RequestHeader, body []byte) []byte) net.Conn {
	t.Helper()
	near, far := net.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer far.Close()
		fr := NewFrameReader(far, 0)
		for {
			frame, err := fr.Next()
			if err != nil {
				return
			}
			var h RequestHeader
			body, err := h.Decode(frame)
			if err != nil {
				t.Error(err)
				return
			}
			if out := answer(h, body); out != nil {
				if _, err := far.Write(out); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() { near.Close(); wg.Wait() })
	return near
}

// echo answers a ControllerForward with its payload, under the correlation
// id corr(h).
func echo(t *testing.T, corr func(RequestHeader) int32) func(RequestHeader, []byte) []byte {
	return func(h RequestHeader, body []byte) []byte {
		var req ControllerForwardRequest
		if err := Decode(&req, body, h.Version); err != nil {
			t.Error(err)
			return nil
		}
		out, err := AppendResponse(nil, corr(h), h.Version, &ControllerForwardResponse{Payload: req.Payload})
		if err != nil {
			t.Error(err)
		}
		return out
	}
}

func sameCorr(h RequestHeader) int32 { return h.CorrelationID }

func soon() time.Time { return time.Now().Add(5 * time.Second) }

func TestConnRoundTrips(t *testing.T) {
	var mu sync.Mutex
	var seen []RequestHeader
	nc := peer(t, func(h RequestHeader, body []byte) []byte {
		mu.Lock()
		seen = append(seen, h)
		mu.Unlock()
		return echo(t, sameCorr)(h, body)
	})
	c := NewConn(context.Background(), nc, "follower-1", 0)
	defer c.Close()
	for _, p := range []string{"one", "two", "three"} {
		var resp ControllerForwardResponse
		if err := c.RoundTrip(soon(), &ControllerForwardRequest{Payload: []byte(p)}, &resp, 0); err != nil {
			t.Fatal(err)
		}
		if string(resp.Payload) != p {
			t.Fatalf("payload %q, want %q", resp.Payload, p)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, h := range seen {
		if h.Key != ControllerForward || h.CorrelationID != int32(i+1) || h.ClientID != "follower-1" {
			t.Errorf("request %d: header %+v", i, h)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var resp ControllerForwardResponse
	if err := c.RoundTrip(soon(), &ControllerForwardRequest{}, &resp, 0); !errors.Is(err, ErrNotSent) {
		t.Fatalf("after Close: %v, want ErrNotSent", err)
	}
}

// Every failure after the request went out breaks the Conn for good, and
// is not ErrNotSent: the peer may have acted on the request.
func TestConnFailures(t *testing.T) {
	tests := []struct {
		name     string
		answer   func(t *testing.T) func(RequestHeader, []byte) []byte
		maxFrame int
		deadline time.Duration
		is       error
	}{
		{"wrong correlation id", func(t *testing.T) func(RequestHeader, []byte) []byte {
			return echo(t, func(h RequestHeader) int32 { return h.CorrelationID + 1 })
		}, 0, 5 * time.Second, nil},
		{"frame over the maximum", func(t *testing.T) func(RequestHeader, []byte) []byte {
			return func(h RequestHeader, _ []byte) []byte {
				out, _ := AppendResponse(nil, h.CorrelationID, 0, &ControllerForwardResponse{Payload: make([]byte, 100)})
				return out
			}
		}, 50, 5 * time.Second, ErrFrameSize},
		{"malformed response", func(t *testing.T) func(RequestHeader, []byte) []byte {
			return func(h RequestHeader, _ []byte) []byte {
				return frameOf(appendInt16(appendInt32(nil, h.CorrelationID), 0)) // a payload length is missing
			}
		}, 0, 5 * time.Second, ErrMalformed},
		{"no answer before the deadline", func(t *testing.T) func(RequestHeader, []byte) []byte {
			return func(RequestHeader, []byte) []byte { return nil }
		}, 0, 50 * time.Millisecond, os.ErrDeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConn(context.Background(), peer(t, tt.answer(t)), "", tt.maxFrame)
			defer c.Close()
			var resp ControllerForwardResponse
			err := c.RoundTrip(time.Now().Add(tt.deadline), &ControllerForwardRequest{Payload: []byte("x")}, &resp, 0)
			if err == nil || errors.Is(err, ErrNotSent) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("RoundTrip: %v, want a sent failure matching %v", err, tt.is)
			}
			again := c.RoundTrip(soon(), &ControllerForwardRequest{}, &resp, 0)
			if !errors.Is(again, ErrNotSent) || (tt.is != nil && !errors.Is(again, tt.is)) {
				t.Fatalf("RoundTrip on a broken Conn: %v, want ErrNotSent and the first failure", again)
			}
		})
	}
}

// A request that cannot be encoded is not sent and leaves the Conn usable.
func TestConnEncodeFailureNotSent(t *testing.T) {
	c := NewConn(context.Background(), peer(t, echo(t, sameCorr)), "", 0)
	defer c.Close()
	var resp ControllerForwardResponse
	err := c.RoundTrip(soon(), &ControllerForwardRequest{}, &resp, 99)
	if !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("RoundTrip at v99: %v, want ErrNotSent and ErrUnsupportedVersion", err)
	}
	if err := c.RoundTrip(soon(), &ControllerForwardRequest{Payload: []byte("ok")}, &resp, 0); err != nil || string(resp.Payload) != "ok" {
		t.Fatalf("next RoundTrip: %v, payload %q", err, resp.Payload)
	}
}

// The Conn's context ending cuts a waiting RoundTrip short, and one that
// ended before the request was written sends nothing.
func TestConnContext(t *testing.T) {
	t.Run("while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan []byte, 1)
		c := NewConn(ctx, peer(t, func(_ RequestHeader, body []byte) []byte {
			got <- bytes.Clone(body)
			cancel()
			return nil
		}), "", 0)
		defer c.Close()
		start := time.Now()
		var resp ControllerForwardResponse
		err := c.RoundTrip(time.Now().Add(time.Minute), &ControllerForwardRequest{Payload: []byte("x")}, &resp, 0)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrNotSent) {
			t.Fatalf("RoundTrip: %v, want context.Canceled and not ErrNotSent", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("RoundTrip returned after %v", d)
		}
		<-got
	})
	t.Run("before sending", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		sent := make(chan struct{}, 1)
		c := NewConn(ctx, peer(t, func(RequestHeader, []byte) []byte { sent <- struct{}{}; return nil }), "", 0)
		defer c.Close()
		var resp ControllerForwardResponse
		err := c.RoundTrip(soon(), &ControllerForwardRequest{}, &resp, 0)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrNotSent) {
			t.Fatalf("RoundTrip: %v, want context.Canceled and ErrNotSent", err)
		}
		select {
		case <-sent:
			t.Fatal("the peer received a request")
		default:
		}
	})
}

// An interjected request goes out while a RoundTrip waits; its answer,
// written after the waiting request's, is dropped by the next RoundTrip,
// which gets its own.
func TestConnInterject(t *testing.T) {
	parked := make(chan struct{})
	var held []byte // the answer to the parked request, sent with the interjected one's
	nc := peer(t, func(h RequestHeader, body []byte) []byte {
		out := echo(t, sameCorr)(h, body)
		var req ControllerForwardRequest
		if err := Decode(&req, body, h.Version); err != nil {
			t.Error(err)
			return nil
		}
		switch string(req.Payload) {
		case "park":
			held = out
			close(parked)
			return nil
		case "wake":
			if h.CorrelationID != 2 {
				t.Errorf("interjected request has correlation id %d, want 2", h.CorrelationID)
			}
			return append(held, out...)
		}
		return out
	})
	c := NewConn(context.Background(), nc, "follower-1", 0)
	defer c.Close()
	errc := make(chan error, 1)
	go func() {
		<-parked
		errc <- c.Interject(soon(), &ControllerForwardRequest{Payload: []byte("wake")}, 0)
	}()
	for _, p := range []string{"park", "next"} {
		var resp ControllerForwardResponse
		if err := c.RoundTrip(soon(), &ControllerForwardRequest{Payload: []byte(p)}, &resp, 0); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if string(resp.Payload) != p {
			t.Fatalf("payload %q, want %q", resp.Payload, p)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("Interject: %v", err)
	}
	c.Close()
	if err := c.Interject(soon(), &ControllerForwardRequest{}, 0); !errors.Is(err, ErrNotSent) {
		t.Fatalf("Interject after Close: %v, want ErrNotSent", err)
	}
}
