package commands

import (
	"github.com/containerd/log"
)

// setupLogging routes containerd's request logs to stderr at debug level with --debug.
func setupLogging(debug bool) {
	level := log.WarnLevel
	if debug {
		level = log.DebugLevel
	}
	_ = log.SetLevel(level.String())
}
