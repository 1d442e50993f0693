package registrytest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestReferrersAPI checks the registry with the referrers API (olareg), over
// plain HTTP and TLS: a manifest put with a subject is answered with
// OCI-Subject and listed by GET /v2/<repo>/referrers/<digest> with its
// artifact type and annotations; a subject without referrers answers 200
// with an empty index; the request log and the admin host work as they do
// for distribution.
func TestReferrersAPI(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			t.Parallel()
			reg := registrytest.Start(t, registrytest.Options{TLS: useTLS, Referrers: true})
			ctx := t.Context()
			img := fixture.NewImage(fixture.ImageOptions{Seed: 31})
			if err := fixture.PushImage(ctx, reg.AdminHost, "test/app", "v1", img); err != nil {
				t.Fatal(err)
			}
			empty := fixture.NewBlob(ocispec.MediaTypeEmptyJSON, []byte("{}"))
			sbom := fixture.NewBlob("application/spdx+json", []byte(`{"spdxVersion":"SPDX-2.3"}`))
			subject := ocispec.Descriptor{MediaType: img.Manifest.Desc.MediaType, Digest: img.Manifest.Desc.Digest, Size: img.Manifest.Desc.Size}
			dt, err := json.Marshal(ocispec.Manifest{
				Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
				ArtifactType: "application/spdx+json", Config: empty.Desc, Layers: []ocispec.Descriptor{sbom.Desc},
				Subject: &subject, Annotations: map[string]string{"org.example.kind": "sbom"},
			})
			if err != nil {
				t.Fatal(err)
			}
			referrer := fixture.NewBlob(ocispec.MediaTypeImageManifest, dt)
			// Blobs through the admin host, then the manifest, with its subject, through Host.
			if err := fixture.Push(ctx, reg.AdminHost, "test/app", "", empty, sbom, img.Manifest); err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, reg.URL()+"/v2/test/app/manifests/"+referrer.Desc.Digest.String(), bytes.NewReader(referrer.Data))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", referrer.Desc.MediaType)
			resp := do(t, reg.Client(), req)
			if resp.StatusCode != http.StatusCreated || resp.Header.Get("OCI-Subject") != subject.Digest.String() {
				t.Fatalf("put referrer: status %d, OCI-Subject %q; want 201 and %s", resp.StatusCode, resp.Header.Get("OCI-Subject"), subject.Digest)
			}
			if n := reg.Count(http.MethodPut, "/manifests/"); n != 1 {
				t.Errorf("request log holds %d manifest puts, want 1: %+v", n, reg.Requests())
			}

			idx := referrers(t, reg, "test/app", subject.Digest.String())
			want := referrer.Desc
			want.ArtifactType, want.Annotations = "application/spdx+json", map[string]string{"org.example.kind": "sbom"}
			if len(idx.Manifests) != 1 || !sameDescriptor(idx.Manifests[0], want) {
				t.Errorf("referrers of %s: %+v, want %+v", subject.Digest, idx.Manifests, want)
			}
			if idx := referrers(t, reg, "test/app", referrer.Desc.Digest.String()); len(idx.Manifests) != 0 {
				t.Errorf("referrers of the referrer: %+v, want none", idx.Manifests)
			}
			if got, _, err := fixture.Fetch(ctx, reg.AdminHost, "test/app", referrer.Desc.Digest.String()); err != nil || !bytes.Equal(got, referrer.Data) {
				t.Errorf("admin host: referrer %q (%v), want the bytes put", got, err)
			}
		})
	}
}

// referrers reads the referrers API's answer about a digest: 200, an OCI index.
func referrers(t *testing.T, reg *registrytest.Registry, repo, dgst string) ocispec.Index {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, reg.URL()+"/v2/"+repo+"/referrers/"+dgst, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := reg.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var idx ocispec.Index
	if err := json.NewDecoder(resp.Body).Decode(&idx); err != nil {
		t.Fatalf("referrers of %s: %v", dgst, err)
	}
	if resp.StatusCode != http.StatusOK || idx.MediaType != ocispec.MediaTypeImageIndex || resp.Header.Get("Content-Type") != ocispec.MediaTypeImageIndex {
		t.Fatalf("referrers of %s: status %d, %s (%s), want 200 and an OCI index", dgst, resp.StatusCode, idx.MediaType, resp.Header.Get("Content-Type"))
	}
	return idx
}

func sameDescriptor(a, b ocispec.Descriptor) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestReferrersRefusesAuth: olareg takes no auth; asking for it is an error,
// not a registry that lets everyone in.
func TestReferrersRefusesAuth(t *testing.T) {
	r, err := registrytest.StartServer(t.Context(), registrytest.Options{Referrers: true, Auth: registrytest.AuthBasic})
	if err == nil {
		_ = r.Close()
		t.Fatal("started a referrers registry with basic auth, want an error")
	}
}
