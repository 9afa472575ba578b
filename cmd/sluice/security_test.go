package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// The user and acl commands against a real broker process: the password
// goes in on stdin, only mechanisms and iterations come back, and ACLs
// round-trip through add, list and remove.
func TestCLIUsersAndACLs(t *testing.T) {
	bin := buildBinary(t)
	addr, stop := startBroker(t, bin, t.TempDir())
	defer stop()

	out := sluice(t, bin, addr, "s3cret\n", "user", "create", "alice", "--password-stdin", "--iterations", "4096")
	if !strings.Contains(out, "SCRAM-SHA-512 credential for user alice") {
		t.Fatalf("user create: %q", out)
	}
	out = sluice(t, bin, addr, "", "user", "list", "--json")
	var users []struct {
		User        string `json:"user"`
		Credentials []struct {
			Mechanism  string `json:"mechanism"`
			Iterations int    `json:"iterations"`
		} `json:"credentials"`
	}
	if err := json.Unmarshal([]byte(out), &users); err != nil {
		t.Fatalf("user list --json: %v\n%s", err, out)
	}
	if len(users) != 1 || users[0].User != "alice" || len(users[0].Credentials) != 1 ||
		users[0].Credentials[0].Mechanism != "SCRAM-SHA-512" || users[0].Credentials[0].Iterations != 4096 {
		t.Fatalf("users: %+v", users)
	}
	if strings.Contains(out, "s3cret") {
		t.Fatal("the password came back")
	}
	if _, errOut, err := sluiceResult(bin, addr, "", "user", "create", "bob", "--password", "x", "--iterations", "10"); err == nil || !strings.Contains(errOut, "iterations") {
		t.Fatalf("10 iterations accepted: %v %s", err, errOut)
	}

	sluice(t, bin, addr, "", "acl", "add", "--allow", "User:alice", "--operation", "write", "--topic", "orders")
	sluice(t, bin, addr, "", "acl", "add", "--deny", "User:*", "--operation", "read", "--topic", "secret-", "--prefixed")
	if _, errOut, err := sluiceResult(bin, addr, "", "acl", "add", "--allow", "User:alice", "--operation", "write", "--group", "g"); err == nil ||
		!strings.Contains(errOut, "does not apply") {
		t.Fatalf("write on a group accepted: %v %s", err, errOut)
	}
	out = sluice(t, bin, addr, "", "acl", "list", "--principal", "User:alice")
	if !strings.Contains(out, "allow") || !strings.Contains(out, "orders") || strings.Contains(out, "secret-") {
		t.Fatalf("acl list --principal: %q", out)
	}
	out = sluice(t, bin, addr, "", "acl", "remove", "--topic", "secret-", "--prefixed", "--json")
	if !strings.Contains(out, `"permission": "deny"`) {
		t.Fatalf("acl remove: %q", out)
	}
	if _, _, err := sluiceResult(bin, addr, "", "acl", "remove"); err == nil {
		t.Fatal("acl remove without a filter removed everything")
	}
	out = sluice(t, bin, addr, "", "acl", "list", "--json")
	var acls []map[string]string
	if err := json.Unmarshal([]byte(out), &acls); err != nil || len(acls) != 1 || acls[0]["principal"] != "User:alice" {
		t.Fatalf("after remove: %v %q", err, out)
	}
	sluice(t, bin, addr, "", "user", "delete", "alice")
	if out := sluice(t, bin, addr, "", "user", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("after delete: %q", out)
	}
}
