package registry

import (
	"fmt"
	"github.com/docker-imgx/docker-imgx/internal/atomicfile"
	"io"
	"os"
	"syscall"
)

// maxConfigFile bounds a configuration file read whole (hosts.toml, CA
// files, client certificates and keys): such files are a few KiB; a
// system CA bundle is under 1 MiB.
const maxConfigFile = 4 << 20

// readConfigFile reads a configuration file named by the user or a
// hosts.toml, refusing what is not a regular file (/dev/zero as a CA, a
// FIFO as a key: opened without blocking, never read) and a file over
// maxConfigFile, each with a line that names it.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only: nothing to lose
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s, not a regular file: name a file", path, atomicfile.Kind(fi.Mode()))
	}
	dt, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, err
	}
	if len(dt) > maxConfigFile {
		return nil, fmt.Errorf("%s is over %d bytes, more than any configuration file", path, maxConfigFile)
	}
	return dt, nil
}
