// Package auth holds sluice's security primitives, free of networking and of
// cluster state so every front end and the controller share one copy:
//
//   - principals (who a connection is: "User:alice"), and the rules that
//     map a client certificate's subject to one (principal.go);
//   - TLS configurations built from certificate files that reload without
//     a restart (tls.go);
//   - SCRAM-SHA-256/512 credentials and the server and client sides of
//     the exchange (RFC 5802/7677, with github.com/xdg-go/scram), and
//     PLAIN checked against the same stored credentials (scram.go);
//   - ACLs in Kafka's model and a pure authorizer over a snapshot of them
//     (acl.go).
//
// Where credentials and ACLs are stored (the Raft metadata) and how a
// listener runs an exchange on its wire are the controller's and the front
// ends' business; this package only decides.
package auth
