package bench

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/client"
)

func TestCompareReplicas(t *testing.T) {
	rep := func(p int32, start, end, hw, sumEnd int64, sum uint32) client.ReplicaInfo {
		return client.ReplicaInfo{Partition: p, StartOffset: start, EndOffset: end, HighWatermark: hw, ChecksumEnd: sumEnd, Checksum: sum}
	}
	same := func(r client.ReplicaInfo) []client.BrokerReplicas {
		return []client.BrokerReplicas{{Broker: 1, Replicas: []client.ReplicaInfo{r}}, {Broker: 2, Replicas: []client.ReplicaInfo{r}}, {Broker: 3, Replicas: []client.ReplicaInfo{r}}}
	}
	good := rep(0, 0, 100, 100, 100, 0xabc)
	tests := []struct {
		name string
		brs  []client.BrokerReplicas
		want string // "" for nil
	}{
		{"identical", same(good), ""},
		{"empty logs", same(rep(0, 0, 0, 0, -1, 0)), ""},
		{"checksums differ", func() []client.BrokerReplicas {
			b := same(good)
			b[2].Replicas = []client.ReplicaInfo{rep(0, 0, 100, 100, 100, 0xdef)}
			return b
		}(), "replicas differ"},
		{"end offsets differ", func() []client.BrokerReplicas {
			b := same(good)
			b[1].Replicas = []client.ReplicaInfo{rep(0, 0, 90, 90, 90, 0xabc)}
			return b
		}(), "replicas differ"},
		{"high watermark below the end", same(rep(0, 0, 100, 80, 100, 0xabc)), "replicas differ"},
		{"checksum short of the end", same(rep(0, 0, 100, 100, 60, 0xabc)), "replicas differ"},
		{"a replica missing", same(good)[:2], "2 replicas answered"},
		{"a broker failing", append(same(good)[:2], client.BrokerReplicas{Broker: 3, Err: errors.New("timeout")}), "broker 3"},
		{"a replica failing", func() []client.BrokerReplicas {
			b := same(good)
			r := good
			r.Err = errors.New("storage")
			b[0].Replicas = []client.ReplicaInfo{r}
			return b
		}(), "storage"},
		{"nothing", nil, "no replica"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CompareReplicas(tt.brs, 3)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CompareReplicas = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("CompareReplicas = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestValueUnique(t *testing.T) {
	seen := map[string]bool{}
	for p := range 3 {
		for s := range int64(1000) {
			v := string(VerifyValue("run", p, s, 100))
			if len(v) != 100 || seen[v] {
				t.Fatalf("value %q: length %d or repeated", v, len(v))
			}
			seen[v] = true
		}
	}
}
