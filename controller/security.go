package controller

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sluicemq/sluice/auth"
)

// The security metadata: SCRAM credentials by user and mechanism (never
// passwords: auth.Credential holds the salt, iterations, StoredKey and
// ServerKey), and the ACLs. Both travel in commands and snapshots like the
// rest of the metadata, so every broker holds a copy and decides
// authentication and authorization locally.

// MaxUserName bounds a user name.
const MaxUserName = 256

// UpsertCredential stores (adding or replacing) a user's credential for one
// mechanism. The credential is derived where the password was typed; the
// password never reaches the cluster.
type UpsertCredential struct {
	User       string
	Credential auth.Credential
}

// DeleteCredential removes a user's credential for one mechanism; a user
// with no credential left is gone.
type DeleteCredential struct {
	User      string
	Mechanism auth.Mechanism
}

// CreateACLs adds ACLs; one already present is left as it is.
type CreateACLs struct {
	ACLs []auth.ACL
}

// DeleteACLs removes the listed ACLs (exact matches; the proposer turned
// the user's filters into the ACLs they matched); one not present is
// ignored.
type DeleteACLs struct {
	ACLs []auth.ACL
}

// Kind implements Command.
func (UpsertCredential) Kind() CommandKind { return KindUpsertCredential }

// Kind implements Command.
func (DeleteCredential) Kind() CommandKind { return KindDeleteCredential }

// Kind implements Command.
func (CreateACLs) Kind() CommandKind { return KindCreateACLs }

// Kind implements Command.
func (DeleteACLs) Kind() CommandKind { return KindDeleteACLs }

// UserNames returns the users with at least one credential, sorted.
func (m *Metadata) UserNames() []string {
	return slices.Sorted(maps.Keys(m.Users))
}

// validUserName refuses names the SCRAM exchange cannot carry or that
// would confuse principals.
func validUserName(u string) error {
	switch {
	case u == "" || len(u) > MaxUserName:
		return fmt.Errorf("%w: user name of %d bytes (1 to %d)", ErrInvalidCredential, len(u), MaxUserName)
	case strings.ContainsAny(u, ",=\x00") || strings.TrimSpace(u) != u:
		return fmt.Errorf("%w: user name %q: no commas, equals signs, NULs or outer spaces", ErrInvalidCredential, u)
	}
	return nil
}

func applyUpsertCredential(m *Metadata, c UpsertCredential) (*Metadata, error) {
	if err := validUserName(c.User); err != nil {
		return nil, err
	}
	if err := c.Credential.Validate(); err != nil {
		return nil, fmt.Errorf("%w: user %q: %v", ErrInvalidCredential, c.User, err)
	}
	n := *m
	n.Version++
	n.Users = maps.Clone(m.Users)
	if n.Users == nil {
		n.Users = map[string]map[auth.Mechanism]auth.Credential{}
	}
	creds := maps.Clone(n.Users[c.User])
	if creds == nil {
		creds = map[auth.Mechanism]auth.Credential{}
	}
	creds[c.Credential.Mechanism] = cloneCredential(c.Credential)
	n.Users[c.User] = creds
	return &n, nil
}

func applyDeleteCredential(m *Metadata, c DeleteCredential) (*Metadata, error) {
	if _, ok := m.Users[c.User][c.Mechanism]; !ok {
		return nil, fmt.Errorf("%w: %q has no %s credential", ErrUnknownUser, c.User, c.Mechanism)
	}
	n := *m
	n.Version++
	n.Users = maps.Clone(m.Users)
	creds := maps.Clone(n.Users[c.User])
	delete(creds, c.Mechanism)
	if len(creds) == 0 {
		delete(n.Users, c.User)
	} else {
		n.Users[c.User] = creds
	}
	return &n, nil
}

func applyCreateACLs(m *Metadata, c CreateACLs) (*Metadata, error) {
	for _, a := range c.ACLs {
		if err := a.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidACL, err)
		}
	}
	acls := slices.Clone(m.ACLs)
	for _, a := range c.ACLs {
		if i, found := slices.BinarySearchFunc(acls, a, compareACL); !found {
			acls = slices.Insert(acls, i, a)
		}
	}
	n := *m
	n.Version++
	n.ACLs = acls
	return &n, nil
}

func applyDeleteACLs(m *Metadata, c DeleteACLs) (*Metadata, error) {
	acls := slices.Clone(m.ACLs)
	for _, a := range c.ACLs {
		if i, found := slices.BinarySearchFunc(acls, a, compareACL); found {
			acls = slices.Delete(acls, i, i+1)
		}
	}
	n := *m
	n.Version++
	n.ACLs = acls
	return &n, nil
}

// MatchingACLs returns the ACLs each filter selects, without duplicates,
// in the metadata's order.
func (m *Metadata) MatchingACLs(filters ...auth.Filter) []auth.ACL {
	var out []auth.ACL
	for _, a := range m.ACLs {
		for _, f := range filters {
			if f.Matches(a) {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// compareACL orders ACLs canonically (every field), so the metadata holds
// each at most once and encodes one way.
func compareACL(a, b auth.ACL) int {
	if c := strings.Compare(a.Principal, b.Principal); c != 0 {
		return c
	}
	if c := strings.Compare(a.Host, b.Host); c != 0 {
		return c
	}
	if a.Resource != b.Resource {
		return int(a.Resource) - int(b.Resource)
	}
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	if a.Pattern != b.Pattern {
		return int(a.Pattern) - int(b.Pattern)
	}
	if a.Op != b.Op {
		return int(a.Op) - int(b.Op)
	}
	return int(a.Permission) - int(b.Permission)
}

func cloneCredential(c auth.Credential) auth.Credential {
	c.Salt = slices.Clone(c.Salt)
	c.StoredKey = slices.Clone(c.StoredKey)
	c.ServerKey = slices.Clone(c.ServerKey)
	return c
}

// Encoding.

func appendCredential(b []byte, c auth.Credential) []byte {
	b = appendString(b, string(c.Mechanism))
	b = appendString(b, string(c.Salt))
	b = binary.AppendVarint(b, int64(c.Iterations))
	b = appendString(b, string(c.StoredKey))
	return appendString(b, string(c.ServerKey))
}

func (d *decoder) credential() auth.Credential {
	return auth.Credential{Mechanism: auth.Mechanism(d.string()), Salt: []byte(d.string()), Iterations: int(d.int32()),
		StoredKey: []byte(d.string()), ServerKey: []byte(d.string())}
}

func appendACL(b []byte, a auth.ACL) []byte {
	b = appendString(b, a.Principal)
	b = appendString(b, a.Host)
	b = append(b, byte(a.Resource))
	b = appendString(b, a.Name)
	return append(b, byte(a.Pattern), byte(a.Op), byte(a.Permission))
}

func (d *decoder) acl() auth.ACL {
	return auth.ACL{Principal: d.string(), Host: d.string(), Resource: auth.ResourceType(d.byte()), Name: d.string(),
		Pattern: auth.PatternType(d.byte()), Op: auth.Operation(d.byte()), Permission: auth.Permission(d.byte())}
}

func appendACLs(b []byte, acls []auth.ACL) []byte {
	b = binary.AppendUvarint(b, uint64(len(acls)))
	for _, a := range acls {
		b = appendACL(b, a)
	}
	return b
}

// acls reads what appendACLs wrote; with canonical set, it refuses a list
// out of canonical order (the snapshot's one encoding).
func (d *decoder) acls(canonical bool) []auth.ACL {
	// An ACL is at least 7 bytes: four string lengths, three bytes.
	n := d.count(7)
	if n == 0 || d.err != nil {
		return nil
	}
	out := make([]auth.ACL, n)
	for i := range out {
		out[i] = d.acl()
		if canonical && i > 0 && d.err == nil && compareACL(out[i-1], out[i]) >= 0 {
			d.fail("ACL %v not after %v", out[i], out[i-1])
		}
	}
	return out
}

func (c UpsertCredential) appendBody(b []byte) []byte {
	return appendCredential(appendString(b, c.User), c.Credential)
}

func (c DeleteCredential) appendBody(b []byte) []byte {
	return appendString(appendString(b, c.User), string(c.Mechanism))
}

func (c CreateACLs) appendBody(b []byte) []byte { return appendACLs(b, c.ACLs) }

func (c DeleteACLs) appendBody(b []byte) []byte { return appendACLs(b, c.ACLs) }

// appendSecurity writes the users (by name, mechanisms in order) and the
// ACLs at the end of a snapshot (version 6).
func appendSecurity(b []byte, m *Metadata) []byte {
	names := m.UserNames()
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, u := range names {
		b = appendString(b, u)
		mechs := slices.Sorted(maps.Keys(m.Users[u]))
		b = binary.AppendUvarint(b, uint64(len(mechs)))
		for _, mech := range mechs {
			b = appendCredential(b, m.Users[u][mech])
		}
	}
	return appendACLs(b, m.ACLs)
}

// decodeSecurity reads what appendSecurity wrote, refusing anything out of
// order or invalid so a snapshot has one encoding.
func decodeSecurity(d *decoder, m *Metadata) {
	// A user is at least 2 bytes: name length, credential count.
	nu := d.count(2)
	prev := ""
	for i := 0; i < nu && d.err == nil; i++ {
		u := d.string()
		if i > 0 && u <= prev {
			d.fail("user %q not after %q", u, prev)
			return
		}
		prev = u
		// A credential is at least 5 bytes.
		nc := d.count(5)
		if nc == 0 && d.err == nil {
			d.fail("user %q without a credential", u)
		}
		creds := make(map[auth.Mechanism]auth.Credential, nc)
		var prevMech auth.Mechanism
		for j := 0; j < nc && d.err == nil; j++ {
			c := d.credential()
			if d.err != nil {
				return
			}
			if err := c.Validate(); err != nil {
				d.fail("user %q: %v", u, err)
				return
			}
			if j > 0 && c.Mechanism <= prevMech {
				d.fail("user %q: mechanism %s not after %s", u, c.Mechanism, prevMech)
				return
			}
			prevMech = c.Mechanism
			creds[c.Mechanism] = c
		}
		if m.Users == nil {
			m.Users = map[string]map[auth.Mechanism]auth.Credential{}
		}
		m.Users[u] = creds
	}
	m.ACLs = d.acls(true)
}
