package ocilayout

import (
	"context"
	"fmt"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"golang.org/x/sync/errgroup"
)

// TestManyNamesAtOnce tags many images into one layout at once, as copy
// does with a set: by full name (tagged and by digest) and by tag, each
// read back while the others are written. BuildKit's index lock refuses
// overlapping calls, so the place serialises them; every name is there
// afterwards, under its name and its tag.
func TestManyNamesAtOnce(t *testing.T) {
	p := NewLayouts()
	dir := ref.Location{Scheme: ref.SchemeLayout, Path: t.TempDir()}
	ctx := context.Background()
	imgs := make([]fixture.Image, 12)
	names := make([]string, len(imgs))
	for i := range imgs {
		imgs[i] = fixture.NewImage(fixture.ImageOptions{Seed: int64(900 + i)})
		switch i % 3 {
		case 0:
			names[i] = fmt.Sprintf("registry.local:5000/team/app%d:v%d", i, i)
		case 1:
			names[i] = fmt.Sprintf("docker.io/library/app%d@%s", i, imgs[i].Manifest.Desc.Digest)
		default:
			names[i] = fmt.Sprintf("t%d", i)
		}
	}
	var eg errgroup.Group
	for i, img := range imgs {
		eg.Go(func() error {
			to := dir.WithTag(names[i])
			if _, _, err := p.ReadTag(ctx, to); err != nil {
				return err
			}
			return p.Tag(ctx, to, img.Manifest.Desc, img.Manifest.Data)
		})
	}
	if err := eg.Wait(); err != nil {
		t.Fatal(err)
	}
	tags, _, err := p.Tags(ctx, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		desc, _, err := p.Manifest(ctx, dir.WithTag(n))
		if err != nil || desc.Digest != imgs[i].Manifest.Desc.Digest {
			t.Errorf("%s: %s (%v), want %s", n, desc.Digest, err, imgs[i].Manifest.Desc.Digest)
		}
		if !tags[n] {
			t.Errorf("Tags lacks %s: %v", n, tags)
		}
	}
	if want := fmt.Sprintf("v%d", 0); !tags[want] {
		t.Errorf("Tags lacks the tag %s of %s: %v", want, names[0], tags)
	}
	// Tagged again, a name by digest is not listed twice.
	if err := p.Tag(ctx, dir.WithTag(names[1]), imgs[1].Manifest.Desc, imgs[1].Manifest.Data); err != nil {
		t.Fatal(err)
	}
	l, err := openLayout(dir.Path, false)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := l.readIndexJSON()
	if err != nil || len(idx.Manifests) != len(imgs) {
		t.Fatalf("index.json lists %d entries (%v), want %d", len(idx.Manifests), err, len(imgs))
	}
}
