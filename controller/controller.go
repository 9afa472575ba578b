// Package controller owns sluice's cluster metadata: brokers, topics,
// partitions (replicas, leader, leader epoch, in-sync replicas) and topic
// configs, with the rules that validate changes to them.
//
// Metadata is an immutable snapshot: a writer builds a new one and publishes
// it, readers hold whichever snapshot they loaded and never see a partial
// change. The broker reads metadata and asks for changes through its own
// interface; this package provides the implementations.
//
// Today the package holds the metadata model, its validation, and Local: the
// single-node store, persisted in one file in the data directory. The
// Raft-replicated controller (quorum of voters, serf membership) replaces
// Local behind the same broker-side interface.
package controller
