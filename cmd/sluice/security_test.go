package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// A broker that requires SCRAM logins and enforces ACLs, through the CLI:
// nothing works without a login; the operator (the cluster secret) makes
// the first user, who, a super user, creates a topic; a wrong password
// fails with an error that says authentication failed and nothing else;
// the SASL flags also come from the environment.
func TestCLISASLLogin(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startBrokerProcess(t, bin, filepath.Join(dir, "data"), syscall.SIGTERM, "--cluster-secret-file", secret,
		"--sasl-mechanisms", "SCRAM-SHA-512,SCRAM-SHA-256", "--require-auth", "--authorizer", "--super-users", "User:admin")
	defer p.stop()
	addr := p.addr

	if _, errOut, err := sluiceResult(bin, addr, "", "topic", "list"); err == nil || !strings.Contains(errOut, "SASL_AUTHENTICATION_FAILED") {
		t.Fatalf("topic list without a login: %v %q", err, errOut)
	}
	sluice(t, bin, addr, "admin-pw\n", "--operator-secret-file", secret, "user", "create", "admin", "--password-stdin")
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("admin-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	login := []string{"--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "admin", "--sasl-password-file", pw}
	sluice(t, bin, addr, "", append(login, "topic", "create", "orders")...)
	if out := sluice(t, bin, addr, "", append(login, "topic", "list")...); !strings.Contains(out, "orders") {
		t.Fatalf("topic list as admin: %q", out)
	}
	_, errOut, err := sluiceResult(bin, addr, "", "--sasl-mechanism", "SCRAM-SHA-256", "--sasl-user", "admin", "--sasl-password", "wrong", "topic", "list")
	if err == nil || !strings.Contains(errOut, "authentication failed") {
		t.Fatalf("wrong password: %v %q", err, errOut)
	}
	cmd := exec.Command(bin, "--brokers", addr, "topic", "list")
	cmd.Env = append(os.Environ(), "SLUICE_SASL_MECHANISM=SCRAM-SHA-512", "SLUICE_SASL_USER=admin", "SLUICE_SASL_PASSWORD_FILE="+pw)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "orders") {
		t.Fatalf("topic list with SLUICE_SASL_*: %v %s", err, out)
	}
}
