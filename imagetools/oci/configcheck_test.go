package oci

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestCheckConfig(t *testing.T) {
	d1, d2 := digest.FromString("1"), digest.FromString("2")
	tests := []struct {
		name   string
		cfg    ocispec.Image
		layers int
		want   string
	}{
		{name: "ok", cfg: ocispec.Image{RootFS: ocispec.RootFS{DiffIDs: []digest.Digest{d1, d2}}}, layers: 2},
		{name: "ok with empty history entries", cfg: ocispec.Image{RootFS: ocispec.RootFS{DiffIDs: []digest.Digest{d1}},
			History: []ocispec.History{{EmptyLayer: true}, {}, {EmptyLayer: true}}}, layers: 1},
		{name: "too few diff_ids", cfg: ocispec.Image{RootFS: ocispec.RootFS{DiffIDs: []digest.Digest{d1}}}, layers: 2,
			want: "config lists 1 diff_ids for 2 layers"},
		{name: "history disagrees", cfg: ocispec.Image{RootFS: ocispec.RootFS{DiffIDs: []digest.Digest{d1}}, History: []ocispec.History{{}, {}}}, layers: 1,
			want: "config has 2 non-empty history entries for 1 layers"},
		{name: "bad diff_id", cfg: ocispec.Image{RootFS: ocispec.RootFS{DiffIDs: []digest.Digest{"sha256:zz"}}}, layers: 1,
			want: "invalid diff_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckConfig(&tc.cfg, tc.layers)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
