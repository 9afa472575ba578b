package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
)

func newQueueCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Receive from queue groups, describe, reset them and redrive their dead letters",
		Long: `A queue group reads topics record by record: any number of members, each
record acquired by one member under a lease (30 s by default), then accepted,
released or rejected. A record rejected, or delivered the most times allowed
(5 by default), is copied to the dead-letter topic (<topic>.dlq by default)
with headers saying why and from where. Acknowledging does not delete: the
topic's records stay for stream consumers and replay. Each group's settings
are changed with 'sluice queue config'. See docs/queues.md.`,
		Example: `  sluice queue receive jobs --group workers --max 10
  sluice queue describe workers
  sluice queue config workers --set queue.lease.ms=10000
  sluice queue redrive workers
  sluice queue reset workers --to-earliest`,
	}
	cmd.AddCommand(newQueueReceiveCmd(g), newQueueDescribeCmd(g), newQueueConfigCmd(g), newQueueRedriveCmd(g), newQueueResetCmd(g))
	return cmd
}

func newQueueReceiveCmd(g *globals) *cobra.Command {
	var (
		group   string
		accept  bool
		reject  bool
		release bool
		reason  string
		maxRecs int64
		timeout time.Duration
		format  string
	)
	cmd := &cobra.Command{
		Use:   "receive TOPIC",
		Short: "Receive records of a topic as a member of a queue group and settle them",
		Long: `Receive records of TOPIC as a member of queue group --group, print each on
a line (as consume does, with {deliveries} too: the record's delivery count),
and settle it once printed: --accept (the default: never delivered again),
--reject (copied to TOPIC.dlq with --reason) or --release (given back: delivered
again, counting toward the delivery limit). Other members running at the same
time share the records; several may read the same partition.

--format places fields with {value}, {key}, {offset}, {partition},
{timestamp}, {topic} and {deliveries}; \t and \n are tab and newline.`,
		Example: `  sluice queue receive jobs --group workers
  sluice queue receive jobs --group workers --max 10 --timeout 2s
  sluice queue receive jobs --group workers --reject --reason 'bad input' --max 1
  sluice queue receive jobs --group workers --format '{offset} x{deliveries} {value}'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if group == "" {
				return errors.New("--group is required")
			}
			n := 0
			for _, b := range []bool{accept, reject, release} {
				if b {
					n++
				}
			}
			if n > 1 {
				return errors.New("--accept, --reject and --release exclude each other")
			}
			cl, err := dial(cmd, g)
			if err != nil {
				return err
			}
			defer cl.Close()
			q := cl.QueueGroup(group, args[0])
			settle := func(d *client.Delivery) error { return d.Accept() }
			switch {
			case reject:
				settle = func(d *client.Delivery) error { return d.Reject(reason) }
			case release:
				settle = func(d *client.Delivery) error { return d.Release(0) }
			}
			return queueReceiveLoop(cmd.Context(), q, cmd.OutOrStdout(), cmd.ErrOrStderr(), compileQueueFormat(format), settle, maxRecs, timeout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&group, "group", "", "the queue group to receive as a member of (required)")
	f.BoolVar(&accept, "accept", false, "accept each record once printed (the default)")
	f.BoolVar(&reject, "reject", false, "reject each record once printed: it goes to the dead-letter topic")
	f.BoolVar(&release, "release", false, "release each record once printed: it is delivered again")
	f.StringVar(&reason, "reason", "rejected by sluice queue receive", "with --reject: the reason in the dead letter's headers")
	f.Int64Var(&maxRecs, "max", 0, "exit after this many records (0: no limit)")
	f.DurationVar(&timeout, "timeout", 0, "exit when no record arrives for this long (0: wait forever)")
	f.StringVar(&format, "format", "{value}", "output format of each record")
	return cmd
}

// queueFormat is consume's --format with {deliveries}.
type queueFormat struct {
	parts []formatPart
}

func compileQueueFormat(f string) queueFormat {
	// {deliveries} is not one of consume's fields: split on it first.
	var out queueFormat
	pieces := strings.Split(f, "{deliveries}")
	for i, p := range pieces {
		ps := compileFormat(p)
		ps = ps[:len(ps)-1] // compileFormat ends each with a newline
		out.parts = append(out.parts, ps...)
		if i < len(pieces)-1 {
			out.parts = append(out.parts, formatPart{field: "deliveries"})
		}
	}
	out.parts = append(out.parts, formatPart{lit: "\n"})
	return out
}

func (f queueFormat) append(dst []byte, d *client.Delivery) []byte {
	for _, p := range f.parts {
		if p.field == "deliveries" {
			dst = fmt.Appendf(dst, "%d", d.DeliveryCount)
			continue
		}
		dst = appendFormatted(dst, []formatPart{p}, &d.Record)
	}
	return dst
}

func queueReceiveLoop(ctx context.Context, q *client.QueueGroup, stdout, stderr io.Writer, f queueFormat, settle func(*client.Delivery) error, maxRecs int64, timeout time.Duration) error {
	w := bufio.NewWriterSize(stdout, 64<<10)
	defer w.Flush()
	var n int64
	var buf []byte
	for maxRecs <= 0 || n < maxRecs {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if timeout > 0 {
			rctx, cancel = context.WithTimeout(ctx, timeout)
		}
		want := 100
		if maxRecs > 0 {
			want = int(min(int64(want), maxRecs-n))
		}
		ds, err := q.Receive(rctx, want)
		cancel()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
				return nil // interrupted, or --timeout with no record
			}
			return err
		}
		for _, d := range ds {
			buf = f.append(buf[:0], d)
			if _, err := w.Write(buf); err != nil {
				return err
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if err := settle(d); err != nil {
				// A lost lease: the record went to another member.
				fmt.Fprintf(stderr, "sluice: queue receive: %s[%d] offset %d: %v\n", d.Topic, d.Partition, d.Offset, err)
			}
			n++
		}
	}
	return nil
}

func newQueueDescribeCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show each partition of a queue group: its window, states, dead letters and cap",
		Long: `Show, per partition the group has read: the window's start (every record
before it is done) and end (the first offset never delivered); how many records
inside are available, acquired, accepted and archived; how many were
dead-lettered; the age of the oldest lease still held (OLDEST-UNACKED); and
AT-CAP when the window is full (queue.max.in.flight records, 2,000 by
default): no new record is delivered until the oldest ones are settled. A
line above the table shows the group's settings (sluice queue config), a *
marking those set for the group; the others are the brokers' defaults.
--json prints them too, as "settings": lease_ns, max_delivery_attempts,
backoff_ns, max_in_flight, dlq_topic ("" for <topic>.dlq) and "set", the
keys set for the group.`,
		Example: `  sluice queue describe workers
  sluice queue describe workers --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				d, err := cl.DescribeQueueGroup(ctx, args[0])
				if err != nil {
					return err
				}
				if d.Partitions == nil {
					d.Partitions = []client.QueuePartitionState{}
				}
				entries, err := cl.DescribeQueueGroupConfigs(ctx, args[0])
				if err != nil {
					return err
				}
				settings, err := queueSettingsOf(entries)
				if err != nil {
					return fmt.Errorf("queue group %s: %w", args[0], err)
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), queueDescribeJSON{QueueGroupDescription: d, Settings: settings})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "queue group %s: lease %v, %d partitions\n", d.Group, d.Lease, len(d.Partitions))
				fmt.Fprintf(cmd.OutOrStdout(), "settings: %s (* set for the group; the others are the brokers' defaults)\n", queueSettingsLine(entries))
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TOPIC\tPARTITION\tSTART\tEND\tAVAILABLE\tACQUIRED\tACCEPTED\tARCHIVED\tDEAD-LETTERED\tOLDEST-UNACKED\tAT-CAP")
				for _, p := range d.Partitions {
					age := "-"
					if p.OldestAcquired >= 0 {
						age = p.OldestAcquired.Round(time.Millisecond).String()
					}
					capped := "-"
					if p.AtCap {
						capped = "yes"
					}
					fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", p.Topic, p.Partition, p.Start, p.End,
						p.Available, p.Acquired, p.Accepted, p.Archived, p.DeadLettered, age, capped)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// queueDescribeJSON is what `queue describe --json` prints: the
// description and the group's settings.
type queueDescribeJSON struct {
	client.QueueGroupDescription
	Settings queueSettings `json:"settings"`
}

// queueSettings are a queue group's settings (docs/queues.md), typed.
type queueSettings struct {
	Lease               time.Duration   `json:"lease_ns"`
	MaxDeliveryAttempts int             `json:"max_delivery_attempts"`
	Backoff             []time.Duration `json:"backoff_ns"` // before the 2nd, 3rd, ... delivery; the last repeats
	MaxInFlight         int             `json:"max_in_flight"`
	DLQTopic            string          `json:"dlq_topic"` // "": <topic>.dlq
	// Set lists the keys set for the group; the others have the
	// brokers' defaults.
	Set []string `json:"set"`
}

// queueSettingsOf reads a queue group's config entries (Kafka's alias
// names, described beside, are skipped).
func queueSettingsOf(entries []client.ConfigEntry) (queueSettings, error) {
	s := queueSettings{Backoff: []time.Duration{}, Set: []string{}}
	atoi := func(e client.ConfigEntry) (int, error) {
		n, err := strconv.Atoi(e.Value)
		if err != nil {
			return 0, fmt.Errorf("setting %s=%q: %w", e.Key, e.Value, err)
		}
		return n, nil
	}
	for _, e := range entries {
		var err error
		switch e.Key {
		case controller.ConfigQueueLeaseMs:
			var ms int
			ms, err = atoi(e)
			s.Lease = time.Duration(ms) * time.Millisecond
		case controller.ConfigQueueMaxDeliveryAttempts:
			s.MaxDeliveryAttempts, err = atoi(e)
		case controller.ConfigQueueMaxInFlight:
			s.MaxInFlight, err = atoi(e)
		case controller.ConfigQueueBackoffMs:
			var b []time.Duration
			if b, err = controller.ParseQueueBackoff(e.Value); err == nil && b != nil {
				s.Backoff = b
			}
		case controller.ConfigQueueDLQTopic:
			s.DLQTopic = e.Value
		default:
			continue
		}
		if err != nil {
			return s, err
		}
		if !e.IsDefault {
			s.Set = append(s.Set, e.Key)
		}
	}
	return s, nil
}

// queueSettingsLine is a group's settings on one line, key=value, a *
// after those set for the group.
func queueSettingsLine(entries []client.ConfigEntry) string {
	parts := make([]string, 0, len(entries))
	for _, e := range entries {
		mark := ""
		if !e.IsDefault {
			mark = "*"
		}
		parts = append(parts, fmt.Sprintf("%s=%s%s", e.Key, queueConfigValue(e), mark))
	}
	return strings.Join(parts, " ")
}

// queueConfigValue is how the CLI shows a queue group config value: the
// empty ones say what they mean.
func queueConfigValue(e client.ConfigEntry) string {
	switch {
	case e.Value != "":
		return e.Value
	case e.Key == "queue.dlq.topic":
		return "<topic>.dlq"
	case e.Key == "queue.backoff.ms":
		return "none"
	}
	return e.Value
}

func newQueueConfigCmd(g *globals) *cobra.Command {
	var (
		set, del []string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "config GROUP",
		Short: "Show or change a queue group's settings (lease, delivery limit, backoff, cap, dead-letter topic)",
		Long: `Show a queue group's settings, or change them with --set and --delete (back
to the brokers' value). They are kept in the cluster metadata as the group's
configs and apply at once: a new lease to the next acquisitions and renewals,
a new cap to the next deliveries, a lower delivery limit to records delivered
that often already (dead-lettered).

  queue.lease.ms               how long a member holds a record (default 30000;
                               1000 to 3600000); Kafka: share.record.lock.duration.ms
  queue.max.delivery.attempts  deliveries before a record is dead-lettered
                               (default 5; 1 to 100); Kafka: share.delivery.count.limit
  queue.backoff.ms             delays (ms) before the 2nd, 3rd, ... delivery, the
                               last repeating (default none; at most 32 delays)
  queue.max.in.flight          records of a partition between the oldest not
                               settled and the newest delivered (default 2000;
                               1 to 10000)
  queue.dlq.topic              where dead letters go, from every topic the group
                               reads (default <topic>.dlq)

DEFAULT says whether the value is the brokers' (not set for the group).`,
		Example: `  sluice queue config workers
  sluice queue config workers --set queue.lease.ms=10000 --set queue.backoff.ms=1000,5000
  sluice queue config workers --set queue.max.delivery.attempts=3 --set queue.dlq.topic=workers.dead
  sluice queue config workers --delete queue.backoff.ms --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return alterAndShowConfigs(cmd, g, set, del, asJSON, configResource{
				alter: func(ctx context.Context, cl *client.Client, ch []client.ConfigChange) error {
					return cl.AlterQueueGroupConfigs(ctx, args[0], ch...)
				},
				describe: func(ctx context.Context, cl *client.Client) ([]client.ConfigEntry, error) {
					return cl.DescribeQueueGroupConfigs(ctx, args[0])
				},
				show: queueConfigValue,
			})
		},
	}
	cmd.Flags().StringArrayVar(&set, "set", nil, "setting key=value (repeatable)")
	cmd.Flags().StringArrayVar(&del, "delete", nil, "setting key to revert to the brokers' value (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// queueTopics is --topic, or every topic the group has read.
func queueTopics(ctx context.Context, cl *client.Client, group, topic string) ([]string, error) {
	if topic != "" {
		return []string{topic}, nil
	}
	d, err := cl.DescribeQueueGroup(ctx, group)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range d.Partitions {
		if len(out) == 0 || out[len(out)-1] != p.Topic {
			out = append(out, p.Topic)
		}
	}
	return out, nil
}

func newQueueResetCmd(g *globals) *cobra.Command {
	var (
		topic            string
		earliest, latest bool
		offset           int64
	)
	cmd := &cobra.Command{
		Use:   "reset GROUP",
		Short: "Move a queue group's windows to the earliest, the latest or an offset",
		Long: `Move the group's window of every partition of --topic (default: every topic
the group has read) to the log start (--to-earliest), the end (--to-latest) or
--to-offset N (kept within the log), dropping every state in it: records before
the new start are done, records from it on are delivered again, and what
members hold is no longer theirs (their outcomes are refused). Stop the
members first.`,
		Example: `  sluice queue reset workers --to-earliest
  sluice queue reset workers --topic jobs --to-offset 1200
  sluice queue reset workers --to-latest`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := 0
			if earliest {
				n++
			}
			if latest {
				n++
			}
			if cmd.Flags().Changed("to-offset") {
				n++
			}
			if n != 1 {
				return errors.New("give one of --to-earliest, --to-latest, --to-offset")
			}
			spec := client.ResetToOffset(offset)
			switch {
			case earliest:
				spec = client.ResetToEarliest()
			case latest:
				spec = client.ResetToLatest()
			}
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				topics, err := queueTopics(ctx, cl, args[0], topic)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TOPIC\tPARTITION\tNEW-START")
				for _, t := range topics {
					rs, err := cl.ResetQueueGroup(ctx, args[0], t, spec)
					if err != nil {
						return err
					}
					for _, r := range rs {
						fmt.Fprintf(tw, "%s\t%d\t%d\n", r.Topic, r.Partition, r.New)
					}
				}
				return tw.Flush()
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&topic, "topic", "", "reset only this topic (default: every topic the group has read)")
	f.BoolVar(&earliest, "to-earliest", false, "move to the log start")
	f.BoolVar(&latest, "to-latest", false, "move to the end: nothing before it is delivered")
	f.Int64Var(&offset, "to-offset", 0, "move to this offset")
	return cmd
}

func newQueueRedriveCmd(g *globals) *cobra.Command {
	var (
		topic string
		wait  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "redrive GROUP",
		Short: "Republish a queue group's dead letters to their original topics",
		Long: `Read the dead-letter topic (<topic>.dlq) of --topic (default: every topic the
group has read), or the group's queue.dlq.topic when it has one, up to its end
now and produce each dead letter again to the topic its headers name, with its key, value and headers (less the dead-letter
ones): the group delivers it again as a new record. Progress is kept as the
committed offsets of consumer group <GROUP>.redrive, so a second run
republishes only what was dead-lettered since (at least once: a run stopped
midway may republish some again).`,
		Example: `  sluice queue redrive workers
  sluice queue redrive workers --topic jobs`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				res, err := cl.RedriveQueueGroup(ctx, args[0], topic, wait)
				for _, r := range res {
					if r.Skipped > 0 {
						fmt.Fprintf(cmd.ErrOrStderr(), "sluice: queue redrive: %s: %d records without an origin header skipped\n", r.DeadLetterTopic, r.Skipped)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %d dead letters republished\n", r.DeadLetterTopic, r.Republished)
				}
				if err != nil {
					return err
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "redrive only this topic's dead letters")
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "give up when the dead letters up to the end are not read within this long")
	return cmd
}
