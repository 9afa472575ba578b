package auth

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
)

// ResourceType is what an ACL protects. The numbers are Kafka's, so the
// Kafka listener's ACL APIs carry them unchanged. Queue groups are groups.
type ResourceType int8

// The resource types.
const (
	ResourceAny     ResourceType = 1 // in filters only
	ResourceTopic   ResourceType = 2
	ResourceGroup   ResourceType = 3
	ResourceCluster ResourceType = 4
)

// ClusterName is the one cluster resource's name, as in Kafka.
const ClusterName = "kafka-cluster"

// PatternType says how an ACL's resource name matches.
type PatternType int8

// The pattern types (Kafka's numbers).
const (
	PatternAny      PatternType = 1 // in filters only: any pattern type, with exactly the name given
	PatternMatch    PatternType = 2 // in filters only: every ACL that applies to the name given
	PatternLiteral  PatternType = 3 // the name itself, or "*" for every name
	PatternPrefixed PatternType = 4 // every name that starts with it
)

// Operation is what a request does to a resource (Kafka's numbers).
type Operation int8

// The operations.
const (
	OpAny             Operation = 1 // in filters only
	OpAll             Operation = 2 // in an ACL: every operation
	OpRead            Operation = 3
	OpWrite           Operation = 4
	OpCreate          Operation = 5
	OpDelete          Operation = 6
	OpAlter           Operation = 7
	OpDescribe        Operation = 8
	OpClusterAction   Operation = 9
	OpDescribeConfigs Operation = 10
	OpAlterConfigs    Operation = 11
	OpIdempotentWrite Operation = 12
)

// Permission allows or denies. Deny wins.
type Permission int8

// The permissions (Kafka's numbers).
const (
	PermissionAny Permission = 1 // in filters only
	Deny          Permission = 2
	Allow         Permission = 3
)

// Wildcards in ACLs.
const (
	WildcardName      = "*" // a literal name matching every resource of its type
	WildcardHost      = "*"
	WildcardPrincipal = "User:*"
)

var resourceNames = map[ResourceType]string{ResourceAny: "any", ResourceTopic: "topic", ResourceGroup: "group", ResourceCluster: "cluster"}
var patternNames = map[PatternType]string{PatternAny: "any", PatternMatch: "match", PatternLiteral: "literal", PatternPrefixed: "prefixed"}
var permissionNames = map[Permission]string{PermissionAny: "any", Deny: "deny", Allow: "allow"}
var operationNames = map[Operation]string{OpAny: "any", OpAll: "all", OpRead: "read", OpWrite: "write", OpCreate: "create",
	OpDelete: "delete", OpAlter: "alter", OpDescribe: "describe", OpClusterAction: "cluster-action",
	OpDescribeConfigs: "describe-configs", OpAlterConfigs: "alter-configs", OpIdempotentWrite: "idempotent-write"}

func (r ResourceType) String() string { return nameOr(resourceNames, r) }
func (p PatternType) String() string  { return nameOr(patternNames, p) }
func (p Permission) String() string   { return nameOr(permissionNames, p) }
func (o Operation) String() string    { return nameOr(operationNames, o) }

func nameOr[K ~int8](m map[K]string, k K) string {
	if s, ok := m[k]; ok {
		return s
	}
	return fmt.Sprintf("unknown(%d)", k)
}

// parseName finds k by its name (as the CLI takes it).
func parseName[K ~int8](m map[K]string, what, s string) (K, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for k, n := range m {
		if n == s {
			return k, nil
		}
	}
	names := make([]string, 0, len(m))
	for _, n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return 0, fmt.Errorf("%w: %s %q: want one of %s", ErrBadACL, what, s, strings.Join(names, ", "))
}

// ParseResourceType, ParsePatternType, ParseOperation and ParsePermission
// read the names String gives.
func ParseResourceType(s string) (ResourceType, error) {
	return parseName(resourceNames, "resource type", s)
}

// ParsePatternType reads "literal", "prefixed" or "any".
func ParsePatternType(s string) (PatternType, error) {
	return parseName(patternNames, "pattern type", s)
}

// ParseOperation reads an operation's name ("read", "describe-configs", …).
func ParseOperation(s string) (Operation, error) { return parseName(operationNames, "operation", s) }

// ParsePermission reads "allow" or "deny".
func ParsePermission(s string) (Permission, error) {
	return parseName(permissionNames, "permission", s)
}

// ErrBadACL matches the error of an invalid ACL or filter.
var ErrBadACL = errors.New("bad ACL")

// ACL is one access rule: Principal may (or may not) do Op on the
// resources of type Resource that Name and Pattern match, from Host.
type ACL struct {
	Principal  string // "User:alice", or WildcardPrincipal
	Host       string // an IP address, or WildcardHost
	Resource   ResourceType
	Name       string
	Pattern    PatternType
	Op         Operation
	Permission Permission
}

// String is the ACL in one line, for logs and the CLI.
func (a ACL) String() string {
	return fmt.Sprintf("%s %s %s on %s %s:%q from %s", a.Permission, a.Principal, a.Op, a.Pattern, a.Resource, a.Name, a.Host)
}

// validOps lists the operations that mean something per resource type
// (Kafka's table, with KIP-848's group configs); All is valid
// everywhere.
var validOps = map[ResourceType][]Operation{
	ResourceTopic:   {OpRead, OpWrite, OpCreate, OpDelete, OpAlter, OpDescribe, OpDescribeConfigs, OpAlterConfigs},
	ResourceGroup:   {OpRead, OpDelete, OpDescribe, OpDescribeConfigs, OpAlterConfigs},
	ResourceCluster: {OpCreate, OpAlter, OpDescribe, OpClusterAction, OpDescribeConfigs, OpAlterConfigs, OpIdempotentWrite},
}

// Validate checks that the ACL can be stored: concrete types, a valid
// operation for the resource, a principal and host in their forms.
func (a ACL) Validate() error {
	if _, err := ParsePrincipal(a.Principal); err != nil {
		return fmt.Errorf("%w: %v", ErrBadACL, err)
	}
	if a.Host != WildcardHost && net.ParseIP(a.Host) == nil {
		return fmt.Errorf("%w: host %q: want an IP address or *", ErrBadACL, a.Host)
	}
	ops, ok := validOps[a.Resource]
	if !ok {
		return fmt.Errorf("%w: resource type %s", ErrBadACL, a.Resource)
	}
	if a.Pattern != PatternLiteral && a.Pattern != PatternPrefixed {
		return fmt.Errorf("%w: pattern type %s: want literal or prefixed", ErrBadACL, a.Pattern)
	}
	if a.Name == "" {
		return fmt.Errorf("%w: empty resource name", ErrBadACL)
	}
	if a.Resource == ResourceCluster && a.Name != ClusterName {
		return fmt.Errorf("%w: the cluster resource is named %q", ErrBadACL, ClusterName)
	}
	if a.Permission != Allow && a.Permission != Deny {
		return fmt.Errorf("%w: permission %s: want allow or deny", ErrBadACL, a.Permission)
	}
	if a.Op == OpAll {
		return nil
	}
	for _, op := range ops {
		if op == a.Op {
			return nil
		}
	}
	return fmt.Errorf("%w: operation %s does not apply to a %s", ErrBadACL, a.Op, a.Resource)
}

// Filter selects ACLs to list or remove. The "any" values and empty
// strings match everything; a concrete pattern type matches only ACLs of
// that type with exactly that name; PatternMatch (Kafka's MATCH) every ACL
// that applies to the name: literal ones of that name or of "*", and
// prefixed ones whose prefix the name starts with.
type Filter struct {
	Principal  string
	Host       string
	Resource   ResourceType
	Name       string
	Pattern    PatternType
	Op         Operation
	Permission Permission
}

// Matches reports whether the filter selects a.
func (f Filter) Matches(a ACL) bool {
	return (f.Principal == "" || f.Principal == a.Principal) &&
		(f.Host == "" || f.Host == a.Host) &&
		(f.Resource == ResourceAny || f.Resource == 0 || f.Resource == a.Resource) &&
		f.matchesResource(a) &&
		(f.Op == OpAny || f.Op == 0 || f.Op == a.Op) &&
		(f.Permission == PermissionAny || f.Permission == 0 || f.Permission == a.Permission)
}

// matchesResource is Matches for the name and pattern type.
func (f Filter) matchesResource(a ACL) bool {
	switch {
	case f.Pattern == PatternMatch && f.Name != "":
		return (a.Pattern == PatternLiteral && (a.Name == f.Name || a.Name == WildcardName)) ||
			(a.Pattern == PatternPrefixed && strings.HasPrefix(f.Name, a.Name))
	case f.Pattern == PatternAny || f.Pattern == PatternMatch || f.Pattern == 0:
		return f.Name == "" || f.Name == a.Name
	}
	return f.Pattern == a.Pattern && (f.Name == "" || f.Name == a.Name)
}

// Authorizer decides requests against an immutable snapshot of the ACLs.
// The broker builds a new one when the ACLs change and swaps it in (an
// atomic pointer), so a decision takes no lock and open connections see a
// change at once.
type Authorizer struct {
	super map[string]bool
	// literal holds the literal-pattern ACLs by resource type and name
	// (WildcardName included); prefixed the prefixed ones by type and
	// prefix, so a decision looks up each prefix of the name.
	literal  map[ResourceType]map[string][]ACL
	prefixed map[ResourceType]map[string][]ACL
}

// NewAuthorizer indexes acls (which must be valid). superUsers are
// principals ("User:admin") allowed everything.
func NewAuthorizer(acls []ACL, superUsers []string) *Authorizer {
	a := &Authorizer{super: map[string]bool{}, literal: map[ResourceType]map[string][]ACL{}, prefixed: map[ResourceType]map[string][]ACL{}}
	for _, s := range superUsers {
		a.super[s] = true
	}
	for _, acl := range acls {
		idx := a.literal
		if acl.Pattern == PatternPrefixed {
			idx = a.prefixed
		} else if acl.Pattern != PatternLiteral {
			continue
		}
		m := idx[acl.Resource]
		if m == nil {
			m = map[string][]ACL{}
			idx[acl.Resource] = m
		}
		m[acl.Name] = append(m[acl.Name], acl)
	}
	return a
}

// impliedBy lists the operations whose allow also allows op (Kafka: read,
// write, delete or alter imply describe; alter-configs implies
// describe-configs).
func impliedBy(op Operation) []Operation {
	switch op {
	case OpDescribe:
		return []Operation{OpDescribe, OpRead, OpWrite, OpDelete, OpAlter, OpAll}
	case OpDescribeConfigs:
		return []Operation{OpDescribeConfigs, OpAlterConfigs, OpAll}
	}
	return []Operation{op, OpAll}
}

// Authorize reports whether p, connected from host, may do op on the
// resource. Super users may do everything; otherwise a matching deny wins,
// then a matching allow (or one that implies op) allows, and no match
// denies.
func (a *Authorizer) Authorize(p Principal, host string, rt ResourceType, name string, op Operation) bool {
	ps := p.String()
	if a.super[ps] {
		return true
	}
	allowed := false
	denied := false
	implied := impliedBy(op)
	visit := func(acl *ACL) {
		if (acl.Principal != ps && acl.Principal != WildcardPrincipal) || (acl.Host != WildcardHost && acl.Host != host) {
			return
		}
		switch acl.Permission {
		case Deny:
			if acl.Op == op || acl.Op == OpAll {
				denied = true
			}
		case Allow:
			for _, o := range implied {
				if acl.Op == o {
					allowed = true
					break
				}
			}
		}
	}
	if m := a.literal[rt]; m != nil {
		for i := range m[name] {
			visit(&m[name][i])
		}
		if name != WildcardName {
			for i := range m[WildcardName] {
				visit(&m[WildcardName][i])
			}
		}
	}
	if m := a.prefixed[rt]; m != nil {
		for n := 1; n <= len(name); n++ {
			l := m[name[:n]]
			for i := range l {
				visit(&l[i])
			}
		}
	}
	return allowed && !denied
}

// AuthorizeAny reports whether p may do op on at least one resource of
// type rt: Kafka's rule that idempotent writes are allowed to a principal
// that may write to some topic. A deny on every name (a literal "*" deny)
// overrides.
func (a *Authorizer) AuthorizeAny(p Principal, host string, rt ResourceType, op Operation) bool {
	ps := p.String()
	if a.super[ps] {
		return true
	}
	if a.Authorize(p, host, rt, WildcardName, op) {
		return true
	}
	if m := a.literal[rt]; m != nil {
		for _, wild := range m[WildcardName] {
			if wild.Permission == Deny && (wild.Op == op || wild.Op == OpAll) &&
				(wild.Principal == ps || wild.Principal == WildcardPrincipal) && (wild.Host == WildcardHost || wild.Host == host) {
				return false
			}
		}
		for name := range m {
			if a.Authorize(p, host, rt, name, op) {
				return true
			}
		}
	}
	for prefix, l := range a.prefixed[rt] {
		for _, acl := range l {
			if acl.Permission == Allow && a.Authorize(p, host, rt, prefix, op) {
				return true
			}
		}
	}
	return false
}
