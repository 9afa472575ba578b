package client

import (
	"fmt"
	"testing"
)

// Golden values from Apache Kafka's UtilsTest.testMurmur2, as Java ints.
func TestMurmur2KafkaVectors(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := int32(murmur2([]byte(c.in))); got != c.want {
			t.Errorf("murmur2(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// KeyPartition is Kafka's toPositive(murmur2(key)) % n.
func TestKeyPartitionFormula(t *testing.T) {
	for _, c := range []struct {
		key  string
		n    int32
		want int32
	}{
		// (-973932308 & 0x7fffffff) = 1173551340
		{"21", 1, 0},
		{"21", 3, 1173551340 % 3},
		{"21", 10, 1173551340 % 10},
		// (-790332482 & 0x7fffffff) = 1357151166
		{"foobar", 7, 1357151166 % 7},
		// 479470107 is positive
		{"abc", 12, 479470107 % 12},
	} {
		if got := KeyPartition([]byte(c.key), c.n); got != c.want {
			t.Errorf("KeyPartition(%q, %d) = %d, want %d", c.key, c.n, got, c.want)
		}
	}
}

func TestKeyPartitionerDistributionAndDeterminism(t *testing.T) {
	const n, keys = 8, 16000
	counts := make([]int, n)
	p := KeyPartitioner()
	for i := range keys {
		rec := &Record{Key: []byte(fmt.Sprintf("key-%d", i))}
		got := p.Partition(rec, n)
		if got < 0 || got >= n {
			t.Fatalf("partition %d out of range", got)
		}
		if again := p.Partition(rec, n); again != got {
			t.Fatalf("key %q: %d then %d", rec.Key, got, again)
		}
		counts[got]++
	}
	for i, c := range counts {
		if c < keys/n*8/10 || c > keys/n*12/10 {
			t.Errorf("partition %d got %d of %d keys: %v", i, c, keys, counts)
		}
	}
}

func TestKeyPartitionerNilKeyIsSticky(t *testing.T) {
	p := KeyPartitioner()
	if got := p.Partition(&Record{}, 4); got != StickyPartition {
		t.Errorf("nil key: %d, want StickyPartition", got)
	}
	if got := p.Partition(&Record{Key: []byte{}}, 4); got != KeyPartition(nil, 4) || got < 0 {
		t.Errorf("empty key: %d, want the hash of no bytes", got)
	}
	if got := ManualPartitioner().Partition(&Record{Partition: 3}, 4); got != 3 {
		t.Errorf("manual: %d, want 3", got)
	}
}
