// Package cluster holds tests of multi-broker sluice clusters in one
// process: brokers on loopback TCP, each running the Raft controller (real
// Raft over real TCP), driven through the protocol and the client library.
// It has no non-test code beyond this comment; the tests are the point.
package cluster
