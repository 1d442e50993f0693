package tests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/consumers"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
)

// TestExportLoadDocker29 loads into a Docker 29-line engine with the
// containerd image store: an image there is its whole index, several
// platforms in one stream, and the index digest is the image ID.
func TestExportLoadDocker29(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	d := consumers.StartDocker29(t)
	x := newImgx(t).With("DOCKER_HOST=" + d.Host)
	index := e.multi.Index.Desc.Digest.String()

	// loaded checks the image ID of name and the platforms the engine holds.
	loaded := func(t *testing.T, d *consumers.Docker, name, id string, plats ...string) {
		t.Helper()
		if got := d.ImageIDs(t)[name]; got != id {
			t.Errorf("image ID of %s = %q, want %s", name, got, id)
		}
		if got := d.ImagePlatforms(t, name); !slices.Equal(got, plats) {
			t.Errorf("platforms of %s = %v, want %v", name, got, plats)
		}
		// RepoDigests: the name's repository at the image's own digest.
		out, err := d.Run(t, "image", "inspect", "--format", "{{json .RepoDigests}}", name)
		want := fmt.Sprintf(`%q`, name[:strings.LastIndex(name, ":")]+"@"+id)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("RepoDigests of %s = %s (%v), want %s", name, out, err, want)
		}
	}
	// One platform goes by the engine's pull, several by the streamed tar.
	for _, tc := range []struct {
		name     string
		args     []string
		plats    []string
		emulated bool
		pulled   bool
	}{
		{name: "default", plats: []string{"linux/amd64"}, pulled: true},
		{name: "all", args: []string{"--platform", "all"}, plats: []string{"linux/amd64", "linux/arm/v7", "linux/arm64/v8"}},
		{name: "two", args: []string{"--platform", "linux/amd64,linux/arm64"}, plats: []string{"linux/amd64", "linux/arm64/v8"}, emulated: true},
		{name: "emulated", args: []string{"--platform", "linux/arm64"}, plats: []string{"linux/arm64/v8"}, emulated: true, pulled: true},
		{name: "default, streamed", args: []string{"--load-via", "stream"}, plats: []string{"linux/amd64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// An engine of its own: the platforms an image holds are the
			// content the engine has, whichever load brought it.
			d := consumers.StartDocker29(t)
			name := "127.0.0.1:5999/multi:" + strings.ReplaceAll(strings.ReplaceAll(tc.name, ",", ""), " ", "-")
			args := append([]string{"export", "--load", "--progress", "plain", "--name", name}, tc.args...)
			res := x.With("DOCKER_HOST=" + d.Host).MustRun(append(args, e.ref("test/multi:v1"))...)
			loaded(t, d, name, index, tc.plats...)
			step := "writing image " + index
			if tc.pulled {
				step = "pulling " + e.ref("test/multi@"+index) + " into the Docker engine"
			}
			if !strings.Contains(res.Stderr, step) {
				t.Errorf("no %q step:\n%s", step, res.Stderr)
			}
			warned := strings.Contains(res.Stderr, "linux/arm64 images run on this linux/amd64 engine only under emulation")
			if warned != tc.emulated {
				t.Errorf("emulation warning %v, want %v:\n%s", warned, tc.emulated, res.Stderr)
			}
		})
	}
	t.Run("single image", func(t *testing.T) {
		x.MustRun("export", "--load", "--progress", "quiet", e.ref("test/app:1"))
		loaded(t, d, e.ref("test/app:1"), e.app.Manifest.Desc.Digest.String(), "linux/amd64")
	})
	t.Run("unnamed image by ID", func(t *testing.T) {
		res := x.MustRun("export", "--load", "--progress", "plain", "--platform", "all", "oci-layout://"+layoutOf(t, e, "test/multi:v1")+"@"+index)
		if !strings.Contains(res.Stderr, "writing image "+index) {
			t.Errorf("no writing image step for the index:\n%s", res.Stderr)
		}
	})
	t.Run("through the docker CLI", func(t *testing.T) {
		name := "127.0.0.1:5999/plugin/multi:all"
		res := x.RunPlugin("export", "--load", "--progress", "plain", "--platform", "all", "--name", name, e.ref("test/multi:v1"))
		if res.ExitCode != 0 {
			t.Fatalf("docker imgx export --load: exit %d\n%s", res.ExitCode, res.Stderr)
		}
		loaded(t, d, name, index, "linux/amd64", "linux/arm/v7", "linux/arm64/v8")
	})
	t.Run("another OS", func(t *testing.T) {
		name := "127.0.0.1:5999/never:windows"
		t.Log(x.MustFail([]string{"load windows/amd64: the engine runs linux/amd64 and holds linux images only"},
			"export", "--load", "--platform", "windows/amd64", "--name", name, e.ref("test/multi:v1")))
		if _, ok := d.ImageIDs(t)[name]; ok {
			t.Errorf("the image was loaded")
		}
	})
}

// layoutOf exports ref's index with every platform into a new OCI layout
// folder and returns its path.
func layoutOf(t *testing.T, e exportImages, repoTag string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	newImgx(t).MustRun("export", "--progress", "quiet", "--platform", "all", "-o", "oci-layout://"+dir, e.ref(repoTag))
	return dir
}

// TestExportSaveParity compares export with what the Docker 29 engine's own
// docker save writes after docker pull of the same reference: byte for byte
// by default (the pulled platform's attestation manifests included, as the
// engine keeps them); with --attestations=false the same tar less exactly
// those attestation blobs.
func TestExportSaveParity(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	d := consumers.StartDocker29(t)
	x := newImgx(t)
	for _, tc := range []struct {
		repoTag      string
		attestations []fixture.Image
	}{
		{repoTag: "test/app:1"},
		{repoTag: "test/multi:v1", attestations: []fixture.Image{e.multi.Attestations[0]}},
	} {
		t.Run(tc.repoTag, func(t *testing.T) {
			ref := e.ref(tc.repoTag)
			if _, err := d.Run(t, "pull", "-q", ref); err != nil {
				t.Fatal(err)
			}
			saved := filepath.Join(t.TempDir(), "saved.tar")
			if _, err := d.Run(t, "save", "-o", saved, ref); err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(saved)
			if err != nil {
				t.Fatal(err)
			}
			parity, _ := export(t, x, ref)
			if got, err := os.ReadFile(parity); err != nil || !bytes.Equal(got, want) {
				t.Errorf("export of %s differs from docker save (%v):\n%s", ref, err, tarDiff(t, got, want))
			}
			less, _ := export(t, x, "--attestations=false", ref)
			got, err := os.ReadFile(less)
			if err != nil {
				t.Fatal(err)
			}
			var extra []string
			for _, img := range tc.attestations {
				for _, b := range append([]fixture.Blob{img.Manifest, img.Config}, img.Layers...) {
					extra = append(extra, blobName(b))
				}
			}
			assertTarExtra(t, want, got, extra)
		})
	}
}

// assertTarExtra checks that the tar got holds every entry of want, byte
// for byte, and besides them exactly the entries named extra.
func assertTarExtra(t *testing.T, got, want []byte, extra []string) {
	t.Helper()
	g, w := readTar(t, bytes.NewReader(got)), readTar(t, bytes.NewReader(want))
	wantNames := map[string][]byte{}
	for _, en := range w {
		wantNames[en.hdr.Name] = en.data
	}
	var more []string
	for _, en := range g {
		data, ok := wantNames[en.hdr.Name]
		switch {
		case !ok:
			more = append(more, en.hdr.Name)
		case !bytes.Equal(data, en.data):
			t.Errorf("%s differs", en.hdr.Name)
		}
		delete(wantNames, en.hdr.Name)
	}
	for name := range wantNames {
		t.Errorf("%s is missing", name)
	}
	slices.Sort(more)
	slices.Sort(extra)
	if !slices.Equal(more, extra) {
		t.Errorf("entries besides those of --attestations=false: %v, want the attestation's %v", more, extra)
	}
}

// tarDiff lists the entries in which two tars differ, for a failure message.
func tarDiff(t *testing.T, got, want []byte) string {
	t.Helper()
	list := func(data []byte) []string {
		var out []string
		for _, en := range readTar(t, bytes.NewReader(data)) {
			h := en.hdr
			line := fmt.Sprintf("%c %04o %d %d %d %s", h.Typeflag, h.Mode, h.Uid, h.Gid, h.Size, h.Name)
			if strings.HasSuffix(h.Name, ".json") {
				line += " " + string(en.data)
			}
			out = append(out, line)
		}
		return out
	}
	return "got:\n" + strings.Join(list(got), "\n") + "\nwant:\n" + strings.Join(list(want), "\n")
}

// TestDaemonPlaceDocker29 reads a multi-platform image from a Docker
// 29-line engine (containerd image store) through docker-daemon://: the
// engine's save holds the whole index, and create pushes that same index
// digest.
func TestDaemonPlaceDocker29(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	d := consumers.StartDocker29(t)
	x := newImgx(t).With("DOCKER_HOST=" + d.Host)
	index := e.multi.Index.Desc.Digest.String()
	name := "127.0.0.1:5999/multi:all"
	x.MustRun("export", "--load", "--progress", "quiet", "--platform", "all", "--name", name, e.ref("test/multi:v1"))
	res := x.MustRun("create", "--progress", "quiet", "-t", e.ref("test/fromengine:1"), "docker-daemon://"+name)
	if got := strings.TrimSpace(res.Stdout); got != index {
		t.Fatalf("create from docker-daemon://%s pushed %s, want the index %s", name, got, index)
	}
	raw := x.MustRun("inspect", "--raw", e.ref("test/fromengine:1"))
	if want := x.MustRun("inspect", "--raw", e.ref("test/multi:v1")); raw.Stdout != want.Stdout {
		t.Errorf("pushed index differs from the source's:\n%s\nwant:\n%s", raw.Stdout, want.Stdout)
	}
}
