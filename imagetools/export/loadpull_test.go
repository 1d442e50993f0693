package export

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools/daemon"
	"github.com/moby/moby/client"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pullingEngine is an engine client that also pulls (its methods are
// never called here).
type pullingEngine struct{ daemon.LoadClient }

func (pullingEngine) ImagePull(context.Context, string, client.ImagePullOptions) (client.ImagePullResponse, error) {
	return nil, io.EOF
}

func (pullingEngine) ImageTag(context.Context, client.ImageTagOptions) (client.ImageTagResult, error) {
	return client.ImageTagResult{}, io.EOF
}

func (pullingEngine) ImageRemove(context.Context, string, client.ImageRemoveOptions) (client.ImageRemoveResult, error) {
	return client.ImageRemoveResult{}, io.EOF
}

func (pullingEngine) ImageList(context.Context, client.ImageListOptions) (client.ImageListResult, error) {
	return client.ImageListResult{}, io.EOF
}

func (pullingEngine) ImageInspect(context.Context, string, ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	return client.ImageInspectResult{}, io.EOF
}

// TestWhyNotPull: the engine's pull is the way only where one pull gives
// what the tar would hold, into an engine client that pulls.
func TestWhyNotPull(t *testing.T) {
	amd64 := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	id := digest.FromString("config")
	child := &ocispec.Descriptor{Digest: digest.FromString("child"), Platform: &amd64}
	reg := image{Name: "127.0.0.1:5000/app:1", PullRepository: "127.0.0.1:5000/app", Desc: ocispec.Descriptor{Digest: digest.FromString("index")}}
	classic, containerd := daemon.Info{Platform: amd64}, daemon.Info{Platform: amd64, MultiPlatform: true}
	plan := func(img image, ei engineImage, info daemon.Info) loadImage {
		name, err := parseImageName(img.Name)
		if err != nil {
			t.Fatal(err)
		}
		li := loadImage{img: img, label: img.Name, ei: ei, names: engineNames(img, name, info)}
		li.pull, li.why = pullOf(li, info)
		return li
	}
	good := plan(reg, engineImage{id: id, child: child, pullable: true}, classic)
	if good.why != "" || good.pull.Platform == nil || good.pull.Platform.Architecture != "amd64" || good.pull.Root != reg.Desc.Digest.String() {
		t.Fatalf("pull = %+v (%s), want the index by digest with the child's platform", good.pull, good.why)
	}
	foreign := plan(reg, engineImage{id: id, platform: &arm64, pullable: true}, classic)
	if foreign.why != "" || foreign.pull.Platform == nil || foreign.pull.Platform.Architecture != "arm64" {
		t.Fatalf("pull = %+v (%s), want the single image with its own platform", foreign.pull, foreign.why)
	}
	layout := reg
	layout.PullRepository, layout.From = "", "oci-layout://app:1"
	byDigest := reg
	byDigest.Name = "127.0.0.1:5000/app@" + reg.Desc.Digest.String()
	pinned := plan(byDigest, engineImage{id: id, child: child, pullable: true}, containerd)
	if pinned.why != "" || !slices.Equal(pinned.pull.Expected.Names, []string{byDigest.Name}) {
		t.Fatalf("pull = %+v (%s), want the image named by its digest alone in the containerd store", pinned.pull, pinned.why)
	}
	for _, tc := range []struct {
		name string
		li   loadImage
		why  string
	}{
		{name: "not a registry", li: plan(layout, engineImage{id: id, child: child, pullable: true}, classic), why: "oci-layout://app:1 is not in a registry"},
		{name: "by digest, classic store", li: plan(byDigest, engineImage{id: id, child: child, pullable: true}, classic), why: "has no tag to name it by: the classic image store leaves"},
		{name: "more than one image", li: plan(reg, engineImage{id: id, child: child}, classic), why: "holds more than the one image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(tc.li.why, tc.why) {
				t.Errorf("why = %q, want %q", tc.li.why, tc.why)
			}
		})
	}
	engine := pullingEngine{}
	want1 := []ocispec.Platform{amd64}
	for _, tc := range []struct {
		name   string
		engine daemon.LoadClient
		want   []ocispec.Platform
		opts   EngineOptions
		multi  bool
		why    string
	}{
		{name: "pullable", engine: engine, want: want1},
		{name: "forced stream", engine: engine, want: want1, opts: EngineOptions{Via: ViaStream}, why: "--load-via stream"},
		{name: "all platforms", engine: engine, want: want1, opts: EngineOptions{AllPlatforms: true}, why: "a pull gives one platform"},
		{name: "two platforms", engine: engine, want: []ocispec.Platform{amd64, amd64}, why: "a pull gives one platform"},
		{name: "foreign layers", engine: engine, want: want1, opts: EngineOptions{IncludeForeign: true}, why: "--include-foreign"},
		{name: "no attestations, containerd store", engine: engine, want: want1, opts: EngineOptions{SkipAttestations: true}, multi: true, why: "the engine's pull keeps the attestations"},
		{name: "no attestations, classic store", engine: engine, want: want1, opts: EngineOptions{SkipAttestations: true}},
		{name: "client without pull", engine: &enginetestEngine{}, want: want1, why: "the engine's client does not pull"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := whyNotPull(tc.engine, daemon.Info{Platform: amd64, MultiPlatform: tc.multi}, tc.want, tc.opts)
			if (tc.why == "") != (got == "") || !strings.Contains(got, tc.why) {
				t.Errorf("whyNotPull = %q, want %q", got, tc.why)
			}
		})
	}
}

// TestPullSet: images that share a root, a manifest, an image ID or a
// name go one way; a group with an image that cannot be pulled streams.
func TestPullSet(t *testing.T) {
	li := func(i int, root, id, name, why string) loadImage {
		l := loadImage{index: i, label: fmt.Sprint("image ", i), why: why,
			img: image{Desc: ocispec.Descriptor{Digest: digest.FromString(root)}}, ei: engineImage{id: digest.FromString(id)}}
		if name != "" {
			l.names = []string{name}
		}
		return l
	}
	images := []loadImage{
		li(0, "a", "a", "r/a:1", ""),
		li(1, "b", "b", "r/b:1", "layout"),
		li(2, "c", "c", "r/b:1", ""), // b's name
		li(3, "d", "b", "", ""),      // b's image ID
		li(4, "e", "e", "r/e:1", ""),
		li(5, "a", "a", "r/a:2", ""), // a's root
	}
	pulled, streamed := pullSet(images)
	var gotPulled, gotStreamed []int
	for _, p := range pulled {
		gotPulled = append(gotPulled, p.index)
	}
	for _, s := range streamed {
		gotStreamed = append(gotStreamed, s.index)
		if s.why == "" {
			t.Errorf("image %d streams without a reason", s.index)
		}
	}
	if !slices.Equal(gotPulled, []int{0, 4, 5}) || !slices.Equal(gotStreamed, []int{1, 2, 3}) {
		t.Errorf("pulled %v, streamed %v; want [0 4 5], [1 2 3]", gotPulled, gotStreamed)
	}
	if !strings.Contains(streamed[1].why, "image 2 goes with image 1") || !strings.HasSuffix(streamed[1].why, ": layout") {
		t.Errorf("why = %q", streamed[1].why)
	}
}
