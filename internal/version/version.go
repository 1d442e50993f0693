// Package version holds the build's version stamp, set by the Makefile with -ldflags.
package version

var (
	// Version is the release version, e.g. v0.1.0, or "dev" for an unstamped build.
	Version = "dev"
	// Revision is the git commit the binary was built from.
	Revision = "unknown"
)

// Package is the Go module path of the project.
const Package = "github.com/docker-imgx/docker-imgx"

// UserAgent is the User-Agent every registry request carries.
func UserAgent() string { return "docker-imgx/" + Version }
