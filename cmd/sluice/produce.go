package main

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/record"
)

// maxLineBytes bounds one input line (one record).
const maxLineBytes = 16 << 20

func parseAcks(s string) (client.AckLevel, error) {
	switch strings.ToLower(s) {
	case "0", "none":
		return client.AcksNone, nil
	case "1", "leader":
		return client.AcksLeader, nil
	case "all", "-1":
		return client.AcksAll, nil
	}
	return 0, fmt.Errorf("--acks %q: want 0, 1 or all", s)
}

func parseCodec(s string) (record.Codec, error) {
	for _, c := range []record.Codec{record.None, record.Gzip, record.Snappy, record.LZ4, record.Zstd} {
		if strings.EqualFold(s, c.String()) {
			return c, nil
		}
	}
	return 0, fmt.Errorf("--compression %q: want none, gzip, snappy, lz4 or zstd", s)
}

func newProduceCmd(g *globals) *cobra.Command {
	var (
		keySep      string
		acks        string
		compression string
		partition   int32
	)
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce records read from stdin, one per line",
		Long: `Produce records read from stdin, one per line (the newline is not part of
the record). With --key-separator, the text before the first separator is the
key and the rest the value. With --acks all (the default) the producer is
idempotent: a record whose outcome was unknown is sent again and written once.
A batch the topic refuses as larger than its max.message.bytes is split and
sent again; a line that alone is larger fails. A record not acknowledged
within --timeout fails. Exits non-zero if any record
failed, after naming the failed lines (a run of lines that failed alike on one
line, at most 20).`,
		Example: `  echo hello | sluice produce orders
  printf 'user1:login\nuser2:logout\n' | sluice produce events --key-separator :
  sluice produce logs --compression zstd --acks 1 < app.log`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ack, err := parseAcks(acks)
			if err != nil {
				return err
			}
			codec, err := parseCodec(compression)
			if err != nil {
				return err
			}
			// A record not acknowledged within --timeout fails: an
			// idempotent producer would otherwise retry an unavailable
			// partition for the library's 2-minute delivery timeout.
			opts := []client.Opt{client.Acks(ack), client.Compression(codec), client.DeliveryTimeout(g.timeout)}
			if partition >= 0 {
				opts = append(opts, client.RecordPartitioner(client.ManualPartitioner()))
			}
			cl, err := dial(cmd, g, opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			return produceLines(cmd, cl, args[0], cmd.InOrStdin(), keySep, partition)
		},
	}
	f := cmd.Flags()
	f.StringVar(&keySep, "key-separator", "", "split each line into key and value at the first occurrence of this string")
	f.StringVar(&acks, "acks", "all", "acknowledgement: 0 (none), 1 (leader) or all (in-sync replicas)")
	f.StringVar(&compression, "compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	f.Int32Var(&partition, "partition", -1, "produce every record to this partition (default: by key hash, or sticky batches without a key)")
	return cmd
}

func produceLines(cmd *cobra.Command, cl *client.Client, topic string, in io.Reader, keySep string, partition int32) error {
	ctx := cmd.Context()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	var (
		mu     sync.Mutex
		failed []lineError
		wg     sync.WaitGroup
	)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		rec := &client.Record{Topic: topic}
		if partition >= 0 {
			rec.Partition = partition
		}
		if keySep != "" {
			if k, v, ok := bytes.Cut(text, []byte(keySep)); ok {
				rec.Key = bytes.Clone(k)
				text = v
			}
		}
		rec.Value = bytes.Clone(text)
		n := line
		wg.Add(1)
		cl.Produce(ctx, rec, func(_ *client.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				failed = append(failed, lineError{n, err.Error()})
				mu.Unlock()
			}
		})
	}
	readErr := sc.Err()
	flushErr := cl.Flush(ctx)
	wg.Wait()
	reportFailedLines(cmd.ErrOrStderr(), failed)
	switch {
	case readErr != nil:
		return fmt.Errorf("read stdin at line %d: %w", line+1, readErr)
	case len(failed) > 0:
		return &exitError{code: 1, msg: fmt.Sprintf("%d of %d records failed", len(failed), line)}
	case flushErr != nil:
		return fmt.Errorf("flush: %w", flushErr)
	}
	return nil
}

// lineError is the failure of the record read from one input line.
type lineError struct {
	line int
	msg  string
}

// maxFailureRuns bounds how many runs of failed lines produce prints.
const maxFailureRuns = 20

// reportFailedLines prints the failed lines in order, a run of
// consecutive lines that failed alike on one line ("lines 3-2000"), and
// at most maxFailureRuns runs: a topic that refuses everything gives one
// line of output, not one per record.
func reportFailedLines(w io.Writer, failed []lineError) {
	slices.SortFunc(failed, func(a, b lineError) int { return cmp.Compare(a.line, b.line) })
	runs, rest := 0, 0
	for i := 0; i < len(failed); {
		j := i + 1
		for j < len(failed) && failed[j].line == failed[j-1].line+1 && failed[j].msg == failed[i].msg {
			j++
		}
		if runs == maxFailureRuns {
			rest += j - i
		} else {
			runs++
			if j-i == 1 {
				fmt.Fprintf(w, "sluice: produce: line %d: %s\n", failed[i].line, failed[i].msg)
			} else {
				fmt.Fprintf(w, "sluice: produce: lines %d-%d (%d records): %s\n", failed[i].line, failed[j-1].line, j-i, failed[i].msg)
			}
		}
		i = j
	}
	if rest > 0 {
		fmt.Fprintf(w, "sluice: produce: and %d more failed records\n", rest)
	}
}
