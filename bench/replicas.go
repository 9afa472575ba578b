package bench

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/sluicemq/sluice/client"
)

// CompareReplicas checks brokers' answers to DescribeReplicaChecksums
// asked with an upTo past every end: every partition has rf replicas
// answering, all with the same start and end offset, a high watermark at
// the end, a checksum covering the whole log, and the same checksum. nil
// means the replicas are byte-identical and fully committed.
func CompareReplicas(brs []client.BrokerReplicas, rf int) error {
	type state struct {
		broker                 int32
		start, end, hw, sumEnd int64
		sum                    uint32
	}
	seen := map[int32][]state{}
	for _, br := range brs {
		if br.Err != nil {
			return fmt.Errorf("broker %d: %w", br.Broker, br.Err)
		}
		for _, r := range br.Replicas {
			if r.Err != nil {
				return fmt.Errorf("broker %d, partition %d: %w", br.Broker, r.Partition, r.Err)
			}
			seen[r.Partition] = append(seen[r.Partition], state{br.Broker, r.StartOffset, r.EndOffset, r.HighWatermark, r.ChecksumEnd, r.Checksum})
		}
	}
	if len(seen) == 0 {
		return errors.New("no replica answered")
	}
	parts := make([]int32, 0, len(seen))
	for p := range seen {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	var bad []string
	for _, p := range parts {
		ss := seen[p]
		if len(ss) != rf {
			bad = append(bad, fmt.Sprintf("partition %d: %d replicas answered, want %d", p, len(ss), rf))
			continue
		}
		for _, s := range ss {
			// An empty log has no whole batch to hash: ChecksumEnd -1.
			covered := s.sumEnd == s.end || (s.end == s.start && s.sumEnd < 0)
			if s.start != ss[0].start || s.end != ss[0].end || s.hw != s.end || !covered || s.sum != ss[0].sum {
				bad = append(bad, fmt.Sprintf("partition %d: replicas differ: %+v", p, ss))
				break
			}
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}
