package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// LongestGap is the longest time within [from, to) during which some
// partition of 0..partitions-1 got no acknowledgement: for each partition
// the gap from from to its first ack, between consecutive acks, and from
// its last ack to to; the partition with the longest is returned with it.
// A partition with no ack in the window has the whole window as its gap.
func LongestGap(acks []Ack, from, to time.Duration, partitions int32) (time.Duration, int32) {
	last := make([]time.Duration, partitions)
	for i := range last {
		last[i] = from
	}
	gaps := make([]time.Duration, partitions)
	sorted := acksSorted(acks)
	for _, a := range sorted {
		if a.At < from || a.At >= to || a.Partition < 0 || a.Partition >= partitions {
			continue
		}
		gaps[a.Partition] = max(gaps[a.Partition], a.At-last[a.Partition])
		last[a.Partition] = a.At
	}
	var worst time.Duration
	var part int32
	for p := range partitions {
		g := max(gaps[p], to-last[p])
		if g > worst {
			worst, part = g, p
		}
	}
	return worst, part
}

// acksSorted returns acks by time, sorting a copy only when they are not
// in order already (several producers' acks are appended per producer).
func acksSorted(acks []Ack) []Ack {
	if sort.SliceIsSorted(acks, func(i, j int) bool { return acks[i].At < acks[j].At }) {
		return acks
	}
	s := append([]Ack(nil), acks...)
	sort.Slice(s, func(i, j int) bool { return s[i].At < s[j].At })
	return s
}

// AckRates is acknowledgements per second in consecutive buckets of width
// bucket over [0, total).
func AckRates(acks []Ack, bucket, total time.Duration) []float64 {
	if bucket <= 0 || total <= 0 {
		return nil
	}
	n := int((total + bucket - 1) / bucket)
	counts := make([]float64, n)
	for _, a := range acks {
		if a.At >= 0 && a.At < total {
			counts[int(a.At/bucket)]++
		}
	}
	for i := range counts {
		w := bucket
		if i == n-1 && total%bucket != 0 {
			w = total % bucket
		}
		counts[i] /= w.Seconds()
	}
	return counts
}

// FormatRates writes rates as "0-10s: 950/s, 10-20s: 0/s, ...".
func FormatRates(rates []float64, bucket time.Duration) string {
	parts := make([]string, len(rates))
	for i, r := range rates {
		parts[i] = fmt.Sprintf("%v-%v: %.0f/s", time.Duration(i)*bucket, time.Duration(i+1)*bucket, r)
	}
	return strings.Join(parts, ", ")
}

// MedianLatency is the median latency of the acknowledgements that came
// in [from, to), and how many there were; 0, 0 when none did.
func MedianLatency(acks []Ack, from, to time.Duration) (time.Duration, int) {
	var lat []time.Duration
	for _, a := range acks {
		if a.At >= from && a.At < to {
			lat = append(lat, a.Latency)
		}
	}
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	return lat[len(lat)/2], len(lat)
}
