package tests

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BenchmarkExportGzip compares `docker imgx export --compression gzip` of
// an image of plain layers (IMGX_BENCH_EXPORT_MIB, default 256 MiB) that
// compress like a mix of text and binaries (a 2:1 ratio) with
// single-threaded `gzip -1` of the plain export of the same image: both
// report the plain tar's bytes per second, so the ratio of their MB/s is
// the speed-up (the goal: 1.5x on 2 cores).
func BenchmarkExportGzip(b *testing.B) {
	ref := benchCompressibleImage(b)
	x := newImgx(b)
	plain := benchOutput(b, "plain.tar")
	x.MustRun("export", "--progress", "quiet", "-o", plain, ref)
	fi, err := os.Stat(plain)
	if err != nil {
		b.Fatal(err)
	}
	gzip1, err := exec.LookPath("gzip")
	if err != nil {
		b.Skip("gzip is not installed")
	}
	out := benchOutput(b, "out.tar.gz")
	b.Run("gzip-1", func(b *testing.B) {
		b.SetBytes(fi.Size())
		for range b.N {
			cmd := exec.Command("sh", "-c", `"$0" -1 -c "$1" > "$2"`, gzip1, plain, out)
			if msg, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("gzip -1: %v: %s", err, msg)
			}
		}
	})
	b.Run("imgx-export-gzip", func(b *testing.B) {
		b.SetBytes(fi.Size())
		for range b.N {
			x.MustRun("export", "--progress", "quiet", "--compression", "gzip", "-o", out, ref)
		}
	})
}

// benchCompressibleImage pushes an image of plain layers of 64 MiB (the
// last smaller) whose 64 KiB chunks are, in turn, words of a small
// vocabulary (text: compresses well) and random bytes (compressed data),
// 3 to 1, one layer in memory at a time.
func benchCompressibleImage(b *testing.B) string {
	b.Helper()
	mib := 256
	if v := os.Getenv(benchExportMiB); v != "" {
		if _, err := fmt.Sscan(v, &mib); err != nil || mib < 1 {
			b.Fatalf("%s=%q: want a number of MiB", benchExportMiB, v)
		}
	}
	reg := registrytest.Start(b, registrytest.Options{})
	rng := rand.New(rand.NewChaCha8([32]byte{24}))
	words := make([][]byte, 2048)
	for i := range words {
		w := make([]byte, 2+rng.IntN(10))
		for j := range w {
			w[j] = 'a' + byte(rng.IntN(26))
		}
		words[i] = append(w, ' ')
	}
	var layers []ocispec.Descriptor
	for left := int64(mib) << 20; left > 0; {
		data := make([]byte, 0, min(benchLayerSize, left))
		for chunk := 0; len(data) < cap(data); chunk++ {
			end := min(len(data)+64<<10, cap(data))
			if chunk%4 == 3 {
				for len(data)+8 <= end {
					data = binary.LittleEndian.AppendUint64(data, rng.Uint64())
				}
			}
			for len(data) < end {
				w := words[rng.IntN(len(words))]
				data = append(data, w[:min(len(w), end-len(data))]...)
			}
		}
		left -= int64(len(data))
		blob := fixture.NewBlob(ocispec.MediaTypeImageLayer, data)
		if err := benchUpload(reg.AdminHost, "bench/text", blob); err != nil {
			b.Fatal(err)
		}
		layers = append(layers, blob.Desc)
	}
	benchPushManifest(b, reg, "bench/text", layers)
	return reg.Host + "/bench/text:1"
}
