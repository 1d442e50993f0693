package create

import (
	"context"

	"github.com/docker-imgx/docker-imgx/imagetools/combine"
	"github.com/docker-imgx/docker-imgx/imagetools/compression"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
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
