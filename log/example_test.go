package log_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/record"
)

// A partition log used as a library: open it in a directory, append
// batches, read them back from an offset, close it and open it again.
func Example() {
	dir, err := os.MkdirTemp("", "sluice-log-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	cfg := log.Config{Fsync: log.FsyncAlways} // Append returns once its batch is on disk

	l, err := log.Open(filepath.Join(dir, "orders-0"), cfg)
	if err != nil {
		panic(err)
	}
	b := record.NewBuilder(record.None)
	for i, values := range [][]string{{"a", "b"}, {"c"}, {"d", "e", "f"}} {
		b.Reset()
		for _, v := range values {
			b.Append(1764806400000+int64(i), nil, []byte(v), nil)
		}
		batch, err := b.Build()
		if err != nil {
			panic(err)
		}
		// The caller validates what it did not build (a broker: every
		// produced batch), then the log stamps the offset.
		base, err := l.Append(batch)
		if err != nil {
			panic(err)
		}
		fmt.Println("appended at offset", base)
	}
	fmt.Println("start", l.StartOffset(), "end", l.EndOffset())
	if err := l.Close(); err != nil { // syncs and marks a clean shutdown
		panic(err)
	}

	// Reopen, and read from offset 4: the View starts at the batch that
	// holds it (3..5), so skip the records before 4.
	l, err = log.Open(filepath.Join(dir, "orders-0"), cfg)
	if err != nil {
		panic(err)
	}
	defer l.Close()
	v, err := l.Read(4, 1<<20)
	if err != nil {
		panic(err)
	}
	defer v.Release() // the bytes are the mapped segment's: release once done
	r := record.NewReader(record.Limits{})
	for rest := v.Bytes(); len(rest) > 0; {
		var batch record.Batch
		batch, rest, err = record.NextBatch(rest, 0)
		if err != nil {
			panic(err)
		}
		if err := r.Reset(batch); err != nil {
			panic(err)
		}
		for r.Next() {
			if rec := r.Record(); rec.Offset >= 4 {
				fmt.Printf("offset %d: %s\n", rec.Offset, rec.Value)
			}
		}
		if err := r.Err(); err != nil {
			panic(err)
		}
	}
	// Output:
	// appended at offset 0
	// appended at offset 2
	// appended at offset 3
	// start 0 end 6
	// offset 4: e
	// offset 5: f
}
