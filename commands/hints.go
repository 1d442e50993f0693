package commands

import (
	"fmt"
	"path/filepath"
)

// plainHTTPHint names the two ways to let a host speak plain HTTP: the
// flag, or a hosts.toml (the one that configures the host, else where one
// would be read first).
func plainHTTPHint(dirs []string, host, hostsFile string) string {
	file := hostsFile
	switch {
	case file == "" && len(dirs) == 0:
		file = fmt.Sprintf("<folder>/%s/hosts.toml of a certs folder listed in %s", host, envCertsDirs)
	case file == "":
		file = filepath.Join(dirs[0], host, "hosts.toml")
	}
	return fmt.Sprintf("to reach it over plain HTTP, mark it with --insecure-registry %s, or write server = \"http://%s\" in %s", host, host, file)
}
