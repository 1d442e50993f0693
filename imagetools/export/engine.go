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
	// Platform picks the image loaded from an index; nil means the engine's
	// platform. It must be a platform the engine runs.
	Platform *ocispec.Platform
	// IncludeForeign and MaxConcurrency are as in Options.
	IncludeForeign bool
	MaxConcurrency int
	// Progress receives the steps: "exporting layers", "writing image
	// sha256:..." per image, "naming to NAME" per name. nil reports nothing.
	Progress progress.Writer
}

// engineImage is what ToEngine expects the engine to report for one image of
// manifest.json.
type engineImage struct {
	// Label names the image in errors.
	Label string
	// Config is the config digest, which is the image ID of the classic store.
	Config digest.Digest
	// Names are the fully qualified repo:tag names; none means the engine
	// reports the image ID instead.
	Names []string
}

// ToEngine streams the images into the Docker engine's image-load API, as the
// Docker image tar Write writes, without a file in between, and checks the
// engine's answer: every name must be reported loaded, and every image
// without a name by its ID.
//
// Before a byte is sent, the engine is asked its platform: the requested
// platform must be one it runs, an index must have an image for it, and a
// single image's config must name a platform the engine runs. Only one
// platform is sent; manifest.json, the only part the classic image store
// reads, holds one image per index anyway. The Result is Write's, warnings
// included when the load failed.
func ToEngine(ctx context.Context, engine EngineClient, imgs []Image, opts EngineOptions) (Result, error) {
	if len(imgs) == 0 {
		return Result{}, errors.New("load: no image given")
	}
	pw := opts.Progress
	if pw == nil {
		pw = progress.Discard()
	}
	enginePlatform, err := EnginePlatform(ctx, engine)
	if err != nil {
		return Result{}, err
	}
	want, err := engineChoosePlatform(enginePlatform, opts.Platform)
	if err != nil {
		return Result{}, err
	}
	expect, err := enginePlan(ctx, imgs, enginePlatform, want)
	if err != nil {
		return Result{}, err
	}
	wopts := Options{
		Platforms:      []ocispec.Platform{want},
		Format:         FormatDocker,
		IncludeForeign: opts.IncludeForeign,
		MaxConcurrency: opts.MaxConcurrency,
	}
	return engineStream(ctx, engine, imgs, expect, wopts, pw)
}

// EnginePlatform asks the Docker engine the platform it runs, normalized
// (the engine reports GOOS and GOARCH, without a variant).
func EnginePlatform(ctx context.Context, engine EngineClient) (ocispec.Platform, error) {
	v, err := engine.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("ask the Docker engine its platform: %w", err)
	}
	if v.Os == "" || v.Arch == "" {
		return ocispec.Platform{}, fmt.Errorf("ask the Docker engine its platform: the engine reports OS %q and architecture %q", v.Os, v.Arch)
	}
	return platforms.Normalize(ocispec.Platform{OS: v.Os, Architecture: v.Arch}), nil
}

// engineChoosePlatform returns the platform to load: the requested one when the
// engine runs it (containerd platform matching: an amd64 engine runs 386
// too), else the engine's own.
func engineChoosePlatform(engine ocispec.Platform, requested *ocispec.Platform) (ocispec.Platform, error) {
	if requested == nil {
		return engine, nil
	}
	if !oci.Serves(engine, *requested) {
		return ocispec.Platform{}, fmt.Errorf("load %s: the engine runs %s: %w", platforms.FormatAll(*requested), platforms.FormatAll(engine), imagetools.ErrEnginePlatform)
	}
	return *requested, nil
}

// enginePlan reads each image's manifest and config (indexes: the child for
// want) and returns what the engine must report, one entry per config, in
// manifest.json order. Nothing is sent to the engine yet.
func enginePlan(ctx context.Context, imgs []Image, engine, want ocispec.Platform) ([]engineImage, error) {
	var out []engineImage
	for _, img := range imgs {
		label := img.Name
		if label == "" {
			label = img.Desc.Digest.String()
		}
		if img.Fetcher == nil {
			return nil, fmt.Errorf("load %s: no fetcher", label)
		}
		name, err := parseImageName(img.Name)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", label, err)
		}
		cfg, err := engineConfigDigest(ctx, img, engine, want)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", label, err)
		}
		i := slices.IndexFunc(out, func(l engineImage) bool { return l.Config == cfg })
		if i < 0 {
			out = append(out, engineImage{Label: label, Config: cfg})
			i = len(out) - 1
		}
		if name.RepoTag != "" && !slices.Contains(out[i].Names, name.RepoTag) {
			out[i].Names = append(out[i].Names, name.RepoTag)
		}
	}
	return out, nil
}

// engineConfigDigest returns the config digest of the image manifest.json
// gets for img, after checking its platform against the engine's.
func engineConfigDigest(ctx context.Context, img Image, engine, want ocispec.Platform) (digest.Digest, error) {
	desc := img.Desc
	if oci.IsIndex(desc.MediaType) {
		var index ocispec.Index
		if err := engineFetchJSON(ctx, img, desc, &index); err != nil {
			return "", err
		}
		sel, err := selectChildren(index, []ocispec.Platform{want}, false, true)
		if err != nil {
			return "", fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		desc = *sel.Primary
	} else if !oci.IsManifest(desc.MediaType) {
		return "", fmt.Errorf("unsupported media type %q", desc.MediaType)
	}
	var m ocispec.Manifest
	if err := engineFetchJSON(ctx, img, desc, &m); err != nil {
		return "", err
	}
	if desc.Digest == img.Desc.Digest {
		// A single image is loaded whatever its platform: check it here.
		var cfg ocispec.Image
		if err := engineFetchJSON(ctx, img, m.Config, &cfg); err != nil {
			return "", err
		}
		if !oci.Serves(engine, cfg.Platform) {
			return "", fmt.Errorf("image is %s, the engine runs %s: %w", platforms.FormatAll(cfg.Platform), platforms.FormatAll(engine), imagetools.ErrEnginePlatform)
		}
	}
	return m.Config.Digest, nil
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
				writing = append(writing, progress.OneOff(pw, "writing image "+l.Config.String()))
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
		if len(l.Names) == 0 && !slices.Contains(answer.IDs, l.Config.String()) {
			missing = append(missing, l.Label+" (image ID "+l.Config.String()+")")
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
