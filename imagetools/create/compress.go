package create

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/docker-imgx/docker-imgx/imagetools/combine"
	"github.com/docker-imgx/docker-imgx/imagetools/compression"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// compressLayers is how many layers are compressed at once: one, as each
// compression keeps every core busy (and its writer is reused for the next).
const compressLayers = 1

// compressing reports whether the push compresses uncompressed layers: a
// compression is asked for and a target stores layers compressed (a
// registry). Every target then gets the same compressed image.
func compressing(pl place.Place, targets []ref.Location, f compression.Format) bool {
	if f == compression.None || f == "" {
		return false
	}
	for _, t := range targets {
		if pl.Capabilities(t).Compress {
			return true
		}
	}
	return false
}

// compressInputs compresses the uncompressed layers of the images among
// inputs read from an Unpacked place (a docker save tar, the Docker
// engine; srcs[i] is where inputs[i] is read) when the push compresses
// them: an image manifest, or the images an index lists (those the
// platform filter keeps; see plainIndex). Each such input then carries the
// manifest or index that names them compressed, known holds every
// manifest written anew, and the place returned reads the compressed
// layers too. The first input of an append (the target's own image) stays
// as it is. done removes the spool.
func compressInputs(ctx context.Context, pl place.Place, srcs []sourceAt, inputs []combine.Input, known map[digest.Digest][]byte,
	appended bool, budget *oci.GraphBudget, opts Options) (place.Place, func(), error) {
	todo, indexes, err := plainInputs(ctx, pl, srcs, inputs, known, appended, budget, opts.Platforms)
	if err != nil || len(todo) == 0 {
		return pl, func() {}, err
	}
	layers := compression.NewLayers(opts.Compression)
	err = progress.Wrap("[internal] compressing layers ("+string(opts.Compression)+")", opts.Progress, func(sub progress.SubLogger) error {
		logs := func(format string, args ...any) { logf(sub, format, args...) }
		for _, i := range todo {
			f, err := pl.Fetcher(ctx, srcs[i].loc)
			if err != nil {
				return err
			}
			in := &inputs[i]
			if p, ok := indexes[i]; ok {
				var manifests map[digest.Digest][]byte
				if in.Desc, in.Manifest, manifests, err = p.compress(ctx, layers, f, logs); err != nil {
					return err
				}
				maps.Copy(known, manifests)
			} else if in.Desc, in.Manifest, err = layers.Manifest(ctx, f, in.Desc, in.Manifest, compressLayers, logs); err != nil {
				return err
			}
			known[in.Desc.Digest] = in.Manifest
		}
		return nil
	})
	if err != nil {
		_ = layers.Close()
		return nil, nil, err
	}
	return layers.Place(pl), func() { _ = layers.Close() }, nil
}

// plainInputs lists the inputs compressInputs compresses, in order, with
// what each index among them needs (read here, before any compression;
// known keeps the manifests read, for the push).
func plainInputs(ctx context.Context, pl place.Place, srcs []sourceAt, inputs []combine.Input, known map[digest.Digest][]byte,
	appended bool, budget *oci.GraphBudget, plats []ocispec.Platform) ([]int, map[int]plainIndex, error) {
	var todo []int
	indexes := map[int]plainIndex{}
	for i, in := range inputs {
		if (i == 0 && appended) || !pl.Capabilities(srcs[i].loc).Unpacked {
			continue
		}
		if !oci.IsIndex(in.Desc.MediaType) {
			if compression.Needed(in.Desc.MediaType, in.Manifest) {
				todo = append(todo, i)
			}
			continue
		}
		f, err := pl.Fetcher(ctx, srcs[i].loc)
		if err != nil {
			return nil, nil, err
		}
		p, err := readPlainIndex(ctx, f, in.Desc, in.Manifest, plats, budget)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", in.Name, err)
		}
		maps.Copy(known, p.read)
		if len(p.todo) > 0 {
			todo, indexes[i] = append(todo, i), p
		}
	}
	return todo, indexes, nil
}

// compressedRoot is a copy's root with the plain layers of its images
// compressed: its new descriptor and bytes, the rewritten manifests under
// an index (known), and the place that also serves the compressed layers.
type compressedRoot struct {
	desc  ocispec.Descriptor
	data  []byte
	known map[digest.Digest][]byte
	place place.Place
	done  func()
}

// compressRoot compresses, for Copy, the plain layers of the image at src
// read from an Unpacked place (a docker save tar, the Docker engine): the
// manifest itself, or each image an index lists (plainIndex). ok is false
// when no layer needed it: the root is copied as it is.
func compressRoot(ctx context.Context, pl place.Place, src ref.Location, desc ocispec.Descriptor, dt []byte, f compression.Format,
	pw progress.Writer) (compressedRoot, bool, error) {
	fetch, err := pl.Fetcher(ctx, src)
	if err != nil {
		return compressedRoot{}, false, err
	}
	var p plainIndex
	if oci.IsIndex(desc.MediaType) {
		if p, err = readPlainIndex(ctx, fetch, desc, dt, nil, nil); err != nil {
			return compressedRoot{}, false, fmt.Errorf("%s: %w", src, err)
		}
		if len(p.todo) == 0 {
			return compressedRoot{}, false, nil
		}
	} else if !compression.Needed(desc.MediaType, dt) {
		return compressedRoot{}, false, nil
	}
	layers := compression.NewLayers(f)
	out := compressedRoot{known: map[digest.Digest][]byte{}, place: layers.Place(pl), done: func() { _ = layers.Close() }}
	err = progress.Wrap("[internal] compressing layers ("+string(f)+")", pw, func(sub progress.SubLogger) error {
		logs := func(format string, args ...any) { logf(sub, format, args...) }
		var err error
		if p.todo != nil {
			out.desc, out.data, out.known, err = p.compress(ctx, layers, fetch, logs)
			return err
		}
		out.desc, out.data, err = layers.Manifest(ctx, fetch, desc, dt, compressLayers, logs)
		out.known[out.desc.Digest] = out.data
		return err
	})
	if err != nil {
		out.done()
		return compressedRoot{}, false, err
	}
	return out, true, nil
}

func sortedDigests(m map[digest.Digest][]byte) []digest.Digest {
	out := slices.Collect(maps.Keys(m))
	slices.Sort(out)
	return out
}
