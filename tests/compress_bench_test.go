package tests

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools/compression"
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

// BenchmarkCreateCompress pushes the image of BenchmarkExportGzip from an
// image tar (its layers plain, as a classic docker save holds them) into a
// new repository of a registry with each --compression, and reports the
// plain bytes per second and the create process's peak RSS (memory flat
// in layer size: the layers are compressed through a spool file).
func BenchmarkCreateCompress(b *testing.B) {
	ref := benchCompressibleImage(b)
	x := newImgx(b)
	tarPath := benchOutput(b, "plain.tar")
	x.MustRun("export", "--progress", "quiet", "-o", tarPath, ref)
	fi, err := os.Stat(tarPath)
	if err != nil {
		b.Fatal(err)
	}
	host := strings.SplitN(ref, "/", 2)[0]
	for _, c := range compression.Formats() {
		b.Run(c, func(b *testing.B) {
			b.SetBytes(fi.Size())
			var peak int64
			run := 0
			for b.Loop() {
				run++
				cmd := exec.Command(imgxBinary, "create", "--progress", "quiet", "--prefer-index=false", "--compression", c,
					"-t", fmt.Sprintf("%s/bench/%s-%d:1", host, c, run), "archive://"+tarPath)
				cmd.Env = append(x.Env, "DOCKER_IMGX_CPUPROFILE="+os.Getenv("DOCKER_IMGX_CPUPROFILE"))
				var stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = io.Discard, &stderr
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				peak = max(peak, watchHWM(cmd.Process.Pid, cmd.Wait, func(err error) {
					b.Fatalf("create: %v\n%s", err, stderr.String())
				}))
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
		})
	}
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
