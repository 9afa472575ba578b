#!/usr/bin/env python3
# cpu-pairs.py: what idempotence costs in CPU per record, against broker
# processes of their own (BENCHMARKS.md, "CPU per record, idempotent
# against plain"). Runs `sluice bench produce` idempotent and plain in
# interleaved pairs (A B, then B A; one unmeasured warm-up each first),
# a fixed number of records each into a fresh topic (deleted after), and
# prints per run the brokers' CPU per record (/proc/PID/stat utime +
# stime, summed over PIDS; 10 ms ticks, so give each run a second of
# broker CPU or more) and the bench process's (RUSAGE_CHILDREN), then the
# medians and ranges of the per-pair ratios idempotent / plain.
#
#   scripts/cluster.sh up 1 DIR
#   scripts/cpu-pairs.py SLUICE "$(cat DIR/brokers)" "$(cat DIR/*/pid | paste -sd,)" RF SIZE RECORDS PAIRS
import os, sys, subprocess, statistics, resource, json
bin_, addrs, pid, rf, size, n, pairs = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3].split(',')], sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
tck = os.sysconf('SC_CLK_TCK')
def broker_cpu():
    t = 0
    for p in pid:
        f = open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()
        t += (int(f[11]) + int(f[12])) / tck   # utime, stime (fields 14, 15)
    return t
def run(mode, i):
    topic = f'{mode}-{rf}-{size}-{i}-{os.getpid()}'
    b0 = broker_cpu()
    p = subprocess.Popen([bin_, '--brokers', addrs, 'bench', 'produce', '--topic', topic, '--create', '--partitions', '3',
        '--replication-factor', rf, '--records', str(n), '--record-size', size, '--acks', 'all', f'--idempotence={mode=="idem"}', '--json'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    b1 = broker_cpu()
    if p.returncode != 0:
        sys.exit(f'bench failed: {err.decode()}')
    subprocess.run([bin_, '--brokers', addrs, 'topic', 'delete', topic], capture_output=True)
    rate = json.loads(out)['records_per_sec'] if out.strip().startswith(b'{') else 0
    return b1 - b0, rate
prev = resource.getrusage(resource.RUSAGE_CHILDREN)
def client_delta():
    global prev
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    d = (c.ru_utime + c.ru_stime) - (prev.ru_utime + prev.ru_stime)
    prev = c
    return d
res = {'idem': [], 'plain': []}
for i in range(-1, pairs):
    order = ['plain', 'idem'] if i % 2 == 0 else ['idem', 'plain']
    for m in order:
        client_delta()
        b, rate = run(m, i)
        c = client_delta()  # includes the topic delete command, a few ms
        if i >= 0:
            res[m].append((b * 1e9 / n, c * 1e9 / n, rate))
        print(f'pair {i+1} {m}: broker {b*1e9/n:.0f} ns/rec, client {c*1e9/n:.0f} ns/rec, {rate:.0f} rec/s', flush=True)
def summ(xs):
    return f'{statistics.median(xs):.3f} [{min(xs):.3f}, {max(xs):.3f}]'
for k, name in [(0, 'broker CPU'), (1, 'client CPU'), (2, 'rate')]:
    r = [res['idem'][j][k] / res['plain'][j][k] for j in range(pairs)]
    print(f'idem/plain {name} over {pairs} pairs: {summ(r)}; medians idem {statistics.median(x[k] for x in res["idem"]):.0f} plain {statistics.median(x[k] for x in res["plain"]):.0f}')
tot = [(res['idem'][j][0] + res['idem'][j][1]) / (res['plain'][j][0] + res['plain'][j][1]) for j in range(pairs)]
print(f'idem/plain broker+client CPU over {pairs} pairs: {summ(tot)}')
