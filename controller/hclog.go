package controller

import (
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapHclog routes hashicorp/raft's hclog output to zap, so Raft's lines
// carry the same fields and go to the same place as the broker's. hclog
// trace maps to zap debug; the level is zap's.
type zapHclog struct {
	z       *zap.Logger
	name    string
	implied []interface{}
}

func newZapHclog(z *zap.Logger) hclog.Logger {
	return &zapHclog{z: z}
}

func (l *zapHclog) fields(args []interface{}) []zap.Field {
	all := append(append([]interface{}(nil), l.implied...), args...)
	fs := make([]zap.Field, 0, len(all)/2+1)
	for i := 0; i < len(all); i += 2 {
		if i+1 == len(all) {
			fs = append(fs, zap.Any("extra", all[i]))
			break
		}
		fs = append(fs, zap.Any(fmt.Sprint(all[i]), all[i+1]))
	}
	return fs
}

func zapLevel(level hclog.Level) zapcore.Level {
	switch level {
	case hclog.Trace, hclog.Debug:
		return zapcore.DebugLevel
	case hclog.Warn:
		return zapcore.WarnLevel
	case hclog.Error:
		return zapcore.ErrorLevel
	}
	return zapcore.InfoLevel
}

func (l *zapHclog) Log(level hclog.Level, msg string, args ...interface{}) {
	if level == hclog.Off {
		return
	}
	if level == hclog.Warn && msg == "heartbeat timeout reached, starting election" && noLastLeader(args) {
		// Every start of a node that has not heard of a leader yet: the
		// normal way a cluster (or a lone broker) elects its first one.
		level = hclog.Info
	}
	if ce := l.z.Check(zapLevel(level), msg); ce != nil {
		ce.Write(l.fields(args)...)
	}
}

// noLastLeader reports whether args name an empty "last-leader-id".
func noLastLeader(args []interface{}) bool {
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == "last-leader-id" {
			return fmt.Sprint(args[i+1]) == ""
		}
	}
	return false
}

func (l *zapHclog) Trace(msg string, args ...interface{}) { l.Log(hclog.Trace, msg, args...) }
func (l *zapHclog) Debug(msg string, args ...interface{}) { l.Log(hclog.Debug, msg, args...) }
func (l *zapHclog) Info(msg string, args ...interface{})  { l.Log(hclog.Info, msg, args...) }
func (l *zapHclog) Warn(msg string, args ...interface{})  { l.Log(hclog.Warn, msg, args...) }
func (l *zapHclog) Error(msg string, args ...interface{}) { l.Log(hclog.Error, msg, args...) }

func (l *zapHclog) IsTrace() bool { return l.z.Core().Enabled(zapcore.DebugLevel) }
func (l *zapHclog) IsDebug() bool { return l.z.Core().Enabled(zapcore.DebugLevel) }
func (l *zapHclog) IsInfo() bool  { return l.z.Core().Enabled(zapcore.InfoLevel) }
func (l *zapHclog) IsWarn() bool  { return l.z.Core().Enabled(zapcore.WarnLevel) }
func (l *zapHclog) IsError() bool { return l.z.Core().Enabled(zapcore.ErrorLevel) }

func (l *zapHclog) ImpliedArgs() []interface{} { return l.implied }

func (l *zapHclog) With(args ...interface{}) hclog.Logger {
	c := *l
	c.implied = append(append([]interface{}(nil), l.implied...), args...)
	return &c
}

func (l *zapHclog) Name() string { return l.name }

func (l *zapHclog) Named(name string) hclog.Logger {
	if l.name != "" {
		name = l.name + "." + name
	}
	return l.ResetNamed(name)
}

func (l *zapHclog) ResetNamed(name string) hclog.Logger {
	c := *l
	c.name = name
	c.z = l.z.Named(name)
	return &c
}

// SetLevel is a no-op: the zap logger's level decides.
func (l *zapHclog) SetLevel(hclog.Level) {}

func (l *zapHclog) GetLevel() hclog.Level {
	switch {
	case l.IsDebug():
		return hclog.Debug
	case l.IsInfo():
		return hclog.Info
	case l.IsWarn():
		return hclog.Warn
	}
	return hclog.Error
}

func (l *zapHclog) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

func (l *zapHclog) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return stdWriter{l}
}

// stdWriter takes the lines of a standard logger, which carry their level
// as a "[WARN]" style prefix when they carry one.
type stdWriter struct{ l *zapHclog }

func (w stdWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := hclog.Info
	for _, lv := range []struct {
		prefix string
		level  hclog.Level
	}{{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info}, {"[WARN]", hclog.Warn}, {"[ERR]", hclog.Error}, {"[ERROR]", hclog.Error}} {
		if strings.HasPrefix(msg, lv.prefix) {
			level, msg = lv.level, strings.TrimSpace(msg[len(lv.prefix):])
			break
		}
	}
	w.l.Log(level, msg)
	return len(p), nil
}
