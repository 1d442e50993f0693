package tests

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Generous ceilings for a hostile graph (issue 23): the race binary idles
// near 40 MiB; before the graph walk was shared, create ran out of memory
// in 14 s on the chain below, and export expanded a 225 KB tar to 24 GB.
const (
	graphMaxRSSKiB = 256 << 10
	graphMaxTime   = 10 * time.Second
)

// indexChain is the hostile graph of issue 23: n indexes, each listing the
// next twice, over one small image; 13 KB for n = 30, 2^30 paths as a tree.
// It returns the blobs, the outermost index last.
func indexChain(n int) []fixture.Blob {
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 2301})
	blobs := img.Blobs()
	next := img.Manifest.Desc
	for range n {
		idx := fixture.NewBlob(ocispec.MediaTypeImageIndex, []byte(`{"schemaVersion":2,"mediaType":"`+ocispec.MediaTypeImageIndex+`","manifests":[`+
			descJSON(next)+`,`+descJSON(next)+`]}`))
		blobs = append(blobs, idx)
		next = idx.Desc
	}
	return blobs
}

func descJSON(d ocispec.Descriptor) string {
	return `{"mediaType":"` + d.MediaType + `","digest":"` + d.Digest.String() + `","size":` + strconv.FormatInt(d.Size, 10) + `}`
}

// tarFolder writes the files under dir into the tar file out.
func tarFolder(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		dt, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(dt)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(dt)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestIndexChainRefused drives create, export and inspect over the chain of
// 30 indexes from a registry, an OCI layout and an image tar: each read
// refuses it by its depth, at once and in little memory, and writes
// nothing; inspect, which reads one level, shows the outer index.
func TestIndexChainRefused(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	blobs := indexChain(30)
	root := blobs[len(blobs)-1]
	if err := fixture.Push(context.Background(), reg.AdminHost, "test/chain", "1", blobs...); err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(t.TempDir(), "layout")
	if err := os.Mkdir(layout, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fixture.WriteLayout(layout, map[string]fixture.Blob{"chain": root}, blobs...); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "chain.tar")
	tarFolder(t, layout, tarball)
	out := t.TempDir()
	x := newImgx(t)
	deep := "indexes nested deeper than 4"
	for _, c := range []struct {
		name string
		args []string
	}{
		{"create", []string{"create", "-t", reg.Host + "/test/out:1", reg.Host + "/test/chain:1"}},
		{"create from layout", []string{"create", "-t", "oci-layout://" + filepath.Join(out, "created") + ":1", "oci-layout://" + layout + ":chain"}},
		{"export", []string{"export", "-p", "all", "-o", filepath.Join(out, "r.tar"), reg.Host + "/test/chain:1"}},
		{"export from tar", []string{"export", "-o", filepath.Join(out, "a.tar"), "archive://" + tarball}},
		{"export from layout", []string{"export", "-o", "oci-layout://" + filepath.Join(out, "l"), "oci-layout://" + layout + ":chain"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := x.RunMeasured(c.args...)
			if res.ExitCode != 1 || !strings.Contains(res.Stderr, deep) || !strings.Contains(res.Stderr, "ERROR: ") {
				t.Fatalf("exit %d, want 1 with %q\nstderr:\n%s", res.ExitCode, deep, res.Stderr)
			}
			checkCeilings(t, res)
		})
	}
	for _, src := range []string{reg.Host + "/test/chain:1", "archive://" + tarball, "oci-layout://" + layout + ":chain"} {
		if res := x.MustRun("inspect", "--raw", src); res.Stdout != string(root.Data) {
			t.Errorf("inspect --raw %s: %q, want the outer index", src, res.Stdout)
		}
		checkCeilings(t, mustRunMeasured(t, x, "inspect", "--format", "json", src))
	}
	if ents, err := os.ReadDir(out); err != nil || len(ents) != 0 {
		t.Errorf("left in the output folder: %v %v", ents, err)
	}
	if tags, _ := fixture.Tags(context.Background(), reg.AdminHost, "test/out"); len(tags) != 0 {
		t.Errorf("test/out tagged %v", tags)
	}
}

// mustRunMeasured runs the binary with its memory measured and fails the
// test unless it exits 0.
func mustRunMeasured(t *testing.T, x *imgx, args ...string) result {
	t.Helper()
	res := x.RunMeasured(args...)
	if res.ExitCode != 0 {
		t.Fatalf("docker-imgx %s: exit %d\nstderr:\n%s", strings.Join(args, " "), res.ExitCode, res.Stderr)
	}
	return res
}

// checkCeilings fails a measured run over the ceilings.
func checkCeilings(t *testing.T, res result) {
	t.Helper()
	if res.MaxRSSKiB <= 0 {
		t.Fatal("the run was not measured")
	}
	if res.MaxRSSKiB > graphMaxRSSKiB || res.Elapsed > graphMaxTime {
		t.Errorf("took %v and %d MiB, over the ceilings of %v and %d MiB", res.Elapsed, res.MaxRSSKiB>>10, graphMaxTime, graphMaxRSSKiB>>10)
	}
}

// TestMaxManifests drives --max-manifests: an index of 3 images and 3
// attestations (7 manifests and indexes) is refused below 7 by create,
// export and inspect, with the flag named; at 7 it passes.
func TestMaxManifests(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	pushIndex(t, reg, "test/multi", "v1", multiIndex())
	src := reg.Host + "/test/multi:v1"
	x := newImgx(t)
	want := []string{"more than 6 distinct manifests and indexes to read, the limit (--max-manifests raises it)"}
	out := t.TempDir()
	x.MustFail(want, "create", "--max-manifests", "6", "-t", reg.Host+"/test/copy:1", src)
	x.MustFail(want, "export", "--max-manifests", "6", "-p", "all", "-o", filepath.Join(out, "a.tar"), src)
	x.MustFail(want, "inspect", "--max-manifests", "6", "--format", "json", src)
	x.MustFail([]string{"invalid --max-manifests 0: want 1 or more"}, "inspect", "--max-manifests", "0", src)
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("left in the output folder: %v", ents)
	}
	x.MustRun("create", "--max-manifests", "7", "-t", reg.Host+"/test/copy:1", src)
	x.MustRun("export", "--max-manifests", "7", "-p", "all", "-o", filepath.Join(out, "a.tar"), src)
	x.MustRun("inspect", "--max-manifests", "7", "--format", "json", src)
}
