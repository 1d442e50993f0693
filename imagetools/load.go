package imagetools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Sentinels of EngineLoad, for errors.Is.
var (
	// ErrEnginePlatform is returned when the Docker engine cannot run the
	// requested platform or an image's platform.
	ErrEnginePlatform = errors.New("platform not supported by the Docker engine")
	// ErrNotLoaded is returned when the engine's answer does not report an
	// image or name as loaded.
	ErrNotLoaded = errors.New("not reported loaded by the Docker engine")
)

// Engine answer lines, as the classic image store and the containerd image
// store of the Docker engine both write them.
const (
	loadedImagePrefix   = "Loaded image: "
	loadedImageIDPrefix = "Loaded image ID: "
)

// EngineClient is the part of the Docker Engine API client that EngineLoad uses;
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

// EngineLoadOptions controls EngineLoad.
type EngineLoadOptions struct {
	// Platform picks the image loaded from an index; nil means the engine's
	// platform. It must be a platform the engine runs.
	Platform *ocispec.Platform
	// IncludeForeign and MaxConcurrency are as in ExportOptions.
	IncludeForeign bool
	MaxConcurrency int
	// Progress receives the steps: "exporting layers", "writing image
	// sha256:..." per image, "naming to NAME" per name. nil reports nothing.
	Progress progress.Writer
}

// loadImage is what EngineLoad expects the engine to report for one image of
// manifest.json.
type loadImage struct {
	// Label names the image in errors.
	Label string
	// Config is the config digest, which is the image ID of the classic store.
	Config digest.Digest
	// Names are the fully qualified repo:tag names; none means the engine
	// reports the image ID instead.
	Names []string
}

// EngineLoad streams the images into the Docker engine's image-load API, as the
// Docker image tar Export writes, without a file in between, and checks the
// engine's answer: every name must be reported loaded, and every image
// without a name by its ID.
//
// Before a byte is sent, the engine is asked its platform: the requested
// platform must be one it runs, an index must have an image for it, and a
// single image's config must name a platform the engine runs. Only one
// platform is sent; manifest.json, the only part the classic image store
// reads, holds one image per index anyway.
func EngineLoad(ctx context.Context, engine EngineClient, imgs []ExportImage, opts EngineLoadOptions) error {
	if len(imgs) == 0 {
		return errors.New("load: no image given")
	}
	pw := opts.Progress
	if pw == nil {
		pw = progress.Discard()
	}
	enginePlatform, err := EnginePlatform(ctx, engine)
	if err != nil {
		return err
	}
	want, err := loadPlatform(enginePlatform, opts.Platform)
	if err != nil {
		return err
	}
	expect, err := loadPlan(ctx, imgs, enginePlatform, want)
	if err != nil {
		return err
	}
	exportOpts := ExportOptions{
		Platforms:      []ocispec.Platform{want},
		Format:         ExportFormatDocker,
		IncludeForeign: opts.IncludeForeign,
		MaxConcurrency: opts.MaxConcurrency,
	}
	return loadStream(ctx, engine, imgs, expect, exportOpts, pw)
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

// loadPlatform returns the platform to load: the requested one when the
// engine runs it (containerd platform matching: an amd64 engine runs 386
// too), else the engine's own.
func loadPlatform(engine ocispec.Platform, requested *ocispec.Platform) (ocispec.Platform, error) {
	if requested == nil {
		return engine, nil
	}
	if !platforms.Only(engine).Match(*requested) {
		return ocispec.Platform{}, fmt.Errorf("load %s: the engine runs %s: %w", platforms.FormatAll(*requested), platforms.FormatAll(engine), ErrEnginePlatform)
	}
	return *requested, nil
}

// loadPlan reads each image's manifest and config (indexes: the child for
// want) and returns what the engine must report, one entry per config, in
// manifest.json order. Nothing is sent to the engine yet.
func loadPlan(ctx context.Context, imgs []ExportImage, engine, want ocispec.Platform) ([]loadImage, error) {
	var out []loadImage
	for _, img := range imgs {
		label := img.Name
		if label == "" {
			label = img.Desc.Digest.String()
		}
		if img.Fetcher == nil {
			return nil, fmt.Errorf("load %s: no fetcher", label)
		}
		name, err := exportParseName(img.Name)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", label, err)
		}
		cfg, err := loadConfigDigest(ctx, img, engine, want)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", label, err)
		}
		i := slices.IndexFunc(out, func(l loadImage) bool { return l.Config == cfg })
		if i < 0 {
			out = append(out, loadImage{Label: label, Config: cfg})
			i = len(out) - 1
		}
		if name.RepoTag != "" && !slices.Contains(out[i].Names, name.RepoTag) {
			out[i].Names = append(out[i].Names, name.RepoTag)
		}
	}
	return out, nil
}

// loadConfigDigest returns the config digest of the image manifest.json
// gets for img, after checking its platform against the engine's.
func loadConfigDigest(ctx context.Context, img ExportImage, engine, want ocispec.Platform) (digest.Digest, error) {
	desc := img.Desc
	if images.IsIndexType(desc.MediaType) {
		var index ocispec.Index
		if err := loadFetchJSON(ctx, img, desc, &index); err != nil {
			return "", err
		}
		sel, err := exportSelectChildren(index, []ocispec.Platform{want}, false, true)
		if err != nil {
			return "", fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		desc = *sel.Primary
	} else if !images.IsManifestType(desc.MediaType) {
		return "", fmt.Errorf("unsupported media type %q", desc.MediaType)
	}
	var m ocispec.Manifest
	if err := loadFetchJSON(ctx, img, desc, &m); err != nil {
		return "", err
	}
	if desc.Digest == img.Desc.Digest {
		// A single image is loaded whatever its platform: check it here.
		var cfg ocispec.Image
		if err := loadFetchJSON(ctx, img, m.Config, &cfg); err != nil {
			return "", err
		}
		if !platforms.Only(engine).Match(cfg.Platform) {
			return "", fmt.Errorf("image is %s, the engine runs %s: %w", platforms.FormatAll(cfg.Platform), platforms.FormatAll(engine), ErrEnginePlatform)
		}
	}
	return m.Config.Digest, nil
}

func loadFetchJSON(ctx context.Context, img ExportImage, desc ocispec.Descriptor, v any) error {
	if err := exportValidateDigest(desc.Digest); err != nil {
		return err
	}
	if desc.Size > exportMaxSmallBlob {
		return fmt.Errorf("blob %s: %d bytes is too large for a manifest or config (limit %d)", desc.Digest, desc.Size, exportMaxSmallBlob)
	}
	data, err := exportFetchAll(ctx, img.Fetcher, desc)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("parse %s: %w", desc.Digest, err)
	}
	return nil
}

// loadStream writes the tar into a pipe that the engine's image-load request
// reads, then checks the engine's answer and completes the steps.
func loadStream(ctx context.Context, engine EngineClient, imgs []ExportImage, expect []loadImage, opts ExportOptions, pw progress.Writer) error {
	pr, pwr := io.Pipe()
	var (
		exportErr, loadErr error
		answer             loadAnswer
		writing            []func(error) error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		exportErr = progress.Wrap("exporting layers", pw, func(sub progress.SubLogger) error {
			sent := progress.NewByteCounter(sub, "sending tarball", 0)
			defer sent.Done()
			opts.Progress = loadWarnings{sub: sub}
			return Export(gctx, io.MultiWriter(pwr, sent), imgs, opts)
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
		answer, loadErr = loadSend(gctx, engine, pr)
		// Stops Export when the engine answered before reading everything.
		pr.CloseWithError(loadErr)
		return loadErr
	})
	_ = g.Wait() // both errors are kept and weighed below
	if err := loadCause(ctx, exportErr, loadErr); err != nil {
		for _, done := range writing {
			_ = done(err)
		}
		return err
	}
	return loadCheckAnswer(pw, expect, answer, writing)
}

// loadCause picks the error to report: the export's own failure (a
// registry error, which the engine sees as a cut tar) before the engine's,
// and the engine's when the export only failed because the engine stopped.
func loadCause(ctx context.Context, exportErr, loadErr error) error {
	if loadErr != nil && (exportErr == nil || errors.Is(exportErr, loadErr) ||
		errors.Is(exportErr, io.ErrClosedPipe) || (errors.Is(exportErr, context.Canceled) && ctx.Err() == nil)) {
		return loadErr
	}
	return exportErr
}

// loadWarnings passes Export's warnings to the "exporting layers" step.
type loadWarnings struct {
	NoExportProgress
	sub progress.SubLogger
}

// Warn implements ExportProgress.
func (w loadWarnings) Warn(msg string) {
	w.sub.Log(2, []byte("WARNING: "+msg+"\n"))
}

// loadAnswer is what the engine reported loaded.
type loadAnswer struct {
	// Names are the "Loaded image: " names, fully qualified.
	Names []string
	// IDs are the "Loaded image ID: " image IDs.
	IDs []string
}

// loadSend posts the tar to the engine and reads its answer.
func loadSend(ctx context.Context, engine EngineClient, tarStream io.Reader) (loadAnswer, error) {
	// Quiet: the engine's per-layer progress bars would only be thrown away.
	res, err := engine.ImageLoad(ctx, tarStream, client.ImageLoadWithQuiet(true))
	if err != nil {
		return loadAnswer{}, fmt.Errorf("load into the Docker engine: %w", err)
	}
	defer res.Close()
	answer, err := readLoadAnswer(res)
	if err != nil {
		return answer, fmt.Errorf("load into the Docker engine: %w", err)
	}
	return answer, nil
}

// loadMessage is one message of the engine's JSON stream; "error" is the
// older form of errorDetail.
type loadMessage struct {
	Stream       string            `json:"stream"`
	Error        *jsonstream.Error `json:"errorDetail"`
	ErrorMessage string            `json:"error"`
}

// readLoadAnswer reads the engine's JSON message stream: "Loaded image:"
// and "Loaded image ID:" lines, or an error, returned as an *EngineError.
func readLoadAnswer(r io.Reader) (loadAnswer, error) {
	var a loadAnswer
	dec := json.NewDecoder(r)
	for {
		var m loadMessage
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
				a.Names = append(a.Names, loadNormalizeName(name))
			}
		}
	}
}

// loadNormalizeName qualifies a name as the engine writes it ("app:1" for
// docker.io/library/app:1) fully; a name that does not parse is kept.
func loadNormalizeName(name string) string {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	return ref.String()
}

// loadCheckAnswer completes the "writing image" steps and runs one "naming
// to" step per name; it fails when a name or an unnamed image's ID is
// missing from the answer, saying which.
func loadCheckAnswer(pw progress.Writer, expect []loadImage, answer loadAnswer, writing []func(error) error) error {
	var missing []string
	for i, l := range expect {
		var err error
		if len(l.Names) == 0 && !slices.Contains(answer.IDs, l.Config.String()) {
			missing = append(missing, l.Label+" (image ID "+l.Config.String()+")")
			err = ErrNotLoaded
		}
		_ = writing[i](err)
		for _, n := range l.Names {
			var err error
			if !slices.Contains(answer.Names, n) {
				missing = append(missing, n)
				err = ErrNotLoaded
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
	return fmt.Errorf("load %s: %w (the engine reported %s)", strings.Join(missing, ", "), ErrNotLoaded, strings.Join(reported, ", "))
}
