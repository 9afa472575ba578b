package controller

import "hash/crc32"

// TopicSpec asks for a new topic.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string
}

// Validate checks the spec's name and configs (placement checks the counts).
func (s TopicSpec) Validate() error {
	if err := ValidateTopicName(s.Name); err != nil {
		return err
	}
	return ValidateConfigs(s.Configs)
}

// crcTable is CRC-32C, the checksum of snapshots.
var crcTable = crc32.MakeTable(crc32.Castagnoli)
