package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// apiReferrer is an OCI 1.1 artifact pushed with its subject alone: a
// registry with the referrers API lists it; no fallback tag names it.
type apiReferrer struct {
	blobs []fixture.Blob // config, layer, manifest
}

// newAPIReferrer builds an artifact about subject, its layer made of what.
func newAPIReferrer(t *testing.T, subject ocispec.Descriptor, artifactType, what string) apiReferrer {
	t.Helper()
	empty := fixture.NewBlob(ocispec.MediaTypeEmptyJSON, []byte("{}"))
	layer := fixture.NewBlob(artifactType, []byte(what))
	subj := ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := fixture.NewBlob(ocispec.MediaTypeImageManifest, mustMarshal(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType, Config: empty.Desc, Layers: []ocispec.Descriptor{layer.Desc}, Subject: &subj,
		Annotations: map[string]string{"org.opencontainers.image.description": what},
	}))
	return apiReferrer{blobs: []fixture.Blob{empty, layer, m}}
}

func (r apiReferrer) manifest() fixture.Blob { return r.blobs[2] }

func (r apiReferrer) push(t *testing.T, reg *registrytest.Registry, repo string) {
	t.Helper()
	if err := fixture.Push(t.Context(), reg.AdminHost, repo, "", r.blobs...); err != nil {
		t.Fatal(err)
	}
}

// listedReferrers is what the target says of the referrers of d, sorted by
// digest: the referrers API's answer, else (fallback) its fallback tag's index.
func listedReferrers(t *testing.T, reg *registrytest.Registry, repo string, d digest.Digest, fallback bool) []ocispec.Descriptor {
	t.Helper()
	var idx ocispec.Index
	var dt string
	if fallback {
		dt = fetchTag(t, reg, repo, tagOf(d))
	} else {
		got, err := getURL(t, "http://"+reg.AdminHost+"/v2/"+repo+"/referrers/"+d.String())
		if err != nil {
			t.Fatal(err)
		}
		dt = string(got)
	}
	if dt == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(dt), &idx); err != nil {
		t.Fatalf("referrers of %s in %s: %v", d, repo, err)
	}
	slices.SortFunc(idx.Manifests, func(a, b ocispec.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	return idx.Manifests
}

func getURL(t *testing.T, u string) ([]byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, %v", u, resp.StatusCode, err)
	}
	return out, nil
}

// referrersAPISource is an olareg registry (of the given options) holding team/app:1, an index
// whose root and amd64 child have referrers known to the API alone (an
// SBOM-like artifact, a signature-like one, and a signature of the SBOM),
// and a cosign signature tag of the root.
type referrersAPISource struct {
	reg       *registrytest.Registry
	idx       fixture.Index
	subjects  []digest.Digest // the root and every child
	sig       referrerFixture
	referrers []apiReferrer
}

func newReferrersAPISource(t *testing.T, opts registrytest.Options) referrersAPISource {
	t.Helper()
	s := referrersAPISource{reg: registrytest.Start(t, opts), idx: multiIndex()}
	pushIndex(t, s.reg, "team/app", "1", s.idx)
	s.subjects = []digest.Digest{s.idx.Index.Desc.Digest}
	for _, img := range append(slices.Clone(s.idx.Images), s.idx.Attestations...) {
		s.subjects = append(s.subjects, img.Manifest.Desc.Digest)
	}
	s.sig = newReferrers(t, s.idx.Index.Desc, s.idx.Index.Desc)
	if err := fixture.Push(t.Context(), s.reg.AdminHost, "team/app", s.sig.sigTag, s.sig.sig...); err != nil {
		t.Fatal(err)
	}
	sbom := newAPIReferrer(t, s.idx.Index.Desc, "application/spdx+json", `{"spdxVersion":"SPDX-2.3","name":"root"}`)
	s.add(t, sbom)
	s.add(t, newAPIReferrer(t, s.idx.Images[0].Manifest.Desc, "application/vnd.dev.sigstore.bundle.v0.3+json", `{"signature":"amd64"}`))
	// A signature of the SBOM: a referrer of a referrer.
	s.add(t, newAPIReferrer(t, sbom.manifest().Desc, "application/vnd.dev.sigstore.bundle.v0.3+json", `{"signature":"sbom"}`))
	return s
}

func (s *referrersAPISource) add(t *testing.T, r apiReferrer) {
	t.Helper()
	r.push(t, s.reg, "team/app")
	s.referrers = append(s.referrers, r)
}

// assertCarried checks repo of dst holds the image, the cosign signature
// and every referrer byte for byte, and lists for each subject exactly
// the source's referrers: through the API, or (fallback) the fallback tag.
func (s referrersAPISource) assertCarried(t *testing.T, dst *registrytest.Registry, repo string, fallback bool) {
	t.Helper()
	if got := fetchTag(t, dst, repo, "1"); got != string(s.idx.Index.Data) {
		t.Fatalf("%s:1 holds %q, want the source's index", repo, got)
	}
	if got := fetchTag(t, dst, repo, s.sig.sigTag); got != string(s.sig.sig[2].Data) {
		t.Errorf("%s:%s = %q, want the signature", repo, s.sig.sigTag, got)
	}
	for _, r := range s.referrers {
		if got := fetchTag(t, dst, repo, r.manifest().Desc.Digest.String()); got != string(r.manifest().Data) {
			t.Errorf("%s@%s = %q, want the referrer's bytes", repo, r.manifest().Desc.Digest, got)
		}
		if got, err := fixture.FetchBlob(t.Context(), dst.AdminHost, repo, r.blobs[1].Desc.Digest); err != nil || string(got) != string(r.blobs[1].Data) {
			t.Errorf("%s: referrer layer %s: %q (%v)", repo, r.blobs[1].Desc.Digest, got, err)
		}
	}
	subjects := slices.Clone(s.subjects)
	for _, r := range s.referrers {
		subjects = append(subjects, r.manifest().Desc.Digest)
	}
	for _, d := range subjects {
		want := listedReferrers(t, s.reg, "team/app", d, false)
		got := listedReferrers(t, dst, repo, d, fallback)
		if string(mustMarshal(t, got)) != string(mustMarshal(t, want)) {
			t.Errorf("%s lists as referrers of %s\n%s\nwant the source's\n%s", repo, d, mustMarshal(t, got), mustMarshal(t, want))
		}
		if !fallback {
			if tag := fetchTag(t, dst, repo, tagOf(d)); tag != "" {
				t.Errorf("%s:%s exists: a registry with the referrers API needs no fallback tag", repo, tagOf(d))
			}
		}
	}
}

// copyTwice copies from to to (a location on dst), checks that the
// source's referrers are carried into repo of dst (fallback: as the
// fallback tag), and that a second run of the same copy only reads.
func (s referrersAPISource) copyTwice(t *testing.T, x *imgx, from, to string, dst *registrytest.Registry, repo string, fallback bool) {
	t.Helper()
	x.MustRun("copy", "--progress", "quiet", from, to)
	s.assertCarried(t, dst, repo, fallback)
	dst.ResetRequests()
	x.MustRun("copy", "--progress", "quiet", from, to)
	assertReadOnly(t, dst, "second run")
}

// assertReadOnly checks a run sent dst reads only (and, with token auth,
// asked its token server for tokens).
func assertReadOnly(t *testing.T, dst *registrytest.Registry, what string) {
	t.Helper()
	for _, r := range dst.Requests() {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Path != "/token" {
			t.Errorf("%s sent %s %s", what, r.Method, r.Path)
		}
	}
}

// copyToAPI copies the source's team/app:1 into mirror of dst, a registry
// with the API, and checks everything is carried; that a second run sends
// only reads and the fewest requests (not counting, with auth, those
// answered 401 and those to the token server); that a referrer added to a
// child meanwhile is copied by a third; and a new signature of the SBOM
// (a referrer of a referrer) by a fourth.
func (s referrersAPISource) copyToAPI(t *testing.T, x *imgx, dst *registrytest.Registry) {
	t.Helper()
	from, to := s.reg.Host+"/team/app:1", dst.Host+"/mirror"
	x.MustRun("copy", "--progress", "quiet", from, to)
	s.assertCarried(t, dst, "mirror/team/app", false)

	dst.ResetRequests()
	s.reg.ResetRequests()
	res := x.MustRun("copy", "--progress", "quiet", from, to)
	if !strings.HasSuffix(res.Stdout, "  skipped\n") {
		t.Errorf("second run:\n%s", res.Stdout)
	}
	assertReadOnly(t, dst, "second run")
	// The tag and the root's signature tag; then the API's list for each
	// subject with referrers: the root, amd64, and the SBOM (signed).
	if n := servedRequests(dst); n != 2+3 {
		t.Errorf("second run: %d requests served by the target, want 5:\n%s", n, requestSummary(dst))
	}
	// The repository's tag list (a cosign tag or fallback tag it lacks is
	// not read), the root, the root's signature tag, and the API for each
	// subject: the root and its 6 manifests; the signature and the two
	// referrers found on them; the signature of the SBOM.
	if n, want := servedRequests(s.reg), 3+7+3+1; n != want {
		t.Errorf("second run: %d requests served by the source, want %d:\n%s", n, want, requestSummary(s.reg))
	}
	if !slices.ContainsFunc(s.reg.Requests(), func(r registrytest.Request) bool { return strings.HasSuffix(r.Path, "/tags/list") }) {
		t.Errorf("second run: the source's tags were not listed:\n%s", requestSummary(s.reg))
	}

	late := newAPIReferrer(t, s.idx.Images[1].Manifest.Desc, "application/vnd.example.attestation+json", `{"late":"arm64"}`)
	late.push(t, s.reg, "team/app")
	res = x.MustRun("copy", "--progress", "quiet", from, to)
	if !strings.HasSuffix(res.Stdout, "  copied\n") {
		t.Errorf("run after a child's new referrer:\n%s", res.Stdout)
	}
	withLate := s
	withLate.referrers = append(slices.Clone(s.referrers), late)
	withLate.assertCarried(t, dst, "mirror/team/app", false)

	// A second signature of the SBOM, a referrer of a referrer the target
	// holds already, is found by the next run, which copies it.
	resign := newAPIReferrer(t, s.referrers[0].manifest().Desc, "application/vnd.dev.sigstore.bundle.v0.3+json", `{"signature":"sbom, again"}`)
	resign.push(t, s.reg, "team/app")
	res = x.MustRun("copy", "--progress", "quiet", from, to)
	if !strings.HasSuffix(res.Stdout, "  copied\n") {
		t.Errorf("run after a new signature of the SBOM:\n%s", res.Stdout)
	}
	withLate.referrers = append(withLate.referrers, resign)
	withLate.assertCarried(t, dst, "mirror/team/app", false)
}

// servedRequests counts the requests reg logged, except those answered 401
// and those to its token server: the registry calls a run made.
func servedRequests(reg *registrytest.Registry) int {
	n := 0
	for _, r := range reg.Requests() {
		if r.Status != http.StatusUnauthorized && r.Path != "/token" {
			n++
		}
	}
	return n
}

// TestCopyReferrersAPI (issue 24): referrers that a source registry knows
// through the OCI 1.1 referrers API alone (no fallback tag), of an index
// and of one of its children, with a cosign signature tag beside them,
// travel with copy into a registry with the API (pushed with their
// subjects: no fallback tag; also with token auth on source and target),
// into one without (fallback tags), through a bundle and through an OCI
// layout; every digest kept. A second run sends
// only reads, and a referrer added to a child meanwhile is copied.
func TestCopyReferrersAPI(t *testing.T) {
	t.Parallel()
	src := newReferrersAPISource(t, registrytest.Options{Referrers: true})
	from := src.reg.Host + "/team/app:1"

	t.Run("to a registry with the API", func(t *testing.T) {
		src.copyToAPI(t, newImgx(t), registrytest.Start(t, registrytest.Options{Referrers: true}))
	})

	t.Run("with token auth to a registry with the API and token auth", copyReferrersAPIWithTokenAuth)

	t.Run("to a registry without the API", func(t *testing.T) {
		x := newImgx(t)
		dst := registrytest.Start(t, registrytest.Options{})
		src.copyTwice(t, x, from, dst.Host+"/mirror", dst, "mirror/team/app", true)
	})

	t.Run("through a layout", func(t *testing.T) {
		x := newImgx(t)
		dir := filepath.Join(t.TempDir(), "layout")
		x.MustRun("copy", "--progress", "quiet", from, "oci-layout://"+dir)
		for _, api := range []bool{true, false} {
			to := registrytest.Start(t, registrytest.Options{Referrers: api})
			src.copyTwice(t, x, "oci-layout://"+dir, to.Host+"/mirror", to, "mirror/team/app", !api)
		}
	})

	t.Run("through a layout by tag", func(t *testing.T) {
		x := newImgx(t)
		dir := filepath.Join(t.TempDir(), "layout")
		x.MustRun("copy", "--progress", "quiet", from, "oci-layout://"+dir+":1")
		for _, api := range []bool{true, false} {
			to := registrytest.Start(t, registrytest.Options{Referrers: api})
			src.copyTwice(t, x, "oci-layout://"+dir+":1", to.Host+"/back/app:1", to, "back/app", !api)
		}
	})

	t.Run("through a bundle", func(t *testing.T) {
		x := newImgx(t)
		bundle := filepath.Join(t.TempDir(), "bundle.tar")
		x.MustRun("copy", "--progress", "quiet", from, "archive://"+bundle)
		for _, api := range []bool{true, false} {
			to := registrytest.Start(t, registrytest.Options{Referrers: api})
			src.copyTwice(t, x, "archive://"+bundle, to.Host+"/mirror", to, "mirror/team/app", !api)
			// One image out of the bundle by its name takes its referrers along.
			x.MustRun("copy", "--progress", "quiet", "archive://"+bundle+":"+from, to.Host+"/one/app:1")
			src.assertCarried(t, to, "one/app", !api)
		}
	})

	t.Run("through a bundle by name", func(t *testing.T) {
		x := newImgx(t)
		bundle := filepath.Join(t.TempDir(), "one.tar")
		entry := "archive://" + bundle + ":mirror.example/one/app:1"
		x.MustRun("copy", "--progress", "quiet", from, entry)
		for _, api := range []bool{true, false} {
			to := registrytest.Start(t, registrytest.Options{Referrers: api})
			x.MustRun("copy", "--progress", "quiet", entry, to.Host+"/back/app:1")
			src.assertCarried(t, to, "back/app", !api)
		}
	})
}

// copyReferrersAPIWithTokenAuth is copyToAPI from a source with token auth
// to a target with token auth, credentials for both in DOCKER_CONFIG; each
// token server must have issued tokens.
func copyReferrersAPIWithTokenAuth(t *testing.T) {
	src := newReferrersAPISource(t, registrytest.Options{Referrers: true, Auth: registrytest.AuthToken})
	dst := registrytest.Start(t, registrytest.Options{Referrers: true, Auth: registrytest.AuthToken})
	x := newImgx(t)
	writeDockerConfig(t, x.DockerConfig, fmt.Sprintf(`{"auths":{%q:{"auth":%q},%q:{"auth":%q}}}`,
		src.reg.Host, src.reg.DockerConfigAuth(), dst.Host, dst.DockerConfigAuth()))
	src.copyToAPI(t, x, dst)
	if len(src.reg.IssuedTokens()) == 0 || len(dst.IssuedTokens()) == 0 {
		t.Errorf("tokens issued: %d by the source, %d by the target; want some by each", len(src.reg.IssuedTokens()), len(dst.IssuedTokens()))
	}
}

// TestCreateReferrersAPI: create copies referrers its source registry knows
// through the referrers API alone (of the index and of a child) into a new
// repository of another registry with the API (with basic auth: every
// request it serves carries the credentials) and of its own (mounted), as
// referrers listed by their subjects, with no fallback tag, and into a
// registry without the API as fallback tags.
func TestCreateReferrersAPI(t *testing.T) {
	t.Parallel()
	src := newReferrersAPISource(t, registrytest.Options{Referrers: true})
	x := newImgx(t)
	other := registrytest.Start(t, registrytest.Options{Referrers: true, Auth: registrytest.AuthBasic})
	writeDockerConfig(t, x.DockerConfig, fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, other.Host, other.DockerConfigAuth()))
	plain := registrytest.Start(t, registrytest.Options{})
	for _, c := range []struct {
		reg      *registrytest.Registry
		fallback bool
	}{{other, false}, {src.reg, false}, {plain, true}} {
		x.MustRun("create", "--progress", "quiet", "-t", c.reg.Host+"/new/app:1", src.reg.Host+"/team/app:1")
		src.assertCarried(t, c.reg, "new/app", c.fallback)
	}
	for _, r := range other.Requests() {
		if r.Status != http.StatusUnauthorized && !r.Authorization {
			t.Errorf("%s %s answered %d without credentials", r.Method, r.Path, r.Status)
		}
	}
}
