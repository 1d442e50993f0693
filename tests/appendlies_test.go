package tests

import (
	"net/http"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/faultproxy"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

// maxManifestBytes is the size limit of a manifest read whole (oci.MaxManifestSize).
const maxManifestBytes = 4 << 20

// TestCreateAppendLyingTag: create --append refuses a tag whose manifest is
// over the size limit (not cut short, merged and pushed back) and one whose
// bytes are not those the registry's Docker-Content-Digest names, both at
// the first read of the tag and at the read just before the tag moves; no
// tag moves.
func TestCreateAppendLyingTag(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	pushImage(t, reg, "test/app", "amd64", amd)
	pushImage(t, reg, "test/app", "arm64", arm)
	x := newImgx(t)
	x.MustRun("create", "--progress", "quiet", "-t", reg.Host+"/test/appended:latest", reg.Host+"/test/app:amd64")
	before := fetchTag(t, reg, "test/appended", "latest")
	if !strings.Contains(before, amd.Manifest.Desc.Digest.String()) {
		t.Fatalf("target not set up:\n%s", before)
	}

	const tagPath = "/v2/test/appended/manifests/latest"
	for _, c := range []struct {
		name string
		// kind: OversizeBody pads the manifest with whitespace (still valid
		// JSON when cut at the limit) and names the padded bytes honestly;
		// CorruptBody serves other bytes under the tag's digest.
		kind faultproxy.FaultKind
		want []string
	}{
		{"oversized", faultproxy.OversizeBody, []string{"test/appended:latest", "over the 4194304 byte limit"}},
		{"mismatching", faultproxy.CorruptBody, []string{"test/appended:latest", "content hashes to sha256:", "digest mismatch"}},
	} {
		for _, skip := range []int{0, 1} {
			when := map[int]string{0: "first read", 1: "read before the write"}[skip]
			t.Run(c.name+" at the "+when, func(t *testing.T) {
				proxy := faultproxy.Start(t, reg.Host, faultproxy.Fault{
					Method: http.MethodGet, PathContains: tagPath, Skip: skip, Kind: c.kind, Size: maxManifestBytes + 1,
				})
				line := x.MustFail(c.want, "create", "--append", "--progress", "quiet",
					"-t", proxy.Host()+"/test/appended:latest", proxy.Host()+"/test/app:arm64")
				if hits := proxy.Hits(c.kind); hits != 1 {
					t.Errorf("%d reads lied to, want 1 (%d reads): %s", hits, proxy.Count(http.MethodGet, tagPath), line)
				}
				if got := fetchTag(t, reg, "test/appended", "latest"); got != before {
					t.Errorf("the tag moved:\n%s", got)
				}
			})
		}
	}
}
