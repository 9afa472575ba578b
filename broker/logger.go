package broker

import (
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Log formats for NewLogger.
const (
	LogFormatAuto    = "auto"    // console on a terminal, JSON otherwise
	LogFormatConsole = "console" // human-readable lines
	LogFormatJSON    = "json"    // one JSON object per line
)

// NewLogger returns a zap logger writing to stderr in the given format
// ("auto", "console" or "json"; "" means auto) at the given level
// ("debug", "info", "warn", "error"; "" means info). cmd/sluice builds the
// broker's logger with it.
//
// Log fields name one concept each, everywhere: `broker` is the broker
// whose log it is (New adds it to the logger once); another broker a line
// is about is named by its role: `leader`, `replica`, or `peer` (a broker
// being registered, fenced or added to Raft by the controller leader).
// `broker_epoch` is a broker's registration epoch (R10), `leader_epoch` a
// partition's; `topic`, `partition`, `offset`, `high_watermark` as named.
// Raft's own fields are nested under `raft` (and serf's under `serf`).
func NewLogger(format, level string) (*zap.Logger, error) {
	lvl := zapcore.InfoLevel
	if level != "" {
		if err := lvl.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("log level %q: %w", level, err)
		}
	}
	if format == "" || format == LogFormatAuto {
		format = LogFormatJSON
		if isTerminal(os.Stderr) {
			format = LogFormatConsole
		}
	}
	var enc zapcore.Encoder
	switch format {
	case LogFormatConsole:
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	case LogFormatJSON:
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	default:
		return nil, fmt.Errorf("log format %q: want auto, console or json", format)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(os.Stderr), lvl)
	return zap.New(core, zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel)), nil
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
