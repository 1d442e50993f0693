// Package daemon is the Docker engine place: docker-daemon:// locations name
// images of the Docker engine of the current Docker context. An image is read
// through the engine's image-save API, streamed into a temporary file that
// has no name, and then read as an image tar (package imagetar): an engine
// with the containerd image store saves an index with every platform it
// holds, the classic store one image. Engine implements place.Backend and no
// place.Writer: as a place it is only read from. The write side sits beside
// it: Load streams an image tar, written by a func handed in (export --load),
// into the image-load API and checks the engine's answer, Pull has the engine
// pull a registry image itself by its digest and names it as a load would;
// Ask and Info say which platforms and image store the engine has before a
// byte is sent.
package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/docker-imgx/docker-imgx/imagetools/imagetar"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/termtext"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Client is the part of the Docker Engine API client the place uses; the
// Docker CLI's client (command.Cli.Client()) implements it.
type Client interface {
	ImageSave(ctx context.Context, images []string, opts ...client.ImageSaveOption) (client.ImageSaveResult, error)
}

// Options configure the Docker engine place.
type Options struct {
	// Client returns the engine's client; it is called on first use only,
	// so that commands that never read the engine never dial it.
	Client func() (Client, error)
	// Archive says where saved images are spooled and how large they may grow.
	Archive imagetar.Options
	// Progress shows the bytes saved; nil shows nothing.
	Progress progress.Writer
}

// Engine is the place of docker-daemon:// locations. Each image is saved
// once and kept open until Close.
type Engine struct {
	opts  Options
	saved imagetar.Set
}

var _ place.Backend = (*Engine)(nil)

// New returns the Docker engine place.
func New(opts Options) *Engine {
	return &Engine{opts: opts}
}

// Close closes every saved image (and so removes its spool).
func (e *Engine) Close() error { return e.saved.Close() }

// get saves loc's image, or returns the save that holds it already (a
// location pinned to a digest read from a save).
func (e *Engine) get(ctx context.Context, loc ref.Location) (*imagetar.Archive, error) {
	var reuse func(*imagetar.Archive) bool
	if loc.Tag == "" && loc.Digest != "" {
		reuse = func(a *imagetar.Archive) bool { return a.Has(loc.Digest) }
	}
	return e.saved.Get(loc.EngineRef(), reuse, func() (*imagetar.Archive, error) { return e.save(ctx, loc) })
}

// save streams the image out of the engine into a spool and opens it.
func (e *Engine) save(ctx context.Context, loc ref.Location) (*imagetar.Archive, error) {
	if e.opts.Client == nil {
		return nil, fmt.Errorf("%s: no Docker engine client", loc)
	}
	c, err := e.opts.Client()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	rc, err := c.ImageSave(ctx, []string{loc.EngineRef()})
	if err != nil {
		return nil, engineError(loc, err)
	}
	defer rc.Close()
	var f *os.File
	spool := func(sub progress.SubLogger) error {
		var in io.Reader = rc
		if sub != nil {
			counter := progress.NewByteCounter(sub, "bytes", 0)
			defer counter.Done()
			in = io.TeeReader(rc, counter)
		}
		limit := e.opts.Archive.MaxDecompressed
		if limit <= 0 {
			limit = maxSave
		}
		f, _, err = imagetar.Spool(ctx, in, e.opts.Archive.TempDir, limit, func(limit int64) error {
			return fmt.Errorf("the engine's save is over %d bytes, the limit of a save spooled to disk%s", limit, e.opts.Archive.LimitHint)
		})
		return err
	}
	if e.opts.Progress != nil {
		err = progress.Wrap("saving "+loc.EngineRef()+" from the Docker engine", e.opts.Progress, spool)
	} else {
		err = spool(nil)
	}
	if err != nil {
		return nil, engineError(loc, err)
	}
	return imagetar.Open(ctx, f, loc.String(), e.opts.Archive)
}

// maxSave bounds the spool of an image saved from the engine (unless
// Options.Archive.MaxDecompressed replaces it): the largest images pushed
// are tens of GB.
const maxSave = 64 << 30

// engineError says plainly that the engine lacks the image. The classic
// image store of older Docker engines answers a save of a missing image
// with a 500 whose only trace of the cause is its text, so the class alone
// does not tell it: the two texts they write are matched too.
func engineError(loc ref.Location, err error) error {
	msg := err.Error()
	if errdefs.IsNotFound(err) || strings.Contains(msg, "No such image") || strings.Contains(msg, "reference does not exist") {
		return fmt.Errorf("%s: the Docker engine has no image %s (docker image ls lists what it holds): %w", loc, loc.EngineRef(), errdefs.ErrNotFound)
	}
	return fmt.Errorf("%s: save from the Docker engine: %w", loc, engineText{err})
}

// maxEngineText bounds the engine's words quoted in an error line.
const maxEngineText = 512

// engineText is an error of the engine or its client, its text made one
// safe line (termtext.Line): the engine's words reach the terminal.
type engineText struct{ err error }

func (e engineText) Error() string { return termtext.Line(e.err.Error(), maxEngineText) }
func (e engineText) Unwrap() error { return e.err }

// Capabilities implements place.Backend: the engine's images are read one
// by one, without referrers, as the engine keeps them (plain layers are
// compressed for a registry).
func (e *Engine) Capabilities(ref.Location) place.Capabilities {
	return place.Capabilities{Unpacked: true}
}

// Manifest implements place.Reader: the saved image's root (an index when
// the engine saved several platforms).
func (e *Engine) Manifest(ctx context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	a, err := e.get(ctx, loc)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	// The save holds only this image (under the engine's names and, for
	// the classic store, a manifest made here): a location pinned to a
	// digest the save holds is read by it, any other is the only image.
	if loc.Digest == "" || !a.Has(loc.Digest) {
		loc.Digest = ""
	}
	loc.Tag = ""
	return a.Manifest(ctx, loc)
}

// Fetcher implements place.Reader: the saved image's content.
func (e *Engine) Fetcher(ctx context.Context, loc ref.Location) (remotes.Fetcher, error) {
	return e.get(ctx, loc)
}

// Tags implements place.Reader: the engine's tags are not listed.
func (e *Engine) Tags(context.Context, ref.Location, int) (map[string]bool, bool, error) {
	return map[string]bool{}, true, nil
}

// Referrers implements place.Reader: the engine keeps no referrers index.
func (e *Engine) Referrers(context.Context, ref.Location) ([]ocispec.Descriptor, bool, error) {
	return nil, false, nil
}
