package registry

import (
	"net/http"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestDescribeManifest(t *testing.T) {
	body := []byte(`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageIndex + `","manifests":[]}`)
	loc, _ := ref.Parse("example.com/app:v1")
	h := http.Header{"Content-Type": {ocispec.MediaTypeImageIndex}}
	desc, err := describeManifest(loc, h, body, "")
	if err != nil || desc.Digest != digest.FromBytes(body) || desc.Size != int64(len(body)) || desc.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("%+v %v", desc, err)
	}
	// The digest checked keeps its algorithm.
	sha512 := digest.SHA512.FromBytes(body)
	if desc, err := describeManifest(loc, h, body, sha512); err != nil || desc.Digest != sha512 {
		t.Fatalf("%+v %v", desc, err)
	}
	// No Content-Type: the type is read from the body.
	desc, err = describeManifest(loc.WithDigest(digest.FromBytes(body)), http.Header{}, body, "")
	if err != nil || desc.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("%+v %v", desc, err)
	}
	h.Set("Content-Type", ocispec.MediaTypeImageManifest)
	if _, err := describeManifest(loc, h, body, ""); err == nil {
		t.Error("a body that contradicts its Content-Type is accepted")
	}
}
