package commands

import (
	"errors"
	"fmt"
	"os"

	"github.com/docker-imgx/docker-imgx/imagetools/archive"
	"github.com/docker-imgx/docker-imgx/imagetools/daemon"
	"github.com/docker-imgx/docker-imgx/imagetools/imagetar"
	"github.com/docker-imgx/docker-imgx/imagetools/ocilayout"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/imagetools/registry"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/docker/cli/cli/command"
	"github.com/docker/go-units"
)

// envMaxDecompressed bounds the decompressed size of a gzip or zstd image
// tar (bytes, or a size such as 20GiB); unset, a tar may grow to 1 GiB or to
// 100 times its compressed size, whichever is more.
const envMaxDecompressed = "DOCKER_IMGX_MAX_DECOMPRESSED"

// placesFor is every place an image is read from or written to, behind one
// router: registries (reached as opts says), OCI layouts, image tars and
// the Docker engine. Notices of the registry layer (retried requests,
// resumed downloads) go to pw as one-off steps, or, without a display
// (nil), as WARN lines on stderr. The func returned closes the tars and
// Docker engine saves opened (their spools have no name and go with them).
func placesFor(dockerCli command.Cli, opts registry.Options, pw progress.Writer) (place.Place, func(), error) {
	arch, err := archiveOptions()
	if err != nil {
		return nil, nil, err
	}
	n := &notices{w: dockerCli.Err(), pw: pw}
	retry := registry.RetryOptions{}
	if opts.Retry != nil {
		retry = *opts.Retry
	}
	retry.OnRetry = n.retry
	opts.Retry = &retry
	opts.Resume = registry.ResumeOptions{OnResume: n.resume}
	tars := archive.New(arch)
	engine := daemon.New(daemon.Options{
		Client:   func() (daemon.Client, error) { return dockerCli.Client(), nil },
		Archive:  arch,
		Progress: pw,
	})
	pl := place.NewRouter(map[string]place.Backend{
		"":                registry.New(opts),
		ref.SchemeLayout:  ocilayout.NewLayouts(),
		ref.SchemeArchive: tars,
		ref.SchemeDaemon:  engine,
	})
	return pl, func() { _ = errors.Join(tars.Close(), engine.Close()) }, nil
}

// archiveOptions reads DOCKER_IMGX_MAX_DECOMPRESSED.
func archiveOptions() (imagetar.Options, error) {
	opts := imagetar.Options{LimitHint: fmt.Sprintf(": set %s to a larger size to allow it", envMaxDecompressed)}
	v := os.Getenv(envMaxDecompressed)
	if v == "" {
		return opts, nil
	}
	n, err := units.RAMInBytes(v)
	if err != nil || n <= 0 {
		return opts, fmt.Errorf("%s=%q: want a size in bytes such as 20GiB", envMaxDecompressed, v)
	}
	opts.MaxDecompressed = n
	return opts, nil
}
