package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// benchBatch is one batch of n records of size bytes each.
func benchBatch(b *testing.B, n, size int) []byte {
	bl := record.NewBuilder(record.None)
	val := make([]byte, size)
	for i := range n {
		bl.Append(baseTS+int64(i), nil, val, nil)
	}
	out, err := bl.AppendBatch(nil)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// encoded returns the whole request frame for req, with the correlation
// id at frame[8:12] for the caller to patch.
func encoded(b *testing.B, req protocol.Message) []byte {
	h := protocol.RequestHeader{Key: req.Key(), CorrelationID: 0, ClientID: "bench"}
	out, err := protocol.AppendRequest(nil, &h, req)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// pipeline sends frame b.N times with up to window requests in flight
// and reads every response, checking correlation ids; check inspects each
// response body.
func pipeline(b *testing.B, c *testClient, frame []byte, window int, check func(body []byte)) {
	sent, recvd := 0, 0
	for recvd < b.N {
		for sent < b.N && sent-recvd < window {
			sent++
			binary.BigEndian.PutUint32(frame[8:], uint32(sent))
			c.write(frame)
		}
		f, err := c.fr.Next()
		if err != nil {
			b.Fatal(err)
		}
		recvd++
		corr, body, err := protocol.ParseResponse(f)
		if err != nil || corr != int32(recvd) {
			b.Fatalf("response %d: correlation %d, %v", recvd, corr, err)
		}
		check(body)
	}
}

func BenchmarkProduce(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("record=%dB", size), func(b *testing.B) {
			n := (64 << 10) / size // ~64 KiB batches
			br := startBroker(b, "", nil)
			c := dial(b, br.Addr())
			c.createTopic("bench", 1)
			benchProduce(b, c, n, size)
		})
	}
}

// benchProduce produces b.N batches of n records of size bytes to topic
// bench, pipelined 8 deep, and reports records/s.
func benchProduce(b *testing.B, c *testClient, n, size int) {
	batch := benchBatch(b, n, size)
	frame := encoded(b, produceRequest("bench", 0, protocol.AcksLeader, batch))
	var resp protocol.ProduceResponse
	var dec protocol.Decoder
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	b.ResetTimer()
	pipeline(b, c, frame, 8, func(body []byte) {
		dec.Reset(body)
		if err := resp.Decode(&dec, 0); err != nil || resp.Topics[0].Partitions[0].ErrorCode != protocol.NoError {
			b.Fatalf("produce: %v %+v", err, resp)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkFetch reads a log of ~64 MiB over and over, 1 MiB per fetch.
func BenchmarkFetch(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("record=%dB", size), func(b *testing.B) {
			benchFetch(b, size, defaultFetchWrite)
		})
	}
}

// BenchmarkFetchWrite compares the two zero-copy ways of writing record
// sets: writev of the mapped bytes and sendfile(2).
func BenchmarkFetchWrite(b *testing.B) {
	for _, mode := range []fetchWriteMode{writeMapped, writeSendfile} {
		name := map[fetchWriteMode]string{writeMapped: "mapped", writeSendfile: "sendfile"}[mode]
		b.Run(name, func(b *testing.B) { benchFetch(b, 1024, mode) })
	}
}

func benchFetch(b *testing.B, size int, mode fetchWriteMode) {
	const logBytes = 64 << 20
	const fetchBytes = 1 << 20
	n := (64 << 10) / size
	br := startBroker(b, "", nil)
	br.fetchWrite = mode
	c := dial(b, br.Addr())
	c.createTopic("bench", 1)
	batch := benchBatch(b, n, size)
	frame := encoded(b, produceRequest("bench", 0, protocol.AcksLeader, batch))
	batches := logBytes / len(batch)
	var pr protocol.ProduceResponse
	for i := range batches {
		binary.BigEndian.PutUint32(frame[8:], uint32(i+1))
		c.write(frame)
		c.corr = int32(i + 1)
		c.recv(c.corr, &pr)
	}
	end := int64(batches * n)
	req := fetchRequest("bench", 0, 0, 0, 0)
	req.Topics[0].Partitions[0].PartitionMaxBytes = fetchBytes
	var resp protocol.FetchResponse
	offset, total := int64(0), int64(0)
	c.corr = 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req.Topics[0].Partitions[0].FetchOffset = offset
		c.recv(c.send(req), &resp)
		p := &resp.Topics[0].Partitions[0]
		if p.ErrorCode != protocol.NoError || len(p.Records) == 0 {
			b.Fatalf("fetch %d at %d: %v, %d bytes", i, offset, p.ErrorCode, len(p.Records))
		}
		total += int64(len(p.Records))
		// Next offset: after the last whole batch received.
		for rest := p.Records; len(rest) > 0; {
			bt, next, err := record.NextBatch(rest, 0)
			if err != nil {
				break
			}
			offset = bt.NextOffset()
			rest = next
		}
		if offset >= end {
			offset = 0
		}
	}
	b.StopTimer()
	b.SetBytes(total / int64(b.N))
	b.ReportMetric(float64(total)/float64(size+8)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkProduceAuthorizer produces the same batches with the authorizer
// off and on (a user allowed by an ACL, not a super user), as 1-record and
// 640-record batches of 100 B: the check is per topic of a request, so
// the difference, if any, is per request and does not grow with records.
func BenchmarkProduceAuthorizer(b *testing.B) {
	for _, records := range []int{1, 640} {
		for _, authz := range []bool{false, true} {
			b.Run(fmt.Sprintf("records=%d/authorizer=%v", records, authz), func(b *testing.B) {
				br := startBroker(b, "", func(c *Config) {
					c.Security = Security{SASLMechanisms: []auth.Mechanism{auth.ScramSHA256}, Authorizer: authz}
				})
				cred, err := auth.NewCredential(auth.ScramSHA256, "pw", auth.MinIterations)
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				if _, err := br.store.Propose(ctx, controller.UpsertCredential{User: "bench", Credential: cred}); err != nil {
					b.Fatal(err)
				}
				if _, err := br.store.Propose(ctx, controller.CreateACLs{ACLs: []auth.ACL{
					{Principal: "User:bench", Host: "*", Resource: auth.ResourceTopic, Name: "bench", Pattern: auth.PatternLiteral, Op: auth.OpAll, Permission: auth.Allow},
					{Principal: "User:bench", Host: "*", Resource: auth.ResourceCluster, Name: auth.ClusterName, Pattern: auth.PatternLiteral, Op: auth.OpCreate, Permission: auth.Allow},
				}}); err != nil {
					b.Fatal(err)
				}
				c := dial(b, br.Addr())
				if code, _ := c.loginAs(auth.ScramSHA256, "bench", "pw"); code != protocol.NoError {
					b.Fatalf("login: %v", code)
				}
				c.createTopic("bench", 1)
				benchProduce(b, c, records, 100)
			})
		}
	}
}

// BenchmarkSessionCanWrite is the produce path's check alone, with the
// authorizer on: a decision cached for the connection's snapshot.
func BenchmarkSessionCanWrite(b *testing.B) {
	br := startBroker(b, "", func(c *Config) { c.Security.Authorizer = true })
	if _, err := br.store.Propose(context.Background(), controller.CreateACLs{ACLs: []auth.ACL{
		{Principal: "User:bench", Host: "*", Resource: auth.ResourceTopic, Name: "bench", Pattern: auth.PatternLiteral, Op: auth.OpWrite, Permission: auth.Allow},
	}}); err != nil {
		b.Fatal(err)
	}
	var s Session
	s.init(br, nil, "127.0.0.1")
	s.principal, s.authed, s.tlsDone = auth.User("bench"), true, true
	b.ReportAllocs()
	for b.Loop() {
		if s.CanWrite("bench") != nil {
			b.Fatal("denied")
		}
	}
}

// BenchmarkProduceMultiPartition is the shape of a producer's requests at
// 1 KiB records (the client puts each partition's next batch in the same
// request): one ~1 MiB batch for each of 3 partitions per request, 5
// requests in flight, acks=all, through the real connection and log.
// cpu-ns/record is the process's user and system CPU (broker and this
// client) per record: on a shared machine it moves far less than
// records/s.
func BenchmarkProduceMultiPartition(b *testing.B) {
	const parts, size = 3, 1024
	n := (1 << 20) / (size + 16) // records in a ~1 MiB batch
	br := startBroker(b, "", nil)
	c := dial(b, br.Addr())
	c.createTopic("bench", parts)
	batch := benchBatch(b, n, size)
	req := &protocol.ProduceRequest{Acks: protocol.AcksAll, TimeoutMs: 10000, Topics: []protocol.ProduceTopic{{Name: "bench"}}}
	for p := range int32(parts) {
		req.Topics[0].Partitions = append(req.Topics[0].Partitions, protocol.ProducePartition{Partition: p, Records: batch})
	}
	frame := encoded(b, req)
	var resp protocol.ProduceResponse
	var dec protocol.Decoder
	b.SetBytes(int64(parts * len(batch)))
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	pipeline(b, c, frame, 5, func(body []byte) {
		dec.Reset(body)
		if err := resp.Decode(&dec, 0); err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != parts {
			b.Fatalf("produce: %v %+v", err, resp)
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != protocol.NoError {
				b.Fatalf("produce: %+v", p)
			}
		}
	})
	b.StopTimer()
	recs := float64(b.N * parts * n)
	b.ReportMetric(recs/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(processCPU(b)-cpu0)/recs, "cpu-ns/record")
}

// processCPU is the process's user and system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
