//go:build !unix

package atomicfile

import "os"

// openDescriptor is openDescriptor of fd_unix.go: here no path names a
// descriptor.
func openDescriptor(string) (*os.File, bool, error) { return nil, false, nil }
