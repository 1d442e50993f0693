package export

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/progress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Request is one export as the command reads it from its flags.
type Request struct {
	// Images are the IMAGE arguments; Names, when given, name each in turn.
	Images []string
	Names  []string
	// Output is where the export goes; its kind picks the default format.
	Output ref.Output
	// Platforms are the platforms named; none means the local one.
	Platforms []ocispec.Platform
	// AllPlatforms, SkipAttestations, IncludeForeign, MaxConcurrency and
	// Limits are as in Options.
	AllPlatforms     bool
	SkipAttestations bool
	IncludeForeign   bool
	MaxConcurrency   int
	Limits           oci.GraphLimits
	// Format is FormatDocker or FormatOCI; "" is docker for a tar and oci
	// for a layout folder.
	Format string
}

// Job is a checked Request: its sources, named, and the options of the write.
type Job struct {
	Sources []Source
	Options Options
	// final names the line that spans the write.
	final string
}

// NewJob checks req and applies its defaults, before anything is read: the
// format, the platforms (the local one when none is named: the one docker
// load sees) and the names.
func NewJob(req Request) (Job, error) {
	opts := Options{
		Format:            req.Format,
		AllPlatforms:      req.AllPlatforms,
		ExplicitPlatforms: len(req.Platforms) > 0,
		Platforms:         req.Platforms,
		SkipAttestations:  req.SkipAttestations,
		IncludeForeign:    req.IncludeForeign,
		MaxConcurrency:    req.MaxConcurrency,
		Limits:            req.Limits,
	}
	job := Job{final: "sending tarball"}
	if req.Output.Kind == ref.OutputLayout {
		job.final = "writing layout"
	}
	if opts.Format == "" {
		opts.Format = FormatDocker
		if req.Output.Kind == ref.OutputLayout {
			opts.Format = FormatOCI
		}
	}
	if opts.Format != FormatDocker && opts.Format != FormatOCI {
		return Job{}, fmt.Errorf("invalid --format %q: want %s or %s", req.Format, FormatDocker, FormatOCI)
	}
	if len(opts.Platforms) == 0 {
		opts.Platforms = []ocispec.Platform{platforms.DefaultSpec()}
	}
	sources, err := Sources(req.Images, req.Names)
	if err != nil {
		return Job{}, err
	}
	job.Sources, job.Options = sources, opts
	return job, nil
}

// Sink writes the output: it hands write a writer (a file, stdout, the
// tar that becomes a layout folder) and completes the output when write
// succeeds.
type Sink func(ctx context.Context, write func(io.Writer) error) error

// Run resolves the sources from p, each a step of pw, then writes them
// through sink under one "exporting to FORMAT image format" vertex.
func (j Job) Run(ctx context.Context, pw progress.Writer, p place.Reader, sink Sink) error {
	imgs, err := resolveAll(ctx, pw, p, j.Sources)
	if err != nil {
		return err
	}
	return report(pw, j.Options.Format, j.final, func(rep Progress) (result, error) {
		opts := j.Options
		opts.Progress = rep
		var res result
		// No bufio: writeImages writes blobs in 512 KiB chunks, which a buffer
		// would only copy once more; the few small entries cost little.
		err := sink(ctx, func(w io.Writer) error {
			var err error
			res, err = writeImages(ctx, w, imgs, opts)
			return err
		})
		// res is read after sink has run write: in "return res, sink(...)"
		// Go may read res first.
		return res, err
	})
}
