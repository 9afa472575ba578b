package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

func newConsumeCmd(g *globals) *cobra.Command {
	var (
		fromBeginning bool
		partition     int32
		offset        int64
		maxMessages   int64
		timeout       time.Duration
		format        string
		group         string
		from          string
		instanceID    string
	)
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print records of a topic to stdout",
		Long: `Print records of a topic to stdout, one per line, in offset order within
each partition. By default every partition is read from its end (new records
only); --from-beginning reads from the start, --partition P --offset O from an
exact position.

With --group G the command is a member of consumer group G: the group's
coordinator gives it a share of the topic's partitions (other members share
the rest), each read from the group's committed offset, or with no commit
from --from (latest, the default, or earliest). It commits the offsets of
the records it printed every 5s, when a partition moves to another member
and on exit, so the next member or the next run goes on where it stopped
(at least once: records printed after the last commit may be printed again).
With --instance-id the member is static: killed or stopped, it keeps its
partitions for the group's session timeout, and started again with the same
id it takes them back at once. See "sluice group" to list, describe and reset
groups.

--format places fields with {value}, {key}, {offset}, {partition},
{timestamp} (ms since the epoch) and {topic}; \t and \n are tab and newline.`,
		Example: `  sluice consume orders --from-beginning
  sluice consume orders --group billing --from earliest
  sluice consume orders --group billing --instance-id billing-1
  sluice consume orders --partition 2 --offset 100 --max-messages 10
  sluice consume orders --from-beginning --timeout 2s --format '{partition}:{offset} {key}={value}'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("offset") && partition < 0 {
				return errors.New("--offset needs --partition")
			}
			if fromBeginning && cmd.Flags().Changed("offset") {
				return errors.New("--from-beginning and --offset exclude each other")
			}
			tmpl := compileFormat(format)
			topic := args[0]
			if group != "" || cmd.Flags().Changed("from") || instanceID != "" {
				if group == "" {
					return errors.New("--from and --instance-id need --group (without a group, use --from-beginning)")
				}
				if partition >= 0 || fromBeginning {
					return errors.New("--group takes its partitions and offsets from the group: no --partition, --offset or --from-beginning")
				}
				reset, err := parseFrom(from)
				if err != nil {
					return err
				}
				cl, err := dial(cmd, g, client.ConsumerGroup(group, client.GroupTopics(topic), client.GroupResetOffset(reset),
					client.GroupInstanceID(instanceID)))
				if err != nil {
					return err
				}
				defer cl.Close() // commits what was printed and leaves the group
				return consumeLoop(cmd.Context(), cl, cmd.OutOrStdout(), cmd.ErrOrStderr(), tmpl, maxMessages, timeout)
			}
			cl, err := dial(cmd, g)
			if err != nil {
				return err
			}
			defer cl.Close()
			start := client.AtEnd()
			switch {
			case cmd.Flags().Changed("offset"):
				start = client.At(offset)
			case fromBeginning:
				start = client.AtStart()
			}
			assign := map[client.TopicPartition]client.Offset{}
			if partition >= 0 {
				assign[client.TopicPartition{Topic: topic, Partition: partition}] = start
			} else {
				d, err := cl.DescribeTopic(cmd.Context(), topic)
				if err != nil {
					return err
				}
				for _, p := range d.Partitions {
					assign[client.TopicPartition{Topic: topic, Partition: p.Partition}] = start
				}
			}
			cl.Assign(assign)
			return consumeLoop(cmd.Context(), cl, cmd.OutOrStdout(), cmd.ErrOrStderr(), tmpl, maxMessages, timeout)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&fromBeginning, "from-beginning", false, "start at the first record of each partition")
	f.Int32Var(&partition, "partition", -1, "read only this partition")
	f.Int64Var(&offset, "offset", 0, "with --partition: start at this offset")
	f.Int64Var(&maxMessages, "max-messages", 0, "exit after this many records (0: no limit)")
	f.DurationVar(&timeout, "timeout", 0, "exit when no record arrives for this long (0: wait forever)")
	f.StringVar(&format, "format", "{value}", "output format of each record")
	f.StringVar(&group, "group", "", "consume as a member of this consumer group, from its committed offsets")
	f.StringVar(&from, "from", "latest", "with --group: where partitions with no committed offset start (earliest|latest)")
	f.StringVar(&instanceID, "instance-id", "", "with --group: a static member's id, kept across restarts")
	return cmd
}

// parseFrom is --from's start of a partition with no committed offset.
func parseFrom(from string) (client.Offset, error) {
	switch from {
	case "earliest":
		return client.AtStart(), nil
	case "latest":
		return client.AtEnd(), nil
	}
	return client.Offset{}, fmt.Errorf("--from %q: want earliest or latest", from)
}

func consumeLoop(ctx context.Context, cl *client.Client, stdout, stderr io.Writer, tmpl []formatPart, maxMessages int64, timeout time.Duration) error {
	w := bufio.NewWriterSize(stdout, 64<<10)
	defer w.Flush()
	var n int64
	var buf []byte
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if timeout > 0 {
			pctx, cancel = context.WithTimeout(ctx, timeout)
		}
		fs, err := cl.Poll(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: a clean exit
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return nil // --timeout with no record
			}
			return err
		}
		for _, fe := range fs.Errors {
			fmt.Fprintln(stderr, "sluice: consume:", fe)
		}
		for i, r := range fs.Records {
			buf = appendFormatted(buf[:0], tmpl, r)
			if _, err := w.Write(buf); err != nil {
				return err
			}
			n++
			if maxMessages > 0 && n >= maxMessages {
				unprinted(cl, fs.Records[i+1:])
				return nil
			}
		}
		fs.Release() // printed: the records' memory goes to the next fetches
		if err := w.Flush(); err != nil {
			return err
		}
	}
}

// unprinted seeks each partition of recs, records polled and not
// printed, back to its first: in a group, what Close commits is then what
// was printed.
func unprinted(cl *client.Client, recs []*client.Record) {
	seen := map[client.TopicPartition]bool{}
	for _, r := range recs {
		tp := client.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		if !seen[tp] {
			seen[tp] = true
			_ = cl.Seek(r.Topic, r.Partition, r.Offset) // a partition revoked meanwhile is not ours to commit
		}
	}
}

// formatPart is a literal or a field placeholder of --format.
type formatPart struct {
	lit   string
	field string
}

func compileFormat(f string) []formatPart {
	f = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(f)
	var parts []formatPart
	for f != "" {
		i := strings.IndexByte(f, '{')
		j := strings.IndexByte(f[max(i, 0):], '}')
		if i < 0 || j < 0 {
			parts = append(parts, formatPart{lit: f})
			break
		}
		j += i
		name := f[i+1 : j]
		switch name {
		case "value", "key", "offset", "partition", "timestamp", "topic":
			if i > 0 {
				parts = append(parts, formatPart{lit: f[:i]})
			}
			parts = append(parts, formatPart{field: name})
		default:
			parts = append(parts, formatPart{lit: f[:j+1]})
		}
		f = f[j+1:]
	}
	return append(parts, formatPart{lit: "\n"})
}

func appendFormatted(dst []byte, tmpl []formatPart, r *client.Record) []byte {
	for _, p := range tmpl {
		switch p.field {
		case "":
			dst = append(dst, p.lit...)
		case "value":
			dst = append(dst, r.Value...)
		case "key":
			dst = append(dst, r.Key...)
		case "offset":
			dst = strconv.AppendInt(dst, r.Offset, 10)
		case "partition":
			dst = strconv.AppendInt(dst, int64(r.Partition), 10)
		case "timestamp":
			dst = strconv.AppendInt(dst, r.Timestamp.UnixMilli(), 10)
		case "topic":
			dst = append(dst, r.Topic...)
		}
	}
	return dst
}
