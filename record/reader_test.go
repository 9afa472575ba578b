package record

import (
	"runtime"
	"testing"
)

// TestReaderStopsAtFirstBadRecord checks that records before the bad one
// come out and the iteration then ends with the error, not a panic.
func TestReaderStopsAtFirstBadRecord(t *testing.T) {
	b := rawBatch(t, None, 3, 2, cat(plainRecord(0, "a", "1"), plainRecord(1, "b", "2"), withBody(vi(-3), vi(0), vi(0))))
	r := NewReader(Limits{})
	if err := r.Reset(b); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for r.Next() {
		keys = append(keys, string(r.Record().Key))
	}
	if len(keys) != 2 || keys[0] != "a" || keys[1] != "b" {
		t.Fatalf("records before the bad one: %q", keys)
	}
	wantCheck(t, r.Err(), CheckRecord)
	if r.Next() {
		t.Fatal("Next after an error returned true")
	}
}

func TestReaderLogAppendTime(t *testing.T) {
	bld := NewBuilder(None)
	bld.Append(10, nil, nil, nil)
	bld.Append(30, nil, nil, nil)
	b, err := bld.AppendBatch(nil)
	if err != nil {
		t.Fatal(err)
	}
	be.PutUint16(b[offAttributes:], attrTimestampType)
	be.PutUint64(b[offMaxTimestamp:], 99)
	Batch(b).SetCRC()
	r := NewReader(Limits{})
	if err := r.Validate(b); err != nil {
		t.Fatal(err)
	}
	if err := r.Reset(b); err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; r.Next(); n++ {
		if r.Record().Timestamp != 99 {
			t.Fatalf("LogAppendTime batch: record timestamp %d, want maxTimestamp 99", r.Record().Timestamp)
		}
	}
	if n != 2 || r.Err() != nil {
		t.Fatalf("%d records, %v", n, r.Err())
	}
}

// TestReaderResetAfterError checks that a Reader that hit a corrupt batch
// reads the next good one normally.
func TestReaderResetAfterError(t *testing.T) {
	var r Reader
	wantCheck(t, r.Reset(Batch("short")), CheckShort)
	if r.Next() {
		t.Fatal("Next after a failed Reset returned true")
	}
	wantCheck(t, r.Err(), CheckShort)
	checkRecordsWith(t, &r, mustBuild(t, Gzip, 5), 5)
	checkRecordsWith(t, &r, mustBuild(t, None, 3), 3)
}

func checkRecordsWith(t *testing.T, r *Reader, b Batch, want int) {
	t.Helper()
	if err := r.Reset(b); err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; r.Next(); n++ {
		if r.Record().Offset != int64(n) {
			t.Fatalf("record %d has offset %d", n, r.Record().Offset)
		}
	}
	if n != want || r.Err() != nil {
		t.Fatalf("%d records (want %d), %v", n, want, r.Err())
	}
}

func TestZeroAllocs(t *testing.T) {
	headers := []Header{{Key: []byte("trace"), Value: []byte("0123456789")}, {Key: []byte("n"), Value: nil}}
	key, values := []byte("key"), make([][]byte, 10)
	for i := range values {
		values[i] = jsonish(i)
	}
	fill := func(bld *Builder) {
		bld.Reset()
		for i := range 1000 {
			bld.Append(int64(i), key, values[i%10], headers)
		}
	}
	for _, codec := range allCodecs {
		bld := NewBuilder(codec)
		fill(bld)
		b, err := bld.AppendBatch(nil)
		if err != nil {
			t.Fatal(err)
		}
		build := testing.AllocsPerRun(20, func() {
			fill(bld)
			if _, err := bld.Build(); err != nil {
				t.Fatal(err)
			}
		})
		var r Reader
		read := testing.AllocsPerRun(20, func() {
			if err := r.Reset(b); err != nil {
				t.Fatal(err)
			}
			for r.Next() {
			}
			if r.Err() != nil {
				t.Fatal(r.Err())
			}
		})
		validate := testing.AllocsPerRun(20, func() {
			if err := Validate(b, Limits{Contiguous: true}); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s: allocs per batch of 1000 records: build %.0f, read %.0f, validate %.0f", codec, build, read, validate)
		// Uncompressed: nothing at all. Compressed: at most a couple per
		// batch inside the codec libraries, never per record.
		wantMax := 0.0
		if codec != None {
			wantMax = 2
		}
		if raceEnabled && codec != None {
			continue // pools (ours and the codecs') drop items under -race
		}
		if build > wantMax || read > wantMax {
			t.Errorf("%s: build %.0f, read %.0f allocs per batch, want at most %.0f", codec, build, read, wantMax)
		}
		if !raceEnabled && validate > wantMax {
			t.Errorf("%s: validate %.0f allocs per batch, want at most %.0f", codec, validate, wantMax)
		}
	}
}

// TestHeaderBomb: a record of 400,000 empty headers (2 bytes each) would
// cost 19 MB as []Header; it is refused before the slice is made.
func TestHeaderBomb(t *testing.T) {
	const n = 400_000
	b := rawBatch(t, None, 1, 0, withBody(vi(0), vi(0), vi(n), make([]byte, 2*n)))
	var r Reader
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := r.Validate(b)
	runtime.ReadMemStats(&after)
	wantCheck(t, err, CheckRecord)
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Fatalf("refusing the header bomb allocated %d bytes", got)
	}
	// Under a limit that admits them, the same record reads.
	r.SetLimits(Limits{MaxHeaders: n})
	if err := r.Validate(b); err != nil {
		t.Fatal(err)
	}
}

// SkipTo passes the records before an offset without decoding them: Next
// then gives the first at or after it, and the rest as without the skip;
// an offset past the batch leaves nothing; a corrupt record is not
// skipped but reported by Next.
func TestReaderSkipTo(t *testing.T) {
	bld := NewBuilder(None)
	for i := range 10 {
		bld.Append(int64(100+i), []byte{byte('a' + i)}, []byte("v"), []Header{{Key: []byte("h"), Value: []byte{byte(i)}}})
	}
	b, err := bld.AppendBatch(nil)
	if err != nil {
		t.Fatal(err)
	}
	Batch(b).SetBaseOffset(50)
	r := NewReader(Limits{})
	for _, c := range []struct {
		to   int64
		want string
	}{{0, "abcdefghij"}, {50, "abcdefghij"}, {53, "defghij"}, {59, "j"}, {60, ""}, {1000, ""}} {
		if err := r.Reset(b); err != nil {
			t.Fatal(err)
		}
		r.SkipTo(c.to)
		var got []byte
		for r.Next() {
			rec := r.Record()
			if want := int64(50 + rec.Key[0] - 'a'); rec.Offset != want || rec.Timestamp != 100+want-50 || rec.Headers[0].Value[0] != byte(want-50) {
				t.Fatalf("SkipTo(%d): record %+v, want offset %d", c.to, rec, want)
			}
			got = append(got, rec.Key[0])
		}
		if string(got) != c.want || r.Err() != nil {
			t.Fatalf("SkipTo(%d): %q, %v; want %q", c.to, got, r.Err(), c.want)
		}
	}

	bad := rawBatch(t, None, 3, 2, cat(plainRecord(0, "a", "1"), withBody(vi(-3), vi(0), vi(0)), plainRecord(2, "c", "3")))
	if err := r.Reset(bad); err != nil {
		t.Fatal(err)
	}
	r.SkipTo(2)
	if r.Next() {
		t.Fatalf("a corrupt record skipped: got %+v", r.Record())
	}
	wantCheck(t, r.Err(), CheckRecord)
}
