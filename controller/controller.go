// Package controller owns sluice's cluster metadata: brokers, topics,
// partitions (replicas, leader, leader epoch, ISR, partition epoch), topic
// configs and the producer ids given out in blocks to brokers, with the
// rules that validate changes to them.
//
// Metadata is an immutable snapshot: a writer builds a new one and publishes
// it, readers hold whichever snapshot they loaded and never see a partial
// change. Every change is a Command, applied by Apply, a pure function of
// (metadata, command): the Raft state machine (FSM) changes metadata only
// through it, and so does every test of the rules, so a single node and a
// cluster follow the same rules.
//
// Node runs the Raft-replicated controller (hashicorp/raft, with
// raft-boltdb for the log and stable store and file snapshots): a
// configured set of voters, every other broker a non-voter, all applying
// the same log to their FSM and serving metadata from it. Writes are
// proposed on the Raft leader; other nodes forward them through a
// Forwarder. The broker reads metadata and asks for changes through its own
// interface (broker.MetadataStore), which Node implements; a single broker
// is a one-voter group.
package controller
