package tests

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/consumers"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
)

// TestCopyBundleLoaders: a bundle copy writes, referrers included, is read
// by docker load, ctr import, podman load and skopeo, every image under its name with its
// original image ID (config digest) and, where the loader keeps it, its
// manifest digest; the image docker loaded copies out of the engine.
func TestCopyBundleLoaders(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	app := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 247})
	db := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 248, Docker: true})
	pushImage(t, src, "team/app", "1", app)
	pushImage(t, src, "team/db", "2", db)
	// Its signature and referrer travel too, as entries of the OCI layout
	// only: no loader may stumble on them.
	newReferrers(t, app.Manifest.Desc, app.Manifest.Desc).push(t, src, "team/app")
	appRef, dbRef := src.Host+"/team/app:1", src.Host+"/team/db:2"
	bundle := filepath.Join(t.TempDir(), "bundle.tar")
	newImgx(t).MustRun("copy", "--progress", "quiet", appRef, dbRef, "archive://"+bundle)
	ids := map[string]string{appRef: app.Config.Desc.Digest.String(), dbRef: db.Config.Desc.Digest.String()}

	t.Run("docker load", func(t *testing.T) {
		d := consumers.StartDocker(t)
		out, err := d.Load(t, bundle)
		if err != nil {
			t.Fatalf("docker load: %v", err)
		}
		have := d.ImageIDs(t)
		for name, id := range ids {
			if !strings.Contains(out, "Loaded image: "+name) || have[name] != id {
				t.Errorf("%s: image ID %q, want %s; docker load said %q", name, have[name], id, out)
			}
		}
		// And back out of the engine: docker-daemon:// is a source, named
		// under the prefix by its repository path.
		dst := registrytest.Start(t, registrytest.Options{})
		res := newImgx(t).With("DOCKER_HOST="+d.Host).MustRun("copy", "--progress", "quiet", "docker-daemon://"+appRef, dst.Host+"/engine")
		pushed, err := digest.Parse(strings.Fields(strings.Split(res.Stdout, "\n")[1])[2])
		if err != nil {
			t.Fatalf("stdout:\n%s", res.Stdout)
		}
		assertImageOf(t, dst, "engine/team/app", pushed, app)
		if got := fetchTag(t, dst, "engine/team/app", "1"); digest.FromString(got) != pushed {
			t.Errorf("engine/team/app:1 is not at %s", pushed)
		}
	})
	t.Run("ctr import", func(t *testing.T) {
		c := consumers.StartContainerd(t)
		if _, err := c.Import(t, bundle, true); err != nil {
			t.Fatalf("ctr images import: %v", err)
		}
		have := c.Images(t)
		for name, want := range map[string]string{appRef: app.Manifest.Desc.Digest.String(), dbRef: db.Manifest.Desc.Digest.String()} {
			if have[name] != want {
				t.Errorf("%s -> %q, want the original digest %s (have %v)", name, have[name], want, have)
			}
		}
	})
	t.Run("podman load", func(t *testing.T) {
		p := consumers.NewPodman(t)
		if _, err := p.Load(t, bundle); err != nil {
			t.Fatalf("podman load: %v", err)
		}
		have := p.Images(t)
		for name, id := range ids {
			if have[name] != id {
				t.Errorf("%s: image ID %q, want %s (have %v)", name, have[name], id, have)
			}
		}
	})
	t.Run("skopeo", func(t *testing.T) {
		for name, id := range ids {
			raw, err := consumers.SkopeoInspectRaw(t, "docker-archive:"+bundle+":"+name)
			if err != nil {
				t.Fatal(err)
			}
			var m struct {
				Config struct{ Digest string } `json:"config"`
			}
			if err := json.Unmarshal(raw, &m); err != nil || m.Config.Digest != id {
				t.Errorf("%s: config %q (%v), want %s", name, m.Config.Digest, err, id)
			}
		}
	})
}
