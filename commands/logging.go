package commands

import (
	"github.com/containerd/log"
)

// setupLogging shows containerd's logs, and a line per registry request, on
// stderr only at debug level: with --debug, or, under docker, the Docker
// CLI's -D or --log-level debug (read back from the level the CLI set; so
// this runs after the CLI's own set-up, which resets the level). Otherwise
// only errors: containerd's warnings (such as a filesystem without fsverity
// under an OCI layout) are not the user's concern, and every failure
// reaches the user as our own one-line error anyway.
func setupLogging(debug bool) {
	level := log.ErrorLevel
	if debug || log.GetLevel() >= log.DebugLevel {
		level = log.DebugLevel
	}
	_ = log.SetLevel(level.String())
}
