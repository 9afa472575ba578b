package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/client"
)

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput and latency, verify that nothing acknowledged is lost",
		Long: `Benchmarks of a running cluster through the client library, and a checker.

produce, consume and e2e print records/s, MB/s (10^6 bytes of keys and values),
errors and latency percentiles (produce: Produce to acknowledgement; e2e: the
produce time carried in each record to its consumption). On a terminal a
progress line is rewritten every second; --json prints only the final report.
commit reports the latency of consumer-group offset commits at a fixed rate.
verify writes records with unique values and checks what the cluster kept.
See docs/bench.md.`,
		Example: `  sluice bench produce --topic bench --create --records 5000000 --acks 1
  sluice bench consume --topic bench
  sluice bench e2e --topic lat --create --rate 50000 --duration 30s --acks all
  sluice bench commit --topic offs --create --partitions 10 --consumers 10 --group commit-$(date +%s)
  sluice bench verify --producers 4 --records 200000`,
	}
	cmd.AddCommand(newBenchWorkloadCmd(g, "produce"), newBenchWorkloadCmd(g, "consume"),
		newBenchWorkloadCmd(g, "e2e"), newBenchWorkloadCmd(g, "queue"), newBenchWorkloadCmd(g, "commit"), newBenchVerifyCmd(g))
	return cmd
}

// benchFlags are the flags of the bench commands; each command registers
// the ones it uses.
type benchFlags struct {
	topic       string
	create      bool
	partitions  int32
	rf          int16
	configs     []string
	records     int64
	duration    time.Duration
	recordSize  int
	keyCount    int
	acks        string
	idempotence *pflag.Flag // --idempotence, applied only when given
	compression string
	linger      time.Duration
	batchBytes  int
	producers   int
	consumers   int
	rate        float64
	readTimeout time.Duration
	delivery    time.Duration
	json        bool
	cpuprofile  string
	memprofile  string
	tracefile   string
	group       string // consume, verify: as members of this consumer group
	syncAccept  bool   // queue: AcceptAll before each receive
}

func (b *benchFlags) addCommon(f *pflag.FlagSet, topic string) {
	f.StringVar(&b.topic, "topic", topic, "topic to use")
	f.BoolVar(&b.create, "create", false, "create the topic if it does not exist")
	f.Int32Var(&b.partitions, "partitions", 1, "with --create: number of partitions")
	f.Int16Var(&b.rf, "replication-factor", 1, "with --create: replicas of each partition")
	f.StringArrayVar(&b.configs, "config", nil, "with --create: topic config key=value (repeatable), e.g. fsync=always")
	f.Int64Var(&b.records, "records", 0, "records to produce (or at most to consume)")
	f.DurationVar(&b.duration, "duration", 0, "run for this long instead of --records")
	f.BoolVar(&b.json, "json", false, "print the final report as JSON, and no progress line")
	f.StringVar(&b.cpuprofile, "cpuprofile", "", "write a CPU profile of this process to the file")
	f.StringVar(&b.memprofile, "memprofile", "", "write an allocation profile of this process to the file at the end (go tool pprof -sample_index=alloc_space)")
	f.StringVar(&b.tracefile, "trace", "", "write an execution trace of this process to the file (go tool trace)")
}

func (b *benchFlags) addProducer(f *pflag.FlagSet, acks bool) {
	f.IntVar(&b.recordSize, "record-size", bench.DefaultRecordSize, "bytes of each record's value")
	f.IntVar(&b.producers, "producers", 1, "producers, each its own client and connections")
	f.StringVar(&b.compression, "compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	f.DurationVar(&b.linger, "linger", client.DefaultLinger, "how long a batch waits for more records")
	f.IntVar(&b.batchBytes, "batch-bytes", client.DefaultBatchMaxBytes, "largest batch in bytes")
	f.Float64Var(&b.rate, "rate", 0, "total records/s to send at, on a fixed schedule (0: as fast as possible)")
	f.Bool("idempotence", true, "idempotent producers (R13: retries never duplicate), the default with acks=all; false turns it off")
	b.idempotence = f.Lookup("idempotence")
	if acks {
		f.StringVar(&b.acks, "acks", "all", "acknowledgement: 0 (none), 1 (leader) or all (in-sync replicas)")
		f.IntVar(&b.keyCount, "key-count", 0, "distinct keys to cycle through (0: no keys, sticky batches)")
		f.DurationVar(&b.delivery, "delivery-timeout", bench.DefaultDeliveryTimeout,
			"a record not acknowledged within this counts as an error at once, and the run goes on")
	}
}

func (b *benchFlags) addReader(f *pflag.FlagSet) {
	f.DurationVar(&b.readTimeout, "read-timeout", bench.DefaultReadTimeout,
		"how long each read step may take: an offset lookup, retried (a leader that moved) until then, or reading what was acknowledged once the producers are done")
}

// config turns the flags into a bench.Config.
func (b *benchFlags) config(g *globals, stderr io.Writer) (bench.Config, error) {
	if len(g.brokerList()) == 0 {
		return bench.Config{}, errors.New("--brokers is empty")
	}
	topicConfigs, err := parseKV("config", b.configs)
	if err != nil {
		return bench.Config{}, err
	}
	cfg := bench.Config{
		Client: g.clientOpts(),
		Topic:  b.topic, Create: b.create, Partitions: b.partitions, ReplicationFactor: b.rf, TopicConfigs: topicConfigs,
		Records: b.records, Duration: b.duration, RecordSize: b.recordSize, KeyCount: b.keyCount,
		Producers: b.producers, Consumers: b.consumers, Rate: b.rate, ReadTimeout: b.readTimeout,
		DeliveryTimeout: b.delivery, Group: b.group, QueueSyncAccept: b.syncAccept,
	}
	if b.compression != "" {
		codec, err := parseCodec(b.compression)
		if err != nil {
			return cfg, err
		}
		cfg.Producer = append(cfg.Producer, client.Compression(codec), client.Linger(b.linger), client.BatchMaxBytes(b.batchBytes))
		// Room for a few batches in flight per partition at any batch size.
		cfg.Producer = append(cfg.Producer, client.MaxBufferedBytes(max(client.DefaultMaxBufferedBytes, 8*int64(b.batchBytes))))
	}
	if b.acks != "" {
		ack, err := parseAcks(b.acks)
		if err != nil {
			return cfg, err
		}
		cfg.Producer = append(cfg.Producer, client.Acks(ack))
	}
	if b.idempotence != nil && b.idempotence.Changed {
		on, err := strconv.ParseBool(b.idempotence.Value.String())
		if err != nil {
			return cfg, fmt.Errorf("--idempotence: %w", err)
		}
		cfg.Producer = append(cfg.Producer, client.Idempotent(on))
	}
	if !b.json && isTerminal(stderr) {
		cfg.Progress = stderr
	}
	return cfg, nil
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// withCPUProfile runs fn while writing a CPU profile to path, if set.
func withCPUProfile(path string, fn func() error) error {
	return withProfile("--cpuprofile", path, pprof.StartCPUProfile, pprof.StopCPUProfile, fn)
}

// withMemProfile runs fn, then writes the allocation profile of the
// process so far to path, if set.
func withMemProfile(path string, fn func() error) error {
	var out io.Writer
	return withProfile("--memprofile", path, func(w io.Writer) error { out = w; return nil },
		func() { _ = pprof.Lookup("allocs").WriteTo(out, 0) }, fn)
}

// withTrace runs fn while writing an execution trace to path, if set.
func withTrace(path string, fn func() error) error {
	return withProfile("--trace", path, trace.Start, trace.Stop, fn)
}

// withProfile runs fn between start and stop writing to the file path (a
// no-op when path is empty); flag names the option in errors.
func withProfile(flag, path string, start func(io.Writer) error, stop func(), fn func() error) error {
	if path == "" {
		return fn()
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	if err := start(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", flag, err)
	}
	runErr := fn()
	stop()
	if err := f.Close(); err != nil && runErr == nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	return runErr
}

var benchWorkloads = map[string]struct {
	short, long, example string
	run                  func(context.Context, bench.Config) (*bench.Report, error)
}{
	"produce": {
		short: "Produce as fast as possible (or at --rate) and report throughput and latency",
		long: `Produce --records records (default 1,000,000) or for --duration, with
--producers producers, each its own client. Latency is from Produce to the
acknowledgement; with --rate it is from each record's scheduled send time, so a
stalled cluster shows as latency rather than as a slower schedule. A record
not acknowledged within --delivery-timeout counts as an error at once, and the
run goes on with the other partitions: a stalled partition shows as errors.
Values are --record-size random letters; --key-count adds keys. Exits 1 if
any record failed.`,
		example: `  sluice bench produce --topic bench --create --records 5000000 --record-size 100 --acks 1
  sluice bench produce --topic big --create --partitions 4 --record-size 1024 --producers 2 --duration 30s
  sluice bench produce --topic synced --create --config fsync=always --producers 8 --acks 1
  sluice bench produce --topic bench --duration 60s --key-count 1000 --delivery-timeout 5s`,
		run: bench.Produce,
	},
	"consume": {
		short: "Read a topic from its start and report throughput",
		long: `Read every partition of --topic from its start to the end it had when the
run began (or --records records, or for --duration), with --consumers
consumers sharing the partitions. Fill the topic first with bench produce.

With --group G the consumers are members of consumer group G, which assigns
them the partitions; they read from the group's committed offsets (the start
where it has none) and commit as they go: compare with a run without --group
for the cost of group membership. Use a new group name for each run.`,
		example: `  sluice bench produce --topic bench --create --records 5000000 --acks 1
  sluice bench consume --topic bench
  sluice bench consume --topic bench --consumers 2 --json
  sluice bench consume --topic bench --consumers 2 --group bench-$(date +%s)`,
		run: bench.Consume,
	},
	"queue": {
		short: "Receive and accept a topic's records as a queue group and report throughput",
		long: `Workers (--consumers, each its own client) are members of one queue group
(--group, default a new one) and receive and accept every record --topic held
when the run began, from its start (or --records records, or for --duration):
up to 500 records per receive, accepted in one batch that goes with the
worker's next receive (AcceptAsync: one request settles a batch and asks for
the next), or on its own before the next receive with --sync-accept
(AcceptAll). Records and MB/s are those accepted; latency is from a receive's
start to its acceptance's answer. Fill the topic first with bench produce.
Any number of workers may share one partition.`,
		example: `  sluice bench produce --topic q --create --records 500000 --record-size 100 --acks all
  sluice bench queue --topic q --consumers 4
  sluice bench queue --topic q --consumers 4 --sync-accept`,
		run: bench.Queue,
	},
	"e2e": {
		short: "Produce and consume together and report end-to-end latency",
		long: `Consumers start at the end of every partition, producers send as bench produce
does, and each record carries its produce time in its first 8 value bytes;
latency is from that time to the Poll that returned the record. Use --rate for
a fixed load. The run ends when the consumers have seen every acknowledged
record, or --read-timeout after the producers finished (an error).`,
		example: `  sluice bench e2e --topic lat --create --rate 50000 --duration 30s --acks all
  sluice bench e2e --topic lat --records 200000 --producers 2 --consumers 2 --json`,
		run: bench.E2E,
	},
	"commit": {
		short: "Commit group offsets at a fixed rate and report commit latency",
		long: `--consumers consumers join consumer group --group (subscribed to --topic,
auto-commit off); once the group has given every member partitions, they commit
on a fixed schedule of --rate commits/s in all (default 1,000), each member its
share, for --duration (default 10s) or --records commits. Each commit names
every partition the member owns. Latency is from each commit's scheduled time
to its answer, so commits that fall behind the schedule show as latency. The
report counts commits as records. Use a new group name for each run.`,
		example: `  sluice bench commit --topic offsets-bench --create --partitions 10 --consumers 10 --group commit-$(date +%s)
  sluice bench commit --topic offsets-bench --consumers 10 --group g2 --rate 1000 --duration 30s --json`,
		run: bench.Commit,
	},
}

func newBenchWorkloadCmd(g *globals, name string) *cobra.Command {
	w := benchWorkloads[name]
	var b benchFlags
	cmd := &cobra.Command{
		Use:     name,
		Short:   w.short,
		Long:    w.long,
		Example: w.example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := b.config(g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var r *bench.Report
			err = withTrace(b.tracefile, func() error {
				return withCPUProfile(b.cpuprofile, func() error {
					return withMemProfile(b.memprofile, func() error {
						r, err = w.run(cmd.Context(), cfg)
						return err
					})
				})
			})
			if r == nil {
				return err
			}
			if werr := writeBenchReport(cmd.OutOrStdout(), b.json, r); werr != nil {
				return werr
			}
			switch {
			case err != nil:
				return err
			case r.Errors > 0:
				return &exitError{code: 1, msg: fmt.Sprintf("%s: %d errors, the first: %s", name, r.Errors, r.FirstError)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	b.addCommon(f, "sluice-bench")
	switch name {
	case "produce", "e2e":
		b.addProducer(f, true)
	case "commit":
		f.Float64Var(&b.rate, "rate", 0, "total commits/s, on a fixed schedule (0: 1,000)")
	}
	if name != "produce" {
		f.IntVar(&b.consumers, "consumers", 1, "consumers sharing the partitions, each its own client")
		b.addReader(f)
	}
	switch name {
	case "consume":
		f.StringVar(&b.group, "group", "", "consume as members of this consumer group (from its committed offsets)")
	case "commit":
		f.StringVar(&b.group, "group", "", "the consumer group whose members commit (required; use a new one per run)")
	}
	if name == "queue" {
		f.StringVar(&b.group, "group", "", "the queue group (default: a new one named after the time)")
		f.BoolVar(&b.syncAccept, "sync-accept", false, "wait for each acceptance before receiving again (AcceptAll) instead of sending it with the next receive (AcceptAsync)")
	}
	return cmd
}

func writeBenchReport(w io.Writer, asJSON bool, r *bench.Report) error {
	if asJSON {
		return writeJSON(w, r)
	}
	return r.WriteText(w)
}
