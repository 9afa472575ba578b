package chaos

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/testcerts"
)

// The secure cluster (Options.Secure, SLUICE_CHAOS_SECURE=1, make chaos
// CHAOS_SECURE=1): every broker listener and the brokers' own traffic
// (replica fetches, forwarded controller writes, Raft) over TLS with
// mutual TLS required, gossip encrypted, SCRAM logins required and the
// authorizer on. The workload logs in as WorkloadUser, which the ACLs
// below allow what the suite's clients do and nothing more; setup and
// the admin client log in as the operator (the cluster secret).

// WorkloadUser is the user the suite's clients log in as on a secure
// cluster.
const WorkloadUser = "chaos-workload"

// workloadACLs are WorkloadUser's: produce (idempotent too), fetch,
// create the topics it uses, describe them and the cluster (metadata,
// DescribeCluster, the replica checksums), consumer and queue groups.
func workloadACLs() []auth.ACL {
	acl := func(rt auth.ResourceType, name string, op auth.Operation) auth.ACL {
		return auth.ACL{Principal: "User:" + WorkloadUser, Host: auth.WildcardHost, Resource: rt, Name: name,
			Pattern: auth.PatternLiteral, Op: op, Permission: auth.Allow}
	}
	var out []auth.ACL
	for _, op := range []auth.Operation{auth.OpRead, auth.OpWrite, auth.OpDescribe, auth.OpCreate} {
		out = append(out, acl(auth.ResourceTopic, auth.WildcardName, op))
	}
	for _, op := range []auth.Operation{auth.OpRead, auth.OpDescribe} {
		out = append(out, acl(auth.ResourceGroup, auth.WildcardName, op))
	}
	for _, op := range []auth.Operation{auth.OpIdempotentWrite, auth.OpDescribe} {
		out = append(out, acl(auth.ResourceCluster, auth.ClusterName, op))
	}
	return out
}

// secure is a secure cluster's material: the files the brokers read, and
// what the clients log in and verify with.
type secure struct {
	brokerArgs []string
	client     client.Opt // TLS with the client certificate
	secret     []byte     // the cluster secret, for the operator login
	password   string     // WorkloadUser's
}

// newSecure writes a test CA, one certificate for every broker (all the
// hosts' addresses) and one for the clients, and a gossip key, under
// dir/tls. secret is the cluster secret the brokers share.
func newSecure(dir string, hosts []string, secret []byte) (*secure, error) {
	tdir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	ca, err := testcerts.New("sluice chaos CA")
	if err != nil {
		return nil, err
	}
	bf, err := ca.Write(tdir, "broker", testcerts.Valid, append(hosts, "127.0.0.1")...)
	if err != nil {
		return nil, err
	}
	cf, err := ca.Write(tdir, "client", testcerts.Valid)
	if err != nil {
		return nil, err
	}
	r, err := auth.NewReloader(auth.TLSFiles{CertFile: cf.CertFile, KeyFile: cf.KeyFile, CAFile: cf.CAFile})
	if err != nil {
		return nil, fmt.Errorf("chaos: client TLS: %w", err)
	}
	key, pw := make([]byte, 32), make([]byte, 16)
	rand.Read(key)
	rand.Read(pw)
	return &secure{
		brokerArgs: []string{"--tls-cert", bf.CertFile, "--tls-key", bf.KeyFile, "--tls-ca", bf.CAFile,
			"--tls-client-auth", "required", "--gossip-key", base64.StdEncoding.EncodeToString(key),
			"--sasl-mechanisms", "SCRAM-SHA-512,SCRAM-SHA-256", "--require-auth", "--authorizer"},
		client:   client.TLS(r.ClientConfig("")),
		secret:   secret,
		password: hex.EncodeToString(pw),
	}, nil
}

// login is the workload's client options: TLS and WorkloadUser's login.
func (s *secure) login() []client.Opt {
	return []client.Opt{s.client, client.SASL(auth.ScramSHA512, WorkloadUser, s.password)}
}

// admin is the operator's: TLS and the cluster secret.
func (s *secure) admin() []client.Opt {
	return []client.Opt{s.client, client.OperatorLogin(s.secret)}
}

// grant creates WorkloadUser and its ACLs through an operator client.
func (c *Cluster) grant(ctx context.Context) error {
	cl, err := c.AdminClient(ctx, "chaos-grant")
	if err != nil {
		return err
	}
	defer cl.Close()
	return Poll(ctx, 30*time.Second, "the workload user and its ACLs", func(ctx context.Context) error {
		if err := cl.UpsertUser(ctx, WorkloadUser, c.secure.password, auth.ScramSHA512, 0); err != nil {
			return err
		}
		return cl.CreateACLs(ctx, workloadACLs()...)
	})
}
