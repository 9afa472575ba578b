// Package replica is one partition replica's replication state: on the
// leader, where each follower is, which replicas are in sync, and the high
// watermark; on a follower, where its log parts from the leader's, the
// high watermark it learned, and the fetcher that copies the leader's log.
//
// The leader side (Leader) is a state machine over the facts the broker
// feeds it — the local log's end and synced offsets, each follower's fetch
// position, the ISR the controller committed — with time injected, so every
// rule is testable without a network:
//
//   - The high watermark is the minimum position over the ISR (R12): the
//     leader's own log end offset (or, with fsync=always, its synced
//     offset: R3), and each follower's last fetch offset (or synced
//     offset), counted only when the follower fetched in the current
//     leader epoch. It never moves backwards, and a new leader starts from
//     a conservative value and raises it only from positions reported in
//     its own epoch.
//   - A produce with acks=all waits (WaitFor) until the high watermark
//     covers its batch; it fails when leadership is lost or the ISR falls
//     below min.insync.replicas while it waits (the batch may be written:
//     the caller answers with an indeterminate error, R14).
//   - A follower is caught up when it fetched from the leader's end offset
//     of that moment; one that has not been caught up for MaxLag is a
//     shrink candidate, and a replica outside the ISR whose position
//     reached the high watermark in this epoch is an expand candidate. The
//     broker proposes those changes to the controller (AlterPartition) and
//     applies the ISR the controller commits (SetISR).
//
// A Leader is safe for concurrent use.
//
// The follower side (Follower) is driven by a Fetcher, one per leader
// broker, which carries every partition this broker follows from that
// leader in one long-polled Fetch over one connection:
//
//   - After each leadership change a follower truncates its log where it
//     diverges from the new leader's, asking the leader where its latest
//     epoch ends (OffsetForLeaderEpoch) — never by high watermark alone
//     (R9).
//   - Fetched record sets are appended whole batch by whole batch, each
//     checked for framing and CRC first (R1), and must continue the log;
//     batches that do not make the fetcher truncate again. With
//     fsync=always the broker syncs what was applied before the next
//     fetch, whose offset the leader counts as synced (R3).
//   - A follower's high watermark is the leader's, capped by what it
//     holds. A follower whose whole log lies below the leader's log start
//     (retention) restarts at that start.
//
// A Follower is owned by its fetcher (HighWatermark may be read
// concurrently); a Fetcher owns one goroutine, stopped by Close.
//
// Both sides keep the partition's idempotent producer state (Producers,
// producers.go; R13): per producer id its epoch and last 5 batches. The
// leader checks every batch with a producer id against it before
// appending — a retry of a retained batch is answered with the original
// offsets and nothing is appended; a gap, a stale epoch or an unknown id
// is refused, definitely (R14) — and followers rebuild it from what they
// replicate, so a new leader deduplicates too. It is cut with the log
// (truncation, retention), snapshotted at segment roll and clean shutdown
// (producersnap.go) and rebuilt at open from the newest snapshot and the
// log after it. docs/idempotence.md tells the whole story.
package replica
