package protocol

// DescribeReplicasRequest asks one broker what it holds of each partition
// replica: role, epoch and offsets as that broker's own log sees them, and
// optionally a checksum of the log so that replicas on different brokers
// can be compared byte for byte. An admin tool asks every broker; the
// metadata (Metadata API) says what the controller believes, this says what
// each broker has.
type DescribeReplicasRequest struct {
	Topics []string // empty: every replica the broker holds
	// ChecksumUpTo asks for a checksum of each log from its start up to
	// this offset (whole batches only); -1 asks for none, which is cheap.
	ChecksumUpTo int64
}

// Key returns DescribeReplicas.
func (*DescribeReplicasRequest) Key() APIKey { return DescribeReplicas }

// Append encodes the body.
func (r *DescribeReplicasRequest) Append(dst []byte, version int16) []byte {
	dst = appendStrings(dst, r.Topics)
	return appendInt64(dst, r.ChecksumUpTo)
}

// Decode parses the body.
func (r *DescribeReplicasRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(DescribeReplicas, false, version); err != nil {
		return err
	}
	r.Topics = d.strings("topics", r.Topics)
	r.ChecksumUpTo = d.int64("checksum_up_to")
	return d.finish()
}

// DescribeReplicasResponse is one broker's replicas.
type DescribeReplicasResponse struct {
	ErrorCode ErrorCode
	BrokerID  int32
	Replicas  []ReplicaInfo
	// ControllerStoreError (version 3) says why the broker's controller
	// (Raft) store cannot be written, empty when it can: the broker then
	// neither leads the controller nor stands for election.
	ControllerStoreError string
	// DiskFree and DiskCapacity (version 4) are the bytes free (to the
	// broker's user) and the size of the file system holding its data
	// directory; 0, 0 when unknown.
	DiskFree, DiskCapacity int64
}

// ReplicaInfo is one partition replica as its broker sees it. ErrorCode is
// the replica's own failure (a storage error, say), ErrorMessage (version
// 1) the broker's reason for it; the other fields are then meaningless.
//
// Checksum is the CRC-32C (Castagnoli) of the bytes of the log's whole
// batches from StartOffset up to the request's ChecksumUpTo, a batch that
// straddles it excluded; ChecksumEnd is the offset after the last batch
// hashed, -1 when nothing was hashed (no checksum asked, or no batch below
// the limit). Two replicas with the same StartOffset and ChecksumEnd have
// identical logs up to ChecksumEnd exactly when their checksums are equal
// (barring a CRC collision): the batches carry their leader epochs and are
// copied by followers unchanged.
type ReplicaInfo struct {
	Topic         string
	Partition     int32
	ErrorCode     ErrorCode
	ErrorMessage  string // version 1
	Leader        bool   // this broker leads the partition
	LeaderEpoch   int32
	StartOffset   int64
	EndOffset     int64
	HighWatermark int64
	SyncedOffset  int64 // offsets below it are fsynced (R2)
	Checksum      uint32
	ChecksumEnd   int64
	// Version 2: the log cleaner's state of a compacted replica
	// (cleanup.policy=compact); all zero for another.
	Compacted       bool
	CleanBytes      int64  // bytes of the cleaned part of the log
	DirtyBytes      int64  // cleanable bytes not yet cleaned
	LastCleanMs     int64  // end of the last clean (ms since the epoch), -1 none since the broker started
	CleanerFailures int32  // consecutive failed cleanings, 0 when healthy
	CleanerError    string // the last failure, "" when the last cleaning worked
	// LogBytes (version 4) is the size of the replica's log on disk.
	LogBytes int64
}

// Key returns DescribeReplicas.
func (*DescribeReplicasResponse) Key() APIKey { return DescribeReplicas }

// Append encodes the body.
func (r *DescribeReplicasResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendInt32(dst, r.BrokerID)
	dst = appendInt32(dst, int32(len(r.Replicas)))
	for i := range r.Replicas {
		dst = r.Replicas[i].append(dst, version)
	}
	if version >= 3 {
		dst = appendString(dst, r.ControllerStoreError)
	}
	if version >= 4 {
		dst = appendInt64(dst, r.DiskFree)
		dst = appendInt64(dst, r.DiskCapacity)
	}
	return dst
}

// Decode parses the body.
func (r *DescribeReplicasResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(DescribeReplicas, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.BrokerID, r.Replicas, r.ControllerStoreError, r.DiskFree, r.DiskCapacity = 0, r.Replicas[:0], "", 0, 0
		return d.err
	}
	r.BrokerID = d.int32("broker_id")
	r.Replicas = decodeArray(d, "replicas", 57, r.Replicas, func(ri *ReplicaInfo, d *Decoder) { ri.decode(d, version) })
	r.ControllerStoreError = ""
	if version >= 3 {
		r.ControllerStoreError = d.string("controller_store_error", r.ControllerStoreError)
	}
	r.DiskFree, r.DiskCapacity = 0, 0
	if version >= 4 {
		r.DiskFree = d.int64("disk_free")
		r.DiskCapacity = d.int64("disk_capacity")
	}
	return d.finish()
}

func (ri *ReplicaInfo) append(dst []byte, version int16) []byte {
	dst = appendString(dst, ri.Topic)
	dst = appendInt32(dst, ri.Partition)
	dst = appendInt16(dst, int16(ri.ErrorCode))
	if version >= 1 {
		dst = appendString(dst, ri.ErrorMessage)
	}
	dst = appendBool(dst, ri.Leader)
	dst = appendInt32(dst, ri.LeaderEpoch)
	dst = appendInt64(dst, ri.StartOffset)
	dst = appendInt64(dst, ri.EndOffset)
	dst = appendInt64(dst, ri.HighWatermark)
	dst = appendInt64(dst, ri.SyncedOffset)
	dst = appendInt32(dst, int32(ri.Checksum))
	dst = appendInt64(dst, ri.ChecksumEnd)
	if version >= 2 {
		dst = appendBool(dst, ri.Compacted)
		dst = appendInt64(dst, ri.CleanBytes)
		dst = appendInt64(dst, ri.DirtyBytes)
		dst = appendInt64(dst, ri.LastCleanMs)
		dst = appendInt32(dst, ri.CleanerFailures)
		dst = appendString(dst, ri.CleanerError)
	}
	if version >= 4 {
		dst = appendInt64(dst, ri.LogBytes)
	}
	return dst
}

func (ri *ReplicaInfo) decode(d *Decoder, version int16) {
	ri.Topic = d.string("topic", ri.Topic)
	ri.Partition = d.int32("partition")
	ri.ErrorCode = ErrorCode(d.int16("error_code"))
	ri.ErrorMessage = ""
	if version >= 1 {
		ri.ErrorMessage = d.string("error_message", ri.ErrorMessage)
	}
	ri.Leader = d.bool("leader")
	ri.LeaderEpoch = d.int32("leader_epoch")
	ri.StartOffset = d.int64("start_offset")
	ri.EndOffset = d.int64("end_offset")
	ri.HighWatermark = d.int64("high_watermark")
	ri.SyncedOffset = d.int64("synced_offset")
	ri.Checksum = uint32(d.int32("checksum"))
	ri.ChecksumEnd = d.int64("checksum_end")
	ri.Compacted, ri.CleanBytes, ri.DirtyBytes, ri.LastCleanMs, ri.CleanerFailures, ri.CleanerError = false, 0, 0, 0, 0, ""
	if version >= 2 {
		ri.Compacted = d.bool("compacted")
		ri.CleanBytes = d.int64("clean_bytes")
		ri.DirtyBytes = d.int64("dirty_bytes")
		ri.LastCleanMs = d.int64("last_clean_ms")
		ri.CleanerFailures = d.int32("cleaner_failures")
		ri.CleanerError = d.string("cleaner_error", ri.CleanerError)
	}
	ri.LogBytes = 0
	if version >= 4 {
		ri.LogBytes = d.int64("log_bytes")
	}
}

// ElectLeadersRequest asks for a preferred-leader election: every partition
// of the named topics whose first replica (the preferred leader) is alive
// and in the ISR but is not the leader gets it back as leader. Any broker
// takes it and forwards it to the controller.
type ElectLeadersRequest struct {
	Topics    []string // empty: every topic
	TimeoutMs int32
	// LeaderOnly (version 1): hand over only the partitions the
	// receiving broker leads, and answer for those only. A broker sends
	// it to each other leader's broker while it runs an election.
	LeaderOnly bool
}

// Key returns ElectLeaders.
func (*ElectLeadersRequest) Key() APIKey { return ElectLeaders }

// Append encodes the body.
func (r *ElectLeadersRequest) Append(dst []byte, version int16) []byte {
	dst = appendStrings(dst, r.Topics)
	dst = appendInt32(dst, r.TimeoutMs)
	if version >= 1 {
		dst = appendBool(dst, r.LeaderOnly)
	}
	return dst
}

// Decode parses the body.
func (r *ElectLeadersRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(ElectLeaders, false, version); err != nil {
		return err
	}
	r.Topics = d.strings("topics", r.Topics)
	r.TimeoutMs = d.int32("timeout_ms")
	r.LeaderOnly = false
	if version >= 1 {
		r.LeaderOnly = d.bool("leader_only")
	}
	return d.finish()
}

// ElectLeadersResponse reports the outcome per partition considered.
type ElectLeadersResponse struct {
	ErrorCode  ErrorCode
	ThrottleMs int32
	Results    []ElectionResult
}

// ElectionResult is one partition's election. Leader is the leader after
// it (-1 when the partition has none). ErrorCode is NONE when the preferred
// replica became leader, ELECTION_NOT_NEEDED when it already was, and
// PREFERRED_LEADER_NOT_AVAILABLE when it is not alive or not in the ISR;
// Message may say more.
type ElectionResult struct {
	Topic     string
	Partition int32
	ErrorCode ErrorCode
	Message   string
	Leader    int32
}

// Key returns ElectLeaders.
func (*ElectLeadersResponse) Key() APIKey { return ElectLeaders }

// Append encodes the body.
func (r *ElectLeadersResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendInt32(dst, r.ThrottleMs)
	return appendArray(dst, r.Results, (*ElectionResult).append)
}

// Decode parses the body.
func (r *ElectLeadersResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(ElectLeaders, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ThrottleMs, r.Results = 0, r.Results[:0]
		return d.err
	}
	r.ThrottleMs = d.int32("throttle_ms")
	r.Results = decodeArray(d, "results", 14, r.Results, (*ElectionResult).decode)
	return d.finish()
}

func (e *ElectionResult) append(dst []byte) []byte {
	dst = appendString(dst, e.Topic)
	dst = appendInt32(dst, e.Partition)
	dst = appendInt16(dst, int16(e.ErrorCode))
	dst = appendString(dst, e.Message)
	return appendInt32(dst, e.Leader)
}

func (e *ElectionResult) decode(d *Decoder) {
	e.Topic = d.string("topic", e.Topic)
	e.Partition = d.int32("partition")
	e.ErrorCode = ErrorCode(d.int16("error_code"))
	e.Message = d.string("message", e.Message)
	e.Leader = d.int32("leader")
}
