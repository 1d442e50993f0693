package imagetools

// The export's structure is read by one sequential pass (exportResolve), so
// that the tar's layout follows the images in a fixed order. Read as it
// goes, an index of 8 images costs 8 manifest round trips one after the
// other, then their configs. exportPrefetch reads the same small blobs
// first, level by level, many at once; the sequential pass then finds them
// in memory, errors included, and lays out exactly what it would have.

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// exportSmallFetch is one small blob read ahead: its bytes, or the error
// that the sequential pass reports when it comes to it.
type exportSmallFetch struct {
	data []byte
	err  error
}

// exportPrefetched holds the small blobs read ahead, by digest.
type exportPrefetched struct {
	mu    sync.Mutex
	blobs map[digest.Digest]exportSmallFetch
}

func (p *exportPrefetched) get(d digest.Digest) (exportSmallFetch, bool) {
	if p == nil {
		return exportSmallFetch{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	f, ok := p.blobs[d]
	return f, ok
}

// fetch returns what was read ahead for desc, else reads it now.
func (p *exportPrefetched) fetch(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	if got, ok := p.get(desc.Digest); ok {
		return got.data, got.err
	}
	return exportFetchAll(ctx, f, desc)
}

func (p *exportPrefetched) put(d digest.Digest, f exportSmallFetch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blobs[d] = f
}

// exportPrefetchJob is a small blob to read ahead for image i.
type exportPrefetchJob struct {
	i    int
	desc ocispec.Descriptor
	// config asks for the config of the manifest too.
	config bool
}

// exportPrefetch reads ahead, limit at a time, the manifests of the children
// the indexes' roots select, then the configs the sequential pass reads (of
// each index's primary child, and of a single image when the Docker format
// or a platform check needs it). Anything it cannot read or parse is left to
// the sequential pass.
func exportPrefetch(ctx context.Context, imgs []ExportImage, opts ExportOptions, limit int) *exportPrefetched {
	p := &exportPrefetched{blobs: map[digest.Digest]exportSmallFetch{}}
	needConfig := opts.Format == ExportFormatDocker || (opts.ExplicitPlatforms && !opts.AllPlatforms)
	var manifests []exportPrefetchJob
	for i, img := range imgs {
		switch {
		case img.Data == nil || img.Fetcher == nil:
		case images.IsIndexType(img.Desc.MediaType):
			manifests = append(manifests, exportPrefetchChildren(i, img.Data, opts)...)
		case images.IsManifestType(img.Desc.MediaType) && needConfig:
			p.put(img.Desc.Digest, exportSmallFetch{data: img.Data})
			manifests = append(manifests, exportPrefetchJob{i: i, desc: img.Desc, config: true})
		}
	}
	configs := p.fetchAll(ctx, imgs, manifests, limit)
	p.fetchAll(ctx, imgs, configs, limit)
	return p
}

// exportPrefetchChildren lists the children an index's bytes select, the
// primary one with its config.
func exportPrefetchChildren(i int, data []byte, opts ExportOptions) []exportPrefetchJob {
	var index ocispec.Index
	if json.Unmarshal(data, &index) != nil {
		return nil
	}
	sel, err := exportSelectChildren(index, opts.Platforms, opts.AllPlatforms, opts.Format == ExportFormatDocker)
	if err != nil {
		return nil
	}
	var out []exportPrefetchJob
	for _, c := range sel.Kept {
		if images.IsManifestType(c.MediaType) {
			primary := sel.Primary != nil && c.Digest == sel.Primary.Digest && opts.Format == ExportFormatDocker
			out = append(out, exportPrefetchJob{i: i, desc: c, config: primary})
		}
	}
	return out
}

// fetchAll reads jobs, limit at a time, and returns the configs they ask for.
func (p *exportPrefetched) fetchAll(ctx context.Context, imgs []ExportImage, jobs []exportPrefetchJob, limit int) []exportPrefetchJob {
	var mu sync.Mutex
	var next []exportPrefetchJob
	var eg errgroup.Group
	eg.SetLimit(limit)
	seen := map[digest.Digest]bool{}
	for _, j := range jobs {
		if seen[j.desc.Digest] {
			continue
		}
		seen[j.desc.Digest] = true
		eg.Go(func() error {
			f, ok := p.get(j.desc.Digest)
			if !ok {
				if f, ok = exportFetchSmall(ctx, imgs[j.i], j.desc); !ok {
					return nil
				}
				p.put(j.desc.Digest, f)
			}
			if f.err != nil || !j.config {
				return nil
			}
			var m ocispec.Manifest
			if json.Unmarshal(f.data, &m) != nil || exportValidateDigest(m.Config.Digest) != nil {
				return nil
			}
			mu.Lock()
			next = append(next, exportPrefetchJob{i: j.i, desc: m.Config})
			mu.Unlock()
			return nil
		})
	}
	_ = eg.Wait() // errors are kept per blob
	return next
}

// exportFetchSmall reads a small blob as the sequential pass would; a
// descriptor that pass refuses before fetching is not read (false).
func exportFetchSmall(ctx context.Context, img ExportImage, desc ocispec.Descriptor) (exportSmallFetch, bool) {
	if exportValidateDigest(desc.Digest) != nil || desc.Size > exportMaxSmallBlob || desc.Size < 0 {
		return exportSmallFetch{}, false
	}
	data, err := exportFetchAll(ctx, img.Fetcher, desc)
	return exportSmallFetch{data: data, err: err}, true
}
