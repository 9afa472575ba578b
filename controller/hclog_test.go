package controller

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestZapHclog(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := newZapHclog(zap.New(core), "raft").Named("raft").With("term", 1)
	l.Trace("trace")
	l.Debug("debug")
	l.Info("elected", "term", 3)
	l.Warn("slow")
	l.Error("failed", "odd")
	l.StandardLogger(nil).Print("[WARN] from std")
	l.Warn("heartbeat timeout reached, starting election", "last-leader-addr", "", "last-leader-id", "")
	l.Warn("heartbeat timeout reached, starting election", "last-leader-addr", "h:1", "last-leader-id", "2")
	if l.IsDebug() || !l.IsInfo() || l.GetLevel() != hclog.Info {
		t.Errorf("levels: debug=%v info=%v get=%v", l.IsDebug(), l.IsInfo(), l.GetLevel())
	}
	want := []struct {
		level zapcore.Level
		msg   string
	}{
		{zapcore.InfoLevel, "elected"},
		{zapcore.WarnLevel, "slow"},
		{zapcore.ErrorLevel, "failed"},
		{zapcore.WarnLevel, "from std"},
		{zapcore.InfoLevel, "heartbeat timeout reached, starting election"}, // no leader yet: a first election
		{zapcore.WarnLevel, "heartbeat timeout reached, starting election"}, // a leader was lost
	}
	got := logs.All()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Level != w.level || got[i].Message != w.msg || got[i].LoggerName != "raft" {
			t.Errorf("entry %d: %v %q %q, want %v %q", i, got[i].Level, got[i].LoggerName, got[i].Message, w.level, w.msg)
		}
	}
	if ctx := raftFields(got[0]); ctx["term"] != int64(3) {
		t.Errorf("fields %v, want term=3 (the call's value over the implied one)", ctx)
	}
	if raftFields(got[2])["extra"] != "odd" {
		t.Errorf("odd argument lost: %v", got[2].ContextMap())
	}
	for _, i := range []int{1, 3} { // a call without fields, a standard logger's line
		if ctx := got[i].ContextMap(); len(ctx) != 1 || len(raftFields(got[i])) != 1 || raftFields(got[i])["term"] != int64(1) {
			t.Errorf("%q: fields %v, want only the implied term=1 under raft", got[i].Message, ctx)
		}
	}
}

// raftFields is the library's fields of e, which the adapter nests under
// "raft" so that they cannot clash with the broker's.
func raftFields(e observer.LoggedEntry) map[string]any {
	m, _ := e.ContextMap()["raft"].(map[string]any)
	return m
}

// Raft's values print as hclog prints them: a hclog.Fmt value formatted
// (Raft logs its configuration as hclog.Fmt("%+v", servers)), hex and
// friends in their notation; a lone trailing value, in a call or in With,
// does not shift the pairs that follow it.
func TestZapHclogValues(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := newZapHclog(zap.New(core), "raft")
	servers := []raft.Server{{Suffrage: raft.Voter, ID: "1", Address: "127.0.0.1:7093"}}
	l.Info("initial configuration", "index", 1, "servers", hclog.Fmt("%+v", servers))
	l.Info("numbers", "hex", hclog.Hex(255), "octal", hclog.Octal(8), "binary", hclog.Binary(5), "quote", hclog.Quote(`a"b`))
	l.With("lone").Info("after a lone implied value", "key", "value")
	l.Info("captured", "key", "value", hclog.CapturedStacktrace("stack"))
	l.Info("bad format", "v", hclog.Format{42})
	want := []map[string]any{
		{"index": int64(1), "servers": fmt.Sprintf("%+v", servers)},
		{"hex": "0xff", "octal": "010", "binary": "0b101", "quote": `a"b`},
		{"extra": "lone", "key": "value"},
		{"key": "value", "stack": "stack"},
		{"v": "42"},
	}
	got := logs.All()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i, w := range want {
		ctx := raftFields(got[i])
		if fmt.Sprint(ctx) != fmt.Sprint(w) {
			t.Errorf("%q: fields %v, want %v", got[i].Message, ctx, w)
		}
	}
}

// Raft's and serf's routine peer failures are logged at warn level; they
// carry no stack trace (it would show Raft's goroutine, never ours) and no
// caller (it would always be this adapter), whatever the logger adds to
// its own lines.
func TestZapHclogNoStackTrace(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	z := zap.New(core, zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel))
	l := newZapHclog(z, "raft")
	l.Error("failed to appendEntries to", "peer", "2", "error", "dial tcp: connection refused")
	l.StandardLogger(nil).Print("[ERR] memberlist: Failed to send gossip to 127.0.0.1:7946")
	z.Error("our own error")
	got := logs.All()
	if len(got) != 3 {
		t.Fatalf("%d entries, want 3", len(got))
	}
	for _, e := range got[:2] {
		if e.Level != zapcore.WarnLevel || e.Stack != "" || e.Caller.Defined {
			t.Errorf("%q: level %v, caller %v, stack %q: want warn level, no caller, no stack", e.Message, e.Level, e.Caller, e.Stack)
		}
	}
	if got[2].Stack == "" || !got[2].Caller.Defined {
		t.Errorf("the logger's own lines lost their stack or caller: %+v", got[2].Entry)
	}
}

// A peer that is down: Raft's and memberlist's failures to reach it are
// warnings, logged once per routineEvery per kind with the count of those
// dropped; genuine errors (a corrupt stream, a failed disk) stay errors
// and are never dropped.
func TestZapHclogRoutineFailures(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := newZapHclog(zap.New(core), "raft").(*zapHclog)
	now := time.Unix(1000, 0)
	l.repeats.now = func() time.Time { return now }
	std := l.StandardLogger(nil)
	closed := &net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}
	for i := 0; i < 5; i++ {
		l.Error("failed to appendEntries to", "peer", "2", "error", errors.New("dial tcp: connection refused"))
		std.Print("[ERR] memberlist: Failed fallback TCP ping: timeout 1s: read tcp 127.0.0.1:7094")
		l.Error("failed to decode incoming command", "error", closed)
		l.Error("failed to decode incoming command", "error", raft.ErrTransportShutdown)
		l.Error("failed to decode incoming command", "error", errors.New("msgpack decode error"))
		l.Error("failed to persist vote", "error", errors.New("disk full"))
		std.Print("[ERR] memberlist: failed to receive: read tcp 127.0.0.1:7094->127.0.0.1:5000: i/o timeout from=127.0.0.1:5000")
		std.Print("[ERR] memberlist: failed to receive: No installed keys could decrypt the message from=127.0.0.1:5000")
		now = now.Add(time.Second)
	}
	now = now.Add(routineEvery)
	l.Named("x").Error("failed to appendEntries to", "peer", "2", "error", "refused")

	type line struct {
		level      zapcore.Level
		msg        string
		suppressed int64
	}
	var got []line
	for _, e := range logs.All() {
		n, _ := e.ContextMap()["suppressed"].(int64)
		got = append(got, line{e.Level, e.Message, n})
	}
	want := []line{ // the first round logs the routine kinds once, as warnings
		{zapcore.WarnLevel, "failed to appendEntries to", 0},
		{zapcore.WarnLevel, "memberlist: Failed fallback TCP ping: timeout 1s: read tcp 127.0.0.1:7094", 0},
		{zapcore.WarnLevel, "failed to decode incoming command", 0},
	}
	undecryptable := line{zapcore.ErrorLevel, "memberlist: failed to receive: No installed keys could decrypt the message from=127.0.0.1:5000", 0}
	for i := 0; i < 5; i++ { // every round logs the genuine errors
		want = append(want, line{zapcore.ErrorLevel, "failed to decode incoming command", 0},
			line{zapcore.ErrorLevel, "failed to persist vote", 0})
		if i == 0 { // a gossip read that timed out: routine, once
			want = append(want, line{zapcore.WarnLevel, "memberlist: failed to receive: read tcp 127.0.0.1:7094->127.0.0.1:5000: i/o timeout from=127.0.0.1:5000", 0})
		}
		want = append(want, undecryptable)
	}
	want = append(want, line{zapcore.WarnLevel, "failed to appendEntries to", 4})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lines:\n got %v\nwant %v", got, want)
	}
}
