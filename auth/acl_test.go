package auth

import (
	"errors"
	"testing"
)

func allow(principal, host string, rt ResourceType, name string, pt PatternType, op Operation) ACL {
	return ACL{Principal: principal, Host: host, Resource: rt, Name: name, Pattern: pt, Op: op, Permission: Allow}
}

func deny(principal, host string, rt ResourceType, name string, pt PatternType, op Operation) ACL {
	a := allow(principal, host, rt, name, pt, op)
	a.Permission = Deny
	return a
}

func TestAuthorizer(t *testing.T) {
	acls := []ACL{
		allow("User:alice", "*", ResourceTopic, "orders", PatternLiteral, OpWrite),
		allow("User:alice", "*", ResourceTopic, "audit-", PatternPrefixed, OpRead),
		deny("User:alice", "*", ResourceTopic, "audit-secret", PatternLiteral, OpRead),
		allow("User:*", "*", ResourceTopic, "public", PatternLiteral, OpRead),
		allow("User:bob", "10.0.0.5", ResourceTopic, "*", PatternLiteral, OpAll),
		deny("User:bob", "*", ResourceTopic, "payroll", PatternLiteral, OpAll),
		allow("User:carol", "*", ResourceGroup, "billing", PatternLiteral, OpRead),
		allow("User:ops", "*", ResourceTopic, "*", PatternLiteral, OpAlterConfigs),
		allow("User:broker", "*", ResourceCluster, ClusterName, PatternLiteral, OpClusterAction),
	}
	for _, a := range acls {
		if err := a.Validate(); err != nil {
			t.Fatalf("%v: %v", a, err)
		}
	}
	az := NewAuthorizer(acls, []string{"User:admin"})
	for _, c := range []struct {
		who  string
		host string
		rt   ResourceType
		name string
		op   Operation
		want bool
	}{
		{"alice", "1.2.3.4", ResourceTopic, "orders", OpWrite, true},
		{"alice", "1.2.3.4", ResourceTopic, "orders", OpRead, false},       // only write was allowed
		{"alice", "1.2.3.4", ResourceTopic, "orders", OpDescribe, true},    // write implies describe
		{"alice", "1.2.3.4", ResourceTopic, "orders2", OpWrite, false},     // literal is exact
		{"alice", "1.2.3.4", ResourceTopic, "audit-eu", OpRead, true},      // prefixed
		{"alice", "1.2.3.4", ResourceTopic, "audit-secret", OpRead, false}, // deny wins
		{"alice", "1.2.3.4", ResourceTopic, "public", OpRead, true},        // User:*
		{"mallory", "1.2.3.4", ResourceTopic, "public", OpRead, true},      // User:*
		{"mallory", "1.2.3.4", ResourceTopic, "orders", OpWrite, false},    // no ACL: denied
		{"bob", "10.0.0.5", ResourceTopic, "anything", OpDelete, true},     // All from his host
		{"bob", "10.0.0.6", ResourceTopic, "anything", OpDelete, false},    // other host
		{"bob", "10.0.0.5", ResourceTopic, "payroll", OpRead, false},       // deny All wins
		{"carol", "1.2.3.4", ResourceGroup, "billing", OpRead, true},
		{"carol", "1.2.3.4", ResourceGroup, "billing", OpDescribe, true}, // read implies describe
		{"carol", "1.2.3.4", ResourceTopic, "billing", OpRead, false},    // another resource type
		{"ops", "1.2.3.4", ResourceTopic, "x", OpDescribeConfigs, true},  // alter-configs implies describe-configs
		{"ops", "1.2.3.4", ResourceTopic, "x", OpDescribe, false},
		{"broker", "1.2.3.4", ResourceCluster, ClusterName, OpClusterAction, true},
		{"alice", "1.2.3.4", ResourceCluster, ClusterName, OpClusterAction, false},
		{"admin", "1.2.3.4", ResourceTopic, "payroll", OpDelete, true}, // super user
	} {
		if got := az.Authorize(User(c.who), c.host, c.rt, c.name, c.op); got != c.want {
			t.Errorf("%s@%s %s %s %q = %v, want %v", c.who, c.host, c.op, c.rt, c.name, got, c.want)
		}
	}
	// Idempotent writes: allowed to a principal that may write some topic.
	if !az.AuthorizeAny(User("alice"), "1.2.3.4", ResourceTopic, OpWrite) {
		t.Error("alice may write some topic")
	}
	if az.AuthorizeAny(User("carol"), "1.2.3.4", ResourceTopic, OpWrite) {
		t.Error("carol may write no topic")
	}
	// No ACL at all: everything denied but super users.
	empty := NewAuthorizer(nil, []string{"User:admin"})
	if empty.Authorize(User("alice"), "1.2.3.4", ResourceTopic, "orders", OpRead) || !empty.Authorize(User("admin"), "1.2.3.4", ResourceTopic, "orders", OpRead) {
		t.Error("empty authorizer")
	}
	if empty.AuthorizeAny(User("alice"), "1.2.3.4", ResourceTopic, OpWrite) {
		t.Error("empty authorizer: AuthorizeAny")
	}
}

func TestACLValidation(t *testing.T) {
	good := allow("User:alice", "*", ResourceTopic, "orders", PatternLiteral, OpRead)
	for name, mutate := range map[string]func(*ACL){
		"principal without type":  func(a *ACL) { a.Principal = "alice" },
		"group principal type":    func(a *ACL) { a.Principal = "Group:eng" },
		"host not an IP":          func(a *ACL) { a.Host = "example.com" },
		"filter resource":         func(a *ACL) { a.Resource = ResourceAny },
		"filter pattern":          func(a *ACL) { a.Pattern = PatternAny },
		"empty name":              func(a *ACL) { a.Name = "" },
		"op not for groups":       func(a *ACL) { a.Resource, a.Op = ResourceGroup, OpWrite },
		"cluster with other name": func(a *ACL) { a.Resource, a.Name, a.Op = ResourceCluster, "c", OpAlter },
		"filter permission":       func(a *ACL) { a.Permission = PermissionAny },
	} {
		a := good
		mutate(&a)
		if err := a.Validate(); !errors.Is(err, ErrBadACL) {
			t.Errorf("%s: %v, want ErrBadACL", name, err)
		}
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	f := Filter{Principal: "User:alice", Resource: ResourceAny, Pattern: PatternAny, Op: OpAny, Permission: PermissionAny}
	if !f.Matches(good) || (Filter{Name: "other"}).Matches(good) || !(Filter{}).Matches(good) {
		t.Error("filter matching")
	}
	prefixed := allow("User:alice", "*", ResourceTopic, "ord", PatternPrefixed, OpRead)
	wild := allow("User:alice", "*", ResourceTopic, WildcardName, PatternLiteral, OpRead)
	other := allow("User:alice", "*", ResourceTopic, "orders-eu", PatternLiteral, OpRead)
	for _, c := range []struct {
		f    Filter
		a    ACL
		want bool
	}{
		{Filter{Name: "orders", Pattern: PatternMatch}, good, true},
		{Filter{Name: "orders", Pattern: PatternMatch}, prefixed, true},
		{Filter{Name: "orders", Pattern: PatternMatch}, wild, true},
		{Filter{Name: "orders", Pattern: PatternMatch}, other, false},
		{Filter{Name: "or", Pattern: PatternMatch}, prefixed, false},
		{Filter{Pattern: PatternMatch}, other, true}, // no name: everything
		{Filter{Name: "ord", Pattern: PatternAny}, prefixed, true},
		{Filter{Name: "orders", Pattern: PatternAny}, prefixed, false},
		{Filter{Name: "ord", Pattern: PatternLiteral}, prefixed, false},
		{Filter{Name: "ord", Pattern: PatternPrefixed}, prefixed, true},
		{Filter{Name: "orders", Pattern: PatternMatch, Resource: ResourceGroup}, good, false},
	} {
		if got := c.f.Matches(c.a); got != c.want {
			t.Errorf("%+v matches %v: %v, want %v", c.f, c.a, got, c.want)
		}
	}
	if err := (ACL{Principal: "User:a", Host: "*", Resource: ResourceTopic, Name: "t", Pattern: PatternMatch, Op: OpRead, Permission: Allow}).Validate(); !errors.Is(err, ErrBadACL) {
		t.Errorf("an ACL with pattern match: %v, want ErrBadACL", err)
	}
	for _, s := range []string{"read", "describe-configs", "idempotent-write"} {
		op, err := ParseOperation(s)
		if err != nil || op.String() != s {
			t.Errorf("ParseOperation(%q) = %v, %v", s, op, err)
		}
	}
	if _, err := ParseOperation("fly"); !errors.Is(err, ErrBadACL) {
		t.Errorf("unknown operation: %v", err)
	}
	if rt, err := ParseResourceType("Topic"); err != nil || rt != ResourceTopic {
		t.Errorf("ParseResourceType: %v %v", rt, err)
	}
}

// BenchmarkAuthorize is the per-request cost of a decision against a
// realistic ACL set.
func BenchmarkAuthorize(b *testing.B) {
	var acls []ACL
	for i := range 1000 {
		acls = append(acls, allow("User:u"+string(rune('a'+i%26)), "*", ResourceTopic, "t"+string(rune('a'+i%26))+"-", PatternPrefixed, OpRead))
	}
	acls = append(acls, allow("User:alice", "*", ResourceTopic, "orders", PatternLiteral, OpWrite))
	az := NewAuthorizer(acls, nil)
	p := User("alice")
	b.ReportAllocs()
	for b.Loop() {
		if !az.Authorize(p, "10.0.0.1", ResourceTopic, "orders", OpWrite) {
			b.Fatal("denied")
		}
	}
}
