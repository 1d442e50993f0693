package sets

import (
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools/ref"
)

func TestPairs(t *testing.T) {
	const dgst = "sha256:" + "ab" + "cdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
	tests := []struct {
		name    string
		sources []string
		target  string
		scoped  bool
		want    []string // target of each source
		err     string
	}{
		{name: "one to a tag", sources: []string{"alpine:3.20"}, target: "reg.local/base/alpine:edge", want: []string{"reg.local/base/alpine:edge"}},
		{name: "under a prefix", sources: []string{"alpine:3.20", "ghcr.io/org/app@" + dgst}, target: "reg.local/mirror",
			want: []string{"reg.local/mirror/library/alpine:3.20", "reg.local/mirror/org/app@" + dgst}},
		{name: "scoped", sources: []string{"alpine:3.20", "localhost:5000/app:1"}, target: "reg.local/mirror", scoped: true,
			want: []string{"reg.local/mirror/docker.io/library/alpine:3.20", "reg.local/mirror/localhost_5000/app:1"}},
		{name: "from a tar", sources: []string{"archive://b.tar:ghcr.io/org/app:1"}, target: "reg.local/m", want: []string{"reg.local/m/org/app:1"}},
		{name: "into a tar", sources: []string{"alpine:3.20"}, target: "archive://out.tar", want: []string{"archive://out.tar:docker.io/library/alpine:3.20"}},
		{name: "a tag for two", sources: []string{"alpine:3.20", "alpine:3.19"}, target: "reg.local/a:1", err: "names one image (a tag or digest) for 2 sources"},
		{name: "other digest", sources: []string{"alpine:3.20"}, target: "reg.local/a@" + dgst, err: "must name the source's (none: it is named by tag)"},
		{name: "two to one", sources: []string{"a.io/x/app:1", "b.io/x/app:1"}, target: "reg.local/m", err: "both go to reg.local/m/x/app:1"},
		{name: "into a layout", sources: []string{"alpine:3.20", "ghcr.io/org/app@" + dgst}, target: "oci-layout://dir",
			want: []string{"oci-layout://dir:docker.io/library/alpine:3.20", "oci-layout://dir:ghcr.io/org/app@" + dgst}},
		{name: "layout source under a prefix", sources: []string{"oci-layout://dir:1"}, target: "reg.local/m", err: "has no repository name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var locs []ref.Location
			for _, s := range tc.sources {
				l, err := ref.Parse(s)
				if err != nil {
					t.Fatal(err)
				}
				locs = append(locs, l)
			}
			pairs, err := Pairs(locs, tc.target, tc.scoped)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range pairs {
				got = append(got, p.Target.String())
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("targets %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPairsFromLayout: an image of a layout named by its full name goes
// under a prefix by that name (ref.Parse reads no full name in a layout
// location: Expand makes them from the layout's names).
func TestPairsFromLayout(t *testing.T) {
	dir, err := ref.Parse("oci-layout://dir")
	if err != nil {
		t.Fatal(err)
	}
	pairs, err := Pairs([]ref.Location{dir.WithTag("ghcr.io/org/app:1"), dir.WithTag("docker.io/library/alpine:3.20")}, "reg.local/m", false)
	if err != nil {
		t.Fatal(err)
	}
	if got := pairs[0].Target.String() + " " + pairs[1].Target.String(); got != "reg.local/m/org/app:1 reg.local/m/library/alpine:3.20" {
		t.Errorf("targets %s", got)
	}
}

func TestImageNames(t *testing.T) {
	got := imageNames(map[string]bool{"1": true, "3.20": true, "reg/app:1": true, "docker.io/library/alpine:3.20": true})
	if strings.Join(got, " ") != "docker.io/library/alpine:3.20 reg/app:1" {
		t.Errorf("%v", got)
	}
	if got := imageNames(map[string]bool{"v1": true}); strings.Join(got, " ") != "v1" {
		t.Errorf("only bare tags: %v", got)
	}
}
