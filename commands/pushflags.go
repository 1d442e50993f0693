package commands

// What create and copy read alike before anything is sent: the flags that
// shape a push, the registry options and --metadata-file.

import (
	"context"

	"github.com/docker-imgx/docker-imgx/imagetools/compression"
	"github.com/docker-imgx/docker-imgx/imagetools/registry"
	"github.com/docker-imgx/docker-imgx/internal/atomicfile"
	"github.com/docker/cli/cli/command"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pushFlags reads the flags create and copy share, each checked, in this
// order: --platform, --max-concurrency, --compression.
func pushFlags(platforms []string, maxConcurrency int, comp string) ([]ocispec.Platform, compression.Format, error) {
	plats, err := parsePlatforms(platforms)
	if err != nil {
		return nil, "", err
	}
	if err := checkMaxConcurrency(maxConcurrency); err != nil {
		return nil, "", err
	}
	f, err := compression.ParseFormat(comp)
	if err != nil {
		return nil, "", err
	}
	return plats, f, nil
}

// startPush reads the registry options, then opens --metadata-file (nil
// when not given) before anything is pushed, so that no tag moves for a
// file that cannot be written. The caller defers the file's Abort.
func (o *rootOptions) startPush(ctx context.Context, dockerCli command.Cli, metadataFile string) (registry.Options, *atomicfile.File, error) {
	reg, err := o.registryOptions(dockerCli)
	if err != nil {
		return registry.Options{}, nil, err
	}
	meta, err := openMetadataFile(ctx, metadataFile)
	if err != nil {
		return registry.Options{}, nil, err
	}
	return reg, meta, nil
}
