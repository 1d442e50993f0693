package ocilayout

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

func TestExtractRejects(t *testing.T) {
	tests := []struct {
		name string
		hdr  tar.Header
		want string
	}{
		{"parent", tar.Header{Name: "../x", Typeflag: tar.TypeReg}, "not a local path"},
		{"absolute", tar.Header{Name: "/etc/x", Typeflag: tar.TypeReg}, "not a local path"},
		{"symlink", tar.Header{Name: "blobs/x", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, "unsupported type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			if err := tw.WriteHeader(&tc.hdr); err != nil {
				t.Fatal(err)
			}
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			err := extract(context.Background(), &buf, dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("written: %v", left)
			}
		})
	}
}
