package daemon

// What a load asks of the Docker engine before a byte is sent: its platform and
// which image store it has, and from them the platforms to send.

import (
	"context"
	"fmt"
	"slices"

	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// containerdStoreDriverType is the "driver-type" the Docker engine reports
// in its info's DriverStatus when it keeps images in containerd (the
// containerd image store, the default of new Docker 29 installs).
const containerdStoreDriverType = "io.containerd.snapshotter.v1"

// Info is what a load needs to know of a Docker engine.
type Info struct {
	// Platform is the platform the engine runs, normalized.
	Platform ocispec.Platform
	// MultiPlatform says the engine keeps images in containerd: an image
	// there is the whole index (several platforms under one name) and its
	// ID is the root's digest. The classic store keeps one image per name,
	// identified by its config digest.
	MultiPlatform bool
}

// Ask asks the Docker engine its platform and its image store (from
// its info's DriverStatus, not guessed from its version).
func Ask(ctx context.Context, engine LoadClient) (Info, error) {
	p, err := enginePlatform(ctx, engine)
	if err != nil {
		return Info{}, err
	}
	info, err := engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return Info{}, fmt.Errorf("ask the Docker engine its image store: %w", err)
	}
	multi := slices.ContainsFunc(info.Info.DriverStatus, func(kv [2]string) bool {
		return kv[0] == "driver-type" && kv[1] == containerdStoreDriverType
	})
	return Info{Platform: p, MultiPlatform: multi}, nil
}

// enginePlatform asks the Docker engine the platform it runs, normalized
// (the engine reports GOOS and GOARCH, without a variant).
func enginePlatform(ctx context.Context, engine LoadClient) (ocispec.Platform, error) {
	v, err := engine.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("ask the Docker engine its platform: %w", err)
	}
	if v.Os == "" || v.Arch == "" {
		return ocispec.Platform{}, fmt.Errorf("ask the Docker engine its platform: the engine reports OS %q and architecture %q", v.Os, v.Arch)
	}
	return platforms.Normalize(ocispec.Platform{OS: v.Os, Architecture: v.Arch}), nil
}

// ChoosePlatforms returns the platforms to load, and a warning for
// each the engine runs only under emulation. Nothing requested means the
// engine's own. A Docker engine holds images of any architecture of its OS
// (docker pull --platform and docker load take them); another OS is refused,
// and so is more than one platform, or all, for the classic store, which
// keeps one image per name.
func (info Info) ChoosePlatforms(requested []ocispec.Platform, all bool) ([]ocispec.Platform, []string, error) {
	if !info.MultiPlatform && (all || len(requested) > 1) {
		what := "all platforms"
		if !all {
			what = fmt.Sprintf("%d platforms", len(requested))
		}
		return nil, nil, fmt.Errorf("load %s: the engine's classic image store keeps one platform per image: give one --platform, or turn on the engine's containerd image store: %w", what, imagetools.ErrEnginePlatform)
	}
	if len(requested) == 0 {
		return []ocispec.Platform{info.Platform}, nil, nil
	}
	var warnings []string
	for _, p := range requested {
		w, err := info.CheckPlatform(p)
		if err != nil {
			return nil, nil, err
		}
		warnings = append(warnings, w...)
	}
	return requested, warnings, nil
}

// CheckPlatform refuses an image of another OS than the engine's, and
// warns of one the engine runs only under emulation.
func (info Info) CheckPlatform(p ocispec.Platform) ([]string, error) {
	engine := info.Platform
	if p.OS != engine.OS {
		return nil, fmt.Errorf("load %s: the engine runs %s and holds %s images only: %w", platforms.FormatAll(p), platforms.FormatAll(engine), engine.OS, imagetools.ErrEnginePlatform)
	}
	if oci.Serves(engine, p) {
		return nil, nil
	}
	return []string{fmt.Sprintf("%s images run on this %s engine only under emulation (binfmt_misc)", platforms.FormatAll(platforms.Normalize(p)), platforms.FormatAll(engine))}, nil
}
