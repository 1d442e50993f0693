package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/placetest"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// savingEngine saves the images it holds, by the names the engine knows
// them by, and answers errdefs.ErrNotFound for any other, as the engine's
// API client does.
type savingEngine map[string][]byte

func (e savingEngine) ImageSave(_ context.Context, images []string, _ ...client.ImageSaveOption) (client.ImageSaveResult, error) {
	tar, ok := e[images[0]]
	if !ok {
		return nil, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("No such image: %s", images[0]))
	}
	return io.NopCloser(bytes.NewReader(tar)), nil
}

// TestConformance runs the place seam's suite against the engine place,
// over an engine API that saves what a Docker 29 engine with the
// containerd image store saves (an OCI layout tar): only read from, its
// blobs checked as they are read, no tags listed.
func TestConformance(t *testing.T) {
	placetest.Run(t, func(t *testing.T, img fixture.Image) placetest.Subject {
		bad := placetest.Corrupted()
		saved := placetest.LayoutTar(t, img, "docker.io/library/app:"+placetest.Tag, bad)
		engine := savingEngine{"app:" + placetest.Tag: saved, "app@" + img.Manifest.Desc.Digest.String(): saved}
		e := New(Options{Client: func() (Client, error) { return engine, nil }})
		t.Cleanup(func() { _ = e.Close() })
		loc, err := ref.Parse("docker-daemon://app:" + placetest.Tag)
		if err != nil {
			t.Fatal(err)
		}
		return placetest.Subject{Place: place.NewRouter(map[string]place.Backend{ref.SchemeDaemon: e}), Image: loc, Untagged: true,
			Corrupt: func(*testing.T) ocispec.Descriptor { return bad.Desc }}
	})
}
