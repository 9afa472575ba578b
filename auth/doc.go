// Package auth holds sluice's security primitives, free of cluster state so
// every front end and the controller share one copy:
//
//   - principals (who a connection is: "User:alice"), and the rules that
//     map a client certificate's subject to one (principal.go);
//   - TLS configurations built from certificate files that reload without
//     a restart (tls.go);
//   - the TLS transport (listener.go): a Listener that hands over only
//     connections whose handshake completed within a deadline (each on a
//     goroutine the Listener owns and stops on Close), with failures
//     logged at a bounded rate; Dial and ClientHandshake, whose errors say
//     when the other side is not speaking TLS; and Transport, both ends of
//     one kind of link, nil meaning plaintext;
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
