package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// hostileRegistry serves fixed manifests by tag (and by the digest of their
// bytes) from repository test/bad, with honest headers for dishonest content.
func hostileRegistry(t *testing.T, manifests map[string]string) string {
	t.Helper()
	byRef := map[string]string{}
	for tag, body := range manifests {
		byRef[tag] = body
		byRef[digest.FromString(body).String()] = body
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		ref, ok := strings.CutPrefix(r.URL.Path, "/v2/test/bad/manifests/")
		body, found := byRef[ref]
		if !ok || !found {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}`, http.StatusNotFound)
			return
		}
		mt := ocispec.MediaTypeImageIndex
		if strings.Contains(body, ocispec.MediaTypeImageManifest) && !strings.HasPrefix(ref, "contradicting") {
			mt = ocispec.MediaTypeImageManifest
		}
		w.Header().Set("Content-Type", mt)
		w.Header().Set("Docker-Content-Digest", digest.FromString(body).String())
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte(body))
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestHostileRegistry(t *testing.T) {
	t.Parallel()
	pad := strings.Repeat(" ", 5<<20)
	layerDigest := func(d string) string {
		return fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":4}]}`, d, d)
	}
	selfIndex := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"%s","size":%d,"platform":{"os":"linux","architecture":"amd64"}}]}`
	// An index listing the digest the registry sends for its own tag: it
	// cannot hash to it, but a registry may claim so.
	self := fmt.Sprintf(selfIndex, digest.FromString("self"), 300)
	host := hostileRegistry(t, map[string]string{
		"big":       `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}` + pad,
		"malformed": `{"schemaVersion":2,"manifests":[`,
		"traversal": layerDigest("sha256:../../../../etc/passwd"),
		"badalg":    layerDigest("md5:d41d8cd98f00b204e9800998ecf8427e"),
		"self":      self,
		// Served as an index: its body says it is a manifest.
		"contradicting": layerDigest(digest.FromString("x").String()),
	})
	x := newImgx(t)
	for _, c := range []struct {
		tag  string
		want []string
	}{
		// containerd's resolver refuses it before a byte is read; create
		// reads at most the limit.
		{"big", []string{"test/bad:big", "byte"}},
		{"contradicting", []string{"media type", "contradicts"}},
		{"malformed", []string{"test/bad"}},
		{"traversal", []string{"sha256:../../../../etc/passwd"}},
		{"badalg", []string{"md5:d41d8cd98f00b204e9800998ecf8427e"}},
		{"self", []string{digest.FromString("self").String()}},
	} {
		t.Run(c.tag, func(t *testing.T) {
			ref := host + "/test/bad:" + c.tag
			dir := t.TempDir()
			for _, args := range [][]string{
				{"inspect", "--format", "json", ref},
				{"export", "--platform", "all", "-o", filepath.Join(dir, "out.tar"), ref},
				{"export", "--platform", "all", "-o", "oci-layout://" + filepath.Join(dir, "layout"), ref},
				{"create", "--progress", "quiet", "-t", "oci-layout://" + filepath.Join(dir, "created"), ref},
			} {
				if c.tag == "self" && args[0] == "inspect" {
					// inspect lists an index's children without following a
					// nested index: nothing to loop on, and it succeeds.
					x.MustRun(args...)
					continue
				}
				line := x.MustFail(nil, args...)
				for _, w := range c.want {
					if !strings.Contains(line, w) {
						t.Errorf("%s: error %q does not name %q", args[0], line, w)
					}
				}
				if bytes.Contains([]byte(line), []byte("root:")) {
					t.Errorf("%s: error shows a file's content: %s", args[0], line)
				}
				noFilesLeft(t, dir)
			}
		})
	}
}

// TestHostileBlobSize: a manifest whose layer descriptor gives a size the
// blob does not have, shorter or longer by a few bytes, its digest right.
// Every command that reads the layer fails, naming it, and leaves no file,
// no layout and no tag behind.
func TestHostileBlobSize(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	reg2 := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Layers: 2, LayerSize: 64 << 10, Seed: 41, Compression: fixture.Uncompressed})
	bad := img.Layers[1].Desc.Digest
	for tag, delta := range map[string]int64{"short": -10, "long": 10} {
		var m ocispec.Manifest
		if err := json.Unmarshal(img.Manifest.Data, &m); err != nil {
			t.Fatal(err)
		}
		m.Layers[1].Size += delta
		data, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		blobs := append(append([]fixture.Blob{img.Config}, img.Layers...), fixture.NewBlob(ocispec.MediaTypeImageManifest, data))
		if err := fixture.Push(context.Background(), reg.AdminHost, "test/size", tag, blobs...); err != nil {
			t.Fatal(err)
		}
	}
	for _, tag := range []string{"short", "long"} {
		t.Run(tag, func(t *testing.T) {
			x := newImgx(t)
			ref := reg.Host + "/test/size:" + tag
			dir := t.TempDir()
			target := reg2.Host + "/copy/size:" + tag
			for _, args := range [][]string{
				{"export", "-o", filepath.Join(dir, "out.tar"), ref},
				{"export", "-o", "oci-layout://" + filepath.Join(dir, "layout"), ref},
				{"create", "--progress", "quiet", "-t", "oci-layout://" + filepath.Join(dir, "created"), ref},
				{"create", "--progress", "quiet", "-t", target, ref},
			} {
				x.MustFail([]string{bad.String(), "the descriptor gives", "size mismatch"}, args...)
				noFilesLeft(t, dir)
			}
			if got := fetchTag(t, reg2, "copy/size", tag); got != "" {
				t.Errorf("the failed copy left %s tagged", target)
			}
		})
	}
}
