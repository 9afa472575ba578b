package kafka

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// VersionRange is the versions of one API key the listener advertises.
type VersionRange struct{ Min, Max int16 }

// API keys handled specially.
const (
	produceKey     = 0
	fetchKey       = 1
	apiVersionsKey = 18
)

// minProduceServed: Produce is advertised from v0 but served from v3
// (record batch v2 only). librdkafka 2.x sends gzip, snappy and lz4 only
// to a broker whose range holds Produce v0 (its compression check), and
// Kafka 4 does the same (apache/kafka#18727); v0-2 get
// UNSUPPORTED_VERSION.
const minProduceServed = 3

// Table is every API key the listener serves and the versions it
// advertises (docs/kafka.md): ../shared/KAFKA.md's phase-1 minimums,
// maxima at the last non-flexible version but for ApiVersions (v3, which
// modern clients open with), the always-flexible DescribeCluster,
// Metadata to v12 (topic ids, which KIP-848 consumers map their
// assignments with) and the group APIs (group.go, group_consumer.go),
// served to the versions current clients send (kgo, the Java client:
// batched FindCoordinator v4, multi-group OffsetFetch v8, the member
// epochs of OffsetCommit and OffsetFetch v9, KIP-848's heartbeat).
// Transactions and SASL are not advertised (not served yet); a client
// that needs them learns so from this table.
var Table = map[int16]VersionRange{
	0:  {0, 8}, // Produce: served from minProduceServed
	1:  {4, 11},
	2:  {1, 5},
	3:  {0, 12},
	8:  {2, 9},
	9:  {1, 9},
	10: {0, 4},
	11: {0, 9},
	12: {0, 4},
	13: {0, 5},
	14: {0, 5},
	15: {0, 5},
	16: {0, 5},
	18: {0, 3},
	19: {2, 4},
	20: {1, 3},
	21: {0, 2}, // DeleteRecords (admin.go)
	22: {0, 1},
	23: {2, 3},
	29: {1, 3}, // DescribeAcls (admin_security.go)
	30: {1, 3}, // CreateAcls
	31: {1, 3}, // DeleteAcls
	32: {1, 3},
	33: {0, 1},
	42: {0, 2},
	37: {0, 1}, // CreatePartitions (no manual assignment)
	45: {0, 0}, // AlterPartitionReassignments (flexible only)
	46: {0, 0}, // ListPartitionReassignments (flexible only)
	44: {0, 1},
	50: {0, 0}, // DescribeUserScramCredentials (admin_security.go; flexible only)
	51: {0, 0}, // AlterUserScramCredentials
	60: {0, 1},
	68: {0, 1}, // ConsumerGroupHeartbeat (KIP-848)
	69: {0, 1},
	76: {1, 1}, // ShareGroupHeartbeat (KIP-932, share*.go): v0 was Kafka 4.0's early access
	77: {1, 1},
	78: {1, 2}, // ShareFetch: v2 renew acknowledgements
	79: {1, 2},
	90: {0, 1}, // DescribeShareGroupOffsets (share_offsets.go): v1 lag
	91: {0, 0}, // AlterShareGroupOffsets
	92: {0, 0}, // DeleteShareGroupOffsets
}

// kerrUnsupportedVersion is Kafka's UNSUPPORTED_VERSION.
const kerrUnsupportedVersion = 35

// apiVersionsResponse lists Table, sorted by key, with errorCode.
func apiVersionsResponse(version int16, errorCode int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version, resp.ErrorCode = version, errorCode
	keys := make([]int16, 0, len(Table))
	for k := range Table {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: Table[k].Min, MaxVersion: Table[k].Max})
	}
	return resp
}
