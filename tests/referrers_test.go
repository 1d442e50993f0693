package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// referrerFixture is content about an image: a cosign signature stored by
// cosign's tag scheme and an OCI 1.1 referrer listed in the fallback tag
// index (distribution has no referrers API).
type referrerFixture struct {
	sigTag   string
	sig      []fixture.Blob // config, layer, manifest
	refTag   string
	referrer []fixture.Blob // config, layer, manifest
	refIndex fixture.Blob
}

func tagOf(d digest.Digest) string { return d.Algorithm().String() + "-" + d.Encoded() }

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	dt, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

// newReferrers builds a cosign signature of signed and an SBOM-like
// artifact whose subject is described.
func newReferrers(t *testing.T, signed, described ocispec.Descriptor) referrerFixture {
	t.Helper()
	sigCfg := fixture.NewBlob("application/vnd.oci.image.config.v1+json", []byte(`{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]}}`))
	payload := fixture.NewBlob("application/vnd.dev.cosign.simplesigning.v1+json",
		mustMarshal(t, map[string]any{"critical": map[string]any{"image": map[string]string{"docker-manifest-digest": signed.Digest.String()}}}))
	payload.Desc.Annotations = map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQDfake"}
	sig := fixture.NewBlob(ocispec.MediaTypeImageManifest, mustMarshal(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: sigCfg.Desc, Layers: []ocispec.Descriptor{payload.Desc},
	}))
	empty := fixture.NewBlob(ocispec.MediaTypeEmptyJSON, []byte("{}"))
	sbom := fixture.NewBlob("application/spdx+json", []byte(`{"spdxVersion":"SPDX-2.3","name":"fixture"}`))
	subj := described
	subj.Platform, subj.Annotations = nil, nil
	refManifest := fixture.NewBlob(ocispec.MediaTypeImageManifest, mustMarshal(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: "application/spdx+json", Config: empty.Desc, Layers: []ocispec.Descriptor{sbom.Desc}, Subject: &subj,
	}))
	listed := refManifest.Desc
	listed.ArtifactType = "application/spdx+json"
	refIndex := fixture.NewBlob(ocispec.MediaTypeImageIndex, mustMarshal(t, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{listed},
	}))
	return referrerFixture{
		sigTag: tagOf(signed.Digest) + ".sig", sig: []fixture.Blob{sigCfg, payload, sig},
		refTag: tagOf(described.Digest), referrer: []fixture.Blob{empty, sbom, refManifest}, refIndex: refIndex,
	}
}

func (f referrerFixture) push(t *testing.T, reg *registrytest.Registry, repo string) {
	t.Helper()
	ctx := context.Background()
	if err := fixture.Push(ctx, reg.AdminHost, repo, f.sigTag, f.sig...); err != nil {
		t.Fatal(err)
	}
	if err := fixture.Push(ctx, reg.AdminHost, repo, "", f.referrer...); err != nil {
		t.Fatal(err)
	}
	if err := fixture.Push(ctx, reg.AdminHost, repo, f.refTag, f.refIndex); err != nil {
		t.Fatal(err)
	}
}

// assertCopied checks the target repository holds the signature under its
// tag, byte for byte, the referrer by digest and a fallback index listing it.
func (f referrerFixture) assertCopied(t *testing.T, reg *registrytest.Registry, repo string) {
	t.Helper()
	if got := fetchTag(t, reg, repo, f.sigTag); got != string(f.sig[2].Data) {
		t.Errorf("%s:%s = %q, want the signature manifest", repo, f.sigTag, got)
	}
	ref := f.referrer[2]
	if got := fetchTag(t, reg, repo, ref.Desc.Digest.String()); got != string(ref.Data) {
		t.Errorf("%s@%s = %q, want the referrer manifest", repo, ref.Desc.Digest, got)
	}
	for _, b := range append(f.sig[:2:2], f.referrer[:2]...) {
		if _, err := fixture.FetchBlob(context.Background(), reg.AdminHost, repo, b.Desc.Digest); err != nil {
			t.Errorf("blob %s: %v", b.Desc.Digest, err)
		}
	}
	var idx ocispec.Index
	if err := json.Unmarshal([]byte(fetchTag(t, reg, repo, f.refTag)), &idx); err != nil {
		t.Fatalf("%s:%s: %v", repo, f.refTag, err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != ref.Desc.Digest || idx.Manifests[0].ArtifactType != "application/spdx+json" {
		t.Errorf("%s:%s lists %+v, want the referrer with its artifact type", repo, f.refTag, idx.Manifests)
	}
}

func (f referrerFixture) assertAbsent(t *testing.T, reg *registrytest.Registry, repo string) {
	t.Helper()
	for _, ref := range []string{f.sigTag, f.refTag, f.referrer[2].Desc.Digest.String()} {
		if got := fetchTag(t, reg, repo, ref); got != "" {
			t.Errorf("%s:%s exists, want nothing copied", repo, ref)
		}
	}
}

func TestCreateReferrers(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	reg2 := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	pushImage(t, reg, "test/app", "amd64", amd)
	pushImage(t, reg, "test/app", "arm64", arm)
	refs := newReferrers(t, amd.Manifest.Desc, arm.Manifest.Desc)
	refs.push(t, reg, "test/app")
	want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc, arm.Manifest.Desc}, nil)
	x := newImgx(t)
	srcs := []string{reg.Host + "/test/app:amd64", reg.Host + "/test/app:arm64"}
	create := func(t *testing.T, extra ...string) result {
		t.Helper()
		res := x.MustRun(append(append([]string{"create", "--progress", "plain"}, extra...), srcs...)...)
		if d := mustDigestLine(t, res); d != digest.FromBytes(want) {
			t.Fatalf("digest %s, want %s", d, digest.FromBytes(want))
		}
		return res
	}

	t.Run("same repository asks nothing more", func(t *testing.T) {
		reg.ResetRequests()
		create(t, "-t", reg.Host+"/test/app:multi")
		// As TestCreateTwoImages: the referrers are there already.
		assertRequests(t, reg, 6)
		if n := reg.Count("", "/tags/list") + reg.Count("", "/referrers/"); n != 0 {
			t.Errorf("%d discovery requests, want none", n)
		}
	})
	t.Run("other repository mounts them", func(t *testing.T) {
		reg.ResetRequests()
		create(t, "-t", reg.Host+"/test/other:1")
		refs.assertCopied(t, reg, "test/other")
		if n := reg.Count(http.MethodPatch, "/blobs/") + reg.Count(http.MethodPut, "/blobs/"); n != 0 {
			t.Errorf("%d blob uploads, want mounts only:\n%s", n, requestSummary(reg))
		}
		// 11 as TestCreateTwoImages, then discovery: 1 referrers API probe
		// (404), and for each of 4 subjects (the two images, then the
		// signature and the referrer found) its 3 cosign tags and its
		// fallback tag by name, never a tags list. Signature (its GET
		// counted): 2 mounts, 1 GET of the target's tag (signatures there
		// are kept), 1 tag PUT. Referrer (fallback GET counted): 1
		// manifest GET, 2 mounts, 1 PUT by digest, 1 GET and 1 PUT of the
		// target's fallback tag. 1 GET of the user's tag before it moves.
		assertRequests(t, reg, 11+1+4*4+4+6+1)
		if n := reg.Count("", "/tags/list"); n != 0 {
			t.Errorf("%d tags lists, want none: cosign tags are asked for by name", n)
		}
	})
	t.Run("other registry copies them", func(t *testing.T) {
		reg.ResetRequests()
		res := create(t, "-t", reg2.Host+"/copy/app:1")
		refs.assertCopied(t, reg2, "copy/app")
		for _, line := range []string{
			"copying " + refs.sigTag + " " + refs.sig[2].Desc.Digest.String() + " of " + amd.Manifest.Desc.Digest.String(),
			"copying referrer " + refs.referrer[2].Desc.Digest.String() + " of " + arm.Manifest.Desc.Digest.String(),
			"pushing " + refs.sig[2].Desc.Digest.String() + " to " + reg2.Host + "/copy/app:" + refs.sigTag,
		} {
			if !strings.Contains(res.Stderr, line) {
				t.Errorf("progress does not say %q:\n%s", line, res.Stderr)
			}
		}
		// 6 as TestCreateTwoImages, 1+4*4 discovery (as above), 2 for the
		// signature's blobs, 1+2 for the referrer's manifest and blobs.
		assertRequests(t, reg, 6+1+4*4+2+3)
		if n := reg.Count("", "/tags/list"); n != 0 {
			t.Errorf("%d tags lists, want none", n)
		}
	})
	t.Run("referrers=false copies none", func(t *testing.T) {
		reg.ResetRequests()
		create(t, "--referrers=false", "-t", reg2.Host+"/bare/app:1")
		refs.assertAbsent(t, reg2, "bare/app")
		assertRequests(t, reg, 6)
	})
}

// TestCreateReferrersMerge checks a target's fallback tag index keeps the
// referrers it lists already, and that a second create adds nothing twice.
func TestCreateReferrersMerge(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	pushImage(t, reg, "test/app", "amd64", amd)
	refs := newReferrers(t, amd.Manifest.Desc, amd.Manifest.Desc)
	refs.push(t, reg, "test/app")
	// The target holds the image with another referrer already.
	pushImage(t, reg, "test/dst", "", amd)
	other := newReferrers(t, arm.Manifest.Desc, amd.Manifest.Desc)
	other.referrer[1] = fixture.NewBlob("application/spdx+json", []byte(`{"spdxVersion":"SPDX-2.3","name":"other"}`))
	other = rebuildReferrer(t, other, amd.Manifest.Desc)
	other.push(t, reg, "test/dst")
	x := newImgx(t)
	for range 2 {
		x.MustRun("create", "--progress", "quiet", "-t", reg.Host+"/test/dst:1", reg.Host+"/test/app:amd64")
	}
	var idx ocispec.Index
	if err := json.Unmarshal([]byte(fetchTag(t, reg, "test/dst", refs.refTag)), &idx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range idx.Manifests {
		got = append(got, d.Digest.String())
	}
	wantList := other.referrer[2].Desc.Digest.String() + "," + refs.referrer[2].Desc.Digest.String()
	if strings.Join(got, ",") != wantList {
		t.Errorf("fallback index lists %v, want %s", got, wantList)
	}
}

// rebuildReferrer remakes the referrer manifest and index of f after its
// layer changed.
func rebuildReferrer(t *testing.T, f referrerFixture, described ocispec.Descriptor) referrerFixture {
	t.Helper()
	subj := described
	subj.Platform, subj.Annotations = nil, nil
	f.referrer[2] = fixture.NewBlob(ocispec.MediaTypeImageManifest, mustMarshal(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: "application/spdx+json", Config: f.referrer[0].Desc, Layers: []ocispec.Descriptor{f.referrer[1].Desc}, Subject: &subj,
	}))
	listed := f.referrer[2].Desc
	listed.ArtifactType = "application/spdx+json"
	f.refIndex = fixture.NewBlob(ocispec.MediaTypeImageIndex, mustMarshal(t, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{listed},
	}))
	return f
}

// TestCreateReferrerUnreadable checks that a referrer the source lists but
// cannot serve fails the create before any tag moves.
func TestCreateReferrerUnreadable(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	reg2 := registrytest.Start(t, registrytest.Options{})
	amd, _ := twoImages()
	pushImage(t, reg, "test/app", "amd64", amd)
	refs := newReferrers(t, amd.Manifest.Desc, amd.Manifest.Desc)
	refs.push(t, reg, "test/app")
	// The signature's payload is gone from the source repository.
	req, err := http.NewRequest(http.MethodDelete, "http://"+reg.AdminHost+"/v2/test/app/blobs/"+refs.sig[1].Desc.Digest.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete blob: %s", resp.Status)
	}
	x := newImgx(t)
	x.MustFail([]string{refs.sig[1].Desc.Digest.String()}, "create", "--progress", "quiet", "-t", reg2.Host+"/copy/app:1", reg.Host+"/test/app:amd64")
	for _, tag := range []string{"1", refs.sigTag, refs.refTag} {
		if got := fetchTag(t, reg2, "copy/app", tag); got != "" {
			t.Errorf("copy/app:%s was written by a failed create", tag)
		}
	}
	// Without referrers the same create succeeds.
	x.MustRun("create", "--progress", "quiet", "--referrers=false", "-t", reg2.Host+"/copy/app:1", reg.Host+"/test/app:amd64")
}

// TestCreateReferrersOfReferrers: a cosign signature of the image's SBOM
// referrer and an SBOM-like referrer of the image's signature come along
// too, each by the route it is stored under.
func TestCreateReferrersOfReferrers(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	reg2 := registrytest.Start(t, registrytest.Options{})
	amd, _ := twoImages()
	pushImage(t, reg, "test/app", "amd64", amd)
	refs := newReferrers(t, amd.Manifest.Desc, amd.Manifest.Desc)
	refs.push(t, reg, "test/app")
	// Signs the SBOM referrer; describes the signature.
	deeper := newReferrers(t, refs.referrer[2].Desc, refs.sig[2].Desc)
	deeper.push(t, reg, "test/app")

	x := newImgx(t)
	res := x.MustRun("create", "--progress", "plain", "-t", reg2.Host+"/copy/app:1", reg.Host+"/test/app:amd64")
	mustDigestLine(t, res)
	refs.assertCopied(t, reg2, "copy/app")
	deeper.assertCopied(t, reg2, "copy/app")
	for _, line := range []string{
		"copying " + deeper.sigTag + " " + deeper.sig[2].Desc.Digest.String() + " of " + refs.referrer[2].Desc.Digest.String(),
		"copying referrer " + deeper.referrer[2].Desc.Digest.String() + " of " + refs.sig[2].Desc.Digest.String(),
	} {
		if !strings.Contains(res.Stderr, line) {
			t.Errorf("progress does not say %q:\n%s", line, res.Stderr)
		}
	}

	// Without the flag, nothing of either level.
	x.MustRun("create", "--progress", "quiet", "--referrers=false", "-t", reg2.Host+"/bare/app:1", reg.Host+"/test/app:amd64")
	refs.assertAbsent(t, reg2, "bare/app")
	deeper.assertAbsent(t, reg2, "bare/app")
}
