package controller

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapHclog routes hashicorp/raft's hclog output (and serf's and
// memberlist's standard-logger lines) to zap, so their lines go to the same
// place as the broker's, with the broker's fields. hclog trace maps to zap
// debug; the level is zap's. Values print as hclog prints them (see
// hclogField), nested under the library's name ("raft": {"term": 2}), so
// its keys ("leader", "node": descriptions, not broker ids) never clash
// with the broker's own fields. The lines carry no caller and no stack
// trace: both would
// point into this adapter and the library's goroutines, never at a cause.
//
// A peer that is down or a connection that closes makes the libraries log
// errors routinely, every heartbeat or probe (routineFailures): those go
// to warn, and repeats of one within routineEvery are counted instead of
// logged; the next line of the kind that is logged carries the count as
// "suppressed". Every other error stays an error.
type zapHclog struct {
	z       *zap.Logger
	ns      string // the namespace of the library's fields
	name    string
	implied []interface{} // key/value pairs, even in length (With)
	repeats *repeats      // shared by every logger derived from one newZapHclog
}

// newZapHclog logs to z, with the library's fields under ns.
func newZapHclog(z *zap.Logger, ns string) hclog.Logger {
	never := zap.LevelEnablerFunc(func(zapcore.Level) bool { return false })
	return &zapHclog{z: z.WithOptions(zap.WithCaller(false), zap.AddStacktrace(never)), ns: ns,
		repeats: &repeats{now: time.Now, last: map[string]*repeat{}}}
}

func (l *zapHclog) fields(args []interface{}, suppressed int) []zap.Field {
	if len(l.implied)+len(args) == 0 && suppressed == 0 {
		return nil
	}
	fs := make([]zap.Field, 0, (len(l.implied)+len(args))/2+3)
	if suppressed > 0 {
		fs = append(fs, zap.Int("suppressed", suppressed))
	}
	if len(l.implied)+len(args) == 0 {
		return fs
	}
	fs = append(fs, zap.Namespace(l.ns))
	fs = appendHclogFields(fs, l.implied)
	return appendHclogFields(fs, args)
}

// routineFailure is a message the libraries log at error level for a peer
// that is down or unreachable, or a connection that closed under them:
// the normal weather of a cluster with a broker stopped, not a fault of
// this broker. netOnly: only when the line's "error" is a network error
// (the same message also reports a corrupt stream, which stays an error).
type routineFailure struct {
	prefix  string
	netOnly bool
	// textNet: only when the line's own text names a network failure (a
	// standard-logger line carries its error in the text; the same
	// message also reports a gossip key that cannot decrypt, which stays
	// an error).
	textNet bool
}

// routineFailures lists them: Raft's (hclog messages) and memberlist's
// (standard-logger lines, "[ERR]" prefix stripped).
var routineFailures = []routineFailure{
	{prefix: "failed to appendEntries to"},
	{prefix: "failed to pipeline appendEntries"},
	{prefix: "failed to start pipeline replication to"},
	{prefix: "failed to heartbeat to"},
	{prefix: "failed to make requestVote RPC"},
	{prefix: "failed to send snapshot to"},
	{prefix: "peer has newer term, stopping replication"},
	{prefix: "failed to decode incoming command", netOnly: true},
	{prefix: "failed to flush response", netOnly: true},
	{prefix: "memberlist: Failed fallback TCP ping"},
	{prefix: "memberlist: Failed to send "}, // ping, indirect ping, gossip, ack, nack
	{prefix: "memberlist: Failed to forward ack"},
	{prefix: "memberlist: Push/Pull with "},
	{prefix: "memberlist: Failed to push local state"},
	{prefix: "memberlist: Failed to read remote state"},
	{prefix: "memberlist: failed to receive", textNet: true},
}

// netTexts are what a standard-logger line says of a closed, reset or
// timed-out connection.
var netTexts = []string{"i/o timeout", "EOF", "connection reset", "broken pipe", "use of closed network connection"}

func netText(msg string) bool {
	for _, t := range netTexts {
		if strings.Contains(msg, t) {
			return true
		}
	}
	return false
}

// routineEvery is how often one kind of routine failure is logged while
// it repeats.
const routineEvery = 10 * time.Second

// routine returns the routine failure msg is (its prefix), or "".
func routine(msg string, args []interface{}) string {
	for _, r := range routineFailures {
		if strings.HasPrefix(msg, r.prefix) && (!r.netOnly || netError(args)) && (!r.textNet || netText(msg)) {
			return r.prefix
		}
	}
	return ""
}

// netError reports whether args carry an "error" that a closed, reset or
// timed-out connection causes, or the transport's own shutdown.
func netError(args []interface{}) bool {
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); !ok || k != "error" {
			continue
		}
		err, ok := args[i+1].(error)
		if !ok {
			return false
		}
		var ne net.Error
		return errors.Is(err, net.ErrClosed) || errors.Is(err, raft.ErrTransportShutdown) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
			errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.As(err, &ne)
	}
	return false
}

// repeats rate-limits routine failures, per kind.
type repeats struct {
	now  func() time.Time
	mu   sync.Mutex
	last map[string]*repeat
}

type repeat struct {
	at         time.Time // when a line of the kind was last logged
	suppressed int       // lines of the kind dropped since
}

// allow reports whether a line of kind may be logged now, and how many
// were dropped before it.
func (r *repeats) allow(kind string) (bool, int) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.last[kind]
	if e == nil {
		r.last[kind] = &repeat{at: now}
		return true, 0
	}
	if now.Sub(e.at) < routineEvery {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.at, e.suppressed = now, 0
	return true, n
}

// appendHclogFields turns hclog's alternating keys and values into zap
// fields. A lone value at the end is hclog's "value without a key": a
// captured stack trace, or anything else under the key "extra".
func appendHclogFields(fs []zap.Field, args []interface{}) []zap.Field {
	n := len(args) &^ 1
	for i := 0; i < n; i += 2 {
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		fs = append(fs, hclogField(key, args[i+1]))
	}
	if n < len(args) {
		fs = append(fs, hclogField("extra", args[n]))
	}
	return fs
}

// hclogField is one value as hclog would print it: hclog.Fmt formatted
// (Raft logs its configuration as hclog.Fmt("%+v", servers)), Hex, Octal
// and Binary in their notation, a captured stack trace under "stack"
// (as the broker names one), anything else as zap encodes it.
func hclogField(key string, v interface{}) zap.Field {
	switch v := v.(type) {
	case hclog.Format:
		if f, ok := firstString(v); ok {
			return zap.String(key, fmt.Sprintf(f, v[1:]...))
		}
		return zap.String(key, fmt.Sprint(v...))
	case hclog.Hex:
		return zap.String(key, "0x"+strconv.FormatUint(uint64(v), 16))
	case hclog.Octal:
		return zap.String(key, "0"+strconv.FormatUint(uint64(v), 8))
	case hclog.Binary:
		return zap.String(key, "0b"+strconv.FormatUint(uint64(v), 2))
	case hclog.Quote:
		return zap.String(key, string(v))
	case hclog.CapturedStacktrace:
		return zap.String("stack", string(v))
	}
	return zap.Any(key, v)
}

func firstString(v []interface{}) (string, bool) {
	if len(v) == 0 {
		return "", false
	}
	s, ok := v[0].(string)
	return s, ok
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
	suppressed := 0
	if level == hclog.Error {
		if kind := routine(msg, args); kind != "" {
			ok, n := l.repeats.allow(kind)
			if !ok {
				return
			}
			level, suppressed = hclog.Warn, n
		}
	}
	if ce := l.z.Check(zapLevel(level), msg); ce != nil {
		ce.Write(l.fields(args, suppressed)...)
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
	if len(args)%2 == 1 {
		// Keep the pairs aligned for the call's arguments that follow.
		n := len(c.implied) - 1
		c.implied = append(c.implied[:n], "extra", c.implied[n])
	}
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
