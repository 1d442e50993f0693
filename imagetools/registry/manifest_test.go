package registry

import (
	"errors"
	"net/http"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestDescribeManifest(t *testing.T) {
	body := []byte(`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageIndex + `","manifests":[]}`)
	loc, _ := ref.Parse("example.com/app:v1")
	h := http.Header{"Content-Type": {ocispec.MediaTypeImageIndex}, "Docker-Content-Digest": {digest.FromBytes(body).String()}}
	desc, err := describeManifest(loc, h, body)
	if err != nil || desc.Digest != digest.FromBytes(body) || desc.Size != int64(len(body)) || desc.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("%+v %v", desc, err)
	}
	h.Set("Docker-Content-Digest", digest.FromString("other").String())
	if _, err := describeManifest(loc, h, body); !errors.Is(err, imagetools.ErrDigestMismatch) {
		t.Errorf("a lying registry: %v", err)
	}
	// No Content-Type: the type is read from the body.
	desc, err = describeManifest(loc.WithDigest(digest.FromBytes(body)), http.Header{}, body)
	if err != nil || desc.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("%+v %v", desc, err)
	}
}
