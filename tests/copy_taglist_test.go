package tests

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"golang.org/x/sync/errgroup"
)

// tagMany points n more tags of repo (prefix0000, prefix0001, ...) at the
// manifest m, 8 at a time.
func tagMany(t *testing.T, reg *registrytest.Registry, repo, prefix string, n int, m fixture.Blob) {
	t.Helper()
	var eg errgroup.Group
	eg.SetLimit(8)
	for i := range n {
		eg.Go(func() error {
			return fixture.Push(t.Context(), reg.AdminHost, repo, fmt.Sprintf("%s%04d", prefix, i), m)
		})
	}
	if err := eg.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestCopyReferrersBeyondOnePage (issue 24): copy lists a source
// repository's tags in one page of 1000 to learn which referrer tags it
// has. A repository with more tags than that, whose referrer tags are not
// on the first page (names sort before "sha256-"), has them read by name
// instead: the signature and the SBOM are carried, a second run skips,
// and it reads each referrer tag by name.
func TestCopyReferrersBeyondOnePage(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Seed: 251})
	pushImage(t, src, "team/app", "1", img)
	tagMany(t, src, "team/app", "a", 1001, img.Manifest)
	refs := newReferrers(t, img.Manifest.Desc, img.Manifest.Desc)
	refs.push(t, src, "team/app")
	if page, err := fixture.Tags(t.Context(), src.AdminHost, "team/app"); err != nil || !slices.Contains(page, refs.sigTag) {
		t.Fatalf("the source lists %d tags (%v), without %s", len(page), err, refs.sigTag)
	}

	x := newImgx(t)
	x.MustRun("copy", "--progress", "quiet", src.Host+"/team/app:1", dst.Host+"/mirror")
	refs.assertCopied(t, dst, "mirror/team/app")

	src.ResetRequests()
	res := x.MustRun("copy", "--progress", "quiet", src.Host+"/team/app:1", dst.Host+"/mirror")
	if !strings.HasSuffix(res.Stdout, "  skipped\n") {
		t.Errorf("second run:\n%s", res.Stdout)
	}
	got := requestLines(src)
	d := img.Manifest.Desc.Digest.String()
	for _, want := range []string{
		"GET /v2/team/app/tags/list?n=1000",
		"GET /v2/team/app/manifests/" + refs.refTag,
		"GET /v2/team/app/manifests/" + refs.sigTag,
		"GET /v2/team/app/manifests/" + tagOf(img.Manifest.Desc.Digest) + ".att",
		"GET /v2/team/app/manifests/" + tagOf(img.Manifest.Desc.Digest) + ".sbom",
		"GET /v2/team/app/referrers/" + d,
	} {
		if !slices.Contains(got, want) {
			t.Errorf("second run did not ask the source %s:\n%s", want, strings.Join(got, "\n"))
		}
	}
}
