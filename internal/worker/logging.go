package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/hibiken/asynq"
)

// NewLogger returns the worker's logger: JSON lines to w at level. It is the
// one logger of the process; packages receive it, none uses a global.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// asynqLogger adapts asynq.Logger (Print-style, unstructured) to slog, so
// asynq's own messages come out as the same JSON lines, tagged
// component=asynq. Safe for concurrent use like the slog.Logger it wraps.
type asynqLogger struct {
	l *slog.Logger
	// exit ends the process after Fatal (os.Exit; replaced in tests).
	exit func(int)
}

// newAsynqLogger returns the adapter over l.
func newAsynqLogger(l *slog.Logger) *asynqLogger {
	return &asynqLogger{l: l.With("component", "asynq"), exit: os.Exit}
}

func (a *asynqLogger) log(level slog.Level, args []any) {
	ctx := context.Background()
	if !a.l.Enabled(ctx, level) {
		return
	}
	a.l.Log(ctx, level, strings.TrimSuffix(fmt.Sprint(args...), "\n"))
}

func (a *asynqLogger) Debug(args ...any) { a.log(slog.LevelDebug, args) }
func (a *asynqLogger) Info(args ...any)  { a.log(slog.LevelInfo, args) }
func (a *asynqLogger) Warn(args ...any)  { a.log(slog.LevelWarn, args) }
func (a *asynqLogger) Error(args ...any) { a.log(slog.LevelError, args) }

// Fatal logs at error level and exits with status 1, as asynq.Logger's
// contract requires.
func (a *asynqLogger) Fatal(args ...any) {
	a.l.Error(strings.TrimSuffix(fmt.Sprint(args...), "\n"), "fatal", true)
	a.exit(1)
}

var _ asynq.Logger = (*asynqLogger)(nil)

// asynqLevel maps a slog level to asynq's, so asynq does not even format
// messages the handler would drop.
func asynqLevel(l slog.Level) asynq.LogLevel {
	switch {
	case l <= slog.LevelDebug:
		return asynq.DebugLevel
	case l <= slog.LevelInfo:
		return asynq.InfoLevel
	case l <= slog.LevelWarn:
		return asynq.WarnLevel
	default:
		return asynq.ErrorLevel
	}
}

// RedisLogger adapts go-redis's internal logger (redis.SetLogger) to l, so
// its connection-pool messages come out as JSON lines at warn level, tagged
// component=redis. They name addresses, never passwords.
func RedisLogger(l *slog.Logger) interface {
	Printf(ctx context.Context, format string, v ...any)
} {
	return redisLogger{l.With("component", "redis")}
}

type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.WarnContext(ctx, strings.TrimSuffix(fmt.Sprintf(format, v...), "\n"))
}
