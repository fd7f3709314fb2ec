package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// raftLogger returns an hclog.Logger (what hashicorp/raft logs through)
// that forwards Info and above to logger with component=raft (Info
// as Debug).
//
// A standalone node always starts with an election after a heartbeat
// timeout, which Raft reports as a warning; standalone, it is logged at
// Debug.
func raftLogger(logger *slog.Logger, standalone bool) hclog.Logger {
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.Info,
		Output: io.Discard,
	})
	il.RegisterSink(&slogSink{log: logger.With("component", "raft"), standalone: standalone})
	return il
}

// slogSink is an hclog.SinkAdapter writing to slog.
type slogSink struct {
	log        *slog.Logger
	standalone bool
}

// Accept implements hclog.SinkAdapter.
func (s *slogSink) Accept(name string, level hclog.Level, msg string, args ...interface{}) {
	var l slog.Level
	switch {
	case level == hclog.NoLevel || level < hclog.Info:
		return
	case level == hclog.Info:
		l = slog.LevelDebug // elections and state changes; the daemon logs leader changes itself
	case level == hclog.Warn:
		l = slog.LevelWarn
	default:
		l = slog.LevelError
	}
	if s.standalone && strings.HasPrefix(msg, "heartbeat timeout reached") {
		l = slog.LevelDebug
	}
	ctx := context.Background()
	if !s.log.Enabled(ctx, l) {
		return
	}
	attrs := make([]any, 0, len(args)+2)
	attrs = append(attrs, "logger", name)
	for _, a := range args {
		if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				a = fmt.Sprintf(format, f[1:]...)
			}
		}
		attrs = append(attrs, a)
	}
	s.log.Log(ctx, l, msg, attrs...)
}
