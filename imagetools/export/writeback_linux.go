package export

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing n bytes of f from off to
// the disk, without waiting: the fsync before the rename then finds most
// of the tar already written. It is advice: an error (a file system without
// sync_file_range) changes nothing, the fsync still makes the file durable.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
