package protocol

// APIVersionsRequest asks which APIs and versions the broker supports. Its
// v0 layout (an empty body) and its response's v0 layout never change, so a
// client can always ask, and always read the answer.
type APIVersionsRequest struct{}

// Key returns APIVersions.
func (*APIVersionsRequest) Key() APIKey { return APIVersions }

// Append encodes the (empty) body.
func (*APIVersionsRequest) Append(dst []byte, version int16) []byte { return dst }

// Decode checks the body is empty.
func (*APIVersionsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(APIVersions, false, version); err != nil {
		return err
	}
	return d.finish()
}

// APIVersionRange is the range of versions supported for one API.
type APIVersionRange struct {
	Key      APIKey
	Min, Max int16
}

// APIVersionsResponse lists the broker's supported APIs. A broker answers an
// ApiVersions request of a version it does not support with a v0 response
// carrying ErrUnsupportedVersion and the full list, so the client can pick a
// version both sides speak.
type APIVersionsResponse struct {
	ErrorCode ErrorCode
	APIs      []APIVersionRange
}

// Key returns APIVersions.
func (*APIVersionsResponse) Key() APIKey { return APIVersions }

// Append encodes the body.
func (r *APIVersionsResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	return appendArray(dst, r.APIs, (*APIVersionRange).append)
}

// Decode parses the body.
func (r *APIVersionsResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(APIVersions, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.APIs = r.APIs[:0]
		return d.err
	}
	r.APIs = decodeArray(d, "apis", 6, r.APIs, (*APIVersionRange).decode)
	return d.finish()
}

func (v *APIVersionRange) append(dst []byte) []byte {
	dst = appendInt16(dst, int16(v.Key))
	dst = appendInt16(dst, v.Min)
	return appendInt16(dst, v.Max)
}

func (v *APIVersionRange) decode(d *Decoder) {
	v.Key = APIKey(d.int16("api_key"))
	v.Min = d.int16("min_version")
	v.Max = d.int16("max_version")
}

// MetadataRequest asks for the cluster's brokers and controller and for the
// named topics' partitions. AllTopics asks for every topic (encoded as a
// null topics array); otherwise an empty Topics asks for none.
type MetadataRequest struct {
	Topics    []string
	AllTopics bool
}

// Key returns Metadata.
func (*MetadataRequest) Key() APIKey { return Metadata }

// Append encodes the body.
func (r *MetadataRequest) Append(dst []byte, version int16) []byte {
	if r.AllTopics {
		return appendInt32(dst, -1)
	}
	return appendStrings(dst, r.Topics)
}

// Decode parses the body.
func (r *MetadataRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(Metadata, false, version); err != nil {
		return err
	}
	n, null := d.nullableArrayLen("topics", 2)
	r.AllTopics = null
	r.Topics = d.fillStrings("topics", resize(r.Topics, n))
	return d.finish()
}

// MetadataResponse describes the cluster as the answering broker knows it.
type MetadataResponse struct {
	ErrorCode    ErrorCode
	Brokers      []BrokerMetadata
	ClusterID    string
	ControllerID int32 // -1 when no controller is known
	Topics       []TopicMetadata
}

// BrokerMetadata is one live broker.
type BrokerMetadata struct {
	ID   int32
	Host string
	Port int32
	Rack string // "" when none is configured
}

// TopicMetadata is one topic and its partitions.
type TopicMetadata struct {
	ErrorCode ErrorCode
	Name      string
	// ID tells the incarnations of a name apart (a topic deleted and
	// created again gets a new one); 0 when unknown. Version 1 on.
	ID         uint64
	Internal   bool
	Partitions []PartitionMetadata
}

// PartitionMetadata is one partition's leadership and replica sets.
type PartitionMetadata struct {
	ErrorCode       ErrorCode
	Partition       int32
	Leader          int32 // -1 when the partition is offline
	LeaderEpoch     int32
	Replicas        []int32
	ISR             []int32
	OfflineReplicas []int32
	// Note (version 2) is the controller's word on the partition for
	// tools: why it has no leader, or that its leader came from a
	// balanced unclean recovery and how many committed offsets it may
	// lack; "" when there is nothing to say.
	Note string
}

// Key returns Metadata.
func (*MetadataResponse) Key() APIKey { return Metadata }

// Append encodes the body.
func (r *MetadataResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendArray(dst, r.Brokers, (*BrokerMetadata).append)
	dst = appendString(dst, r.ClusterID)
	dst = appendInt32(dst, r.ControllerID)
	dst = appendInt32(dst, int32(len(r.Topics)))
	for i := range r.Topics {
		dst = r.Topics[i].append(dst, version)
	}
	return dst
}

// Decode parses the body.
func (r *MetadataResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(Metadata, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		*r = MetadataResponse{ErrorCode: r.ErrorCode, Brokers: r.Brokers[:0], Topics: r.Topics[:0]}
		return d.err
	}
	r.Brokers = decodeArray(d, "brokers", 12, r.Brokers, (*BrokerMetadata).decode)
	r.ClusterID = d.string("cluster_id", r.ClusterID)
	r.ControllerID = d.int32("controller_id")
	r.Topics = decodeArray(d, "topics", 9, r.Topics, func(t *TopicMetadata, d *Decoder) { t.decode(d, version) })
	return d.finish()
}

func (b *BrokerMetadata) append(dst []byte) []byte {
	dst = appendInt32(dst, b.ID)
	dst = appendString(dst, b.Host)
	dst = appendInt32(dst, b.Port)
	return appendString(dst, b.Rack)
}

func (b *BrokerMetadata) decode(d *Decoder) {
	b.ID = d.int32("id")
	b.Host = d.string("host", b.Host)
	b.Port = d.int32("port")
	b.Rack = d.string("rack", b.Rack)
}

func (t *TopicMetadata) append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(t.ErrorCode))
	dst = appendString(dst, t.Name)
	if version >= 1 {
		dst = appendInt64(dst, int64(t.ID))
	}
	dst = appendBool(dst, t.Internal)
	dst = appendInt32(dst, int32(len(t.Partitions)))
	for i := range t.Partitions {
		dst = t.Partitions[i].append(dst, version)
	}
	return dst
}

func (t *TopicMetadata) decode(d *Decoder, version int16) {
	t.ErrorCode = ErrorCode(d.int16("error_code"))
	t.Name = d.string("name", t.Name)
	t.ID = 0
	if version >= 1 {
		t.ID = uint64(d.int64("topic_id"))
	}
	t.Internal = d.bool("internal")
	t.Partitions = decodeArray(d, "partitions", 26, t.Partitions, func(p *PartitionMetadata, d *Decoder) { p.decode(d, version) })
}

func (p *PartitionMetadata) append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(p.ErrorCode))
	dst = appendInt32(dst, p.Partition)
	dst = appendInt32(dst, p.Leader)
	dst = appendInt32(dst, p.LeaderEpoch)
	dst = appendInt32s(dst, p.Replicas)
	dst = appendInt32s(dst, p.ISR)
	dst = appendInt32s(dst, p.OfflineReplicas)
	if version >= 2 {
		dst = appendString(dst, p.Note)
	}
	return dst
}

func (p *PartitionMetadata) decode(d *Decoder, version int16) {
	p.ErrorCode = ErrorCode(d.int16("error_code"))
	p.Partition = d.int32("partition")
	p.Leader = d.int32("leader")
	p.LeaderEpoch = d.int32("leader_epoch")
	p.Replicas = d.int32s("replicas", p.Replicas)
	p.ISR = d.int32s("isr", p.ISR)
	p.OfflineReplicas = d.int32s("offline_replicas", p.OfflineReplicas)
	p.Note = ""
	if version >= 2 {
		p.Note = d.string("note", p.Note)
	}
}
