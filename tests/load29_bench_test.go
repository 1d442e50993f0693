package tests

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/consumers"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BenchmarkLoadDocker29 puts the same image (IMGX_BENCH_EXPORT_MIB, default
// 256 MiB, in 64 MiB layers that are real tars) into a Docker 29-line
// engine with the containerd image store three ways: `docker imgx export
// --load` (a registry image: the engine's pull by digest), the same with
// --load-via stream (the image tar into the image-load API) and the
// engine's own `docker pull`, each into a new engine (its start is not
// timed), so that no content is left from a run before. The setup is
// synced to disk (syscall.Sync) before each timed run, so that its page
// cache written back does not land on the first measured case.
func BenchmarkLoadDocker29(b *testing.B) {
	ref, total := benchLoadableImage(b)
	x := newImgx(b)
	syscall.Sync()
	for _, tc := range []struct {
		name string
		run  func(d *consumers.Docker) error
	}{
		{"imgx-export-load", func(d *consumers.Docker) error {
			return benchRun(x.With(d.Env()...), "export", "--load", "--progress", "quiet", ref)
		}},
		{"imgx-export-load-stream", func(d *consumers.Docker) error {
			return benchRun(x.With(d.Env()...), "export", "--load", "--load-via", "stream", "--progress", "quiet", ref)
		}},
		{"docker-pull", func(d *consumers.Docker) error {
			_, err := d.Run(b, "pull", "-q", ref)
			return err
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(total)
			for range b.N {
				b.StopTimer()
				d := consumers.StartDocker29(b)
				// The setup's page cache written back now, not during the
				// first measured case.
				syscall.Sync()
				b.StartTimer()
				if err := tc.run(d); err != nil {
					b.Fatalf("%s: %v", tc.name, err)
				}
				b.StopTimer()
				if _, err := d.Run(b, "image", "inspect", ref); err != nil {
					b.Fatalf("%s: %s not in the engine: %v", tc.name, ref, err)
				}
				b.StartTimer()
			}
		})
	}
}

// benchRun runs the binary and fails with its stderr unless it exits 0.
func benchRun(x *imgx, args ...string) error {
	res := x.Run(args...)
	if res.ExitCode != 0 {
		return fmt.Errorf("exit %d: %s", res.ExitCode, res.Stderr)
	}
	return nil
}

// benchLoadableImage pushes a single-platform image of the local platform
// whose layers are uncompressed tars of one random file each (an engine
// unpacks them), one layer in memory at a time.
func benchLoadableImage(b *testing.B) (string, int64) {
	b.Helper()
	mib := 256
	if v := os.Getenv(benchExportMiB); v != "" {
		if _, err := fmt.Sscan(v, &mib); err != nil || mib < 1 {
			b.Fatalf("%s=%q: want a number of MiB", benchExportMiB, v)
		}
	}
	reg := registrytest.Start(b, registrytest.Options{})
	rng := rand.New(rand.NewChaCha8([32]byte{29}))
	var layers []ocispec.Descriptor
	var total int64
	for i, left := 0, int64(mib)<<20; left > 0; i++ {
		data := make([]byte, min(benchLayerSize, left))
		left -= int64(len(data))
		for j := 0; j+8 <= len(data); j += 8 {
			binary.LittleEndian.PutUint64(data[j:], rng.Uint64())
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("layer%d", i), Mode: 0o644, Size: int64(len(data))}); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			b.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			b.Fatal(err)
		}
		blob := fixture.NewBlob(ocispec.MediaTypeImageLayer, buf.Bytes())
		if err := benchUpload(reg.AdminHost, "bench/loadable", blob); err != nil {
			b.Fatal(err)
		}
		layers, total = append(layers, blob.Desc), total+blob.Desc.Size
	}
	benchPushManifest(b, reg, "bench/loadable", layers)
	return reg.Host + "/bench/loadable:1", total
}
