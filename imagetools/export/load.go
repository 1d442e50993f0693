package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/daemon"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/progress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// EngineOptions controls toEngine, the load into the Docker engine.
type EngineOptions struct {
	// Platforms pick the images loaded from an index; none means the
	// engine's platform. Each must have the engine's OS; an architecture
	// the engine runs only under emulation gets a warning. More than one
	// needs an engine with the containerd image store.
	Platforms []ocispec.Platform
	// AllPlatforms loads every image of an index (containerd image store
	// only); Platforms, or the engine's, then choose manifest.json's image.
	AllPlatforms bool
	// SkipAttestations, IncludeForeign, MaxConcurrency and Limits are as
	// in Options.
	SkipAttestations bool
	IncludeForeign   bool
	MaxConcurrency   int
	Limits           oci.GraphLimits
	// Via is how the images get into the engine: ViaAuto (also ""),
	// ViaPull or ViaStream.
	Via string
	// RegistryAuth returns the X-Registry-Auth value of the user's
	// credentials for a repository's registry, for the engine's pull; nil
	// sends none.
	RegistryAuth func(repository string) (string, error)
	// Progress receives the steps: "exporting layers", "writing image
	// sha256:..." per image, "naming to NAME" per name; or, for the
	// engine's pull, "pulling REPOSITORY@DIGEST into the Docker engine"
	// with its layers and the "naming to" steps. nil reports nothing.
	Progress progress.Writer
}

// toEngine streams the images into the Docker engine's image-load API, as the
// Docker image tar writeImages writes, without a file in between (daemon.Load),
// and has the engine's answer checked: every name must be reported loaded,
// and every image without a name by its ID.
//
// Before a byte is sent, the engine is asked its platform and image store
// (daemon.Ask) and the platforms are checked (Info.ChoosePlatforms): an
// index must have an image for each, a single image must have the engine's
// OS. The classic store gets one platform (manifest.json, the only part it
// reads, holds one image per index); the containerd image store gets every
// platform asked for in one stream, and keeps the index digest as image ID.
// The Result is that of writeImages, warnings included when the load failed.
//
// Each registry image that one pull of the engine gives whole is pulled by
// the engine instead (loadByPull), unless opts.Via says otherwise; the
// others go in one tar of them alone (choosePaths, pullSet).
func toEngine(ctx context.Context, engine daemon.LoadClient, imgs []image, opts EngineOptions) (result, error) {
	if len(imgs) == 0 {
		return result{}, errors.New("load: no image given")
	}
	pw := opts.Progress
	if pw == nil {
		pw = progress.Discard()
	}
	info, err := daemon.Ask(ctx, engine)
	if err != nil {
		return result{}, err
	}
	want, warnings, err := info.ChoosePlatforms(opts.Platforms, opts.AllPlatforms)
	if err != nil {
		return result{}, err
	}
	plan, more, err := enginePlan(ctx, imgs, info, want, opts.AllPlatforms)
	warnings = append(warnings, more...)
	if err != nil {
		return result{Warnings: warnings}, err
	}
	pulled, err := choosePaths(ctx, engine, plan, info, want, opts)
	if err != nil {
		return result{Warnings: warnings}, err
	}
	var res result
	err = loadByPull(ctx, engine, plan, pulled, opts, pw, func(ctx context.Context, images []loadImage) error {
		var err error
		res, err = streamLoad(ctx, engine, images, want, opts, pw)
		return err
	})
	res.Warnings = append(warnings, res.Warnings...)
	return res, err
}

// streamLoad streams the images into the engine's image-load API, one
// tar of them alone, as writeImages writes it.
func streamLoad(ctx context.Context, engine daemon.LoadClient, images []loadImage, want []ocispec.Platform, opts EngineOptions, pw progress.Writer) (result, error) {
	wopts := Options{
		Platforms:        want,
		AllPlatforms:     opts.AllPlatforms,
		Format:           FormatDocker,
		SkipAttestations: opts.SkipAttestations,
		IncludeForeign:   opts.IncludeForeign,
		MaxConcurrency:   opts.MaxConcurrency,
		Limits:           opts.Limits,
	}
	imgs := make([]image, len(images))
	for i, li := range images {
		imgs[i] = li.img
	}
	var res result
	err := daemon.Load(ctx, engine, expectOf(images), func(ctx context.Context, w io.Writer) error {
		var err error
		res, err = writeImages(ctx, w, imgs, wopts)
		return err
	}, pw)
	return res, err
}

// enginePlan reads each image's manifest and config (indexes: the children
// for want) and returns each image with the ID and names the engine must
// report and the engine's pull of it, or why there is none, with the
// warnings found (single images that run under emulation). Nothing is sent
// to the engine yet.
func enginePlan(ctx context.Context, imgs []image, info daemon.Info, want []ocispec.Platform, all bool) (engineLoad, []string, error) {
	var (
		out      engineLoad
		warnings []string
	)
	for i, img := range imgs {
		li := loadImage{index: i, img: img, label: img.Name}
		if li.label == "" {
			li.label = img.Desc.Digest.String()
		}
		if img.Fetcher == nil {
			return out, warnings, fmt.Errorf("load %s: no fetcher", li.label)
		}
		name, err := parseImageName(img.Name)
		if err != nil {
			return out, warnings, fmt.Errorf("load %s: %w", li.label, err)
		}
		var w []string
		li.ei, w, err = engineImageID(ctx, img, info, want, all)
		warnings = append(warnings, w...)
		if err != nil {
			return out, warnings, fmt.Errorf("load %s: %w", li.label, err)
		}
		li.names = engineNames(img, name, info)
		li.pull, li.why = pullOf(li, info)
		out.images = append(out.images, li)
	}
	return out, warnings, nil
}

// engineImageID checks img against the platforms to load and returns the
// image ID the engine will give it: the config digest of the image
// manifest.json gets (classic store) or the root digest (containerd store),
// with what the engine's pull of it needs.
func engineImageID(ctx context.Context, img image, info daemon.Info, want []ocispec.Platform, all bool) (engineImage, []string, error) {
	desc := img.Desc
	var out engineImage
	if oci.IsIndex(desc.MediaType) {
		var index ocispec.Index
		if err := engineFetchJSON(ctx, img, desc, &index); err != nil {
			return out, nil, err
		}
		sel, err := selectChildren(index, want, all, true)
		if err != nil {
			return out, nil, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		out.child, out.pullable = sel.primary, pullableSelection(sel)
		if info.MultiPlatform {
			out.id = img.Desc.Digest
			return out, nil, nil
		}
		desc = *sel.primary
	} else if !oci.IsManifest(desc.MediaType) {
		return out, nil, fmt.Errorf("unsupported media type %q", desc.MediaType)
	}
	var m ocispec.Manifest
	if err := engineFetchJSON(ctx, img, desc, &m); err != nil {
		return out, nil, err
	}
	out.id = m.Config.Digest
	if info.MultiPlatform {
		out.id = img.Desc.Digest
	}
	if desc.Digest != img.Desc.Digest {
		return out, nil, nil
	}
	// A single image is loaded whatever its platform: check its OS here.
	var cfg ocispec.Image
	if err := engineFetchJSON(ctx, img, m.Config, &cfg); err != nil {
		return out, nil, err
	}
	if cfg.OS != info.Platform.OS {
		return out, nil, fmt.Errorf("image is %s, the engine runs %s and holds %s images only: %w", platforms.FormatAll(cfg.Platform), platforms.FormatAll(info.Platform), info.Platform.OS, imagetools.ErrEnginePlatform)
	}
	w, err := info.CheckPlatform(cfg.Platform)
	out.pullable = true
	if len(w) > 0 {
		// The engine pulls an image of another platform only when asked
		// for that platform.
		out.platform = &ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	}
	return out, w, err
}

func engineFetchJSON(ctx context.Context, img image, desc ocispec.Descriptor, v any) error {
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

// Load resolves the sources from p, each a step of pw, and loads them into
// the Docker engine (toEngine); the warnings, known before or after a
// failure, are shown as steps of their own.
func Load(ctx context.Context, pw progress.Writer, p place.Reader, engine daemon.LoadClient, sources []Source, opts EngineOptions) error {
	imgs, err := resolveAll(ctx, pw, p, sources)
	if err != nil {
		return err
	}
	opts.Progress = pw
	res, err := toEngine(ctx, engine, imgs, opts)
	for _, w := range res.Warnings {
		progress.Warn(pw, w)
	}
	return err
}
