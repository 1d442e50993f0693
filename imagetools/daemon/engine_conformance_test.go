package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools/daemon"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/consumers"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/placetest"
	"github.com/moby/moby/client"
)

// TestConformanceEngine runs the place seam's suite against the engine place
// over a real Docker 29 engine with the containerd image store, started
// privately: the suite's image is loaded with docker load and read back
// through the engine's image-save API, so the digest it was loaded with
// must come back. The engine checks blobs on load and cannot hold wrong
// bytes, so there is no corrupt case (the fake engine's run covers the
// check on reads).
func TestConformanceEngine(t *testing.T) {
	img := placetest.Image()
	d := consumers.StartDocker29(t)
	loadImage(t, d, img, "docker.io/library/app:"+placetest.Tag)
	c, err := client.New(client.WithHost(d.Host))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	newEngine := func(t *testing.T) *daemon.Engine {
		e := daemon.New(daemon.Options{Client: func() (daemon.Client, error) { return c, nil }})
		t.Cleanup(func() { _ = e.Close() })
		return e
	}
	placetest.Run(t, func(t *testing.T, _ fixture.Image) placetest.Subject {
		return placetest.Subject{Place: place.NewRouter(map[string]place.Backend{ref.SchemeDaemon: newEngine(t)}),
			Image: parse(t, "docker-daemon://app:"+placetest.Tag), Untagged: true}
	})
	// The suite reads the digest from the tag's save; a place that starts
	// from the digest asks the engine for it.
	t.Run("by digest alone", func(t *testing.T) {
		want := img.Manifest.Desc.Digest
		for _, s := range []string{"app@" + want.String(), "app:" + placetest.Tag + "@" + want.String()} {
			desc, _, err := newEngine(t).Manifest(context.Background(), parse(t, "docker-daemon://"+s))
			if err != nil || desc.Digest != want {
				t.Errorf("Manifest(%s) = %s, %v; want %s", s, desc.Digest, err, want)
			}
		}
	})
}

// loadImage loads img into the engine under name, from an OCI layout tar as
// docker save writes with the containerd image store.
func loadImage(t *testing.T, d *consumers.Docker, img fixture.Image, name string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(path, placetest.LayoutTar(t, img, name), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := d.Load(t, path); err != nil {
		t.Fatalf("load the suite's image into the Docker 29 engine: %v\n%s", err, out)
	}
}

func parse(t *testing.T, s string) ref.Location {
	t.Helper()
	loc, err := ref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
