package compression

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// sample is 3 MiB of words of a small vocabulary (text: it compresses by
// its repeats): several gzip blocks.
func sample() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := make([][]byte, 512)
	for i := range words {
		w := make([]byte, 2+r.IntN(10))
		for j := range w {
			w[j] = 'a' + byte(r.IntN(26))
		}
		words[i] = append(w, ' ')
	}
	b := make([]byte, 0, 3<<20+16)
	for len(b) < 3<<20 {
		b = append(b, words[r.IntN(len(words))]...)
	}
	return b[:3<<20]
}

func compress(t *testing.T, f Format, data []byte) []byte {
	return compressAt(t, f, Default, data)
}

func compressAt(t *testing.T, f Format, l Level, data []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := NewWriter(&out, f, l)
	if err != nil {
		t.Fatal(err)
	}
	// Odd write sizes: the output must not depend on how the input comes.
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 12345+len(rest)%777)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestWritersRoundTripAndRepeat(t *testing.T) {
	data := sample()
	for _, f := range []Format{Gzip, Zstd, None} {
		for _, l := range []Level{Default, Fast} {
			t.Run(fmt.Sprintf("%s/%d", f, l), func(t *testing.T) {
				a, b := compressAt(t, f, l, data), compressAt(t, f, l, data)
				if !bytes.Equal(a, b) {
					t.Fatalf("two compressions of the same bytes differ")
				}
				if f != None && len(a) >= len(data) {
					t.Fatalf("%s did not compress: %d bytes of %d", f, len(a), len(data))
				}
				if f == Gzip {
					// No name, no time; the level's flag (XFL 4: fastest).
					want := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, map[Level]byte{Default: 0, Fast: 4}[l]}
					if !bytes.Equal(a[:9], want) {
						t.Fatalf("gzip header % x, want % x", a[:9], want)
					}
				}
				if got := decompress(t, f, a); !bytes.Equal(got, data) {
					t.Fatalf("round trip: %d bytes of %d", len(got), len(data))
				}
			})
		}
	}
}

// decompress reads a stream of f whole; a gzip stream must be one member
// (docker load refuses a second).
func decompress(t *testing.T, f Format, b []byte) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(b)
	switch f {
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		r = zr
	case Zstd:
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestParseFormatAndForPath(t *testing.T) {
	for in, want := range map[string]Format{"gzip": Gzip, "ZSTD": Zstd, " none ": None} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseFormat("xz"); err == nil || err.Error() != `invalid --compression "xz": want gzip, zstd, none` {
		t.Errorf("ParseFormat(xz) error: %v", err)
	}
	for path, want := range map[string]Format{"a.tar.gz": Gzip, "a.TGZ": Gzip, "a.tar.zst": Zstd, "a.tzst": Zstd, "a.tar": None, "a": None, "dir.gz/a.tar": None} {
		if got := ForPath(path); got != want {
			t.Errorf("ForPath(%q) = %q, want %q", path, got, want)
		}
	}
}

// memFetcher serves blobs from memory.
type memFetcher map[digest.Digest][]byte

func (m memFetcher) Fetch(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	b, ok := m[d.Digest]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func TestLayersManifest(t *testing.T) {
	raw := sample()
	gz := compress(t, Gzip, []byte("already compressed"))
	rawDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	gzDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(gz), Size: int64(len(gz))}
	cfg := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("{}"), Size: 2}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg,
		Layers: []ocispec.Descriptor{rawDesc, gzDesc, rawDesc}}
	dt, _ := json.Marshal(m)
	desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(dt), Size: int64(len(dt)),
		Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	if !Needed(desc.MediaType, dt) {
		t.Fatal("Needed: false for a manifest with plain layers")
	}
	fetch := memFetcher{rawDesc.Digest: raw, gzDesc.Digest: gz}
	for _, f := range []Format{Gzip, Zstd} {
		t.Run(string(f), func(t *testing.T) {
			l := NewLayers(f)
			defer l.Close()
			got, out, err := l.Manifest(t.Context(), fetch, desc, dt, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			var nm ocispec.Manifest
			if err := json.Unmarshal(out, &nm); err != nil {
				t.Fatal(err)
			}
			want := compress(t, f, raw)
			wantDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(want), Size: int64(len(want))}
			if f == Zstd {
				wantDesc.MediaType = ocispec.MediaTypeImageLayerZstd
			}
			if nm.Layers[0].MediaType != wantDesc.MediaType || nm.Layers[0].Digest != wantDesc.Digest || nm.Layers[0].Size != wantDesc.Size ||
				nm.Layers[2].Digest != wantDesc.Digest || nm.Layers[1].Digest != gzDesc.Digest || nm.Config.Digest != cfg.Digest {
				t.Fatalf("layers %+v, config %s; want %+v, then %s kept", nm.Layers, nm.Config.Digest, wantDesc, gzDesc.Digest)
			}
			if got.Digest != digest.FromBytes(out) || got.Size != int64(len(out)) || got.Platform == nil || Needed(got.MediaType, out) {
				t.Fatalf("descriptor %+v does not describe the new manifest", got)
			}
			rc, ok, err := l.open(wantDesc.Digest)
			if !ok || err != nil {
				t.Fatalf("spool lacks %s: %v", wantDesc.Digest, err)
			}
			spooled, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(spooled, want) {
				t.Fatalf("spooled layer differs from the compression of the layer")
			}
		})
	}
	t.Run("writer reused", func(t *testing.T) {
		// A writer reset for the next layer writes what a new one would.
		l := NewLayers(Gzip)
		defer l.Close()
		other := []byte(strings.Repeat("another layer ", 100000))
		otherDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(other), Size: int64(len(other))}
		both := memFetcher{rawDesc.Digest: raw, otherDesc.Digest: other}
		for _, d := range []ocispec.Descriptor{rawDesc, otherDesc} {
			c, err := l.layer(t.Context(), both, d)
			if err != nil {
				t.Fatal(err)
			}
			want := compress(t, Gzip, both[d.Digest])
			if c.Digest != digest.FromBytes(want) {
				t.Fatalf("layer %s: %s, a new writer gives %s", d.Digest, c.Digest, digest.FromBytes(want))
			}
		}
		if len(l.free) != 1 {
			t.Fatalf("%d writers kept, want the one reused", len(l.free))
		}
	})
	t.Run("wrong bytes", func(t *testing.T) {
		l := NewLayers(Gzip)
		defer l.Close()
		bad := memFetcher{rawDesc.Digest: raw[1:], gzDesc.Digest: gz}
		if _, _, err := l.Manifest(t.Context(), bad, desc, dt, 2, nil); err == nil {
			t.Fatal("a layer that does not match its digest was compressed")
		}
	})
}
