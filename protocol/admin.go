package protocol

// CreateTopicsRequest creates topics. The broker forwards it to the
// controller; ValidateOnly checks everything and creates nothing.
type CreateTopicsRequest struct {
	Topics       []CreatableTopic
	TimeoutMs    int32
	ValidateOnly bool
}

// CreatableTopic is one topic to create.
type CreatableTopic struct {
	Name              string
	Partitions        int32 // -1: the broker's default
	ReplicationFactor int16 // -1: the broker's default
	Configs           []Config
}

// Config is one topic configuration setting.
type Config struct {
	Name  string
	Value string
}

// Key returns CreateTopics.
func (*CreateTopicsRequest) Key() APIKey { return CreateTopics }

// Append encodes the body.
func (r *CreateTopicsRequest) Append(dst []byte, version int16) []byte {
	dst = appendArray(dst, r.Topics, (*CreatableTopic).append)
	dst = appendInt32(dst, r.TimeoutMs)
	return appendBool(dst, r.ValidateOnly)
}

// Decode parses the body.
func (r *CreateTopicsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(CreateTopics, false, version); err != nil {
		return err
	}
	r.Topics = decodeArray(d, "topics", 12, r.Topics, (*CreatableTopic).decode)
	r.TimeoutMs = d.int32("timeout_ms")
	r.ValidateOnly = d.bool("validate_only")
	return d.finish()
}

func (t *CreatableTopic) append(dst []byte) []byte {
	dst = appendString(dst, t.Name)
	dst = appendInt32(dst, t.Partitions)
	dst = appendInt16(dst, t.ReplicationFactor)
	return appendArray(dst, t.Configs, (*Config).append)
}

func (t *CreatableTopic) decode(d *Decoder) {
	t.Name = d.string("name", t.Name)
	t.Partitions = d.int32("partitions")
	t.ReplicationFactor = d.int16("replication_factor")
	t.Configs = decodeArray(d, "configs", 4, t.Configs, (*Config).decode)
}

func (c *Config) append(dst []byte) []byte {
	return appendString(appendString(dst, c.Name), c.Value)
}

func (c *Config) decode(d *Decoder) {
	c.Name = d.string("name", c.Name)
	c.Value = d.string("value", c.Value)
}

// TopicError is the outcome for one topic of CreateTopics or DeleteTopics.
type TopicError struct {
	Name         string
	ErrorCode    ErrorCode
	ErrorMessage string // "" when the code says enough
}

func (t *TopicError) append(dst []byte) []byte {
	dst = appendString(dst, t.Name)
	dst = appendInt16(dst, int16(t.ErrorCode))
	return appendString(dst, t.ErrorMessage)
}

func (t *TopicError) decode(d *Decoder) {
	t.Name = d.string("name", t.Name)
	t.ErrorCode = ErrorCode(d.int16("error_code"))
	t.ErrorMessage = d.string("error_message", t.ErrorMessage)
}

// topicErrorsResponse is the body shared by CreateTopics and DeleteTopics
// responses: a top-level code and one TopicError per topic. Both response
// types have its fields, so each converts to it to share the codec.
type topicErrorsResponse struct {
	ErrorCode ErrorCode
	Topics    []TopicError
}

func (r *topicErrorsResponse) append(dst []byte) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	return appendArray(dst, r.Topics, (*TopicError).append)
}

func (r *topicErrorsResponse) decode(d *Decoder, k APIKey, version int16) error {
	if d.beginMessage(k, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Topics = r.Topics[:0]
		return d.err
	}
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*TopicError).decode)
	return d.finish()
}

// CreateTopicsResponse reports the outcome per topic.
type CreateTopicsResponse struct {
	ErrorCode ErrorCode
	Topics    []TopicError
}

// Key returns CreateTopics.
func (*CreateTopicsResponse) Key() APIKey { return CreateTopics }

// Append encodes the body.
func (r *CreateTopicsResponse) Append(dst []byte, version int16) []byte {
	return (*topicErrorsResponse)(r).append(dst)
}

// Decode parses the body.
func (r *CreateTopicsResponse) Decode(d *Decoder, version int16) error {
	return (*topicErrorsResponse)(r).decode(d, CreateTopics, version)
}

// DeleteTopicsRequest deletes topics by name.
type DeleteTopicsRequest struct {
	Topics    []string
	TimeoutMs int32
}

// Key returns DeleteTopics.
func (*DeleteTopicsRequest) Key() APIKey { return DeleteTopics }

// Append encodes the body.
func (r *DeleteTopicsRequest) Append(dst []byte, version int16) []byte {
	return appendInt32(appendStrings(dst, r.Topics), r.TimeoutMs)
}

// Decode parses the body.
func (r *DeleteTopicsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(DeleteTopics, false, version); err != nil {
		return err
	}
	r.Topics = d.strings("topics", r.Topics)
	r.TimeoutMs = d.int32("timeout_ms")
	return d.finish()
}

// DeleteTopicsResponse reports the outcome per topic.
type DeleteTopicsResponse struct {
	ErrorCode ErrorCode
	Topics    []TopicError
}

// Key returns DeleteTopics.
func (*DeleteTopicsResponse) Key() APIKey { return DeleteTopics }

// Append encodes the body.
func (r *DeleteTopicsResponse) Append(dst []byte, version int16) []byte {
	return (*topicErrorsResponse)(r).append(dst)
}

// Decode parses the body.
func (r *DeleteTopicsResponse) Decode(d *Decoder, version int16) error {
	return (*topicErrorsResponse)(r).decode(d, DeleteTopics, version)
}
