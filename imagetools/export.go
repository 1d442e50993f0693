package imagetools

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Export formats.
const (
	// ExportFormatDocker writes manifest.json and the OCI layout in one tar.
	ExportFormatDocker = "docker"
	// ExportFormatOCI writes the OCI layout only.
	ExportFormatOCI = "oci"
)

// ExportDefaultConcurrency is the default number of blobs fetched at once:
// enough to keep a link to one registry busy while a large layer is written,
// few enough that memory stays bounded (when streaming, a blob ahead holds at
// most exportChunksAhead chunks plus its share of exportStreamExtraChunks)
// and registries do not throttle.
const ExportDefaultConcurrency = 4

const (
	// exportChunkSize and exportChunksAhead bound the memory of one blob being
	// fetched ahead: at most exportChunksAhead full chunks of its own wait in
	// its pipe, which keeps the blob being written going whatever the others do.
	exportChunkSize   = 512 << 10
	exportChunksAhead = 4
	// exportStreamExtraChunks are shared by the blobs fetched ahead when the
	// tar is streamed, so that large layers download in parallel rather than
	// waiting for the one before them: 16 MiB, which keeps the process well
	// under 64 MiB (it reaches about 57 MiB with 24 MiB).
	exportStreamExtraChunks = 32
	// exportMaxSmallBlob caps manifests, indexes and configs, which are held
	// in memory.
	exportMaxSmallBlob = 32 << 20
)

// ExportImage is one image to export.
type ExportImage struct {
	// Fetcher reads the image's blobs (manifests, configs, layers) by descriptor.
	Fetcher remotes.Fetcher
	// Desc is the resolved root: an image manifest or an index.
	Desc ocispec.Descriptor
	// Name is the fully qualified name to write, e.g. "localhost:5000/app:1";
	// "" writes the image without a name.
	Name string
	// Data is the root's bytes when the caller already read them (checked
	// against Desc); nil means they are fetched.
	Data []byte
}

// ExportOptions controls Export.
type ExportOptions struct {
	// Platforms selects the images kept from an index; the first one's image
	// goes to manifest.json. Default: the local platform.
	Platforms []ocispec.Platform
	// AllPlatforms keeps every child of an index in the OCI layout; Platforms
	// then only choose the manifest.json image.
	AllPlatforms bool
	// ExplicitPlatforms says the user named Platforms: then a single image
	// (not an index) of another platform is an error rather than exported.
	ExplicitPlatforms bool
	// Format is ExportFormatDocker (default) or ExportFormatOCI.
	Format string
	// IncludeForeign writes non-distributable layers too; by default they are
	// left out and their descriptors (with URLs) go to manifest.json's LayerSources.
	IncludeForeign bool
	// MaxConcurrency is the number of blobs fetched in parallel (default 4).
	MaxConcurrency int
	// Progress receives progress and warnings; nil reports nothing.
	Progress ExportProgress
}

// ExportProgress receives the progress of Export. Calls come from one
// goroutine at a time.
type ExportProgress interface {
	// Blob reports that written bytes of a streamed blob (a layer, or a blob of
	// an attestation) are in the tar: 0 when it starts, desc.Size when done.
	Blob(desc ocispec.Descriptor, written int64)
	// Manifest reports that an image manifest or index is written.
	Manifest(desc ocispec.Descriptor)
	// Config reports that an image config is written.
	Config(desc ocispec.Descriptor)
	// Naming reports a name given to an image in the tar.
	Naming(name string)
	// Warn reports a problem that does not stop the export.
	Warn(msg string)
}

// NoExportProgress is an ExportProgress that reports nothing.
type NoExportProgress struct{}

// Blob implements ExportProgress.
func (NoExportProgress) Blob(ocispec.Descriptor, int64) {}

// Manifest implements ExportProgress.
func (NoExportProgress) Manifest(ocispec.Descriptor) {}

// Config implements ExportProgress.
func (NoExportProgress) Config(ocispec.Descriptor) {}

// Naming implements ExportProgress.
func (NoExportProgress) Naming(string) {}

// Warn implements ExportProgress.
func (NoExportProgress) Warn(string) {}

func (o ExportOptions) withDefaults() (ExportOptions, error) {
	switch o.Format {
	case "":
		o.Format = ExportFormatDocker
	case ExportFormatDocker, ExportFormatOCI:
	default:
		return o, fmt.Errorf("unknown export format %q: want %q or %q", o.Format, ExportFormatDocker, ExportFormatOCI)
	}
	if len(o.Platforms) == 0 {
		o.Platforms = []ocispec.Platform{platforms.DefaultSpec()}
	}
	for _, p := range o.Platforms {
		if err := ValidatePlatform(p); err != nil {
			return o, fmt.Errorf("export: platform %s: %w", platforms.Format(p), err)
		}
	}
	if o.MaxConcurrency <= 0 {
		o.MaxConcurrency = ExportDefaultConcurrency
	}
	if o.Progress == nil {
		o.Progress = NoExportProgress{}
	}
	return o, nil
}

// Export writes images into one tar on w: an OCI image layout (oci-layout,
// index.json, blobs/sha256/...) and, in the docker format, a Docker
// manifest.json beside it, so that docker load, ctr images import, podman
// load and skopeo all accept it. Blobs are the registry's bytes, written once
// each, and checked against their digest and size while they are copied.
//
// Export first fetches the small blobs (indexes, manifests, configs) and
// validates the structure, so that most errors come before a byte is
// written. When w is a regular *os.File (as WriteFileAtomic hands out), the
// whole tar is laid out first and up to MaxConcurrency blobs are fetched at
// once, each written at its offset. Otherwise the blobs are streamed in tar
// order while up to MaxConcurrency blobs are fetched ahead. Either way, same
// inputs give the same bytes.
func Export(ctx context.Context, w io.Writer, imgs []ExportImage, opts ExportOptions) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if len(imgs) == 0 {
		return errors.New("export: no image given")
	}
	plan, err := exportResolve(ctx, imgs, opts)
	if err != nil {
		return err
	}
	if f, base, ok := exportFileAt(w); ok {
		return exportWriteAt(ctx, f, base, imgs, plan, opts)
	}
	return exportWrite(ctx, w, imgs, plan, opts)
}

// exportPlan is everything known before the first byte is written.
type exportPlan struct {
	records []exportRecord
	names   []string
}

// exportResolver collects the blobs and images while the structure is read.
type exportResolver struct {
	imgs    []ExportImage
	opts    ExportOptions
	blobs   map[digest.Digest]*exportBlob
	order   []*exportBlob
	docker  []*exportDockerImage
	zstd    []digest.Digest
	entries []exportIndexEntry
	// ahead holds the small blobs exportPrefetch read.
	ahead *exportPrefetched
}

func exportResolve(ctx context.Context, imgs []ExportImage, opts ExportOptions) (exportPlan, error) {
	r := &exportResolver{imgs: imgs, opts: opts, blobs: map[digest.Digest]*exportBlob{},
		ahead: exportPrefetch(ctx, imgs, opts, metadataLimit(opts.MaxConcurrency))}
	for i := range imgs {
		if err := r.addImage(ctx, i); err != nil {
			return exportPlan{}, err
		}
	}
	if len(r.zstd) > 0 {
		opts.Progress.Warn(fmt.Sprintf("%d zstd-compressed layer(s), first %s: Docker Engine older than 23.0 cannot load them", len(r.zstd), r.zstd[0]))
	}
	indexJSON, err := exportIndexJSON(r.entries)
	if err != nil {
		return exportPlan{}, fmt.Errorf("export: index.json: %w", err)
	}
	var manifestJSON []byte
	if opts.Format == ExportFormatDocker {
		dockerImgs := make([]exportDockerImage, 0, len(r.docker))
		for _, d := range r.docker {
			dockerImgs = append(dockerImgs, *d)
		}
		if manifestJSON, err = exportManifestJSON(dockerImgs); err != nil {
			return exportPlan{}, fmt.Errorf("export: manifest.json: %w", err)
		}
	}
	records, err := exportRecords(r.order, indexJSON, manifestJSON)
	if err != nil {
		return exportPlan{}, fmt.Errorf("export: %w", err)
	}
	plan := exportPlan{records: records}
	for _, e := range r.entries {
		if e.Name.Full != "" && !slices.Contains(plan.names, e.Name.Full) {
			plan.names = append(plan.names, e.Name.Full)
		}
	}
	return plan, nil
}

// imageLabel names image i in errors.
func (r *exportResolver) imageLabel(i int) string {
	if r.imgs[i].Name != "" {
		return r.imgs[i].Name
	}
	return r.imgs[i].Desc.Digest.String()
}

func (r *exportResolver) addImage(ctx context.Context, i int) error {
	img := r.imgs[i]
	label := r.imageLabel(i)
	if img.Fetcher == nil {
		return fmt.Errorf("export %s: no fetcher", label)
	}
	name, err := exportParseName(img.Name)
	if err != nil {
		return fmt.Errorf("export %s: %w", label, err)
	}
	r.entries = append(r.entries, exportIndexEntry{Desc: img.Desc, Name: name})
	if err := r.seedRoot(i); err != nil {
		return fmt.Errorf("export %s: %w", label, err)
	}

	var primary ocispec.Descriptor
	switch mt := img.Desc.MediaType; {
	case images.IsIndexType(mt):
		p, err := r.addIndex(ctx, i, img.Desc)
		if err != nil {
			return fmt.Errorf("export %s: %w", label, err)
		}
		if p == nil {
			return nil
		}
		primary = *p
	case images.IsManifestType(mt):
		if err := r.addManifest(ctx, i, img.Desc, false); err != nil {
			return fmt.Errorf("export %s: %w", label, err)
		}
		if err := r.checkSinglePlatform(ctx, i, img.Desc); err != nil {
			return fmt.Errorf("export %s: %w", label, err)
		}
		primary = img.Desc
	case mt == images.MediaTypeDockerSchema1Manifest:
		return fmt.Errorf("export %s: schema1 manifests are not supported", label)
	default:
		return fmt.Errorf("export %s: unsupported media type %q", label, mt)
	}
	if r.opts.Format != ExportFormatDocker {
		return nil
	}
	if err := r.addDockerImage(ctx, i, primary, label, name); err != nil {
		return fmt.Errorf("export %s: %w", label, err)
	}
	return nil
}

// addIndex adds an index and its selected children; it returns the child for
// manifest.json.
func (r *exportResolver) addIndex(ctx context.Context, i int, desc ocispec.Descriptor) (*ocispec.Descriptor, error) {
	data, err := r.addSmall(ctx, i, desc, exportKindManifest)
	if err != nil {
		return nil, err
	}
	index, err := exportParseIndex(desc, data)
	if err != nil {
		return nil, err
	}
	if index.Manifests, err = r.flattenIndexes(ctx, i, index.Manifests, 1); err != nil {
		return nil, err
	}
	sel, err := exportSelectChildren(index, r.opts.Platforms, r.opts.AllPlatforms, r.opts.Format == ExportFormatDocker)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", desc.Digest, err)
	}
	for _, c := range sel.Kept {
		if !images.IsManifestType(c.MediaType) {
			return nil, fmt.Errorf("index %s: child %s has unsupported media type %q", desc.Digest, c.Digest, c.MediaType)
		}
		if err := r.addManifest(ctx, i, c, exportIsAttestation(c)); err != nil {
			return nil, err
		}
	}
	return sel.Primary, nil
}

// exportParseIndex parses the bytes of index desc, refusing a body whose
// media type contradicts the descriptor's.
func exportParseIndex(desc ocispec.Descriptor, data []byte) (ocispec.Index, error) {
	var index ocispec.Index
	if err := json.Unmarshal(data, &index); err != nil {
		return index, fmt.Errorf("parse index %s: %w", desc.Digest, err)
	}
	if index.MediaType != "" && index.MediaType != desc.MediaType {
		return index, fmt.Errorf("index %s: media type %q in its body contradicts %q", desc.Digest, index.MediaType, desc.MediaType)
	}
	return index, nil
}

// exportMaxIndexDepth bounds how deep indexes may nest in an export.
const exportMaxIndexDepth = 4

// flattenIndexes replaces each index among children by what it lists, so
// that the images of a nested index are chosen like the others. Each nested
// index is read and recorded: the tar holds it, for consumers that walk the
// root index down.
func (r *exportResolver) flattenIndexes(ctx context.Context, i int, children []ocispec.Descriptor, depth int) ([]ocispec.Descriptor, error) {
	var out []ocispec.Descriptor
	for _, c := range children {
		if !images.IsIndexType(c.MediaType) {
			out = append(out, c)
			continue
		}
		if depth >= exportMaxIndexDepth {
			return nil, fmt.Errorf("index %s: indexes nested deeper than %d", c.Digest, exportMaxIndexDepth)
		}
		data, err := r.addSmall(ctx, i, c, exportKindManifest)
		if err != nil {
			return nil, err
		}
		nested, err := exportParseIndex(c, data)
		if err != nil {
			return nil, err
		}
		kids, err := r.flattenIndexes(ctx, i, nested.Manifests, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, kids...)
	}
	return out, nil
}

// addManifest adds an image manifest, its config and its layers. Layers and
// configs are streamed later; foreign layers are left out unless asked for.
func (r *exportResolver) addManifest(ctx context.Context, i int, desc ocispec.Descriptor, attestation bool) error {
	m, err := r.readManifest(ctx, i, desc)
	if err != nil {
		return err
	}
	if err := r.addBlob(i, m.Config, exportKindConfig, nil); err != nil {
		return fmt.Errorf("manifest %s: config: %w", desc.Digest, err)
	}
	for _, l := range m.Layers {
		if err := exportValidateDigest(l.Digest); err != nil {
			return fmt.Errorf("manifest %s: layer: %w", desc.Digest, err)
		}
		if images.IsNonDistributable(l.MediaType) && !r.opts.IncludeForeign {
			continue
		}
		if !attestation && (strings.Contains(l.MediaType, "+zstd") || strings.HasSuffix(l.MediaType, ".zstd")) {
			if !slices.Contains(r.zstd, l.Digest) {
				r.zstd = append(r.zstd, l.Digest)
			}
		}
		if err := r.addBlob(i, l, exportKindLayer, nil); err != nil {
			return fmt.Errorf("manifest %s: layer: %w", desc.Digest, err)
		}
	}
	return nil
}

func (r *exportResolver) readManifest(ctx context.Context, i int, desc ocispec.Descriptor) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	data, err := r.addSmall(ctx, i, desc, exportKindManifest)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("parse manifest %s: %w", desc.Digest, err)
	}
	if m.MediaType != "" && m.MediaType != desc.MediaType {
		return m, fmt.Errorf("manifest %s: media type %q in its body contradicts %q", desc.Digest, m.MediaType, desc.MediaType)
	}
	return m, nil
}

// checkSinglePlatform refuses a single image whose config names a platform
// other than the ones the user asked for (an index is where --platform picks).
func (r *exportResolver) checkSinglePlatform(ctx context.Context, i int, desc ocispec.Descriptor) error {
	if !r.opts.ExplicitPlatforms || r.opts.AllPlatforms {
		return nil
	}
	m, err := r.readManifest(ctx, i, desc)
	if err != nil {
		return err
	}
	dt, err := r.addSmall(ctx, i, m.Config, exportKindConfig)
	if err != nil {
		return err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(dt, &cfg); err != nil || cfg.OS == "" {
		return nil // not an image config: nothing to match
	}
	got := platforms.Normalize(cfg.Platform)
	for _, p := range r.opts.Platforms {
		if platforms.Only(p).Match(got) {
			return nil
		}
	}
	return fmt.Errorf("a single %s image, not %s: drop --platform (it picks from an index)", platforms.Format(got), platforms.Format(r.opts.Platforms[0]))
}

// addDockerImage records the manifest.json entry for manifest desc of image
// i, merging names when the same manifest is exported twice.
func (r *exportResolver) addDockerImage(ctx context.Context, i int, desc ocispec.Descriptor, label string, name exportName) error {
	for _, d := range r.docker {
		if d.Manifest.Digest == desc.Digest {
			if name.RepoTag != "" && !slices.Contains(d.RepoTags, name.RepoTag) {
				d.RepoTags = append(d.RepoTags, name.RepoTag)
			}
			return nil
		}
	}
	m, err := r.readManifest(ctx, i, desc)
	if err != nil {
		return err
	}
	cfg, err := r.addSmall(ctx, i, m.Config, exportKindConfig)
	if err != nil {
		return err
	}
	d := &exportDockerImage{Name: label, Manifest: desc, Config: m.Config, ConfigData: cfg, Layers: m.Layers}
	for _, l := range m.Layers {
		if images.IsNonDistributable(l.MediaType) && !r.opts.IncludeForeign {
			if d.Foreign == nil {
				d.Foreign = map[digest.Digest]bool{}
			}
			d.Foreign[l.Digest] = true
		}
	}
	if name.RepoTag != "" {
		d.RepoTags = []string{name.RepoTag}
	}
	r.docker = append(r.docker, d)
	return nil
}

// seedRoot records the root bytes the caller already read, after checking
// them, so that they are not fetched a second time.
func (r *exportResolver) seedRoot(i int) error {
	img := r.imgs[i]
	if img.Data == nil {
		return nil
	}
	if err := exportValidateDigest(img.Desc.Digest); err != nil {
		return err
	}
	if int64(len(img.Data)) != img.Desc.Size || digest.FromBytes(img.Data) != img.Desc.Digest {
		return fmt.Errorf("root %s: the bytes given do not match the descriptor: %w", img.Desc.Digest, ErrDigestMismatch)
	}
	return r.addBlob(i, img.Desc, exportKindManifest, img.Data)
}

// addBlob records a blob once; the first image that names it provides it.
// data, when given, is kept to write it from memory.
func (r *exportResolver) addBlob(i int, desc ocispec.Descriptor, kind exportBlobKind, data []byte) error {
	if err := exportValidateDigest(desc.Digest); err != nil {
		return err
	}
	if desc.Size < 0 {
		return fmt.Errorf("blob %s: negative size %d", desc.Digest, desc.Size)
	}
	if b, ok := r.blobs[desc.Digest]; ok {
		if b.Desc.Size != desc.Size {
			return fmt.Errorf("blob %s: conflicting sizes %d and %d", desc.Digest, b.Desc.Size, desc.Size)
		}
		if b.Data == nil {
			b.Data = data
		}
		return nil
	}
	b := &exportBlob{Desc: desc, Kind: kind, Data: data, Source: i}
	r.blobs[desc.Digest] = b
	r.order = append(r.order, b)
	return nil
}

// addSmall fetches a small blob (index, manifest, config) into memory,
// verified, records it and returns its bytes. A blob already read is not
// fetched again.
func (r *exportResolver) addSmall(ctx context.Context, i int, desc ocispec.Descriptor, kind exportBlobKind) ([]byte, error) {
	if err := exportValidateDigest(desc.Digest); err != nil {
		return nil, err
	}
	if b, ok := r.blobs[desc.Digest]; ok && b.Data != nil {
		if b.Desc.Size != desc.Size {
			return nil, fmt.Errorf("blob %s: conflicting sizes %d and %d", desc.Digest, b.Desc.Size, desc.Size)
		}
		return b.Data, nil
	}
	if desc.Size > exportMaxSmallBlob {
		return nil, fmt.Errorf("blob %s: %d bytes is too large for a manifest or config (limit %d)", desc.Digest, desc.Size, exportMaxSmallBlob)
	}
	data, err := r.ahead.fetch(ctx, r.imgs[i].Fetcher, desc)
	if err != nil {
		return nil, err
	}
	if err := r.addBlob(i, desc, kind, data); err != nil {
		return nil, err
	}
	return data, nil
}

func exportFetchAll(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(NewVerifyingReader(rc, desc))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", desc.Digest, err)
	}
	return data, nil
}

// exportWrite writes the records to w: in-memory ones directly, streamed
// ones from pipes filled ahead by at most opts.MaxConcurrency fetchers.
func exportWrite(ctx context.Context, w io.Writer, imgs []ExportImage, plan exportPlan, opts ExportOptions) error {
	var streamed []*exportBlob
	for _, rec := range plan.records {
		if rec.Blob != nil && rec.Data == nil {
			streamed = append(streamed, rec.Blob)
		}
	}
	shared := make(chan struct{}, exportStreamExtraChunks)
	pipes := make([]*exportPipe, len(streamed))
	for i := range pipes {
		pipes[i] = newExportPipe(shared)
	}
	bufs := &exportBufs{free: make(chan []byte, opts.MaxConcurrency*(exportChunksAhead+1)+exportStreamExtraChunks)}

	tw := tar.NewWriter(w)
	g, gctx := errgroup.WithContext(ctx)
	// fetchErr is the fetchers' first error: when one fails, the others
	// end with context.Canceled, which the writer may report first.
	var fetchErr error
	g.Go(func() error {
		// Launch fetchers in tar order; SetLimit makes Go wait until a
		// fetcher has been drained, so at most MaxConcurrency blobs are ahead.
		fg, fctx := errgroup.WithContext(gctx)
		fg.SetLimit(opts.MaxConcurrency)
		for i, b := range streamed {
			if fctx.Err() != nil {
				break
			}
			fg.Go(func() error {
				if err := pipes[i].fill(fctx, imgs[b.Source].Fetcher, b.Desc, bufs); err != nil {
					// Reported as is when it stops the writer too: name the blob.
					return fmt.Errorf("export blob %s: %w", b.Desc.Digest, err)
				}
				return nil
			})
		}
		fetchErr = fg.Wait()
		return fetchErr
	})
	g.Go(func() error {
		next := 0
		for _, rec := range plan.records {
			var pipe *exportPipe
			if rec.Blob != nil && rec.Data == nil {
				pipe = pipes[next]
				next++
			}
			if err := exportWriteRecord(gctx, tw, rec, pipe, bufs, opts.Progress); err != nil {
				return err
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		if fetchErr != nil && errors.Is(err, context.Canceled) && ctx.Err() == nil {
			return fetchErr
		}
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export: finish tar: %w", err)
	}
	for _, n := range plan.names {
		opts.Progress.Naming(n)
	}
	return nil
}

func exportWriteRecord(ctx context.Context, tw *tar.Writer, rec exportRecord, pipe *exportPipe, bufs *exportBufs, progress ExportProgress) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rec.Blob != nil {
		exportReportStart(progress, rec.Blob)
	}
	if err := tw.WriteHeader(rec.Header); err != nil {
		return fmt.Errorf("export: write %s: %w", rec.Header.Name, err)
	}
	if pipe == nil {
		if _, err := tw.Write(rec.Data); err != nil {
			return fmt.Errorf("export: write %s: %w", rec.Header.Name, err)
		}
		return nil
	}
	desc := rec.Blob.Desc
	var written int64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c, ok := <-pipe.chunks:
			if !ok {
				// fill sets err before it closes chunks.
				if pipe.err != nil {
					return fmt.Errorf("export blob %s: %w", desc.Digest, pipe.err)
				}
				if written != desc.Size {
					return fmt.Errorf("export blob %s: wrote %d of %d bytes: %w", desc.Digest, written, desc.Size, ErrSizeMismatch)
				}
				return nil
			}
			_, err := tw.Write(c.buf)
			pipe.release(c)
			bufs.put(c.buf)
			if err != nil {
				return fmt.Errorf("export: write %s: %w", rec.Header.Name, err)
			}
			written += int64(len(c.buf))
			if rec.Blob.Kind == exportKindLayer {
				progress.Blob(desc, written)
			}
		}
	}
}

// exportPipe carries one blob from its fetcher to the tar writer in bounded
// chunks. Each chunk in the pipe holds a token: one of the pipe's own
// exportChunksAhead, or one of the tokens shared by all pipes. A pipe can
// always use its own tokens, so the blob being written never waits for the
// blobs behind it; the shared ones let blobs behind it download meanwhile.
type exportPipe struct {
	chunks chan exportChunk
	own    chan struct{}
	shared chan struct{}
	err    error // set by fill before chunks is closed
}

// exportChunk is a piece of a blob and the token it holds.
type exportChunk struct {
	buf    []byte
	shared bool
}

func newExportPipe(shared chan struct{}) *exportPipe {
	return &exportPipe{
		// Room for every token, so a send never blocks: tokens bound the pipe.
		chunks: make(chan exportChunk, exportChunksAhead+cap(shared)),
		own:    make(chan struct{}, exportChunksAhead),
		shared: shared,
	}
}

// acquire takes a token, the pipe's own first.
func (p *exportPipe) acquire(ctx context.Context) (shared bool, err error) {
	select {
	case p.own <- struct{}{}:
		return false, nil
	default:
	}
	select {
	case p.own <- struct{}{}:
		return false, nil
	case p.shared <- struct{}{}:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// release gives back the token of a chunk taken from the pipe.
func (p *exportPipe) release(c exportChunk) {
	if c.shared {
		<-p.shared
	} else {
		<-p.own
	}
}

// fill fetches desc, verifying digest and size, into the pipe.
func (p *exportPipe) fill(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor, bufs *exportBufs) error {
	defer close(p.chunks)
	p.err = p.copyFrom(ctx, f, desc, bufs)
	return p.err
}

func (p *exportPipe) copyFrom(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor, bufs *exportBufs) error {
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	r := NewVerifyingReader(rc, desc)
	for {
		shared, err := p.acquire(ctx)
		if err != nil {
			return err
		}
		c := exportChunk{buf: bufs.get(), shared: shared}
		n, err := io.ReadFull(r, c.buf)
		if n > 0 {
			c.buf = c.buf[:n]
			p.chunks <- c
		} else {
			p.release(c)
			bufs.put(c.buf)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// exportBufs recycles chunk buffers within one export.
type exportBufs struct {
	free chan []byte
}

func (b *exportBufs) get() []byte {
	select {
	case buf := <-b.free:
		return buf[:cap(buf)]
	default:
		return make([]byte, exportChunkSize)
	}
}

func (b *exportBufs) put(buf []byte) {
	select {
	case b.free <- buf:
	default:
	}
}

// WriteFileAtomic writes a file through write: to a temporary file beside
// path, renamed to path when write and every close succeed, and removed on
// any error, so that path is either complete or untouched. write receives
// the temporary *os.File itself, unwrapped, so that Export can write blobs
// at their offsets in parallel.
// moby/sys/atomicwriter is not used: it commits on Close and has no way to
// abandon the file when write fails for a reason other than a write error.
func WriteFileAtomic(path string, write func(io.Writer) error) (retErr error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if retErr != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
