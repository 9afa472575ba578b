package protocol

// ResourceType says what a config resource names. Kafka's numbers.
type ResourceType int8

// The resource types.
const (
	ResourceTopic  ResourceType = 2
	ResourceBroker ResourceType = 4
	// ResourceGroup is a group's configs (KIP-848's GROUP, 32): a queue
	// group's settings.
	ResourceGroup ResourceType = 32
)

// DescribeConfigsRequest asks for the configs of topics (or brokers).
type DescribeConfigsRequest struct {
	Resources []DescribeConfigsResource
}

// DescribeConfigsResource is one resource to describe; empty ConfigNames
// asks for all its configs.
type DescribeConfigsResource struct {
	Type        ResourceType
	Name        string
	ConfigNames []string
}

// Key returns DescribeConfigs.
func (*DescribeConfigsRequest) Key() APIKey { return DescribeConfigs }

// Append encodes the body.
func (r *DescribeConfigsRequest) Append(dst []byte, version int16) []byte {
	return appendArray(dst, r.Resources, (*DescribeConfigsResource).append)
}

// Decode parses the body.
func (r *DescribeConfigsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(DescribeConfigs, false, version); err != nil {
		return err
	}
	r.Resources = decodeArray(d, "resources", 7, r.Resources, (*DescribeConfigsResource).decode)
	return d.finish()
}

func (c *DescribeConfigsResource) append(dst []byte) []byte {
	dst = appendInt8(dst, int8(c.Type))
	dst = appendString(dst, c.Name)
	return appendStrings(dst, c.ConfigNames)
}

func (c *DescribeConfigsResource) decode(d *Decoder) {
	c.Type = ResourceType(d.int8("resource_type"))
	c.Name = d.string("resource_name", c.Name)
	c.ConfigNames = d.strings("config_names", c.ConfigNames)
}

// DescribeConfigsResponse holds each resource's configs.
type DescribeConfigsResponse struct {
	ErrorCode ErrorCode
	Resources []DescribeConfigsResult
}

// DescribeConfigsResult is one resource's outcome and configs.
type DescribeConfigsResult struct {
	ErrorCode    ErrorCode
	ErrorMessage string
	Type         ResourceType
	Name         string
	Configs      []ConfigEntry
}

// ConfigEntry is one config value as the broker sees it.
type ConfigEntry struct {
	Name      string
	Value     string // "" for sensitive values
	ReadOnly  bool
	IsDefault bool
	Sensitive bool
}

// Key returns DescribeConfigs.
func (*DescribeConfigsResponse) Key() APIKey { return DescribeConfigs }

// Append encodes the body.
func (r *DescribeConfigsResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	return appendArray(dst, r.Resources, (*DescribeConfigsResult).append)
}

// Decode parses the body.
func (r *DescribeConfigsResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(DescribeConfigs, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Resources = r.Resources[:0]
		return d.err
	}
	r.Resources = decodeArray(d, "resources", 11, r.Resources, (*DescribeConfigsResult).decode)
	return d.finish()
}

func (c *DescribeConfigsResult) append(dst []byte) []byte {
	dst = appendInt16(dst, int16(c.ErrorCode))
	dst = appendString(dst, c.ErrorMessage)
	dst = appendInt8(dst, int8(c.Type))
	dst = appendString(dst, c.Name)
	return appendArray(dst, c.Configs, (*ConfigEntry).append)
}

func (c *DescribeConfigsResult) decode(d *Decoder) {
	c.ErrorCode = ErrorCode(d.int16("error_code"))
	c.ErrorMessage = d.string("error_message", c.ErrorMessage)
	c.Type = ResourceType(d.int8("resource_type"))
	c.Name = d.string("resource_name", c.Name)
	c.Configs = decodeArray(d, "configs", 7, c.Configs, (*ConfigEntry).decode)
}

func (c *ConfigEntry) append(dst []byte) []byte {
	dst = appendString(dst, c.Name)
	dst = appendString(dst, c.Value)
	dst = appendBool(dst, c.ReadOnly)
	dst = appendBool(dst, c.IsDefault)
	return appendBool(dst, c.Sensitive)
}

func (c *ConfigEntry) decode(d *Decoder) {
	c.Name = d.string("name", c.Name)
	c.Value = d.string("value", c.Value)
	c.ReadOnly = d.bool("read_only")
	c.IsDefault = d.bool("is_default")
	c.Sensitive = d.bool("sensitive")
}

// ConfigOp says what AlterConfigs does with one config.
type ConfigOp int8

// The operations.
const (
	ConfigSet    ConfigOp = 0 // set to Value
	ConfigDelete ConfigOp = 1 // revert to the default; Value is ignored
)

// AlterConfigsRequest changes configs incrementally: configs not named keep
// their values.
type AlterConfigsRequest struct {
	Resources    []AlterConfigsResource
	ValidateOnly bool
}

// AlterConfigsResource is one resource's changes.
type AlterConfigsResource struct {
	Type    ResourceType
	Name    string
	Configs []AlterableConfig
}

// AlterableConfig is one change.
type AlterableConfig struct {
	Name  string
	Op    ConfigOp
	Value string
}

// Key returns AlterConfigs.
func (*AlterConfigsRequest) Key() APIKey { return AlterConfigs }

// Append encodes the body.
func (r *AlterConfigsRequest) Append(dst []byte, version int16) []byte {
	dst = appendArray(dst, r.Resources, (*AlterConfigsResource).append)
	return appendBool(dst, r.ValidateOnly)
}

// Decode parses the body.
func (r *AlterConfigsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(AlterConfigs, false, version); err != nil {
		return err
	}
	r.Resources = decodeArray(d, "resources", 7, r.Resources, (*AlterConfigsResource).decode)
	r.ValidateOnly = d.bool("validate_only")
	return d.finish()
}

func (c *AlterConfigsResource) append(dst []byte) []byte {
	dst = appendInt8(dst, int8(c.Type))
	dst = appendString(dst, c.Name)
	return appendArray(dst, c.Configs, (*AlterableConfig).append)
}

func (c *AlterConfigsResource) decode(d *Decoder) {
	c.Type = ResourceType(d.int8("resource_type"))
	c.Name = d.string("resource_name", c.Name)
	c.Configs = decodeArray(d, "configs", 5, c.Configs, (*AlterableConfig).decode)
}

func (c *AlterableConfig) append(dst []byte) []byte {
	dst = appendString(dst, c.Name)
	dst = appendInt8(dst, int8(c.Op))
	return appendString(dst, c.Value)
}

func (c *AlterableConfig) decode(d *Decoder) {
	c.Name = d.string("name", c.Name)
	c.Op = ConfigOp(d.int8("op"))
	c.Value = d.string("value", c.Value)
}

// AlterConfigsResponse reports the outcome per resource.
type AlterConfigsResponse struct {
	ErrorCode ErrorCode
	Resources []ResourceError
}

// ResourceError is the outcome for one config resource.
type ResourceError struct {
	ErrorCode    ErrorCode
	ErrorMessage string
	Type         ResourceType
	Name         string
}

// Key returns AlterConfigs.
func (*AlterConfigsResponse) Key() APIKey { return AlterConfigs }

// Append encodes the body.
func (r *AlterConfigsResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	return appendArray(dst, r.Resources, (*ResourceError).append)
}

// Decode parses the body.
func (r *AlterConfigsResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(AlterConfigs, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Resources = r.Resources[:0]
		return d.err
	}
	r.Resources = decodeArray(d, "resources", 7, r.Resources, (*ResourceError).decode)
	return d.finish()
}

func (e *ResourceError) append(dst []byte) []byte {
	dst = appendInt16(dst, int16(e.ErrorCode))
	dst = appendString(dst, e.ErrorMessage)
	dst = appendInt8(dst, int8(e.Type))
	return appendString(dst, e.Name)
}

func (e *ResourceError) decode(d *Decoder) {
	e.ErrorCode = ErrorCode(d.int16("error_code"))
	e.ErrorMessage = d.string("error_message", e.ErrorMessage)
	e.Type = ResourceType(d.int8("resource_type"))
	e.Name = d.string("resource_name", e.Name)
}
