package sets

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/placetest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestWithReferrersAtOnce checks that the sources are looked at at once
// (the place holds the first back until the last is asked for), and that
// the referrer tags found follow the images, in the order of the sources.
func TestWithReferrersAtOnce(t *testing.T) {
	m := placetest.NewMemory(place.Capabilities{Referrers: true})
	add := func(loc ref.Location, s string) digest.Digest {
		data := []byte(`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageManifest + `","config":{"mediaType":"` +
			ocispec.MediaTypeImageConfig + `","digest":"` + digest.FromString(s).String() + `","size":1},"layers":[]}`)
		d := digest.FromBytes(data)
		m.Add(loc, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(data))}, data)
		return d
	}
	var pairs []Pair
	var sigs []string
	for _, s := range []string{"src.example/a:1", "src.example/b:1", "src.example/c:1"} {
		loc, err := ref.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		sig := strings.Replace(add(loc, s).String(), ":", "-", 1) + ".sig"
		add(loc.WithTag(sig), s+" signature")
		sigs = append(sigs, sig)
		target, err := ref.Parse("archive://out.tar:" + s)
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, Pair{Source: loc, Target: target})
	}
	h := placetest.NewHeld(m, pairs[0].Source, pairs[2].Source)
	// A guard against the wait in Manifest, not a timing: a pass takes no waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _, err := WithReferrers(ctx, place.NewRouter(map[string]place.Backend{"": h, "archive": placetest.NewMemory(place.Capabilities{})}), pairs)
	if err != nil {
		t.Fatalf("WithReferrers: %v", err)
	}
	var got []string
	for _, p := range out {
		got = append(got, p.Source.String())
	}
	want := []string{"src.example/a:1", "src.example/b:1", "src.example/c:1",
		"src.example/a:" + sigs[0], "src.example/b:" + sigs[1], "src.example/c:" + sigs[2]}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("pairs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestBesideImage: a referrer tag goes beside its image's full name, or
// bare beside a bare tag where the place takes bare tags.
func TestBesideImage(t *testing.T) {
	for _, c := range []struct {
		image string
		bare  bool
		want  string
	}{
		{"reg.example:5000/team/app:1", true, "reg.example:5000/team/app:sha256-ab"},
		{"reg.example/team/app:1", false, "reg.example/team/app:sha256-ab"},
		{"1", true, "sha256-ab"},
		{"app", false, "docker.io/library/app:sha256-ab"},
	} {
		at, err := besideImage(ref.Location{Scheme: ref.SchemeLayout, Path: "dir"}.WithTag(c.image), c.bare)
		if err != nil {
			t.Fatalf("besideImage(%q, bare=%v): %v", c.image, c.bare, err)
		}
		if got := at("sha256-ab").Tag; got != c.want {
			t.Errorf("besideImage(%q, bare=%v) names %q, want %q", c.image, c.bare, got, c.want)
		}
	}
	if at, err := besideImage(ref.Location{Scheme: ref.SchemeArchive, Path: "x.tar", Digest: digest.FromString("x")}, false); at != nil || err != nil {
		t.Errorf("besideImage of an image a tar names by digest alone: found=%v, %v; want none and no error", at != nil, err)
	}
	if _, err := besideImage(ref.Location{Scheme: ref.SchemeLayout, Path: "dir"}.WithTag("Bad:Name:1"), false); err == nil {
		t.Error("besideImage of a name that does not parse: no error")
	}
}
