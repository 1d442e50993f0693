package registry

import (
	"errors"

	"golang.org/x/sys/windows"
)

// refused reports a refused connection (Windows gives its own error).
func refused(err error) bool {
	return errors.Is(err, windows.WSAECONNREFUSED) || errors.Is(err, windows.ERROR_CONNECTION_REFUSED)
}
