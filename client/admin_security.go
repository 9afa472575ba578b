package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/protocol"
)

// Security administration: SCRAM users and ACLs. Brokers store them in the
// cluster metadata; see docs/security.md for what enforces them.

// UserInfo is a user's stored SCRAM credentials as the cluster shows
// them: mechanisms and iterations, never keys.
type UserInfo struct {
	User        string
	Credentials []UserCredential
}

// UserCredential is one mechanism a user can authenticate with.
type UserCredential struct {
	Mechanism  auth.Mechanism
	Iterations int
}

// UpsertUser stores a SCRAM credential for user, derived here from
// password with a fresh salt: the password never leaves this process.
// iterations 0 means auth.DefaultIterations.
func (c *Client) UpsertUser(ctx context.Context, user, password string, mech auth.Mechanism, iterations int) error {
	if iterations == 0 {
		iterations = auth.DefaultIterations
	}
	cred, err := auth.NewCredential(mech, password, iterations)
	if err != nil {
		return fmt.Errorf("user %q: %w", user, err)
	}
	req := &protocol.AlterUserScramCredentialsRequest{Upsertions: []protocol.ScramUpsertion{{User: user, Mechanism: string(cred.Mechanism),
		Iterations: int32(cred.Iterations), Salt: cred.Salt, StoredKey: cred.StoredKey, ServerKey: cred.ServerKey}}}
	return c.alterUsers(ctx, req)
}

// DeleteUser removes user's credential for mech.
func (c *Client) DeleteUser(ctx context.Context, user string, mech auth.Mechanism) error {
	return c.alterUsers(ctx, &protocol.AlterUserScramCredentialsRequest{Deletions: []protocol.ScramDeletion{{User: user, Mechanism: string(mech)}}})
}

func (c *Client) alterUsers(ctx context.Context, req *protocol.AlterUserScramCredentialsRequest) error {
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.AlterUserScramCredentialsResponse) }, false)
	if err != nil {
		return fmt.Errorf("alter users: %w", err)
	}
	var errs []error
	for _, r := range m.(*protocol.AlterUserScramCredentialsResponse).Results {
		if r.ErrorCode != protocol.NoError {
			errs = append(errs, fmt.Errorf("user %q: %w", r.User, r.ErrorCode.ErrWithDetail(r.ErrorMessage)))
		}
	}
	return errors.Join(errs...)
}

// ListUsers describes the named users, or every user when none is named.
// A named user without credentials is an error (RESOURCE_NOT_FOUND).
func (c *Client) ListUsers(ctx context.Context, users ...string) ([]UserInfo, error) {
	m, err := c.roundTrip(ctx, anyBroker, &protocol.DescribeUserScramCredentialsRequest{Users: users},
		func() protocol.Message { return new(protocol.DescribeUserScramCredentialsResponse) }, true)
	if err != nil {
		return nil, fmt.Errorf("describe users: %w", err)
	}
	var out []UserInfo
	var errs []error
	for _, r := range m.(*protocol.DescribeUserScramCredentialsResponse).Results {
		if r.ErrorCode != protocol.NoError {
			errs = append(errs, fmt.Errorf("user %q: %w", r.User, r.ErrorCode.ErrWithDetail(r.ErrorMessage)))
			continue
		}
		u := UserInfo{User: r.User}
		for _, cr := range r.Credentials {
			u.Credentials = append(u.Credentials, UserCredential{Mechanism: auth.Mechanism(cr.Mechanism), Iterations: int(cr.Iterations)})
		}
		out = append(out, u)
	}
	return out, errors.Join(errs...)
}

func aclToWire(a auth.ACL) protocol.ACLBinding {
	return protocol.ACLBinding{ResourceType: int8(a.Resource), Name: a.Name, PatternType: int8(a.Pattern), Principal: a.Principal,
		Host: a.Host, Operation: int8(a.Op), Permission: int8(a.Permission)}
}

func aclsFromWire(bs []protocol.ACLBinding) []auth.ACL {
	out := make([]auth.ACL, len(bs))
	for i, a := range bs {
		out[i] = auth.ACL{Principal: a.Principal, Host: a.Host, Resource: auth.ResourceType(a.ResourceType), Name: a.Name,
			Pattern: auth.PatternType(a.PatternType), Op: auth.Operation(a.Operation), Permission: auth.Permission(a.Permission)}
	}
	return out
}

// CreateACLs adds ACLs. An ACL already present is not an error.
func (c *Client) CreateACLs(ctx context.Context, acls ...auth.ACL) error {
	req := &protocol.CreateAclsRequest{ACLs: make([]protocol.ACLBinding, len(acls))}
	for i, a := range acls {
		req.ACLs[i] = aclToWire(a)
	}
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.CreateAclsResponse) }, false)
	if err != nil {
		return fmt.Errorf("create ACLs: %w", err)
	}
	var errs []error
	for i, r := range m.(*protocol.CreateAclsResponse).Results {
		if r.ErrorCode != protocol.NoError && i < len(acls) {
			errs = append(errs, fmt.Errorf("ACL %v: %w", acls[i], r.ErrorCode.ErrWithDetail(r.ErrorMessage)))
		}
	}
	return errors.Join(errs...)
}

// ListACLs returns the ACLs f matches (the zero Filter matches every ACL).
func (c *Client) ListACLs(ctx context.Context, f auth.Filter) ([]auth.ACL, error) {
	m, err := c.roundTrip(ctx, anyBroker, &protocol.DescribeAclsRequest{Filter: aclToWire(auth.ACL(f))},
		func() protocol.Message { return new(protocol.DescribeAclsResponse) }, true)
	if err != nil {
		return nil, fmt.Errorf("describe ACLs: %w", err)
	}
	r := m.(*protocol.DescribeAclsResponse)
	if r.ErrorCode != protocol.NoError {
		return nil, fmt.Errorf("describe ACLs: %w", r.ErrorCode.ErrWithDetail(r.ErrorMessage))
	}
	return aclsFromWire(r.ACLs), nil
}

// DeleteACLs removes the ACLs the filters match and returns them.
func (c *Client) DeleteACLs(ctx context.Context, filters ...auth.Filter) ([]auth.ACL, error) {
	req := &protocol.DeleteAclsRequest{Filters: make([]protocol.ACLBinding, len(filters))}
	for i, f := range filters {
		req.Filters[i] = aclToWire(auth.ACL(f))
	}
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.DeleteAclsResponse) }, false)
	if err != nil {
		return nil, fmt.Errorf("delete ACLs: %w", err)
	}
	var out []auth.ACL
	var errs []error
	for _, r := range m.(*protocol.DeleteAclsResponse).Results {
		if r.ErrorCode != protocol.NoError {
			errs = append(errs, fmt.Errorf("delete ACLs: %w", r.ErrorCode.ErrWithDetail(r.ErrorMessage)))
			continue
		}
		out = append(out, aclsFromWire(r.Deleted)...)
	}
	return out, errors.Join(errs...)
}
