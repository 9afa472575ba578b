#!/usr/bin/env python3
# pprof-owners.py: a CPU profile of BenchmarkListeners (kafka/bench_test.go,
# -listeners.profile) split by who spent it: each sample goes to the
# innermost frame of ours or of a client — franz-go's kgo, the Kafka
# listener (package kafka), the broker's connection layer (broker.(*conn)
# and FrontConn: reads, writes and the sluice listener's handlers), the
# broker core (broker, replica, log, segment), sluice's client — so that
# kmsg, record, protocol, the runtime and syscalls count for whoever called
# them; samples under none of these are the garbage collector's
# background workers ("gc") or the rest (scheduler, benchmark loop).
#
#   go test -c -o /tmp/kafka.test ./kafka
#   /tmp/kafka.test -test.run '^$' -test.bench Listeners -test.benchtime 500000x -listeners.profile DIR
#   scripts/pprof-owners.py /tmp/kafka.test 500000 DIR/*.prof
#
# Prints per profile the CPU time of each owner, its share, and per record
# (RECORDS is the run's record count, -test.benchtime).
import collections, re, subprocess, sys

OWNERS = [
    ("kgo client", re.compile(r"franz-go/pkg/kgo\.")),
    ("kafka listener", re.compile(r"sluice/kafka\.\(\*|sluice/kafka\.[a-z]\w*$|sluice/kafka\.[a-z]\w*\.func")),
    ("broker conn", re.compile(r"sluice/broker\.\((\*conn|\*FrontConn)\)|sluice/broker\.\(\*Broker\)\.(ServeConn|acceptLoop)")),
    ("broker core", re.compile(r"sluice/(broker|replica|log|segment)\.")),
    ("sluice client", re.compile(r"sluice/client\.")),
]
BENCH = re.compile(r"sluice/kafka\.(BenchmarkListeners|timed|produceLoop|produceSluice|produceFranz|consumeSluice|consumeFranz)")
GC = ("runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge")


def owner(frames):
    for f in frames:
        if BENCH.search(f):
            return None
        for name, pat in OWNERS:
            if pat.search(f):
                return name
    return None


def split(binary, prof):
    out = subprocess.run(["go", "tool", "pprof", "-traces", binary, prof], capture_output=True, text=True, check=True).stdout
    spent = collections.Counter()
    for block in out.split("-----------+-------------------------------------------------------")[1:]:
        lines = [l.strip() for l in block.strip().split("\n") if l.strip()]
        m = lines and re.match(r"([\d.]+)(s|ms|us)\s+(.*)", lines[0])
        if not m:
            continue
        ms = float(m.group(1)) * {"s": 1000, "ms": 1, "us": 0.001}[m.group(2)]
        frames = [m.group(3)] + lines[1:]
        o = owner(frames)
        if o is None:
            o = "gc" if any(g in f for f in frames for g in GC) else "other (scheduler, benchmark loop)"
        spent[o] += ms
    return spent


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: pprof-owners.py TEST-BINARY RECORDS PROFILE...")
    binary, records = sys.argv[1], int(sys.argv[2])
    for prof in sys.argv[3:]:
        spent = split(binary, prof)
        total = sum(spent.values())
        print(f"{prof}: {total:.0f} ms of CPU, {total * 1e6 / records:.0f} ns per record")
        for o, ms in spent.most_common():
            print(f"  {o:36s} {ms:7.0f} ms {100 * ms / total:5.1f}% {ms * 1e6 / records:7.0f} ns/record")


main()
