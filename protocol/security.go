package protocol

// The security admin APIs: SCRAM users and ACLs, stored in the cluster
// metadata. A credential travels already derived (salt, iterations,
// StoredKey, ServerKey): the password never leaves the tool it was typed
// into. The numeric fields of an ACL are Kafka's (package auth).

// ACLBinding is one ACL, or in DescribeAcls and DeleteAcls a filter whose
// "any" values (1) and empty strings match everything.
type ACLBinding struct {
	ResourceType int8
	Name         string
	PatternType  int8
	Principal    string
	Host         string
	Operation    int8
	Permission   int8
}

func (a *ACLBinding) append(dst []byte) []byte {
	dst = appendInt8(dst, a.ResourceType)
	dst = appendString(dst, a.Name)
	dst = appendInt8(dst, a.PatternType)
	dst = appendString(dst, a.Principal)
	dst = appendString(dst, a.Host)
	dst = appendInt8(dst, a.Operation)
	return appendInt8(dst, a.Permission)
}

func (a *ACLBinding) decode(d *Decoder) {
	a.ResourceType = d.int8("resource_type")
	a.Name = d.string("name", a.Name)
	a.PatternType = d.int8("pattern_type")
	a.Principal = d.string("principal", a.Principal)
	a.Host = d.string("host", a.Host)
	a.Operation = d.int8("operation")
	a.Permission = d.int8("permission")
}

// aclBindingSize is the fewest bytes an ACLBinding takes.
const aclBindingSize = 4 + 3*2

// ResultError is one item's outcome in a list of results.
type ResultError struct {
	ErrorCode    ErrorCode
	ErrorMessage string
}

func (r *ResultError) append(dst []byte) []byte {
	return appendString(appendInt16(dst, int16(r.ErrorCode)), r.ErrorMessage)
}

func (r *ResultError) decode(d *Decoder) {
	r.ErrorCode = ErrorCode(d.int16("error_code"))
	r.ErrorMessage = d.string("error_message", r.ErrorMessage)
}

// CreateAclsRequest adds ACLs; an ACL already present is not an error.
type CreateAclsRequest struct {
	ACLs []ACLBinding
}

// Key returns CreateAcls.
func (*CreateAclsRequest) Key() APIKey { return CreateAcls }

// Append encodes the body.
func (r *CreateAclsRequest) Append(dst []byte, version int16) []byte {
	return appendArray(dst, r.ACLs, (*ACLBinding).append)
}

// Decode parses the body.
func (r *CreateAclsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(CreateAcls, false, version); err != nil {
		return err
	}
	r.ACLs = decodeArray(d, "acls", aclBindingSize, r.ACLs, (*ACLBinding).decode)
	return d.finish()
}

// CreateAclsResponse has one result per ACL, in order.
type CreateAclsResponse struct {
	ErrorCode ErrorCode
	Results   []ResultError
}

// Key returns CreateAcls.
func (*CreateAclsResponse) Key() APIKey { return CreateAcls }

// Append encodes the body.
func (r *CreateAclsResponse) Append(dst []byte, version int16) []byte {
	return appendArray(appendInt16(dst, int16(r.ErrorCode)), r.Results, (*ResultError).append)
}

// Decode parses the body.
func (r *CreateAclsResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(CreateAcls, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Results = r.Results[:0]
		return d.err
	}
	r.Results = decodeArray(d, "results", 4, r.Results, (*ResultError).decode)
	return d.finish()
}

// DeleteAclsRequest removes the ACLs each filter matches.
type DeleteAclsRequest struct {
	Filters []ACLBinding
}

// Key returns DeleteAcls.
func (*DeleteAclsRequest) Key() APIKey { return DeleteAcls }

// Append encodes the body.
func (r *DeleteAclsRequest) Append(dst []byte, version int16) []byte {
	return appendArray(dst, r.Filters, (*ACLBinding).append)
}

// Decode parses the body.
func (r *DeleteAclsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(DeleteAcls, false, version); err != nil {
		return err
	}
	r.Filters = decodeArray(d, "filters", aclBindingSize, r.Filters, (*ACLBinding).decode)
	return d.finish()
}

// DeleteAclsResponse has, per filter in order, its outcome and the ACLs it
// removed.
type DeleteAclsResponse struct {
	ErrorCode ErrorCode
	Results   []DeleteAclsResult
}

// DeleteAclsResult is one filter's outcome.
type DeleteAclsResult struct {
	ErrorCode    ErrorCode
	ErrorMessage string
	Deleted      []ACLBinding
}

// Key returns DeleteAcls.
func (*DeleteAclsResponse) Key() APIKey { return DeleteAcls }

// Append encodes the body.
func (r *DeleteAclsResponse) Append(dst []byte, version int16) []byte {
	return appendArray(appendInt16(dst, int16(r.ErrorCode)), r.Results, (*DeleteAclsResult).append)
}

// Decode parses the body.
func (r *DeleteAclsResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(DeleteAcls, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Results = r.Results[:0]
		return d.err
	}
	r.Results = decodeArray(d, "results", 8, r.Results, (*DeleteAclsResult).decode)
	return d.finish()
}

func (r *DeleteAclsResult) append(dst []byte) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendString(dst, r.ErrorMessage)
	return appendArray(dst, r.Deleted, (*ACLBinding).append)
}

func (r *DeleteAclsResult) decode(d *Decoder) {
	r.ErrorCode = ErrorCode(d.int16("error_code"))
	r.ErrorMessage = d.string("error_message", r.ErrorMessage)
	r.Deleted = decodeArray(d, "deleted", aclBindingSize, r.Deleted, (*ACLBinding).decode)
}

// DescribeAclsRequest lists the ACLs a filter matches.
type DescribeAclsRequest struct {
	Filter ACLBinding
}

// Key returns DescribeAcls.
func (*DescribeAclsRequest) Key() APIKey { return DescribeAcls }

// Append encodes the body.
func (r *DescribeAclsRequest) Append(dst []byte, version int16) []byte {
	return r.Filter.append(dst)
}

// Decode parses the body.
func (r *DescribeAclsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(DescribeAcls, false, version); err != nil {
		return err
	}
	r.Filter.decode(d)
	return d.finish()
}

// DescribeAclsResponse lists matching ACLs.
type DescribeAclsResponse struct {
	ErrorCode    ErrorCode
	ErrorMessage string
	ACLs         []ACLBinding
}

// Key returns DescribeAcls.
func (*DescribeAclsResponse) Key() APIKey { return DescribeAcls }

// Append encodes the body.
func (r *DescribeAclsResponse) Append(dst []byte, version int16) []byte {
	dst = appendString(appendInt16(dst, int16(r.ErrorCode)), r.ErrorMessage)
	return appendArray(dst, r.ACLs, (*ACLBinding).append)
}

// Decode parses the body.
func (r *DescribeAclsResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(DescribeAcls, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ErrorMessage, r.ACLs = "", r.ACLs[:0]
		return d.err
	}
	r.ErrorMessage = d.string("error_message", r.ErrorMessage)
	r.ACLs = decodeArray(d, "acls", aclBindingSize, r.ACLs, (*ACLBinding).decode)
	return d.finish()
}

// DescribeUserScramCredentialsRequest lists users' SCRAM mechanisms and
// iterations (never their keys); no users means every user.
type DescribeUserScramCredentialsRequest struct {
	Users []string
}

// Key returns DescribeUserScramCredentials.
func (*DescribeUserScramCredentialsRequest) Key() APIKey { return DescribeUserScramCredentials }

// Append encodes the body.
func (r *DescribeUserScramCredentialsRequest) Append(dst []byte, version int16) []byte {
	return appendStrings(dst, r.Users)
}

// Decode parses the body.
func (r *DescribeUserScramCredentialsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(DescribeUserScramCredentials, false, version); err != nil {
		return err
	}
	r.Users = d.strings("users", r.Users)
	return d.finish()
}

// DescribeUserScramCredentialsResponse has one result per user.
type DescribeUserScramCredentialsResponse struct {
	ErrorCode ErrorCode
	Results   []UserScramResult
}

// UserScramResult is one user's credentials, or why there are none
// (RESOURCE_NOT_FOUND for an unknown user asked by name).
type UserScramResult struct {
	User         string
	ErrorCode    ErrorCode
	ErrorMessage string
	Credentials  []ScramInfo
}

// ScramInfo is one stored credential's public part.
type ScramInfo struct {
	Mechanism  string
	Iterations int32
}

// Key returns DescribeUserScramCredentials.
func (*DescribeUserScramCredentialsResponse) Key() APIKey { return DescribeUserScramCredentials }

// Append encodes the body.
func (r *DescribeUserScramCredentialsResponse) Append(dst []byte, version int16) []byte {
	return appendArray(appendInt16(dst, int16(r.ErrorCode)), r.Results, (*UserScramResult).append)
}

// Decode parses the body.
func (r *DescribeUserScramCredentialsResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(DescribeUserScramCredentials, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Results = r.Results[:0]
		return d.err
	}
	r.Results = decodeArray(d, "results", 10, r.Results, (*UserScramResult).decode)
	return d.finish()
}

func (u *UserScramResult) append(dst []byte) []byte {
	dst = appendString(dst, u.User)
	dst = appendInt16(dst, int16(u.ErrorCode))
	dst = appendString(dst, u.ErrorMessage)
	return appendArray(dst, u.Credentials, func(c *ScramInfo, dst []byte) []byte {
		return appendInt32(appendString(dst, c.Mechanism), c.Iterations)
	})
}

func (u *UserScramResult) decode(d *Decoder) {
	u.User = d.string("user", u.User)
	u.ErrorCode = ErrorCode(d.int16("error_code"))
	u.ErrorMessage = d.string("error_message", u.ErrorMessage)
	u.Credentials = decodeArray(d, "credentials", 6, u.Credentials, func(c *ScramInfo, d *Decoder) {
		c.Mechanism = d.string("mechanism", c.Mechanism)
		c.Iterations = d.int32("iterations")
	})
}

// AlterUserScramCredentialsRequest stores and deletes SCRAM credentials.
type AlterUserScramCredentialsRequest struct {
	Upsertions []ScramUpsertion
	Deletions  []ScramDeletion
}

// ScramUpsertion is a credential derived by the caller: the password
// stays with the caller.
type ScramUpsertion struct {
	User       string
	Mechanism  string
	Iterations int32
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
}

// ScramDeletion removes one user's credential for one mechanism.
type ScramDeletion struct {
	User      string
	Mechanism string
}

// Key returns AlterUserScramCredentials.
func (*AlterUserScramCredentialsRequest) Key() APIKey { return AlterUserScramCredentials }

// Append encodes the body.
func (r *AlterUserScramCredentialsRequest) Append(dst []byte, version int16) []byte {
	dst = appendArray(dst, r.Upsertions, func(u *ScramUpsertion, dst []byte) []byte {
		dst = appendString(dst, u.User)
		dst = appendString(dst, u.Mechanism)
		dst = appendInt32(dst, u.Iterations)
		dst = appendBytes(dst, u.Salt)
		dst = appendBytes(dst, u.StoredKey)
		return appendBytes(dst, u.ServerKey)
	})
	return appendArray(dst, r.Deletions, func(u *ScramDeletion, dst []byte) []byte {
		return appendString(appendString(dst, u.User), u.Mechanism)
	})
}

// Decode parses the body.
func (r *AlterUserScramCredentialsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(AlterUserScramCredentials, false, version); err != nil {
		return err
	}
	r.Upsertions = decodeArray(d, "upsertions", 20, r.Upsertions, func(u *ScramUpsertion, d *Decoder) {
		u.User = d.string("user", u.User)
		u.Mechanism = d.string("mechanism", u.Mechanism)
		u.Iterations = d.int32("iterations")
		u.Salt = d.bytes("salt")
		u.StoredKey = d.bytes("stored_key")
		u.ServerKey = d.bytes("server_key")
	})
	r.Deletions = decodeArray(d, "deletions", 4, r.Deletions, func(u *ScramDeletion, d *Decoder) {
		u.User = d.string("user", u.User)
		u.Mechanism = d.string("mechanism", u.Mechanism)
	})
	return d.finish()
}

// AlterUserScramCredentialsResponse has one result per upsertion and then
// one per deletion, in order.
type AlterUserScramCredentialsResponse struct {
	ErrorCode ErrorCode
	Results   []UserResult
}

// UserResult is one user change's outcome.
type UserResult struct {
	User         string
	ErrorCode    ErrorCode
	ErrorMessage string
}

// Key returns AlterUserScramCredentials.
func (*AlterUserScramCredentialsResponse) Key() APIKey { return AlterUserScramCredentials }

// Append encodes the body.
func (r *AlterUserScramCredentialsResponse) Append(dst []byte, version int16) []byte {
	return appendArray(appendInt16(dst, int16(r.ErrorCode)), r.Results, func(u *UserResult, dst []byte) []byte {
		dst = appendString(dst, u.User)
		return (&ResultError{u.ErrorCode, u.ErrorMessage}).append(dst)
	})
}

// Decode parses the body.
func (r *AlterUserScramCredentialsResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(AlterUserScramCredentials, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Results = r.Results[:0]
		return d.err
	}
	r.Results = decodeArray(d, "results", 6, r.Results, func(u *UserResult, d *Decoder) {
		u.User = d.string("user", u.User)
		u.ErrorCode = ErrorCode(d.int16("error_code"))
		u.ErrorMessage = d.string("error_message", u.ErrorMessage)
	})
	return d.finish()
}
