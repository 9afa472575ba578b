package record

import (
	"testing"

	"go.uber.org/goleak"
)

// The package claims its codecs start no goroutines (DecodeAll-only and
// synchronous zstd decoders, single-threaded LZ4): goleak holds it to that.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
