package consumers

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

var layouts = []struct {
	name   string
	layout tarLayout
}{
	{"docker", layoutDocker},
	{"oci", layoutOCI},
	{"both", layoutBoth},
}

func TestDockerLoad(t *testing.T) {
	t.Parallel()
	d := StartDocker(t)
	for _, tc := range layouts {
		t.Run(tc.name, func(t *testing.T) {
			img := newTestImage(t, "localhost:5000/imgx/docker-"+tc.name+":v1", "docker "+tc.name)
			out, err := d.Load(t, writeImageTar(t, tc.layout, img))
			if tc.layout == layoutOCI {
				// docker load before the containerd image store reads
				// manifest.json only: an OCI-only tar is refused.
				if err == nil {
					t.Fatalf("docker load of an OCI-only tar succeeded: %s", out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "Loaded image: "+img.name) {
				t.Errorf("docker load output %q does not name %s", out, img.name)
			}
			ids := d.ImageIDs(t)
			if ids[img.name] != img.configDigest {
				t.Errorf("image ID of %s = %q, want %s (have %v)", img.name, ids[img.name], img.configDigest, slices.Sorted(maps.Keys(ids)))
			}
			raw, err := d.Inspect(t, img.name)
			if err != nil {
				t.Fatal(err)
			}
			var inspected []struct {
				ID       string `json:"Id"`
				RepoTags []string
			}
			if err := json.Unmarshal(raw, &inspected); err != nil || len(inspected) != 1 {
				t.Fatalf("parse docker inspect of %s: %v\n%s", img.name, err, raw)
			}
			if inspected[0].ID != img.configDigest || !slices.Contains(inspected[0].RepoTags, img.name) {
				t.Errorf("docker inspect %s = %+v, want Id %s and the tag", img.name, inspected[0], img.configDigest)
			}
		})
	}
}

// TestDocker29Load loads the hand-made tars into the Docker 29-line engine
// with the containerd image store, which reads index.json when the tar has
// an OCI layout (an OCI-only tar too) and keeps the manifest digest as image
// ID; from manifest.json alone it makes a manifest of its own.
func TestDocker29Load(t *testing.T) {
	t.Parallel()
	d := StartDocker29(t)
	if info, err := d.Run(t, "info", "--format", "{{json .DriverStatus}}"); err != nil || !strings.Contains(info, "io.containerd.snapshotter.v1") {
		t.Fatalf("docker info DriverStatus %q (%v), want the containerd image store", info, err)
	}
	for _, tc := range layouts {
		t.Run(tc.name, func(t *testing.T) {
			img := newTestImage(t, "localhost:5000/imgx/docker29-"+tc.name+":v1", "docker29 "+tc.name)
			out, err := d.Load(t, writeImageTar(t, tc.layout, img))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "Loaded image: "+img.name) {
				t.Errorf("docker load output %q does not name %s", out, img.name)
			}
			id := d.ImageIDs(t)[img.name]
			switch {
			case tc.layout != layoutDocker && id != img.manifestDigest:
				t.Errorf("image ID of %s = %q, want the manifest digest %s", img.name, id, img.manifestDigest)
			case tc.layout == layoutDocker && (id == "" || id == img.manifestDigest || id == img.configDigest):
				t.Errorf("image ID of %s = %q, want the digest of a manifest the engine made", img.name, id)
			}
		})
	}
}

func TestContainerdImport(t *testing.T) {
	t.Parallel()
	c := StartContainerd(t)
	for _, tc := range layouts {
		for _, all := range []bool{false, true} {
			name := tc.name
			if all {
				name += "-all-platforms"
			}
			t.Run(name, func(t *testing.T) {
				img := newTestImage(t, "localhost:5000/imgx/ctr-"+name+":v1", "ctr "+name)
				out, err := c.Import(t, writeImageTar(t, tc.layout, img), all)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out, img.name) {
					t.Errorf("ctr import output %q does not name %s", out, img.name)
				}
				images := c.Images(t)
				got, ok := images[img.name]
				if !ok {
					t.Fatalf("%s not imported (have %v)", img.name, slices.Sorted(maps.Keys(images)))
				}
				// With oci-layout present index.json rules and the manifest
				// is kept as is; from manifest.json alone ctr writes a new one.
				if tc.layout != layoutDocker && got != img.manifestDigest {
					t.Errorf("%s points to %s, want the manifest %s", img.name, got, img.manifestDigest)
				}
			})
		}
	}
}

func TestPodmanLoad(t *testing.T) {
	t.Parallel()
	p := NewPodman(t)
	for _, tc := range layouts {
		t.Run(tc.name, func(t *testing.T) {
			img := newTestImage(t, "localhost:5000/imgx/podman-"+tc.name+":v1", "podman "+tc.name)
			out, err := p.Load(t, writeImageTar(t, tc.layout, img))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "Loaded image: "+img.name) {
				t.Errorf("podman load output %q does not name %s", out, img.name)
			}
			images := p.Images(t)
			if images[img.name] != img.configDigest {
				t.Errorf("image ID of %s = %q, want %s (have %v)", img.name, images[img.name], img.configDigest, slices.Sorted(maps.Keys(images)))
			}
		})
	}
}

func TestSkopeoInspect(t *testing.T) {
	t.Parallel()
	first := newTestImage(t, "localhost:5000/imgx/skopeo:one", "skopeo one")
	second := newTestImage(t, "localhost:5000/imgx/skopeo:two", "skopeo two")
	single := writeImageTar(t, layoutBoth, first)
	double := writeImageTar(t, layoutBoth, first, second)

	tests := []struct {
		name       string
		ref        string
		wantConfig string
		// wantDigest is the manifest digest skopeo reports; docker-archive
		// synthesises a Docker manifest, so only the config is compared.
		wantDigest string
		wantErr    string
	}{
		{name: "docker-archive", ref: "docker-archive:" + single, wantConfig: first.configDigest},
		{name: "oci-archive", ref: "oci-archive:" + single, wantConfig: first.configDigest, wantDigest: first.manifestDigest},
		{name: "docker-archive-index", ref: "docker-archive:" + double + ":@1", wantConfig: second.configDigest},
		{name: "docker-archive-name", ref: "docker-archive:" + double + ":" + second.name, wantConfig: second.configDigest},
		{name: "oci-archive-refname", ref: "oci-archive:" + double + ":two", wantConfig: second.configDigest, wantDigest: second.manifestDigest},
		{name: "docker-archive-ambiguous", ref: "docker-archive:" + double, wantErr: "expected 1 item, got 2"},
		{name: "oci-archive-ambiguous", ref: "oci-archive:" + double, wantErr: "more than one image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := SkopeoInspectRaw(t, tc.ref)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("skopeo inspect %s: err = %v, want %q", tc.ref, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var manifest struct {
				Config struct{ Digest string } `json:"config"`
			}
			if err := json.Unmarshal(raw, &manifest); err != nil {
				t.Fatalf("parse raw manifest: %v\n%s", err, raw)
			}
			if manifest.Config.Digest != tc.wantConfig {
				t.Errorf("config digest = %s, want %s", manifest.Config.Digest, tc.wantConfig)
			}
			if tc.wantDigest == "" {
				return
			}
			got, err := SkopeoDigest(t, tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.wantDigest {
				t.Errorf("digest = %s, want %s", got, tc.wantDigest)
			}
		})
	}
}

// TestInstancesAreIsolated checks that two instances of each consumer share
// no state, so packages can run their tests in parallel.
func TestInstancesAreIsolated(t *testing.T) {
	t.Parallel()
	img := newTestImage(t, "localhost:5000/imgx/isolated:v1", "isolated")
	tarPath := writeImageTar(t, layoutBoth, img)

	c1, c2 := StartContainerd(t), StartContainerd(t)
	if c1.Address == c2.Address {
		t.Fatalf("two containerds share %s", c1.Address)
	}
	if _, err := c1.Import(t, tarPath, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := c1.Images(t)[img.name]; !ok {
		t.Errorf("%s missing from the containerd it was imported into", img.name)
	}
	if images := c2.Images(t); len(images) != 0 {
		t.Errorf("second containerd has images %v", slices.Sorted(maps.Keys(images)))
	}

	d1, d2 := StartDocker(t), StartDocker(t)
	if _, err := d1.Load(t, tarPath); err != nil {
		t.Fatal(err)
	}
	if _, ok := d1.ImageIDs(t)[img.name]; !ok {
		t.Errorf("%s missing from the dockerd it was loaded into", img.name)
	}
	if images := d2.ImageIDs(t); len(images) != 0 {
		t.Errorf("second dockerd has images %v", slices.Sorted(maps.Keys(images)))
	}

	p1, p2 := NewPodman(t), NewPodman(t)
	if _, err := p1.Load(t, tarPath); err != nil {
		t.Fatal(err)
	}
	if _, ok := p1.Images(t)[img.name]; !ok {
		t.Errorf("%s missing from the podman store it was loaded into", img.name)
	}
	if images := p2.Images(t); len(images) != 0 {
		t.Errorf("second podman store has images %v", slices.Sorted(maps.Keys(images)))
	}
}

// recorder captures how a helper ends a test instead of ending it.
type recorder struct {
	testing.TB
	fatal, skip string
}

// stopped is panicked with by recorder to leave the helper like t.FailNow.
type stopped struct{}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	panic(stopped{})
}

func (r *recorder) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	panic(stopped{})
}

// callStopping calls f and swallows the recorder's stop.
func callStopping(f func()) {
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(stopped); !ok {
				panic(v)
			}
		}
	}()
	f()
}

func TestMissingBinary(t *testing.T) {
	for _, required := range []string{"", "1"} {
		t.Run("required="+required, func(t *testing.T) {
			t.Setenv(requireEnv, required)
			r := &recorder{TB: t}
			callStopping(func() { lookBinary(r, "imgx-no-such-consumer", "imgx-pkg") })
			if required != "" && (r.fatal == "" || r.skip != "") {
				t.Errorf("with %s set: fatal=%q skip=%q, want a failure", requireEnv, r.fatal, r.skip)
			}
			if required == "" && (r.skip == "" || r.fatal != "") {
				t.Errorf("without %s: fatal=%q skip=%q, want a skip", requireEnv, r.fatal, r.skip)
			}
			if msg := r.fatal + r.skip; !strings.Contains(msg, "apt-get install imgx-pkg") {
				t.Errorf("message %q does not name the package to install", msg)
			}
		})
	}
}
