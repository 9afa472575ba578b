package controller

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestZapHclog(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := newZapHclog(zap.New(core)).Named("raft").With("node", 1)
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
	ctx := got[0].ContextMap()
	if ctx["node"] != int64(1) || ctx["term"] != int64(3) {
		t.Errorf("fields %v, want node=1 term=3", ctx)
	}
	if got[2].ContextMap()["extra"] != "odd" {
		t.Errorf("odd argument lost: %v", got[2].ContextMap())
	}
}
