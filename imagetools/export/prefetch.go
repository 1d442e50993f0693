package export

// The export's structure is read by one sequential pass (makePlan), so
// that the tar's entries follow the images in a fixed order. Read as it
// goes, an index of 8 images costs 8 manifest round trips one after the
// other, then their configs. prefetch reads the same small blobs
// first, level by level, many at once; the sequential pass then finds them
// in memory, errors included, and lays out exactly what it would have.

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// smallFetch is one small blob read ahead: its bytes, or the error
// that the sequential pass reports when it comes to it.
type smallFetch struct {
	data []byte
	err  error
}

// prefetched holds the small blobs read ahead, by digest.
type prefetched struct {
	mu    sync.Mutex
	blobs map[digest.Digest]smallFetch
	// deferConfigs leaves out the configs only manifest.json's check needs
	// (see planner.deferConfigs).
	deferConfigs, includeForeign bool
	// budget counts the manifests read ahead; one over it is left to the
	// sequential pass, which refuses it.
	budget *oci.GraphBudget
}

func (p *prefetched) get(d digest.Digest) (smallFetch, bool) {
	if p == nil {
		return smallFetch{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	f, ok := p.blobs[d]
	return f, ok
}

// fetch returns what was read ahead for desc, else reads it now
// (oci.ReadBlob: size limit, size and digest checked).
func (p *prefetched) fetch(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	if got, ok := p.get(desc.Digest); ok {
		return got.data, got.err
	}
	data, err := oci.ReadBlob(ctx, f, desc)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", desc.Digest, err)
	}
	return data, nil
}

func (p *prefetched) put(d digest.Digest, f smallFetch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blobs[d] = f
}

// prefetchJob is a small blob to read ahead for image i.
type prefetchJob struct {
	i    int
	desc ocispec.Descriptor
	// config asks for the config of the manifest too; forCheck when only
	// manifest.json's check needs it, which may come after the layers.
	config, forCheck bool
}

// prefetch reads ahead, limit at a time, the manifests of the children
// the indexes' roots select, then the configs the sequential pass reads (of
// each index's primary child, and of a single image when the Docker format
// or a platform check needs it). Anything it cannot read or parse is left to
// the sequential pass.
func prefetch(ctx context.Context, imgs []image, opts Options, limit int, deferConfigs bool, budget *oci.GraphBudget) *prefetched {
	p := &prefetched{blobs: map[digest.Digest]smallFetch{}, deferConfigs: deferConfigs, includeForeign: opts.IncludeForeign, budget: budget}
	platformCheck := opts.ExplicitPlatforms && !opts.AllPlatforms
	needConfig := opts.Format == FormatDocker || platformCheck
	var manifests []prefetchJob
	for i, img := range imgs {
		switch {
		case img.Data == nil || img.Fetcher == nil:
		case oci.IsIndex(img.Desc.MediaType):
			manifests = append(manifests, prefetchChildren(i, img.Data, opts)...)
		case oci.IsManifest(img.Desc.MediaType) && needConfig:
			p.put(img.Desc.Digest, smallFetch{data: img.Data})
			manifests = append(manifests, prefetchJob{i: i, desc: img.Desc, config: true, forCheck: !platformCheck})
		}
	}
	configs := p.fetchAll(ctx, imgs, manifests, limit)
	p.fetchAll(ctx, imgs, configs, limit)
	return p
}

// prefetchChildren lists the children an index's bytes select, the
// primary one with its config.
func prefetchChildren(i int, data []byte, opts Options) []prefetchJob {
	var index ocispec.Index
	if json.Unmarshal(data, &index) != nil {
		return nil
	}
	sel, err := selectChildren(index, opts.Platforms, opts.AllPlatforms, opts.Format == FormatDocker)
	if err != nil {
		return nil
	}
	var out []prefetchJob
	for _, c := range sel.kept {
		if oci.IsManifest(c.MediaType) && !(opts.SkipAttestations && oci.IsAttestation(c)) {
			primary := sel.primary != nil && c.Digest == sel.primary.Digest && opts.Format == FormatDocker
			out = append(out, prefetchJob{i: i, desc: c, config: primary, forCheck: true})
		}
	}
	return out
}

// fetchAll reads jobs, limit at a time, and returns the configs they ask for.
func (p *prefetched) fetchAll(ctx context.Context, imgs []image, jobs []prefetchJob, limit int) []prefetchJob {
	var mu sync.Mutex
	var next []prefetchJob
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
				if f, ok = p.fetchSmall(ctx, imgs[j.i], j.desc); !ok {
					return nil
				}
				p.put(j.desc.Digest, f)
			}
			if f.err != nil || !j.config {
				return nil
			}
			var m ocispec.Manifest
			if json.Unmarshal(f.data, &m) != nil || validateDigest(m.Config.Digest) != nil {
				return nil
			}
			if j.forCheck && p.deferConfigs && !hasForeign(m.Layers, p.includeForeign) {
				return nil
			}
			mu.Lock()
			next = append(next, prefetchJob{i: j.i, desc: m.Config})
			mu.Unlock()
			return nil
		})
	}
	_ = eg.Wait() // errors are kept per blob
	return next
}

// fetchSmall reads a small blob as the sequential pass would; a
// descriptor that pass refuses before fetching is not read (false).
func (p *prefetched) fetchSmall(ctx context.Context, img image, desc ocispec.Descriptor) (smallFetch, bool) {
	if validateDigest(desc.Digest) != nil || oci.CheckReadable(desc) != nil {
		return smallFetch{}, false
	}
	if oci.IsManifestOrIndex(desc.MediaType) && p.budget.Charge(desc) != nil {
		return smallFetch{}, false
	}
	data, err := p.fetch(ctx, img.Fetcher, desc)
	return smallFetch{data: data, err: err}, true
}

// hasForeign reports whether layers hold one left out of the tar, whose
// manifest.json entry needs the config's diff_ids.
func hasForeign(layers []ocispec.Descriptor, includeForeign bool) bool {
	for _, l := range layers {
		if images.IsNonDistributable(l.MediaType) && !includeForeign {
			return true
		}
	}
	return false
}
