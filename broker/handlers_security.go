package broker

import (
	"bytes"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// The security admin handlers translate the wire to the core
// (core_security.go) and back.

func aclFromWire(a *protocol.ACLBinding) auth.ACL {
	return auth.ACL{Principal: a.Principal, Host: a.Host, Resource: auth.ResourceType(a.ResourceType), Name: a.Name,
		Pattern: auth.PatternType(a.PatternType), Op: auth.Operation(a.Operation), Permission: auth.Permission(a.Permission)}
}

func aclToWire(a auth.ACL) protocol.ACLBinding {
	return protocol.ACLBinding{ResourceType: int8(a.Resource), Name: a.Name, PatternType: int8(a.Pattern), Principal: a.Principal,
		Host: a.Host, Operation: int8(a.Op), Permission: int8(a.Permission)}
}

func aclsToWire(acls []auth.ACL) []protocol.ACLBinding {
	out := make([]protocol.ACLBinding, len(acls))
	for i, a := range acls {
		out[i] = aclToWire(a)
	}
	return out
}

func (c *conn) handleCreateAcls(h *protocol.RequestHeader, resp *response) error {
	var req protocol.CreateAclsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	acls := make([]auth.ACL, len(req.ACLs))
	for i := range req.ACLs {
		acls[i] = aclFromWire(&req.ACLs[i])
	}
	ctx, cancel := adminContext(0)
	defer cancel()
	errs := c.b.CreateACLs(ctx, acls)
	out := protocol.CreateAclsResponse{Results: make([]protocol.ResultError, len(errs))}
	for i, err := range errs {
		out.Results[i].ErrorCode, out.Results[i].ErrorMessage = ErrorCode(err)
	}
	c.encode(resp, h, &out)
	return nil
}

func (c *conn) handleDeleteAcls(h *protocol.RequestHeader, resp *response) error {
	var req protocol.DeleteAclsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	filters := make([]auth.Filter, len(req.Filters))
	for i := range req.Filters {
		filters[i] = auth.Filter(aclFromWire(&req.Filters[i]))
	}
	ctx, cancel := adminContext(0)
	defer cancel()
	deleted, err := c.b.DeleteACLs(ctx, filters)
	out := protocol.DeleteAclsResponse{Results: make([]protocol.DeleteAclsResult, len(filters))}
	for i := range out.Results {
		if err != nil {
			out.Results[i].ErrorCode, out.Results[i].ErrorMessage = ErrorCode(err)
			continue
		}
		out.Results[i].Deleted = aclsToWire(deleted[i])
	}
	c.encode(resp, h, &out)
	return nil
}

func (c *conn) handleDescribeAcls(h *protocol.RequestHeader, resp *response) error {
	var req protocol.DescribeAclsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	c.encode(resp, h, &protocol.DescribeAclsResponse{ACLs: aclsToWire(c.b.DescribeACLs(auth.Filter(aclFromWire(&req.Filter))))})
	return nil
}

func (c *conn) handleDescribeUserScramCredentials(h *protocol.RequestHeader, resp *response) error {
	var req protocol.DescribeUserScramCredentialsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	users, errs := c.b.DescribeUsers(req.Users)
	out := protocol.DescribeUserScramCredentialsResponse{Results: make([]protocol.UserScramResult, len(users))}
	for i, u := range users {
		r := &out.Results[i]
		r.User = u.User
		r.ErrorCode, r.ErrorMessage = ErrorCode(errs[i])
		for j, m := range u.Mechanisms {
			r.Credentials = append(r.Credentials, protocol.ScramInfo{Mechanism: string(m), Iterations: int32(u.Iterations[j])})
		}
	}
	c.encode(resp, h, &out)
	return nil
}

func (c *conn) handleAlterUserScramCredentials(h *protocol.RequestHeader, resp *response) error {
	var req protocol.AlterUserScramCredentialsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	upserts := make([]controller.UpsertCredential, len(req.Upsertions))
	for i, u := range req.Upsertions {
		// The byte fields alias the request frame: copy them.
		upserts[i] = controller.UpsertCredential{User: u.User, Credential: auth.Credential{Mechanism: auth.Mechanism(u.Mechanism),
			Salt: bytes.Clone(u.Salt), Iterations: int(u.Iterations), StoredKey: bytes.Clone(u.StoredKey), ServerKey: bytes.Clone(u.ServerKey)}}
	}
	deletes := make([]controller.DeleteCredential, len(req.Deletions))
	for i, d := range req.Deletions {
		deletes[i] = controller.DeleteCredential{User: d.User, Mechanism: auth.Mechanism(d.Mechanism)}
	}
	ctx, cancel := adminContext(0)
	defer cancel()
	errs := c.b.UpsertCredentials(ctx, upserts, deletes)
	out := protocol.AlterUserScramCredentialsResponse{Results: make([]protocol.UserResult, len(errs))}
	for i, err := range errs {
		if i < len(upserts) {
			out.Results[i].User = upserts[i].User
		} else {
			out.Results[i].User = deletes[i-len(upserts)].User
		}
		out.Results[i].ErrorCode, out.Results[i].ErrorMessage = ErrorCode(err)
	}
	c.encode(resp, h, &out)
	return nil
}
