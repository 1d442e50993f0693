package registrytest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"golang.org/x/sync/errgroup"

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
			subject := ocispec.Descriptor{MediaType: img.Manifest.Desc.MediaType, Digest: img.Manifest.Desc.Digest, Size: img.Manifest.Desc.Size}
			empty, sbom, referrer := newReferrer(t, subject)
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

// newReferrer builds an SBOM-like artifact about subject: its config (the
// empty JSON), its layer and its manifest, with an annotation.
func newReferrer(t *testing.T, subject ocispec.Descriptor) (empty, sbom, referrer fixture.Blob) {
	t.Helper()
	empty = fixture.NewBlob(ocispec.MediaTypeEmptyJSON, []byte("{}"))
	sbom = fixture.NewBlob("application/spdx+json", []byte(`{"spdxVersion":"SPDX-2.3"}`))
	dt, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: "application/spdx+json", Config: empty.Desc, Layers: []ocispec.Descriptor{sbom.Desc},
		Subject: &subject, Annotations: map[string]string{"org.example.kind": "sbom"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return empty, sbom, fixture.NewBlob(ocispec.MediaTypeImageManifest, dt)
}

// referrers reads the referrers API's answer about a digest, with the
// registry's credentials when it has auth: 200, an OCI index.
func referrers(t *testing.T, reg *registrytest.Registry, repo, dgst string) ocispec.Index {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, reg.URL()+"/v2/"+repo+"/referrers/"+dgst, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := reg.AuthClient().Do(req)
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

// TestReferrersPutAtOnce puts 16 referrers of one subject at the same time
// (distinct artifacts, each its own layer) and requires the referrers API
// to list all 16: olareg updates a subject's referrers list by reading,
// changing and writing it back, so two puts at once could each write a
// list without the other's referrer.
func TestReferrersPutAtOnce(t *testing.T) {
	t.Parallel()
	const n = 16
	reg := registrytest.Start(t, registrytest.Options{Referrers: true})
	ctx := t.Context()
	img := fixture.NewImage(fixture.ImageOptions{Seed: 32})
	if err := fixture.PushImage(ctx, reg.AdminHost, "test/app", "v1", img); err != nil {
		t.Fatal(err)
	}
	subject := ocispec.Descriptor{MediaType: img.Manifest.Desc.MediaType, Digest: img.Manifest.Desc.Digest, Size: img.Manifest.Desc.Size}
	empty := fixture.NewBlob(ocispec.MediaTypeEmptyJSON, []byte("{}"))
	notes := make([]fixture.Blob, n)
	blobs := []fixture.Blob{empty}
	for i := range notes {
		layer := fixture.NewBlob("application/vnd.example.note", []byte(fmt.Sprintf("note %d", i)))
		blobs = append(blobs, layer)
		dt, err := json.Marshal(ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
			ArtifactType: "application/vnd.example.note", Config: empty.Desc, Layers: []ocispec.Descriptor{layer.Desc}, Subject: &subject,
		})
		if err != nil {
			t.Fatal(err)
		}
		notes[i] = fixture.NewBlob(ocispec.MediaTypeImageManifest, dt)
	}
	// The layers; the subject again last, as Push puts its last blob as a manifest.
	if err := fixture.Push(ctx, reg.AdminHost, "test/app", "", append(blobs, img.Manifest)...); err != nil {
		t.Fatal(err)
	}
	hc := reg.Client()
	// Runs before the registry's Close, which would wait 5 s for a connection
	// the client dialled for a put that then took another.
	t.Cleanup(hc.CloseIdleConnections)
	var g errgroup.Group
	for _, m := range notes {
		g.Go(func() error {
			return putManifest(ctx, hc, reg.URL()+"/v2/test/app/manifests/"+m.Desc.Digest.String(), m)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, d := range referrers(t, reg, "test/app", subject.Digest.String()).Manifests {
		listed[d.Digest.String()] = true
	}
	for i, m := range notes {
		if !listed[m.Desc.Digest.String()] {
			t.Errorf("referrer %d (%s) put with the others is not listed (%d of %d listed)", i, m.Desc.Digest, len(listed), n)
		}
	}
}

// putManifest puts b at u with plain net/http and requires 201.
func putManifest(ctx context.Context, hc *http.Client, u string, b fixture.Blob) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(b.Data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", b.Desc.MediaType)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if err := resp.Body.Close(); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT %s: status %d, want 201", u, resp.StatusCode)
	}
	return nil
}
