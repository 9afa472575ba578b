package kafka

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// Kafka's security admin APIs on the listener: DescribeAcls, CreateAcls
// and DeleteAcls over the broker core's ACL calls (Broker.DescribeACLs,
// CreateACLs, DeleteACLs in broker/core_security.go, the ones the sluice
// protocol's handlers use); DescribeUserScramCredentials and
// AlterUserScramCredentials over DescribeUsers and UpsertCredentials,
// needing describe and alter on the cluster. sluice's ACL model is Kafka's, numbers
// included (package auth), so the translation is of null strings and of
// what sluice does not have: transactional-id, delegation-token and user
// resources are refused in creations and match nothing in filters; a
// queue group is a GROUP resource (its name shares the group namespace).
// DescribeAcls needs DESCRIBE on the cluster, the others ALTER (refusal
// in kafka.go), as in Kafka.

// errUnknownACLEnum refuses a filter with an UNKNOWN (0) field, as Kafka
// does.
var errUnknownACLEnum = &protocol.Error{Code: protocol.ErrInvalidRequest,
	Detail: "ACL filter with an UNKNOWN resource type, pattern type, operation or permission"}

// supportedACLResource reports whether sluice stores ACLs of type rt (in
// a creation) and says why not.
func supportedACLResource(rt kmsg.ACLResourceType) error {
	switch rt {
	case kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup, kmsg.ACLResourceTypeCluster:
		return nil
	case kmsg.ACLResourceTypeTransactionalId:
		return &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: "TRANSACTIONAL_ID ACLs are not supported: sluice serves no transactions"}
	case kmsg.ACLResourceTypeDelegationToken, kmsg.ACLResourceTypeUser:
		return &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: fmt.Sprintf("%v ACLs are not supported: sluice has no delegation tokens", rt)}
	}
	return &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: fmt.Sprintf("ACL resource type %v: want TOPIC, GROUP or CLUSTER", rt)}
}

// aclFilter is the core filter of a Kafka ACL filter (null strings match
// every value).
func aclFilter(rt kmsg.ACLResourceType, name *string, pt kmsg.ACLResourcePatternType, principal, host *string,
	op kmsg.ACLOperation, perm kmsg.ACLPermissionType) (auth.Filter, error) {
	if rt == 0 || pt == 0 || op == 0 || perm == 0 {
		return auth.Filter{}, errUnknownACLEnum
	}
	deref := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	return auth.Filter{Principal: deref(principal), Host: deref(host), Resource: auth.ResourceType(rt), Name: deref(name),
		Pattern: auth.PatternType(pt), Op: auth.Operation(op), Permission: auth.Permission(perm)}, nil
}

// describeACLs lists the ACLs the filter matches, grouped by resource
// pattern as Kafka answers.
func (s *Server) describeACLs(req *kmsg.DescribeACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	f, err := aclFilter(req.ResourceType, req.ResourceName, req.ResourcePatternType, req.Principal, req.Host, req.Operation, req.PermissionType)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errorCode(err)
		return resp
	}
	type pattern struct {
		rt   auth.ResourceType
		name string
		pt   auth.PatternType
	}
	at := map[pattern]int{}
	for _, a := range s.b.DescribeACLs(f) {
		k := pattern{a.Resource, a.Name, a.Pattern}
		i, ok := at[k]
		if !ok {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType, r.ResourceName, r.ResourcePatternType = kmsg.ACLResourceType(a.Resource), a.Name, kmsg.ACLResourcePatternType(a.Pattern)
			i = len(resp.Resources)
			at[k] = i
			resp.Resources = append(resp.Resources, r)
		}
		e := kmsg.NewDescribeACLsResponseResourceACL()
		e.Principal, e.Host, e.Operation, e.PermissionType = a.Principal, a.Host, kmsg.ACLOperation(a.Op), kmsg.ACLPermissionType(a.Permission)
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, e)
	}
	return resp
}

// createACLs adds ACLs through the core, which validates each.
func (s *Server) createACLs(ctx context.Context, req *kmsg.CreateACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	refused := make([]error, len(req.Creations))
	var acls []auth.ACL
	for i, c := range req.Creations {
		if refused[i] = supportedACLResource(c.ResourceType); refused[i] != nil {
			continue
		}
		acls = append(acls, auth.ACL{Principal: c.Principal, Host: c.Host, Resource: auth.ResourceType(c.ResourceType), Name: c.ResourceName,
			Pattern: auth.PatternType(c.ResourcePatternType), Op: auth.Operation(c.Operation), Permission: auth.Permission(c.PermissionType)})
	}
	ctx, cancel := ctxTimeout(ctx, 0)
	defer cancel()
	for _, err := range withRefused(refused, s.b.CreateACLs(ctx, acls)) {
		r := kmsg.NewCreateACLsResponseResult()
		r.ErrorCode, r.ErrorMessage = errorCode(err)
		resp.Results = append(resp.Results, r)
	}
	return resp
}

// deleteACLs removes the ACLs each filter matches through the core and
// answers them per filter.
func (s *Server) deleteACLs(ctx context.Context, req *kmsg.DeleteACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	refused := make([]error, len(req.Filters))
	var filters []auth.Filter
	for i, f := range req.Filters {
		var af auth.Filter
		if af, refused[i] = aclFilter(f.ResourceType, f.ResourceName, f.ResourcePatternType, f.Principal, f.Host, f.Operation, f.PermissionType); refused[i] == nil {
			filters = append(filters, af)
		}
	}
	ctx, cancel := ctxTimeout(ctx, 0)
	defer cancel()
	var deleted [][]auth.ACL
	coreErrs := make([]error, len(filters))
	if len(filters) > 0 {
		var err error
		if deleted, err = s.b.DeleteACLs(ctx, filters); err != nil {
			for i := range coreErrs {
				coreErrs[i] = err
			}
		}
	}
	k := 0
	for i, err := range withRefused(refused, coreErrs) {
		r := kmsg.NewDeleteACLsResponseResult()
		r.ErrorCode, r.ErrorMessage = errorCode(err)
		if refused[i] == nil {
			if err == nil {
				for _, a := range deleted[k] {
					m := kmsg.NewDeleteACLsResponseResultMatchingACL()
					m.ResourceType, m.ResourceName, m.ResourcePatternType = kmsg.ACLResourceType(a.Resource), a.Name, kmsg.ACLResourcePatternType(a.Pattern)
					m.Principal, m.Host, m.Operation, m.PermissionType = a.Principal, a.Host, kmsg.ACLOperation(a.Op), kmsg.ACLPermissionType(a.Permission)
					r.MatchingACLs = append(r.MatchingACLs, m)
				}
			}
			k++
		}
		resp.Results = append(resp.Results, r)
	}
	return resp
}

// Kafka's SCRAM mechanism numbers (DescribeUserScramCredentials,
// AlterUserScramCredentials).
var scramMechanisms = map[int8]auth.Mechanism{1: auth.ScramSHA256, 2: auth.ScramSHA512}

func scramNumber(m auth.Mechanism) int8 {
	for n, mm := range scramMechanisms {
		if mm == m {
			return n
		}
	}
	return 0
}

// describeUserSCRAMCredentials lists users' mechanisms and iterations
// through the core (Broker.DescribeUsers; no users named: every user).
// A user without credentials is RESOURCE_NOT_FOUND, as in Kafka.
func (s *Server) describeUserSCRAMCredentials(req *kmsg.DescribeUserSCRAMCredentialsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	names := make([]string, len(req.Users))
	for i, u := range req.Users {
		names[i] = u.Name
	}
	users, errs := s.b.DescribeUsers(names)
	for i, u := range users {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = u.User
		r.ErrorCode, r.ErrorMessage = errorCode(errs[i])
		for j, m := range u.Mechanisms {
			c := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
			c.Mechanism, c.Iterations = scramNumber(m), int32(u.Iterations[j])
			r.CredentialInfos = append(r.CredentialInfos, c)
		}
		resp.Results = append(resp.Results, r)
	}
	return resp
}

// alterUserSCRAMCredentials deletes and upserts credentials through the
// core (Broker.UpsertCredentials). An upsertion carries Kafka's salted
// password: the broker derives StoredKey and ServerKey from it
// (auth.CredentialFromSaltedPassword) and stores those, never the salted
// password. One result per user, as Kafka answers: the user's first
// error, or none.
func (s *Server) alterUserSCRAMCredentials(ctx context.Context, req *kmsg.AlterUserSCRAMCredentialsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	var users []string
	userErr := map[string]error{}
	fail := func(user string, err error) {
		if _, seen := userErr[user]; !seen {
			users = append(users, user)
		}
		if userErr[user] == nil {
			userErr[user] = err
		}
	}
	mechanism := func(n int8) (auth.Mechanism, error) {
		if m, ok := scramMechanisms[n]; ok {
			return m, nil
		}
		return "", &protocol.Error{Code: protocol.ErrUnsupportedSaslMechanism, Detail: fmt.Sprintf("SCRAM mechanism %d: want 1 (SCRAM-SHA-256) or 2 (SCRAM-SHA-512)", n)}
	}
	var deletes []controller.DeleteCredential
	var upserts []controller.UpsertCredential
	for _, d := range req.Deletions {
		m, err := mechanism(d.Mechanism)
		if err == nil && d.Name == "" {
			err = &protocol.Error{Code: protocol.ErrUnacceptableCredential, Detail: "empty user name"}
		}
		fail(d.Name, err)
		if err == nil {
			deletes = append(deletes, controller.DeleteCredential{User: d.Name, Mechanism: m})
		}
	}
	for _, u := range req.Upsertions {
		m, err := mechanism(u.Mechanism)
		var cred auth.Credential
		if err == nil {
			if cred, err = auth.CredentialFromSaltedPassword(m, u.Salt, u.SaltedPassword, int(u.Iterations)); err != nil {
				err = &protocol.Error{Code: protocol.ErrUnacceptableCredential, Detail: err.Error()}
			}
		}
		if err == nil && u.Name == "" {
			err = &protocol.Error{Code: protocol.ErrUnacceptableCredential, Detail: "empty user name"}
		}
		fail(u.Name, err)
		if err == nil {
			upserts = append(upserts, controller.UpsertCredential{User: u.Name, Credential: cred})
		}
	}
	ctx, cancel := ctxTimeout(ctx, 0)
	defer cancel()
	// A user refused above is not changed at all.
	upserts = slices.DeleteFunc(upserts, func(c controller.UpsertCredential) bool { return userErr[c.User] != nil })
	deletes = slices.DeleteFunc(deletes, func(c controller.DeleteCredential) bool { return userErr[c.User] != nil })
	errs := s.b.UpsertCredentials(ctx, upserts, deletes)
	for i, err := range errs {
		if i < len(upserts) {
			fail(upserts[i].User, err)
		} else {
			fail(deletes[i-len(upserts)].User, err)
		}
	}
	for _, u := range users {
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User = u
		r.ErrorCode, r.ErrorMessage = errorCode(userErr[u])
		resp.Results = append(resp.Results, r)
	}
	return resp
}

// failedSecurity is failed for the security admin keys and DeleteRecords
// (nil for others).
func failedSecurity(req kmsg.Request, code int16) kmsg.Response {
	switch r := req.(type) {
	case *kmsg.DescribeACLsRequest:
		resp := r.ResponseKind().(*kmsg.DescribeACLsResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.CreateACLsRequest:
		resp := r.ResponseKind().(*kmsg.CreateACLsResponse)
		for range r.Creations {
			res := kmsg.NewCreateACLsResponseResult()
			res.ErrorCode = code
			resp.Results = append(resp.Results, res)
		}
		return resp
	case *kmsg.DeleteACLsRequest:
		resp := r.ResponseKind().(*kmsg.DeleteACLsResponse)
		for range r.Filters {
			res := kmsg.NewDeleteACLsResponseResult()
			res.ErrorCode = code
			resp.Results = append(resp.Results, res)
		}
		return resp
	case *kmsg.DescribeUserSCRAMCredentialsRequest:
		resp := r.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.DeleteRecordsRequest:
		resp := r.ResponseKind().(*kmsg.DeleteRecordsResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewDeleteRecordsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewDeleteRecordsResponseTopicPartition()
				rp.Partition, rp.LowWatermark, rp.ErrorCode = p.Partition, -1, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		resp := r.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
		seen := map[string]bool{}
		add := func(user string) {
			if !seen[user] {
				seen[user] = true
				res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
				res.User, res.ErrorCode = user, code
				resp.Results = append(resp.Results, res)
			}
		}
		for _, d := range r.Deletions {
			add(d.Name)
		}
		for _, u := range r.Upsertions {
			add(u.Name)
		}
		return resp
	}
	return nil
}
