package ocilayout

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzLayoutIndex writes a fuzzed index.json into an OCI layout and resolves
// oci-layout://DIR, DIR:TAG or DIR@DIGEST through the layout place, then fetches
// what it resolved: nothing may panic, and no digest from index.json may
// reach a file outside the layout's blobs folder.
func FuzzLayoutIndex(f *testing.F) {
	valid := `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` +
		strings.Repeat("a", 64) + `","size":2,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}`
	for _, seed := range []struct{ index, suffix string }{
		{valid, ""}, {valid, ":v1"}, {valid, "@sha256:" + strings.Repeat("a", 64)}, {valid, ":nope"},
		{`{"manifests":[{"digest":"sha256:../../etc/passwd","size":4}]}`, ""},
		{`{"manifests":[{"digest":"md5:d41d8cd98f00b204e9800998ecf8427e","size":0}]}`, ""},
		{`{"manifests":[{"digest":"sha256:` + strings.Repeat("a", 64) + `","size":-1}]}`, ""},
		{`{"manifests":null}`, ""}, {`[]`, ""}, {`{`, ":v1"}, {``, ""}, {`{"manifests":[{},{}]}`, ":v1"},
	} {
		f.Add([]byte(seed.index), seed.suffix)
	}
	f.Fuzz(func(t *testing.T, index []byte, suffix string) {
		// os.MkdirTemp, not t.TempDir: the fuzz engine runs this many
		// times in one test, and removes nothing until the end.
		dir, err := os.MkdirTemp("", "imgx-fuzz-layout-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		layout := filepath.Join(dir, "layout")
		if err := os.MkdirAll(filepath.Join(layout, "blobs", "sha256"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{ocispec.ImageLayoutFile: []byte(`{"imageLayoutVersion":"1.0.0"}`), "index.json": index} {
			if err := os.WriteFile(filepath.Join(layout, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// A file a path-traversing digest would reach.
		if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("secret"), 0o644); err != nil {
			t.Fatal(err)
		}
		loc, err := ref.Parse(ref.LayoutPrefix + layout + suffix)
		if err != nil || loc.Path != layout {
			return
		}
		ctx := context.Background()
		l, err := openLayout(loc.Path, false)
		if err != nil {
			return
		}
		desc, _, err := l.resolve(ctx, loc)
		if err != nil {
			return
		}
		fetcher, err := Layouts{}.Fetcher(ctx, loc)
		if err != nil {
			t.Fatalf("fetcher for %s: %v", loc, err)
		}
		rc, err := fetcher.Fetch(ctx, desc)
		if err != nil {
			return
		}
		defer rc.Close()
		data, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
		if string(data) == "secret" {
			t.Fatalf("digest %q read a file outside the layout's blobs", desc.Digest)
		}
	})
}
