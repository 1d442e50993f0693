package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Engine answer lines, as the classic image store and the containerd image
// store of the Docker engine both write them.
const (
	loadedImagePrefix   = "Loaded image: "
	loadedImageIDPrefix = "Loaded image ID: "
)

// EngineClient is the part of the Docker Engine API client that ToEngine uses;
// the Docker CLI's client (github.com/moby/moby/client, from
// command.Cli.Client()) implements it and negotiates the API version.
type EngineClient interface {
	ServerVersion(ctx context.Context, opts client.ServerVersionOptions) (client.ServerVersionResult, error)
	Info(ctx context.Context, opts client.InfoOptions) (client.SystemInfoResult, error)
	ImageLoad(ctx context.Context, input io.Reader, opts ...client.ImageLoadOption) (client.ImageLoadResult, error)
}

// EngineError is an error the Docker engine reported while loading; Message
// is as the engine wrote it.
type EngineError struct {
	Message string
}

// Error returns the engine's message.
func (e *EngineError) Error() string { return e.Message }

// EngineOptions controls ToEngine.
type EngineOptions struct {
	// Platforms pick the images loaded from an index; none means the
	// engine's platform. Each must have the engine's OS; an architecture
	// the engine runs only under emulation gets a warning. More than one
	// needs an engine with the containerd image store.
	Platforms []ocispec.Platform
	// AllPlatforms loads every image of an index (containerd image store
	// only); Platforms, or the engine's, then choose manifest.json's image.
	AllPlatforms bool
	// SkipAttestations, IncludeForeign and MaxConcurrency are as in Options.
	SkipAttestations bool
	IncludeForeign   bool
	MaxConcurrency   int
	// Progress receives the steps: "exporting layers", "writing image
	// sha256:..." per image, "naming to NAME" per name. nil reports nothing.
	Progress progress.Writer
}

// engineImage is what ToEngine expects the engine to report for one image.
type engineImage struct {
	// Label names the image in errors.
	Label string
	// ID is the image ID the engine gives it: the config digest in the
	// classic image store, the root's digest (the index's, kept whole) in
	// the containerd image store.
	ID digest.Digest
	// Names are the fully qualified repo:tag names; none means the engine
	// reports the image ID instead.
	Names []string
}

// ToEngine streams the images into the Docker engine's image-load API, as the
// Docker image tar Write writes, without a file in between, and checks the
// engine's answer: every name must be reported loaded, and every image
// without a name by its ID.
//
// Before a byte is sent, the engine is asked its platform and image store
// (AskEngine) and the platforms are checked (engineChoosePlatforms): an
// index must have an image for each, a single image must have the engine's
// OS. The classic store gets one platform (manifest.json, the only part it
// reads, holds one image per index); the containerd image store gets every
// platform asked for in one stream, and keeps the index digest as image ID.
// The Result is Write's, warnings included when the load failed.
func ToEngine(ctx context.Context, engine EngineClient, imgs []Image, opts EngineOptions) (Result, error) {
	if len(imgs) == 0 {
		return Result{}, errors.New("load: no image given")
	}
	pw := opts.Progress
	if pw == nil {
		pw = progress.Discard()
	}
	info, err := AskEngine(ctx, engine)
	if err != nil {
		return Result{}, err
	}
	want, warnings, err := engineChoosePlatforms(info, opts.Platforms, opts.AllPlatforms)
	if err != nil {
		return Result{}, err
	}
	expect, more, err := enginePlan(ctx, imgs, info, want, opts.AllPlatforms)
	warnings = append(warnings, more...)
	if err != nil {
		return Result{Warnings: warnings}, err
	}
	wopts := Options{
		Platforms:        want,
		AllPlatforms:     opts.AllPlatforms,
		Format:           FormatDocker,
		SkipAttestations: opts.SkipAttestations,
		IncludeForeign:   opts.IncludeForeign,
		MaxConcurrency:   opts.MaxConcurrency,
	}
	res, err := engineStream(ctx, engine, imgs, expect, wopts, pw)
	res.Warnings = append(warnings, res.Warnings...)
	return res, err
}

// enginePlan reads each image's manifest and config (indexes: the children
// for want) and returns what the engine must report, one entry per image ID,
// in order, with the warnings found (single images that run under
// emulation). Nothing is sent to the engine yet.
func enginePlan(ctx context.Context, imgs []Image, info EngineInfo, want []ocispec.Platform, all bool) ([]engineImage, []string, error) {
	var (
		out      []engineImage
		warnings []string
	)
	for _, img := range imgs {
		label := img.Name
		if label == "" {
			label = img.Desc.Digest.String()
		}
		if img.Fetcher == nil {
			return nil, warnings, fmt.Errorf("load %s: no fetcher", label)
		}
		name, err := parseImageName(img.Name)
		if err != nil {
			return nil, warnings, fmt.Errorf("load %s: %w", label, err)
		}
		id, w, err := engineImageID(ctx, img, info, want, all)
		warnings = append(warnings, w...)
		if err != nil {
			return nil, warnings, fmt.Errorf("load %s: %w", label, err)
		}
		i := slices.IndexFunc(out, func(l engineImage) bool { return l.ID == id })
		if i < 0 {
			out = append(out, engineImage{Label: label, ID: id})
			i = len(out) - 1
		}
		if name.RepoTag != "" && !slices.Contains(out[i].Names, name.RepoTag) {
			out[i].Names = append(out[i].Names, name.RepoTag)
		}
	}
	return out, warnings, nil
}

// engineImageID checks img against the platforms to load and returns the
// image ID the engine will give it: the config digest of the image
// manifest.json gets (classic store) or the root digest (containerd store).
func engineImageID(ctx context.Context, img Image, info EngineInfo, want []ocispec.Platform, all bool) (digest.Digest, []string, error) {
	desc := img.Desc
	if oci.IsIndex(desc.MediaType) {
		var index ocispec.Index
		if err := engineFetchJSON(ctx, img, desc, &index); err != nil {
			return "", nil, err
		}
		sel, err := selectChildren(index, want, all, true)
		if err != nil {
			return "", nil, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		if info.MultiPlatform {
			return img.Desc.Digest, nil, nil
		}
		desc = *sel.Primary
	} else if !oci.IsManifest(desc.MediaType) {
		return "", nil, fmt.Errorf("unsupported media type %q", desc.MediaType)
	}
	var m ocispec.Manifest
	if err := engineFetchJSON(ctx, img, desc, &m); err != nil {
		return "", nil, err
	}
	id := m.Config.Digest
	if info.MultiPlatform {
		id = img.Desc.Digest
	}
	if desc.Digest != img.Desc.Digest {
		return id, nil, nil
	}
	// A single image is loaded whatever its platform: check its OS here.
	var cfg ocispec.Image
	if err := engineFetchJSON(ctx, img, m.Config, &cfg); err != nil {
		return "", nil, err
	}
	if cfg.OS != info.Platform.OS {
		return "", nil, fmt.Errorf("image is %s, the engine runs %s and holds %s images only: %w", platforms.FormatAll(cfg.Platform), platforms.FormatAll(info.Platform), info.Platform.OS, imagetools.ErrEnginePlatform)
	}
	w, err := engineCheckPlatform(info.Platform, cfg.Platform)
	return id, w, err
}

func engineFetchJSON(ctx context.Context, img Image, desc ocispec.Descriptor, v any) error {
	if err := validateDigest(desc.Digest); err != nil {
		return err
	}
	data, err := oci.ReadBlob(ctx, img.Fetcher, desc)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", desc.Digest, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("parse %s: %w", desc.Digest, err)
	}
	return nil
}

// engineStream writes the tar into a pipe that the engine's image-load request
// reads, then checks the engine's answer and completes the steps.
func engineStream(ctx context.Context, engine EngineClient, imgs []Image, expect []engineImage, opts Options, pw progress.Writer) (Result, error) {
	pr, pwr := io.Pipe()
	var (
		res                Result
		exportErr, loadErr error
		answer             engineAnswer
		writing            []func(error) error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		exportErr = progress.Wrap("exporting layers", pw, func(sub progress.SubLogger) error {
			sent := progress.NewByteCounter(sub, "sending tarball", 0)
			defer sent.Done()
			var err error
			res, err = Write(gctx, io.MultiWriter(pwr, sent), imgs, opts)
			return err
		})
		pwr.CloseWithError(exportErr)
		if exportErr == nil {
			// The engine writes the images once it has the whole tar.
			for _, l := range expect {
				writing = append(writing, progress.OneOff(pw, "writing image "+l.ID.String()))
			}
		}
		return exportErr
	})
	g.Go(func() error {
		answer, loadErr = engineSend(gctx, engine, pr)
		// Stops Write when the engine answered before reading everything.
		pr.CloseWithError(loadErr)
		return loadErr
	})
	_ = g.Wait() // both errors are kept and weighed below
	if err := engineCause(ctx, exportErr, loadErr); err != nil {
		for _, done := range writing {
			_ = done(err)
		}
		return res, err
	}
	return res, engineCheckAnswer(pw, expect, answer, writing)
}

// engineCause picks the error to report: the export's own failure (a
// registry error, which the engine sees as a cut tar) before the engine's,
// and the engine's when the export only failed because the engine stopped.
func engineCause(ctx context.Context, exportErr, loadErr error) error {
	if loadErr != nil && (exportErr == nil || errors.Is(exportErr, loadErr) ||
		errors.Is(exportErr, io.ErrClosedPipe) || (errors.Is(exportErr, context.Canceled) && ctx.Err() == nil)) {
		return loadErr
	}
	return exportErr
}

// engineAnswer is what the engine reported loaded.
type engineAnswer struct {
	// Names are the "Loaded image: " names, fully qualified.
	Names []string
	// IDs are the "Loaded image ID: " image IDs.
	IDs []string
}

// engineSend posts the tar to the engine and reads its answer.
func engineSend(ctx context.Context, engine EngineClient, tarStream io.Reader) (engineAnswer, error) {
	// Quiet: the engine's per-layer progress bars would only be thrown away.
	res, err := engine.ImageLoad(ctx, tarStream, client.ImageLoadWithQuiet(true))
	if err != nil {
		return engineAnswer{}, fmt.Errorf("load into the Docker engine: %w", err)
	}
	defer res.Close()
	answer, err := readEngineAnswer(res)
	if err != nil {
		return answer, fmt.Errorf("load into the Docker engine: %w", err)
	}
	return answer, nil
}

// engineMessage is one message of the engine's JSON stream; "error" is the
// older form of errorDetail.
type engineMessage struct {
	Stream       string            `json:"stream"`
	Error        *jsonstream.Error `json:"errorDetail"`
	ErrorMessage string            `json:"error"`
}

// readEngineAnswer reads the engine's JSON message stream: "Loaded image:"
// and "Loaded image ID:" lines, or an error, returned as an *EngineError.
func readEngineAnswer(r io.Reader) (engineAnswer, error) {
	var a engineAnswer
	dec := json.NewDecoder(r)
	for {
		var m engineMessage
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return a, nil
		}
		if err != nil {
			return a, fmt.Errorf("read the answer: %w", err)
		}
		switch {
		case m.Error != nil && m.Error.Message != "":
			return a, &EngineError{Message: m.Error.Message}
		case m.ErrorMessage != "":
			return a, &EngineError{Message: m.ErrorMessage}
		}
		for _, line := range strings.Split(m.Stream, "\n") {
			line = strings.TrimSpace(line)
			if id, ok := strings.CutPrefix(line, loadedImageIDPrefix); ok {
				a.IDs = append(a.IDs, id)
			} else if name, ok := strings.CutPrefix(line, loadedImagePrefix); ok {
				a.Names = append(a.Names, engineNormalizeName(name))
			}
		}
	}
}

// engineNormalizeName qualifies a name as the engine writes it ("app:1" for
// docker.io/library/app:1) fully; a name that does not parse is kept.
func engineNormalizeName(name string) string {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	return ref.String()
}

// engineCheckAnswer completes the "writing image" steps and runs one "naming
// to" step per name; it fails when a name or an unnamed image's ID is
// missing from the answer, saying which.
func engineCheckAnswer(pw progress.Writer, expect []engineImage, answer engineAnswer, writing []func(error) error) error {
	var missing []string
	for i, l := range expect {
		var err error
		if len(l.Names) == 0 && !slices.Contains(answer.IDs, l.ID.String()) {
			missing = append(missing, l.Label+" (image ID "+l.ID.String()+")")
			err = imagetools.ErrNotLoaded
		}
		_ = writing[i](err)
		for _, n := range l.Names {
			var err error
			if !slices.Contains(answer.Names, n) {
				missing = append(missing, n)
				err = imagetools.ErrNotLoaded
			}
			_ = progress.OneOff(pw, "naming to "+n)(err)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	reported := slices.Concat(answer.Names, answer.IDs)
	if len(reported) == 0 {
		reported = []string{"nothing"}
	}
	return fmt.Errorf("load %s: %w (the engine reported %s)", strings.Join(missing, ", "), imagetools.ErrNotLoaded, strings.Join(reported, ", "))
}
