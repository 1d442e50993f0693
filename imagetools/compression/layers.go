package compression

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Layers compresses the uncompressed layers of image manifests for a push
// to a place that stores them compressed (a registry). A compressed
// layer's digest is known only once it is compressed, and the manifest,
// the index above it and every target need it before anything is pushed:
// each layer is compressed once into a spool file (memory stays flat; the
// digest is computed on the way), and Place serves the files to every
// target, to mounts and to a retried upload alike. Layers shared by
// several images are compressed once. Close removes the spool.
type Layers struct {
	format Format

	mu    sync.Mutex
	dir   string
	byRaw map[digest.Digest]*spooled
	files map[digest.Digest]string
	// free are writers done with a layer, reset for the next (see reset).
	free []io.WriteCloser
}

// spooled is one layer compressed (or being compressed) into the spool.
type spooled struct {
	once sync.Once
	desc ocispec.Descriptor
	err  error
}

// NewLayers returns the compressor of layers into f (Gzip or Zstd).
func NewLayers(f Format) *Layers {
	return &Layers{format: f, byRaw: map[digest.Digest]*spooled{}, files: map[digest.Digest]string{}}
}

// Needed reports whether manifest dt (of media type mt) has a layer to
// compress.
func Needed(mt string, dt []byte) bool {
	if !oci.IsManifest(mt) {
		return false
	}
	var m ocispec.Manifest
	if json.Unmarshal(dt, &m) != nil {
		return false
	}
	for _, l := range m.Layers {
		if oci.IsUncompressedLayer(l.MediaType) {
			return true
		}
	}
	return false
}

// Manifest compresses the uncompressed layers of manifest dt, described by
// desc and read through fetch, up to limit at once, and returns the
// manifest that names them compressed: desc with the new media type,
// digest and size, and its bytes. The config, its diff_ids and the layers
// already compressed stay as they are; a Docker manifest with zstd layers
// becomes OCI (oci.ToOCIManifest). logf, when set, says what is done.
func (l *Layers) Manifest(ctx context.Context, fetch remotes.Fetcher, desc ocispec.Descriptor, dt []byte, limit int,
	logf func(format string, args ...any)) (ocispec.Descriptor, []byte, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(dt, &m); err != nil {
		return desc, nil, fmt.Errorf("parse manifest %s: %w", desc.Digest, err)
	}
	if l.format == Zstd {
		oci.ToOCIManifest(&m)
	}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(max(limit, 1))
	for i, layer := range m.Layers {
		if !oci.IsUncompressedLayer(layer.MediaType) {
			continue
		}
		eg.Go(func() error {
			c, err := l.layer(ectx, fetch, layer)
			if err != nil {
				return err
			}
			if logf != nil {
				logf("compressing %s (%s): %s", layer.Digest, l.format, c.Digest)
			}
			c.Annotations, c.URLs = layer.Annotations, layer.URLs
			m.Layers[i] = c
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return desc, nil, err
	}
	out, err := json.Marshal(m)
	if err != nil {
		return desc, nil, err
	}
	desc.MediaType, desc.Digest, desc.Size = m.MediaType, digest.FromBytes(out), int64(len(out))
	return desc, out, nil
}

// layer compresses one layer into the spool, once per uncompressed digest.
func (l *Layers) layer(ctx context.Context, fetch remotes.Fetcher, raw ocispec.Descriptor) (ocispec.Descriptor, error) {
	l.mu.Lock()
	s, ok := l.byRaw[raw.Digest]
	if !ok {
		s = &spooled{}
		l.byRaw[raw.Digest] = s
	}
	l.mu.Unlock()
	s.once.Do(func() { s.desc, s.err = l.compress(ctx, fetch, raw) })
	return s.desc, s.err
}

// compress reads a layer (its digest checked on the way) and writes it
// compressed into a spool file named by the compressed digest.
func (l *Layers) compress(ctx context.Context, fetch remotes.Fetcher, raw ocispec.Descriptor) (ocispec.Descriptor, error) {
	dir, err := l.spoolDir()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	rc, err := fetch.Fetch(ctx, raw)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("read layer %s: %w", raw.Digest, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(dir, "layer-*")
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, err := l.compressTo(f, oci.NewVerifyingReader(rc, raw), raw.MediaType)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		path := filepath.Join(dir, desc.Digest.Encoded())
		if err = os.Rename(f.Name(), path); err == nil {
			l.mu.Lock()
			l.files[desc.Digest] = path
			l.mu.Unlock()
			return desc, nil
		}
	}
	_ = os.Remove(f.Name())
	return ocispec.Descriptor{}, fmt.Errorf("compress layer %s: %w", raw.Digest, err)
}

// compressTo writes r compressed into w and describes what it wrote.
func (l *Layers) compressTo(w io.Writer, r io.Reader, rawType string) (ocispec.Descriptor, error) {
	d := digest.SHA256.Digester()
	n := &countingWriter{w: io.MultiWriter(w, d.Hash())}
	cw, err := l.writer(n)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	_, err = io.Copy(cw, r)
	if cerr := cw.Close(); err == nil {
		err = cerr
	}
	l.mu.Lock()
	l.free = append(l.free, cw)
	l.mu.Unlock()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: oci.CompressedLayerType(rawType, string(l.format)), Digest: d.Digest(), Size: n.n}, nil
}

// writer returns a writer of the layers' format into w: one done with a
// layer before, reset, or a new one.
func (l *Layers) writer(w io.Writer) (io.WriteCloser, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.free) > 0 {
		cw := l.free[len(l.free)-1]
		l.free = l.free[:len(l.free)-1]
		if reset(cw, w) {
			return cw, nil
		}
	}
	return NewWriter(w, l.format, Default)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// spoolDir makes the spool folder on first use.
func (l *Layers) spoolDir() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dir == "" {
		dir, err := os.MkdirTemp("", "docker-imgx-layers-")
		if err != nil {
			return "", fmt.Errorf("compress layers: %w", err)
		}
		l.dir = dir
	}
	return l.dir, nil
}

// Close removes the spool and the layers in it.
func (l *Layers) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dir == "" {
		return nil
	}
	err := os.RemoveAll(l.dir)
	l.dir, l.files = "", map[digest.Digest]string{}
	return err
}

// open opens a compressed layer of the spool; ok is false when the spool
// does not hold d.
func (l *Layers) open(d digest.Digest) (io.ReadCloser, bool, error) {
	l.mu.Lock()
	path, ok := l.files[d]
	l.mu.Unlock()
	if !ok {
		return nil, false, nil
	}
	f, err := os.Open(path)
	return f, true, err
}

// Place returns pl with the compressed layers of the spool readable at
// every location, beside what each location holds itself.
func (l *Layers) Place(pl place.Place) place.Place {
	return spoolPlace{Place: pl, l: l}
}

type spoolPlace struct {
	place.Place
	l *Layers
}

// Fetcher implements place.Reader.
func (p spoolPlace) Fetcher(ctx context.Context, loc ref.Location) (remotes.Fetcher, error) {
	f, err := p.Place.Fetcher(ctx, loc)
	if err != nil {
		return nil, err
	}
	return spoolFetcher{Fetcher: f, l: p.l}, nil
}

type spoolFetcher struct {
	remotes.Fetcher
	l *Layers
}

// Fetch reads a compressed layer from the spool, anything else from the
// place.
func (f spoolFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, ok, err := f.l.open(desc.Digest)
	if ok {
		return rc, err
	}
	return f.Fetcher.Fetch(ctx, desc)
}
