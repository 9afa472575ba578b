package protocol

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
)

// DefaultMaxFrameSize is the largest frame a FrameReader accepts unless
// configured otherwise: 100 MiB, counted after the length prefix.
const DefaultMaxFrameSize = 100 << 20

const (
	// frameChunk is how much a FrameReader grows its buffer by before the
	// bytes to fill it have arrived; beyond it the buffer at most doubles
	// per read, so memory tracks the bytes actually received and a length
	// prefix alone cannot make the reader allocate the declared size.
	frameChunk = 64 << 10
	// retainLimit is the largest buffer a FrameReader keeps between frames;
	// a bigger one, grown for a rare big frame, is dropped so an idle
	// connection does not pin it.
	retainLimit = 8 << 20
	// minFrameBuffer is the smallest buffer a FrameReader allocates, so a
	// stream of small frames of varying sizes settles on one buffer.
	minFrameBuffer = 4 << 10
	// readBufferSize is the bufio buffer under a FrameReader.
	readBufferSize = 64 << 10
)

// FrameReader reads length-prefixed frames from a stream. It refuses a
// negative length or one above its maximum with a *FrameSizeError before
// reading or allocating anything for the frame, after which the caller must
// close the connection.
type FrameReader struct {
	r    *bufio.Reader
	max  int
	buf  []byte
	len  [4]byte
	hint int // the largest frame a caller took with Detach
	// alloc, if set, supplies the buffer for a frame after a Detach
	// (SetAlloc).
	alloc func(n int) []byte
}

// SetAlloc makes the reader take the buffer for the frame after each
// Detach from alloc, called with the size it would allocate (the frame's
// length, at most the largest frame detached so far), instead of
// allocating one: a caller that gets its detached frames back when it is
// done with them can hand them out again. alloc may return nil (the reader
// allocates) or a buffer of any capacity (one too small grows as the
// frame's bytes arrive, as any buffer does); its contents are overwritten.
func (fr *FrameReader) SetAlloc(alloc func(n int) []byte) { fr.alloc = alloc }

// NewFrameReader reads frames from r, refusing any longer than maxFrameSize
// bytes (after the length prefix); maxFrameSize <= 0 means
// DefaultMaxFrameSize.
func NewFrameReader(r io.Reader, maxFrameSize int) *FrameReader {
	if maxFrameSize <= 0 {
		maxFrameSize = DefaultMaxFrameSize
	}
	return &FrameReader{r: bufio.NewReaderSize(r, readBufferSize), max: maxFrameSize}
}

// Next reads the next frame and returns its bytes after the length prefix.
// The slice is valid until the next call to Next; record sets decoded from
// it alias it. At a clean end of stream between frames Next returns io.EOF;
// a stream that ends inside a frame gives io.ErrUnexpectedEOF. After any
// error but io.EOF the position in the stream is lost (a read deadline that
// fires mid-frame included): close the connection.
func (fr *FrameReader) Next() ([]byte, error) {
	if _, err := io.ReadFull(fr.r, fr.len[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("frame length: %w", err)
		}
		return nil, err // io.EOF at a frame boundary, or the stream's error
	}
	n := int64(int32(be.Uint32(fr.len[:])))
	if n < 0 || n > int64(fr.max) {
		return nil, &FrameSizeError{Length: n, Max: fr.max}
	}
	if cap(fr.buf) > retainLimit && n <= retainLimit {
		fr.buf = nil
	}
	if fr.buf == nil && fr.hint > 0 {
		// After a Detach: a frame of hint bytes has arrived whole from
		// this stream, so a buffer of up to that size is not one a
		// length prefix alone made the reader allocate.
		size := max(min(int(n), fr.hint), minFrameBuffer)
		if fr.alloc != nil {
			fr.buf = fr.alloc(size)[:0]
		}
		if fr.buf == nil {
			fr.buf = make([]byte, 0, size)
		}
	}
	buf := fr.buf[:0]
	for len(buf) < int(n) {
		// Read straight into the buffer when it is big enough; otherwise
		// grow by at most max(frameChunk, what has arrived) before reading.
		want := int(n) - len(buf)
		if free := cap(buf) - len(buf); want > free {
			step := max(frameChunk, len(buf))
			if want > step {
				want = step
			}
			if want > free {
				grown := make([]byte, len(buf), max(len(buf)+want, minFrameBuffer))
				copy(grown, buf)
				buf = grown
			}
		}
		m, err := io.ReadFull(fr.r, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+m]
		if err != nil {
			fr.buf = buf[:0]
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("frame of %d bytes: read %d: %w", n, len(buf), err)
		}
	}
	fr.buf = buf
	return buf, nil
}

// Detach hands the frame Next last returned to the caller: the reader
// will not read into its bytes again, so they stay valid after the next
// call to Next, and the caller need not copy them. The next frame gets a
// buffer of its own, allocated at once at its length up to the largest
// frame detached so far (a consumer reading fetch responses allocates
// once per response and copies nothing), or taken from SetAlloc's
// function.
func (fr *FrameReader) Detach() {
	fr.hint = max(fr.hint, len(fr.buf))
	fr.buf = nil
}

// RequestHeader is the header at the start of every request frame.
type RequestHeader struct {
	Key           APIKey
	Version       int16
	CorrelationID int32
	ClientID      string // "" encodes as length 0; a null (-1) reads as ""
}

// requestHeaderMinSize is key, version, correlation id and the client id's
// length.
const requestHeaderMinSize = 10

// Append writes the header (without the frame length).
func (h *RequestHeader) Append(dst []byte) []byte {
	dst = appendInt16(dst, int16(h.Key))
	dst = appendInt16(dst, h.Version)
	dst = appendInt32(dst, h.CorrelationID)
	return appendString(dst, h.ClientID)
}

// Decode parses the header at the start of a request frame (as returned by
// FrameReader.Next) and returns the body. It does not check that the key
// and version are supported: the broker answers those with
// AppendErrorResponse, which needs the header. ClientID is reused when it
// repeats, so a connection's header decodes do not allocate.
func (h *RequestHeader) Decode(frame []byte) (body []byte, err error) {
	if len(frame) < requestHeaderMinSize {
		return nil, &MalformedError{What: "request header", Reason: fmt.Sprintf("%d bytes, need at least %d", len(frame), requestHeaderMinSize)}
	}
	h.Key = APIKey(be.Uint16(frame))
	h.Version = int16(be.Uint16(frame[2:]))
	h.CorrelationID = int32(be.Uint32(frame[4:]))
	n := int(int16(be.Uint16(frame[8:])))
	rest := frame[requestHeaderMinSize:]
	switch {
	case n == -1:
		h.ClientID = ""
		return rest, nil
	case n < 0 || n > len(rest):
		return nil, &MalformedError{What: "request header", Field: "client_id",
			Reason: fmt.Sprintf("length %d with %d bytes remaining", n, len(rest))}
	}
	if string(rest[:n]) != h.ClientID {
		h.ClientID = string(rest[:n])
	}
	return rest[n:], nil
}

// AppendRequest appends a whole request frame — length, header, body — to
// dst. It refuses a version of the key this build does not support, a
// header whose key is not the message's, and a frame too long for the i32
// length, leaving dst as it was.
func AppendRequest(dst []byte, h *RequestHeader, req Message) ([]byte, error) {
	if h.Key != req.Key() {
		return dst, fmt.Errorf("request header says %v, message is %v", h.Key, req.Key())
	}
	if !h.Key.Supports(h.Version) {
		return dst, fmt.Errorf("%v request v%d: %w", h.Key, h.Version, ErrUnsupportedVersion)
	}
	start := len(dst)
	dst = appendInt32(dst, 0)
	dst = h.Append(dst)
	dst = req.Append(dst, h.Version)
	return patchLength(dst, start)
}

// AppendResponse appends a whole response frame — length, correlation id,
// body — to dst, with the same checks as AppendRequest.
func AppendResponse(dst []byte, correlationID int32, version int16, resp Message) ([]byte, error) {
	if !resp.Key().Supports(version) {
		return dst, fmt.Errorf("%v response v%d: %w", resp.Key(), version, ErrUnsupportedVersion)
	}
	start := len(dst)
	dst = appendInt32(dst, 0)
	dst = appendInt32(dst, correlationID)
	dst = resp.Append(dst, version)
	return patchLength(dst, start)
}

func patchLength(dst []byte, start int) ([]byte, error) {
	n := len(dst) - start - 4
	if n > math.MaxInt32 {
		return dst[:start], fmt.Errorf("frame of %d bytes exceeds the i32 length", n)
	}
	be.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// AppendErrorResponse appends a response frame answering the request with
// header h by code alone, whatever its key and version — the uniform error
// rule: the body is the i16 code, which every response decoder recognises.
// For ApiVersions it is a whole v0 ApiVersions response carrying the code
// and the supported APIs, so a client that asked with a version the broker
// does not know still learns which versions to use.
func AppendErrorResponse(dst []byte, h *RequestHeader, code ErrorCode) []byte {
	start := len(dst)
	dst = appendInt32(dst, 0)
	dst = appendInt32(dst, h.CorrelationID)
	if h.Key == APIVersions {
		r := APIVersionsResponse{ErrorCode: code, APIs: SupportedAPIs()}
		dst = r.Append(dst, 0)
	} else {
		dst = appendInt16(dst, int16(code))
	}
	dst, _ = patchLength(dst, start) // a few dozen bytes: cannot overflow
	return dst
}

// ParseResponse splits a response frame (as returned by FrameReader.Next)
// into its correlation id and body.
func ParseResponse(frame []byte) (correlationID int32, body []byte, err error) {
	if len(frame) < 4 {
		return 0, nil, &MalformedError{What: "response header", Reason: fmt.Sprintf("%d bytes, need 4", len(frame))}
	}
	return int32(be.Uint32(frame)), frame[4:], nil
}
