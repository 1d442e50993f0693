//go:build unix

package atomicfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// openDescriptor opens a path that names one of the process's own file
// descriptors (/dev/stdout, /dev/fd/N, /proc/self/fd/N) as a copy of that
// descriptor: writes share its offset, as a write to stdout would, whatever
// is behind it (a pipe, a terminal, a file the shell opened with > or >>).
// Opening the path again would start a file at offset 0 and renaming over
// it would leave the descriptor on the old file.
func openDescriptor(path string) (*os.File, bool, error) {
	fd, ok := descriptorOf(path)
	if !ok {
		return nil, false, nil
	}
	dup, err := syscall.Dup(fd)
	if err != nil {
		return nil, true, fmt.Errorf("open %s: %w", path, err)
	}
	syscall.CloseOnExec(dup)
	return os.NewFile(uintptr(dup), path), true, nil
}

// openFIFO opens a FIFO for writing once a reader has it open, polling
// without blocking: a plain open waits in the kernel for a reader, where no
// signal ends it. It fails when ctx ends first.
func openFIFO(ctx context.Context, path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if !errors.Is(err, syscall.ENXIO) { // ENXIO: no reader yet
			return f, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no reader of the FIFO yet: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
