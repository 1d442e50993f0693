package atomicfile

import (
	"path/filepath"
	"strconv"
	"strings"
)

// descriptorOf returns the file descriptor a path names: /dev/stdout is 1,
// /dev/stderr 2, /dev/fd/N and /proc/self/fd/N are N.
func descriptorOf(path string) (int, bool) {
	path = filepath.Clean(path)
	switch path {
	case "/dev/stdout":
		return 1, true
	case "/dev/stderr":
		return 2, true
	}
	for _, dir := range []string{"/dev/fd/", "/proc/self/fd/"} {
		if n, ok := strings.CutPrefix(path, dir); ok {
			fd, err := strconv.Atoi(n)
			return fd, err == nil && fd >= 0
		}
	}
	return 0, false
}
