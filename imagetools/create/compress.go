package create

import (
	"context"
	"encoding/json"
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

// compressInputs compresses the uncompressed layers of the image manifests
// among inputs read from an Unpacked place (a docker save tar, the Docker
// engine; srcs[i] is where inputs[i] is read) when the push compresses
// them: each such input then carries the manifest that names them
// compressed, known holds it, and the place returned reads the
// compressed layers too. The first input of an append (the target's own
// image) and indexes stay as they are. done removes the spool.
func compressInputs(ctx context.Context, pl place.Place, srcs []sourceAt, inputs []combine.Input, known map[digest.Digest][]byte,
	appended bool, opts Options) (place.Place, func(), error) {
	var todo []int
	for i, in := range inputs {
		if (i > 0 || !appended) && pl.Capabilities(srcs[i].loc).Unpacked && compression.Needed(in.Desc.MediaType, in.Manifest) {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return pl, func() {}, nil
	}
	layers := compression.NewLayers(opts.Compression)
	err := progress.Wrap("[internal] compressing layers ("+string(opts.Compression)+")", opts.Progress, func(sub progress.SubLogger) error {
		for _, i := range todo {
			f, err := pl.Fetcher(ctx, srcs[i].loc)
			if err != nil {
				return err
			}
			desc, dt, err := layers.Manifest(ctx, f, inputs[i].Desc, inputs[i].Manifest, compressLayers, func(format string, args ...any) {
				logf(sub, format, args...)
			})
			if err != nil {
				return err
			}
			inputs[i].Desc, inputs[i].Manifest = desc, dt
			known[desc.Digest] = dt
		}
		return nil
	})
	if err != nil {
		_ = layers.Close()
		return nil, nil, err
	}
	return layers.Place(pl), func() { _ = layers.Close() }, nil
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
// manifest itself, or each manifest an index lists (the index is then
// written again with their new descriptors, its other fields kept). ok is
// false when no layer needed it: the root is copied as it is.
func compressRoot(ctx context.Context, pl place.Place, src ref.Location, desc ocispec.Descriptor, dt []byte, f compression.Format,
	pw progress.Writer) (compressedRoot, bool, error) {
	fetch, err := pl.Fetcher(ctx, src)
	if err != nil {
		return compressedRoot{}, false, err
	}
	todo := map[digest.Digest][]byte{}
	var children []ocispec.Descriptor
	if oci.IsIndex(desc.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(dt, &idx); err != nil {
			return compressedRoot{}, false, fmt.Errorf("parse index %s: %w", src, err)
		}
		children = idx.Manifests
		for _, c := range children {
			if !oci.IsManifest(c.MediaType) {
				continue
			}
			cdt, err := oci.ReadBlob(ctx, fetch, c)
			if err != nil {
				return compressedRoot{}, false, fmt.Errorf("read %s of %s: %w", c.Digest, src, err)
			}
			if compression.Needed(c.MediaType, cdt) {
				todo[c.Digest] = cdt
			}
		}
	} else if compression.Needed(desc.MediaType, dt) {
		todo[desc.Digest] = dt
	}
	if len(todo) == 0 {
		return compressedRoot{}, false, nil
	}
	layers := compression.NewLayers(f)
	out := compressedRoot{known: map[digest.Digest][]byte{}, place: layers.Place(pl), done: func() { _ = layers.Close() }}
	renamed := map[digest.Digest]ocispec.Descriptor{}
	err = progress.Wrap("[internal] compressing layers ("+string(f)+")", pw, func(sub progress.SubLogger) error {
		for _, d := range sortedDigests(todo) {
			in := ocispec.Descriptor{MediaType: desc.MediaType, Digest: d, Size: int64(len(todo[d]))}
			if i := slices.IndexFunc(children, func(c ocispec.Descriptor) bool { return c.Digest == d }); i >= 0 {
				in = children[i]
			}
			nd, ndt, err := layers.Manifest(ctx, fetch, in, todo[d], compressLayers, func(format string, args ...any) { logf(sub, format, args...) })
			if err != nil {
				return err
			}
			renamed[d], out.known[nd.Digest] = nd, ndt
			out.desc, out.data = nd, ndt
		}
		return nil
	})
	if err == nil && children != nil {
		out.desc, out.data, err = rewriteIndex(desc, dt, renamed)
	}
	if err != nil {
		out.done()
		return compressedRoot{}, false, err
	}
	return out, true, nil
}

// rewriteIndex writes index dt again with the descriptors of the manifests
// renamed (media type, digest, size; platform and annotations kept) and
// every other field as it was.
func rewriteIndex(desc ocispec.Descriptor, dt []byte, renamed map[digest.Digest]ocispec.Descriptor) (ocispec.Descriptor, []byte, error) {
	var fields map[string]json.RawMessage
	var idx ocispec.Index
	if err := json.Unmarshal(dt, &fields); err != nil {
		return desc, nil, err
	}
	if err := json.Unmarshal(dt, &idx); err != nil {
		return desc, nil, err
	}
	for i, m := range idx.Manifests {
		if n, ok := renamed[m.Digest]; ok {
			idx.Manifests[i].MediaType, idx.Manifests[i].Digest, idx.Manifests[i].Size = n.MediaType, n.Digest, n.Size
		}
	}
	list, err := json.Marshal(idx.Manifests)
	if err != nil {
		return desc, nil, err
	}
	fields["manifests"] = list
	out, err := json.Marshal(fields)
	if err != nil {
		return desc, nil, err
	}
	desc.Digest, desc.Size = digest.FromBytes(out), int64(len(out))
	return desc, out, nil
}

func sortedDigests(m map[digest.Digest][]byte) []digest.Digest {
	out := slices.Collect(maps.Keys(m))
	slices.Sort(out)
	return out
}
