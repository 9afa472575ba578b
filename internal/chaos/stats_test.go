package chaos

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestLongestGap(t *testing.T) {
	acks := func(pairs ...int) []Ack { // at ms, partition, ...
		var out []Ack
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, Ack{At: ms(pairs[i]), Partition: int32(pairs[i+1])})
		}
		return out
	}
	tests := []struct {
		name     string
		acks     []Ack
		from, to int
		parts    int32
		want     time.Duration
		wantPart int32
	}{
		{"steady", acks(100, 0, 200, 0, 300, 0), 100, 300, 1, ms(100), 0},
		{"from the heal to the first ack", acks(50, 0, 900, 0, 950, 0), 100, 1000, 1, ms(800), 0},
		{"a gap between acks", acks(100, 0, 150, 0, 700, 0, 990, 0), 100, 1000, 1, ms(550), 0},
		{"from the last ack to the end", acks(100, 0, 200, 0), 100, 1000, 1, ms(800), 0},
		{"a silent partition has the whole window", acks(100, 0, 500, 0, 999, 0), 0, 1000, 2, ms(1000), 1},
		{"unsorted input", acks(990, 0, 100, 0, 700, 0, 150, 0), 100, 1000, 1, ms(550), 0},
		{"acks outside the window ignored", acks(10, 0, 500, 0, 2000, 0), 400, 600, 1, ms(100), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, p := LongestGap(tt.acks, ms(tt.from), ms(tt.to), tt.parts)
			if got != tt.want || p != tt.wantPart {
				t.Errorf("LongestGap = %v (partition %d), want %v (partition %d)", got, p, tt.want, tt.wantPart)
			}
		})
	}
}

func TestMedianLatency(t *testing.T) {
	acks := func(triples ...int) []Ack { // at ms, latency ms, ...
		var out []Ack
		for i := 0; i < len(triples); i += 2 {
			out = append(out, Ack{At: ms(triples[i]), Latency: ms(triples[i+1])})
		}
		return out
	}
	tests := []struct {
		name     string
		acks     []Ack
		from, to int
		want     time.Duration
		wantN    int
	}{
		{"none", nil, 0, 1000, 0, 0},
		{"none in the window", acks(50, 9, 2000, 9), 100, 1000, 0, 0},
		{"odd count, unsorted latencies", acks(100, 30, 200, 10, 300, 20), 0, 1000, ms(20), 3},
		{"even count takes the upper middle", acks(100, 1, 200, 2, 300, 3, 400, 4), 0, 1000, ms(3), 4},
		{"window is half-open", acks(100, 500, 200, 1, 300, 1, 1000, 500), 100, 1000, ms(1), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n := MedianLatency(tt.acks, ms(tt.from), ms(tt.to))
			if got != tt.want || n != tt.wantN {
				t.Errorf("MedianLatency = %v over %d, want %v over %d", got, n, tt.want, tt.wantN)
			}
		})
	}
}

func TestAckRates(t *testing.T) {
	var acks []Ack
	for i := range 30 {
		acks = append(acks, Ack{At: ms(i * 100)}) // 10/s for 3 s
	}
	got := AckRates(acks, time.Second, ms(2500))
	want := []float64{10, 10, 10} // the last bucket is half a second: 5 acks
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AckRates = %v, want %v", got, want)
	}
	if s := FormatRates(got, time.Second); !strings.HasPrefix(s, "0s-1s: 10/s, 1s-2s: 10/s") {
		t.Errorf("FormatRates = %q", s)
	}
}

func TestScheduleSeeded(t *testing.T) {
	a := Schedule(7, AllKinds, 3, 5*time.Minute)
	b := Schedule(7, AllKinds, 3, 5*time.Minute)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave two schedules")
	}
	if reflect.DeepEqual(a, Schedule(8, AllKinds, 3, 5*time.Minute)) {
		t.Error("seeds 7 and 8 gave the same schedule")
	}
	var sum time.Duration
	seen := map[Kind]bool{}
	for _, s := range a {
		h := holds[s.Kind]
		if s.Hold < h[0] || s.Hold > h[1] || s.Quiet < quietMin || s.Quiet > quietMax {
			t.Errorf("step %+v: hold or quiet out of range", s)
		}
		if s.Partition < 0 || s.Partition >= 3 {
			t.Errorf("step %+v: partition out of range", s)
		}
		seen[s.Kind] = true
		sum += s.Hold + s.Quiet
	}
	var longest time.Duration
	for _, h := range holds {
		longest = max(longest, h[1])
	}
	if sum < 5*time.Minute || sum > 5*time.Minute+longest+quietMax {
		t.Errorf("schedule lasts %v, want about 5m", sum)
	}
	if len(seen) != len(AllKinds) {
		t.Errorf("5 minutes drew %d of %d kinds: %v", len(seen), len(AllKinds), seen)
	}
	for _, s := range Schedule(1, ShortKinds, 3, 90*time.Second) {
		if !slices.Contains([]Kind{KillLeader, PauseFollower, IsolateLeader, CutClients, KillAll}, s.Kind) {
			t.Errorf("short schedule has %s", s.Kind)
		}
	}
	if s := Schedule(1, nil, 3, time.Minute); s != nil {
		t.Errorf("no kinds: %v, want no steps", s)
	}
}

func TestPauseOutlastsLagLimit(t *testing.T) {
	// brokerArgs sets --replica-max-lag 3s: a pause must be longer for
	// the follower to leave the ISR.
	if holds[PauseFollower][0] <= 3*time.Second {
		t.Errorf("pause hold %v does not outlast the 3 s lag limit", holds[PauseFollower][0])
	}
}

func TestCorrupt(t *testing.T) {
	for _, pick := range []uint32{2, 3} { // even: cut the tail; odd: flip bits
		dir := t.TempDir()
		c := &Cluster{Brokers: []*Broker{{ID: 1, DataDir: dir}}}
		in := &Injector{C: c, Topic: "t", Logf: t.Logf}
		seg := filepath.Join(dir, "t-1")
		if err := os.MkdirAll(seg, 0o755); err != nil {
			t.Fatal(err)
		}
		orig := bytes.Repeat([]byte{0x55}, 10000)
		old := filepath.Join(seg, "00000000000000000000.log")
		active := filepath.Join(seg, "00000000000000000100.log")
		for _, p := range []string{old, active} {
			if err := os.WriteFile(p, orig, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := in.corrupt(1, Step{Partition: 1, Pick: pick}); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(active)
		if bytes.Equal(got, orig) {
			t.Errorf("pick %d: active segment unchanged", pick)
		}
		if pick%2 == 1 && (len(got) != len(orig) || !bytes.Equal(got[:len(orig)-4096], orig[:len(orig)-4096])) {
			t.Errorf("pick %d: flipped bits outside the last 4 KiB", pick)
		}
		if pick%2 == 0 && (len(got) >= len(orig) || len(got) < len(orig)-4096) {
			t.Errorf("pick %d: cut to %d bytes of %d, want a tail of at most 4 KiB", pick, len(got), len(orig))
		}
		if o, _ := os.ReadFile(old); !bytes.Equal(o, orig) {
			t.Errorf("pick %d: an older segment changed", pick)
		}
	}
}

// CheckSlowed must fail a slow-peers fault whose acknowledgements kept
// their usual latency (peer links not slowed) and pass one that shows the
// added round trip.
func TestCheckSlowed(t *testing.T) {
	ev := Event{Step: Step{Kind: SlowPeers, Pick: 80}, Target: "broker2"} // 100 ms each way
	if d := PeerDelay(ev.Pick).Latency; d != ms(100) {
		t.Fatalf("PeerDelay(80) = %v, want 100ms", d)
	}
	tests := []struct {
		p50    time.Duration
		failed bool
	}{
		{ms(8), true},    // the usual latency: not slowed
		{ms(199), true},  // less than the round trip
		{ms(200), false}, // the round trip
		{ms(450), false},
	}
	for _, tt := range tests {
		if err := CheckSlowed(ev, tt.p50); (err != nil) != tt.failed {
			t.Errorf("CheckSlowed(p50 %v) = %v, want failed=%v", tt.p50, err, tt.failed)
		}
	}
}

func TestPeerDelayRange(t *testing.T) {
	lo, hi := time.Hour, time.Duration(0)
	for pick := range uint32(1000) {
		l := PeerDelay(pick)
		if l.Validate() != nil || l.Jitter != l.Latency/4 {
			t.Fatalf("PeerDelay(%d) = %+v", pick, l)
		}
		lo, hi = min(lo, l.Latency), max(hi, l.Latency)
	}
	if lo != ms(20) || hi != ms(200) {
		t.Errorf("PeerDelay latencies span %v..%v, want 20ms..200ms", lo, hi)
	}
}
