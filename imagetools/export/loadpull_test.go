package export

import (
	"context"
	"io"
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
	id := digest.FromString("config")
	child := &ocispec.Descriptor{Digest: digest.FromString("child"), Platform: &amd64}
	reg := image{Name: "127.0.0.1:5000/app:1", PullRepository: "127.0.0.1:5000/app", Desc: ocispec.Descriptor{Digest: digest.FromString("index")}}
	plan := func(img image, ei engineImage) engineLoad {
		var l engineLoad
		name, err := parseImageName(img.Name)
		if err != nil {
			t.Fatal(err)
		}
		l.addPull(img, name, ei, img.Name)
		return l
	}
	good := plan(reg, engineImage{id: id, child: child, pullable: true})
	if len(good.pulls) != 1 || good.pulls[0].Platform == nil || good.pulls[0].Platform.Architecture != "amd64" || good.pulls[0].Root != reg.Desc.Digest.String() {
		t.Fatalf("pulls = %+v, want the index by digest with the child's platform", good.pulls)
	}
	layout := reg
	layout.PullRepository, layout.From = "", "oci-layout://app:1"
	byDigest := reg
	byDigest.Name = "127.0.0.1:5000/app@" + reg.Desc.Digest.String()
	engine := pullingEngine{}
	want1 := []ocispec.Platform{amd64}
	for _, tc := range []struct {
		name   string
		engine daemon.LoadClient
		plan   engineLoad
		want   []ocispec.Platform
		opts   EngineOptions
		multi  bool
		why    string
	}{
		{name: "pullable", engine: engine, plan: good, want: want1},
		{name: "forced stream", engine: engine, plan: good, want: want1, opts: EngineOptions{Via: ViaStream}, why: "--load-via stream"},
		{name: "all platforms", engine: engine, plan: good, want: want1, opts: EngineOptions{AllPlatforms: true}, why: "a pull gives one platform"},
		{name: "two platforms", engine: engine, plan: good, want: []ocispec.Platform{amd64, amd64}, why: "a pull gives one platform"},
		{name: "foreign layers", engine: engine, plan: good, want: want1, opts: EngineOptions{IncludeForeign: true}, why: "--include-foreign"},
		{name: "no attestations, containerd store", engine: engine, plan: good, want: want1, opts: EngineOptions{SkipAttestations: true}, multi: true, why: "the engine's pull keeps the attestations"},
		{name: "no attestations, classic store", engine: engine, plan: good, want: want1, opts: EngineOptions{SkipAttestations: true}},
		{name: "not a registry", engine: engine, plan: plan(layout, engineImage{id: id, child: child, pullable: true}), want: want1, why: "oci-layout://app:1 is not in a registry"},
		{name: "no tag", engine: engine, plan: plan(byDigest, engineImage{id: id, child: child, pullable: true}), want: want1, why: "has no tag to name it by"},
		{name: "more than one image", engine: engine, plan: plan(reg, engineImage{id: id, child: child}), want: want1, why: "holds more than the one image"},
		{name: "client without pull", engine: &enginetestEngine{}, plan: good, want: want1, why: "the engine's client does not pull"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := whyNotPull(tc.engine, tc.plan, daemon.Info{Platform: amd64, MultiPlatform: tc.multi}, tc.want, tc.opts)
			if (tc.why == "") != (got == "") || !strings.Contains(got, tc.why) {
				t.Errorf("whyNotPull = %q, want %q", got, tc.why)
			}
		})
	}
}
