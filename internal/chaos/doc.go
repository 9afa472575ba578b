// Package chaos is the chaos suite of issue 7: three real `sluice broker`
// processes, each in its own network namespace (internal/netns), under a
// seeded schedule of faults — SIGKILL of one broker or of all at once,
// SIGSTOP, cuts between hosts, of the gossip port alone and between the
// clients and a host, slow client links, slow links between brokers,
// corrupted segments, a full disk (a tmpfs data dir), a flood of idle
// connections — while verifiable producers and readers in
// the test process record every outcome, and bench.Check judges the
// history once every fault is healed. A second workload (TestChaosGroup,
// issue 15) reads through a consumer group while its partitions' leaders
// and its coordinator are killed or isolated, and bench.CheckGroup
// judges it.
//
// The package holds the harness (Cluster: the processes and their hosts),
// the workload (Workload: producers that time every acknowledgement, a
// live reader and a final read), the fault schedule (Schedule, Injector)
// and the liveness figures (LongestGap, AckRates). The tests in this
// package drive them; they run only with SLUICE_CHAOS=1 (make chaos, make
// chaos-short), as root, on Linux with `ip netns`, and skip otherwise.
package chaos
