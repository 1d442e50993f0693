package commands

import (
	"github.com/containerd/log"
)

// setupLogging shows containerd's logs on stderr only with --debug (at debug
// level). Without it, only its errors: its warnings (such as a filesystem
// without fsverity under an OCI layout) are not the user's concern, and every
// failure reaches the user as our own one-line error anyway.
func setupLogging(debug bool) {
	level := log.ErrorLevel
	if debug {
		level = log.DebugLevel
	}
	_ = log.SetLevel(level.String())
}
