package record

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// The records block of a compressed batch is one stream of the codec, in
// the framing Kafka's clients use: gzip members, a raw snappy block (xerial
// framing is also read, as Kafka's Java producer writes it), an LZ4 frame
// and a zstd frame. Encoders are pooled; decoders belong to the Reader that
// uses them. Every decoder writes into a buffer that never grows past the
// caller's limit, so a small block that claims or inflates to a huge output
// (a decompression bomb) is refused having allocated at most about twice
// the limit, never its own size.

// errOverLimit reports output past the decompression limit.
var errOverLimit = errors.New("output over the decompression limit")

// compress appends the compressed form of src to dst.
func compress(c Codec, dst, src []byte) ([]byte, error) {
	switch c {
	case Gzip:
		e := gzipEncoders.Get().(*streamEncoder[*gzip.Writer])
		defer gzipEncoders.Put(e)
		return e.encode(dst, src)
	case Snappy:
		n := snappy.MaxEncodedLen(len(src))
		if n < 0 {
			return dst, fmt.Errorf("snappy: %d bytes too large to compress", len(src))
		}
		start := len(dst)
		dst = grow(dst, n)
		out := snappy.Encode(dst[start:start+n], src)
		return dst[:start+len(out)], nil
	case LZ4:
		e := lz4Encoders.Get().(*streamEncoder[*lz4.Writer])
		defer lz4Encoders.Put(e)
		return e.encode(dst, src)
	case Zstd:
		enc, err := zstdEncoder()
		if err != nil {
			return dst, err
		}
		return enc.EncodeAll(src, dst), nil
	}
	return dst, fmt.Errorf("unknown codec %d", c)
}

// streamWriter is the part of gzip.Writer and lz4.Writer a streamEncoder
// uses.
type streamWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// streamEncoder is a pooled stream compressor writing into a byte slice.
type streamEncoder[W streamWriter] struct {
	w   W
	out appendWriter
}

func (e *streamEncoder[W]) encode(dst, src []byte) ([]byte, error) {
	e.out.b = dst
	e.w.Reset(&e.out)
	_, err := e.w.Write(src)
	if cerr := e.w.Close(); err == nil {
		err = cerr
	}
	dst, e.out.b = e.out.b, nil
	return dst, err
}

// appendWriter is an io.Writer appending to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

var (
	gzipEncoders = sync.Pool{New: func() any {
		return &streamEncoder[*gzip.Writer]{w: gzip.NewWriter(nil)}
	}}
	lz4Encoders = sync.Pool{New: func() any {
		w := lz4.NewWriter(nil)
		// Kafka's own LZ4 output uses 64 KiB blocks; larger ones only cost
		// memory per pooled writer and per reader.
		// Should the options fail, the defaults still write a valid frame.
		_ = w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ConcurrencyOption(1))
		return &streamEncoder[*lz4.Writer]{w: w}
	}}
	zstdEnc     *zstd.Encoder
	zstdEncErr  error
	zstdEncOnce sync.Once
)

// zstdEncoder is shared: EncodeAll is safe for concurrent use and keeps its
// own pool of block encoders, and it starts no goroutines.
func zstdEncoder() (*zstd.Encoder, error) {
	zstdEncOnce.Do(func() {
		// The batch CRC already covers the compressed bytes; zstd's own
		// checksum would only cost time.
		zstdEnc, zstdEncErr = zstd.NewWriter(nil, zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true))
	})
	return zstdEnc, zstdEncErr
}

// zstdWindowFloor is the smallest bound a zstd decoder is given. A zstd
// decoder refuses frames whose window exceeds its bound, and a streamed
// frame (no content size, as Kafka's Java producer writes) declares its
// encoder's window — up to 8 MiB at the usual levels — however little it
// holds. The caller's smaller limit is enforced on the output instead.
const zstdWindowFloor = 8 << 20

// zstdDecoders holds one DecodeAll-only decoder per bound in use (a few:
// the default and the configured limits). DecodeAll is safe for concurrent
// use, and such a decoder starts no goroutines, so nothing needs closing.
var zstdDecoders sync.Map // int -> *zstd.Decoder

func zstdDecoder(bound int) (*zstd.Decoder, error) {
	if d, ok := zstdDecoders.Load(bound); ok {
		return d.(*zstd.Decoder), nil
	}
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderMaxMemory(uint64(bound)),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderConcurrency(0))
	if err != nil {
		return nil, err
	}
	actual, _ := zstdDecoders.LoadOrStore(bound, d)
	return actual.(*zstd.Decoder), nil
}

// decodeZstd decodes src into dst[:0]. A frame that declares its content
// size (EncodeAll writes one, so sluice's producers do) is refused at once
// if over the limit, else decoded in one DecodeAll into a buffer of that
// size. Anything else — a stream without content size, a size that lied —
// is decoded as a stream into a buffer capped at the limit.
func (d *decompressor) decodeZstd(dst, src []byte, limit int) ([]byte, error) {
	bound := max(limit, zstdWindowFloor)
	var h zstd.Header
	if h.Decode(src) == nil && h.HasFCS {
		if h.FrameContentSize > uint64(limit) {
			return dst[:0], errOverLimit
		}
		dec, err := zstdDecoder(bound)
		if err != nil {
			return dst[:0], err
		}
		if c := capStep(int(h.FrameContentSize), limit+1); cap(dst) < c {
			dst = make([]byte, 0, c)
		}
		out, err := dec.DecodeAll(src, dst[:0])
		switch {
		case err == nil && len(out) > limit:
			return out[:0], errOverLimit
		case err == nil:
			return out, nil
		case !errors.Is(err, zstd.ErrDecoderSizeExceeded) && !errors.Is(err, zstd.ErrFrameSizeExceeded):
			return out[:0], err
		}
		dst = out[:0] // possibly grown past the limit by one block: reuse it
	}
	if d.zs == nil || d.zsBound != bound {
		// Concurrency 1 decodes synchronously, with no goroutines.
		zs, err := zstd.NewReader(nil,
			zstd.WithDecoderMaxMemory(uint64(bound)),
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true))
		if err != nil {
			return dst[:0], err
		}
		d.zs, d.zsBound = zs, bound
	}
	d.src.Reset(src)
	if err := d.zs.Reset(&d.src); err != nil {
		return dst[:0], err
	}
	return readCapped(d.zs, dst, len(src), limit)
}

// decompressor holds the stream decoders one Reader reuses.
type decompressor struct {
	src bytes.Reader
	gz  *gzip.Reader
	lz  *lz4.Reader
	zs  *zstd.Decoder // streaming, for frames without a content size
	// zsBound is the bound zs was made with.
	zsBound int
}

// decompress decodes src into dst[:0], refusing output past limit bytes.
func (d *decompressor) decompress(c Codec, dst, src []byte, limit int) ([]byte, error) {
	d.src.Reset(src)
	switch c {
	case Gzip:
		if d.gz == nil {
			gz, err := gzip.NewReader(&d.src)
			if err != nil {
				return dst[:0], err
			}
			d.gz = gz
		} else if err := d.gz.Reset(&d.src); err != nil {
			return dst[:0], err
		}
		return readCapped(d.gz, dst, len(src), limit)
	case Snappy:
		return decodeSnappy(dst[:0], src, limit)
	case LZ4:
		if d.lz == nil {
			d.lz = lz4.NewReader(&d.src)
		} else {
			d.lz.Reset(&d.src)
		}
		return readCapped(d.lz, dst, len(src), limit)
	case Zstd:
		return d.decodeZstd(dst, src, limit)
	}
	return dst[:0], fmt.Errorf("unknown codec %d", c)
}

// readCapped reads r to EOF into dst[:0], growing dst at most to limit+1
// bytes: the extra byte is how output past the limit is seen.
func readCapped(r io.Reader, dst []byte, srcLen, limit int) ([]byte, error) {
	dst = dst[:0]
	if cap(dst) == 0 {
		dst = make([]byte, 0, capStep(4*srcLen, limit+1))
	}
	for stalls := 0; ; {
		if len(dst) == cap(dst) {
			if len(dst) > limit {
				return dst, errOverLimit
			}
			dst = grow(dst, capStep(2*cap(dst), limit+1)-len(dst))
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return dst, errOverLimit
		}
		switch {
		case err == io.EOF:
			return dst, nil
		case err != nil:
			return dst, err
		case n == 0:
			if stalls++; stalls > 100 {
				return dst, io.ErrNoProgress
			}
		default:
			stalls = 0
		}
	}
}

// capStep is the capacity to grow a buffer to when it needs want bytes and
// may never exceed max: the smallest of max, max/2, max/4, ... (down to 4
// KiB) that holds want. Growing through these sizes, rather than doubling
// from wherever the buffer started, allocates less than 2*max in total on
// the way up to max.
func capStep(want, max int) int {
	c := max
	for c/2 >= want && c/2 >= 4<<10 {
		c /= 2
	}
	return c
}

// grow returns dst with room for n more bytes, allocating exactly that much
// when it must (append's growth could round far past a limit).
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	out := make([]byte, len(dst), len(dst)+n)
	copy(out, dst)
	return out
}

// xerialMagic opens the framing snappy-java's SnappyOutputStream writes
// (Kafka's Java producer): the magic, a version and a compatible-version
// int32, then chunks of a big-endian int32 length and a raw snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderSize = 16

func decodeSnappy(dst, src []byte, limit int) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		return snappyBlock(dst, src, limit)
	}
	if len(src) < xerialHeaderSize {
		return dst, errors.New("snappy: truncated xerial header")
	}
	var err error
	for p := xerialHeaderSize; p < len(src); {
		if len(src)-p < 4 {
			return dst, errors.New("snappy: truncated xerial chunk length")
		}
		n := int64(be.Uint32(src[p:]))
		p += 4
		if n > int64(len(src)-p) {
			return dst, errors.New("snappy: xerial chunk past the block")
		}
		if dst, err = snappyBlock(dst, src[p:p+int(n)], limit); err != nil {
			return dst, err
		}
		p += int(n)
	}
	return dst, nil
}

// snappyBlock appends the decoding of one raw snappy block, whose header
// states its decoded size: that size is checked against the limit before
// anything is allocated.
func snappyBlock(dst, block []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return dst, err
	}
	if n > limit-len(dst) {
		return dst, errOverLimit
	}
	start := len(dst)
	if cap(dst)-start < n {
		dst = grow(dst, capStep(max(start+n, 2*cap(dst)), limit)-start)
	}
	dst = dst[:start+n]
	out, err := snappy.Decode(dst[start:], block)
	if err != nil {
		return dst[:start], err
	}
	// Decode writes in place when the room suffices, which it does.
	if len(out) != n || (n > 0 && &out[0] != &dst[start]) {
		return dst[:start], errors.New("snappy: decoded in the wrong place")
	}
	return dst, nil
}
