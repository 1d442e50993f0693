//go:build !linux

package imagetools

import "os"

// exportPreallocate does nothing where fallocate(2) is missing: the file
// grows as blobs are written.
func exportPreallocate(*os.File, int64, int64) error { return nil }
