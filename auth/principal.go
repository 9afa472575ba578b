package auth

import (
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Principal is who a connection acts as, written "Type:Name" as in Kafka
// ("User:alice"). ACLs name principals in that form.
type Principal struct {
	Type string
	Name string
}

// PrincipalUser is the type of every principal sluice authenticates.
const PrincipalUser = "User"

// Anonymous is the principal of a connection that did not authenticate.
var Anonymous = Principal{Type: PrincipalUser, Name: "ANONYMOUS"}

// User returns the principal User:name.
func User(name string) Principal { return Principal{Type: PrincipalUser, Name: name} }

// String returns "Type:Name".
func (p Principal) String() string { return p.Type + ":" + p.Name }

// ErrBadPrincipal matches (errors.Is) the error of parsing a malformed
// principal or mapping rule.
var ErrBadPrincipal = errors.New("bad principal")

// ParsePrincipal parses "Type:Name". The name may be "*" (any principal of
// the type) in an ACL.
func ParsePrincipal(s string) (Principal, error) {
	typ, name, ok := strings.Cut(s, ":")
	if !ok || typ == "" || name == "" {
		return Principal{}, fmt.Errorf("%w: %q: want Type:Name, as User:alice", ErrBadPrincipal, s)
	}
	if typ != PrincipalUser {
		return Principal{}, fmt.Errorf("%w: %q: the only principal type is %s", ErrBadPrincipal, s, PrincipalUser)
	}
	return Principal{Type: typ, Name: name}, nil
}

// MappingRule turns a certificate's subject (in RFC 2253 form, as
// "CN=alice,OU=eng,O=Example") into a principal name. The rule syntax is
// Kafka's ssl.principal.mapping.rules: "RULE:pattern/replacement/" with an
// optional trailing L or U (lower- or upper-case the result), or
// "DEFAULT" (the whole subject).
type MappingRule struct {
	re          *regexp.Regexp // nil for DEFAULT
	replacement string
	toCase      byte // 0, 'L' or 'U'
}

// ParseMappingRules parses a comma-separated list of rules. Commas inside
// a rule's pattern are allowed: a rule ends at its closing slash (and case
// letter). An empty string is the single rule DEFAULT.
func ParseMappingRules(s string) ([]MappingRule, error) {
	var rules []MappingRule
	rest := strings.TrimSpace(s)
	if rest == "" {
		return []MappingRule{{}}, nil
	}
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "DEFAULT"):
			rules = append(rules, MappingRule{})
			rest = rest[len("DEFAULT"):]
		case strings.HasPrefix(rest, "RULE:"):
			r, n, err := parseRule(rest[len("RULE:"):])
			if err != nil {
				return nil, err
			}
			rules = append(rules, r)
			rest = rest[len("RULE:")+n:]
		default:
			return nil, fmt.Errorf("%w: mapping rule %q: want RULE:pattern/replacement/[LU] or DEFAULT", ErrBadPrincipal, rest)
		}
		rest = strings.TrimSpace(rest)
		if rest == "" {
			break
		}
		if rest[0] != ',' {
			return nil, fmt.Errorf("%w: mapping rules: %q after a rule", ErrBadPrincipal, rest)
		}
		rest = strings.TrimSpace(rest[1:])
	}
	return rules, nil
}

// parseRule parses "pattern/replacement/[LU]" at the start of s and
// returns the rule and how many bytes it took.
func parseRule(s string) (MappingRule, int, error) {
	i := strings.IndexByte(s, '/')
	if i <= 0 {
		return MappingRule{}, 0, fmt.Errorf("%w: mapping rule %q: no pattern", ErrBadPrincipal, s)
	}
	j := strings.IndexByte(s[i+1:], '/')
	if j < 0 {
		return MappingRule{}, 0, fmt.Errorf("%w: mapping rule %q: no closing slash", ErrBadPrincipal, s)
	}
	pattern, repl := s[:i], s[i+1:i+1+j]
	n := i + 1 + j + 1
	re, err := regexp.Compile(pattern)
	if err != nil {
		return MappingRule{}, 0, fmt.Errorf("%w: mapping rule pattern %q: %v", ErrBadPrincipal, pattern, err)
	}
	r := MappingRule{re: re, replacement: repl}
	if n < len(s) && (s[n] == 'L' || s[n] == 'U') {
		r.toCase = s[n]
		n++
	}
	return r, n, nil
}

// apply returns the rule's name for subject, or false when it does not
// match.
func (r MappingRule) apply(subject string) (string, bool) {
	if r.re == nil {
		return subject, true
	}
	m := r.re.FindStringSubmatchIndex(subject)
	if m == nil || m[0] != 0 || m[1] != len(subject) {
		return "", false // Kafka's rules match the whole subject
	}
	out := string(r.re.ExpandString(nil, r.replacement, subject, m))
	switch r.toCase {
	case 'L':
		out = strings.ToLower(out)
	case 'U':
		out = strings.ToUpper(out)
	}
	return out, true
}

// PrincipalFromCert maps a verified client certificate to a principal: the
// first rule that matches its subject names it. No match is an error (the
// connection is refused), never the anonymous principal.
func PrincipalFromCert(cert *x509.Certificate, rules []MappingRule) (Principal, error) {
	subject := cert.Subject.String() // RFC 2253: "CN=alice,OU=eng,O=Example,C=US"
	for _, r := range rules {
		if name, ok := r.apply(subject); ok && name != "" {
			return User(name), nil
		}
	}
	return Principal{}, fmt.Errorf("%w: no mapping rule matches certificate subject %q", ErrBadPrincipal, subject)
}
