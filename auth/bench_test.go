package auth_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/auth"
)

// BenchmarkTLSStream streams 1 MiB messages (a consumer's fetch
// responses) from an auth.Listener connection to a client that reads them
// as the sluice client does (a 64 KiB bufio.Reader, io.ReadFull of each
// message) through auth.Dial's connection, and reports the CPU time of
// the process (both ends: encryption, decryption, copies and the
// loopback's system calls) per MiB: TLS's floor under a consumer.
// With -cpuprofile it shows where that goes (BENCHMARKS.md).
//
//	go test -run '^$' -bench TLSStream -benchtime 1000x -count 6 ./auth
func BenchmarkTLSStream(b *testing.B) {
	server, client := tlsPair(b, auth.ClientAuthNone)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ln := auth.NewListener(raw, server, auth.ListenerOptions{})
	defer ln.Close()
	const size = 1 << 20
	msg := make([]byte, size)
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Minute))
		for range b.N {
			if _, err := c.Write(msg); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	c, err := auth.Dial(context.Background(), &net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), client)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	br := bufio.NewReaderSize(c, 64<<10)
	buf := make([]byte, size)
	b.SetBytes(size)
	b.ResetTimer()
	cpu := cpuTime()
	for range b.N {
		if _, err := io.ReadFull(br, buf); err != nil {
			b.Fatal(err)
		}
	}
	used := cpuTime() - cpu
	b.StopTimer()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/MiB")
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
