package commands

import (
	"fmt"

	"github.com/containerd/log"
	"github.com/docker-imgx/docker-imgx/internal/termtext"
	"github.com/sirupsen/logrus"
)

// setupLogging shows containerd's logs, and a line per registry request, on
// stderr only at debug level: with --debug, or, under docker, the Docker
// CLI's -D or --log-level debug (read back from the level the CLI set; so
// this runs after the CLI's own set-up, which resets the level). Otherwise
// only errors: containerd's warnings (such as a filesystem without fsverity
// under an OCI layout) are not the user's concern, and every failure
// reaches the user as our own one-line error anyway. Every log line passes
// safeFormatter: logs quote URLs and registry answers.
func setupLogging(debug bool) {
	level := log.ErrorLevel
	if debug || log.GetLevel() >= log.DebugLevel {
		level = log.DebugLevel
	}
	_ = log.SetLevel(level.String())
	logger := log.L.Logger
	if _, done := logger.Formatter.(safeFormatter); !done {
		logger.SetFormatter(safeFormatter{next: logger.Formatter})
	}
}

// safeFormatter is the log formatter in front of the one set: the message
// and every field of a line, containerd's included (a request's URL, an
// error quoting a redirect), made safe for a terminal and without secrets
// (termtext.Message).
type safeFormatter struct {
	next logrus.Formatter
}

func (f safeFormatter) Format(e *logrus.Entry) ([]byte, error) {
	c := *e
	c.Message = termtext.Message(e.Message)
	c.Data = make(logrus.Fields, len(e.Data))
	for k, v := range e.Data {
		switch v := v.(type) {
		case string:
			c.Data[k] = termtext.Message(v)
		case error:
			c.Data[k] = termtext.Message(v.Error())
		case fmt.Stringer:
			c.Data[k] = termtext.Message(v.String())
		default:
			c.Data[k] = v
			if s := fmt.Sprint(v); termtext.Message(s) != s {
				c.Data[k] = termtext.Message(s)
			}
		}
	}
	return f.next.Format(&c)
}
