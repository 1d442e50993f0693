package tests

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestOneReadLimit: a config of 5 MiB (over the 4 MiB manifest limit, under
// the 32 MiB limit of other blobs read whole) is read alike by inspect,
// create and export, through the one small-blob read of package oci. Before
// it had one, export took such an image while inspect and create refused it.
func TestOneReadLimit(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	const pad = 5 << 20
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 41, ConfigPad: pad})
	if img.Config.Desc.Size <= 4<<20 {
		t.Fatalf("config is %d bytes: the fixture must pass 4 MiB", img.Config.Desc.Size)
	}
	pushImage(t, reg, "test/bigconfig", "1", img)
	src := reg.Host + "/test/bigconfig:1"
	x := newImgx(t)

	res := x.MustRun("inspect", "--format", `{{len (index .Image.Config.Labels "fixture.pad")}}`, src)
	if res.Stdout != fmt.Sprintf("%d\n", pad) {
		t.Errorf("inspect: %q, want the label's length %d", res.Stdout, pad)
	}

	// create reads the config for the platform of the manifest it wraps.
	res = x.MustRun("create", "--progress", "quiet", "-t", reg.Host+"/test/bigconfig-multi:1", src)
	raw := x.MustRun("inspect", "--raw", reg.Host+"/test/bigconfig-multi:1").Stdout
	var idx ocispec.Index
	if err := json.Unmarshal([]byte(raw), &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != img.Manifest.Desc.Digest ||
		idx.Manifests[0].Platform == nil || idx.Manifests[0].Platform.Architecture != "amd64" {
		t.Errorf("create made %s, want one linux/amd64 child %s", raw, img.Manifest.Desc.Digest)
	}
	if res.Stdout == "" {
		t.Error("create printed no digest")
	}

	out := filepath.Join(t.TempDir(), "big.tar")
	x.MustRun("export", "--progress", "quiet", "-o", out, src)
	want := "blobs/sha256/" + img.Config.Desc.Digest.Encoded()
	for _, e := range readTarFile(t, out) {
		if e.hdr.Name == want {
			if string(e.data) != string(img.Config.Data) {
				t.Fatalf("export: %s differs from the pushed config", want)
			}
			return
		}
	}
	t.Fatalf("export: no %s in the tar", want)
}
