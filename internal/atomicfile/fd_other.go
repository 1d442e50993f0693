//go:build !unix

package atomicfile

import (
	"context"
	"os"
)

// openDescriptor is openDescriptor of fd_unix.go: here no path names a
// descriptor.
func openDescriptor(string) (*os.File, bool, error) { return nil, false, nil }

// openFIFO is openFIFO of fd_unix.go: here a plain open.
func openFIFO(_ context.Context, path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY, 0)
}
