package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/combine"
	"github.com/docker-imgx/docker-imgx/imagetools/compression"
	"github.com/docker-imgx/docker-imgx/imagetools/create"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

type createOptions struct {
	*rootOptions
	sources        []string
	files          []string
	tags           []string
	annotations    []string
	platforms      []string
	appendTo       bool
	dryRun         bool
	preferIndex    bool
	referrers      bool
	oci            bool
	metadataFile   string
	progress       string
	maxConcurrency int
	maxManifests   int
	compression    string
}

func runCreate(ctx context.Context, dockerCli command.Cli, opts createOptions) error {
	req, err := opts.request(dockerCli.In())
	if err != nil {
		return err
	}
	reg, meta, err := opts.startPush(ctx, dockerCli, opts.metadataFile)
	if err != nil {
		return err
	}
	defer meta.Abort()
	var res *create.Result
	err = withProgress(ctx, dockerCli, reg, opts.progress, "Pushing", func(ctx context.Context, pl place.Place, pw progress.Writer) error {
		var err error
		req.Progress = pw
		res, err = create.Create(ctx, pl, req)
		return err
	})
	if err != nil {
		if res != nil && meta != nil {
			// The content was pushed, the tags failed: the file says what
			// was pushed and which tags point at it.
			if werr := writeCreateMetadata(meta, res); werr != nil {
				return errors.Join(opts.explain(err), werr)
			}
		}
		if res != nil && errors.Is(err, context.Canceled) {
			// Interrupted while the tags moved: say where they point.
			return interruptReport{err}
		}
		return opts.explain(err)
	}
	return reportCreate(dockerCli.Out(), opts.dryRun, meta, res)
}

// request reads the flags into create's options, all checked before
// anything is shown or sent; -f files are read from stdin when "-".
func (o createOptions) request(stdin io.Reader) (create.Options, error) {
	fileSources, err := readSourceFiles(o.files, stdin)
	if err != nil {
		return create.Options{}, err
	}
	anns, err := combine.ParseAnnotations(o.annotations)
	if err != nil {
		return create.Options{}, err
	}
	plats, comp, err := pushFlags(o.platforms, o.maxConcurrency, o.compression)
	if err != nil {
		return create.Options{}, err
	}
	limits, err := graphLimits(o.maxManifests)
	if err != nil {
		return create.Options{}, err
	}
	return create.Options{
		Sources: append(fileSources, o.sources...), Tags: o.tags,
		Annotations: anns, Platforms: plats, PreferIndex: o.preferIndex, ForceOCI: o.oci,
		Append: o.appendTo, DryRun: o.dryRun, Referrers: o.referrers, MaxConcurrency: o.maxConcurrency,
		Limits: limits, Compression: comp,
	}, nil
}

// explain adds to an error of the core the flag that changes the outcome:
// the core says what was wrong, the command which flag to change.
func (o createOptions) explain(err error) error {
	if e, ok := create.AsIncompleteSource(err); ok && len(e.Held) > 0 {
		return fmt.Errorf("%w: take what it holds with -p %s", err, strings.Join(e.Held, ","))
	}
	switch {
	case errors.Is(err, imagetools.ErrNoTarget) && o.appendTo:
		return errors.New("--append needs a --tag: the image at the first tag is appended to")
	case errors.Is(err, imagetools.ErrNoTarget):
		return errors.New("no --tag given: name where to push the result (or use --dry-run)")
	case errors.Is(err, imagetools.ErrNoSources):
		return fmt.Errorf("%w (or use --append with a --tag)", err)
	case errors.Is(err, imagetools.ErrReferrers):
		return fmt.Errorf("%w (--referrers=false skips referrers)", err)
	case errors.Is(err, imagetools.ErrConflictingOptions):
		return fmt.Errorf("%w (--oci asks for an index, --prefer-index=false keeps the manifest: drop one of them)", err)
	case errors.Is(err, imagetools.ErrDockerListAnnotations):
		return fmt.Errorf("%w (--oci makes one)", err)
	case errors.Is(err, imagetools.ErrNoRepository):
		return fmt.Errorf("%w: name a repository with --tag or a source reference", err)
	}
	return err
}

func createCmd(dockerCli command.Cli, root *rootOptions) *cobra.Command {
	opts := createOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:               "create [OPTIONS] [SOURCE...]",
		Short:             "Combine images and indexes into one multi-platform index and push it to tags",
		Long:              createLong,
		Example:           createExample,
		ValidArgsFunction: completeSource(dockerCli, root),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.sources = args
			return runCreate(cmd.Context(), dockerCli, opts)
		},
		DisableFlagsInUseLine: true,
	}
	opts.bindFlags(cmd)
	return cmd
}

// bindFlags binds create's flags to o.
func (o *createOptions) bindFlags(cmd *cobra.Command) {
	flags := cmd.Flags()
	flags.StringArrayVarP(&o.tags, "tag", "t", nil, "Push the result to `REF` (repeatable; NAME[:TAG] or oci-layout://PATH[:TAG])")
	flags.StringArrayVarP(&o.files, "file", "f", nil, "Read sources from `FILE` (one per line, or descriptor JSON; \"-\" for stdin)")
	flags.BoolVar(&o.appendTo, "append", false, "Append the sources to the image at the first tag (created when missing)")
	flags.BoolVar(&o.dryRun, "dry-run", false, "Print the resulting index on stdout and push nothing")
	flags.StringArrayVar(&o.annotations, "annotation", nil, "Add an annotation (`[TYPE:]KEY=VALUE`, TYPE index or manifest-descriptor[OS/ARCH])")
	flags.BoolVar(&o.preferIndex, "prefer-index", true, "Wrap a single image manifest in an index (false: tag the manifest as it is)")
	flags.BoolVar(&o.referrers, "referrers", true, "Copy the cosign signatures and OCI referrers of the images copied to another repository")
	flags.BoolVar(&o.oci, "oci", false, "Make an OCI image index even when every child is a Docker manifest")
	flags.StringArrayVarP(&o.platforms, "platform", "p", nil, "Keep only these platforms (`OS/ARCH[/VARIANT]`, repeatable or comma-separated)")
	flags.StringVar(&o.metadataFile, "metadata-file", "", "Write the result's descriptor and names as JSON to `FILE` (with --dry-run: what would be pushed)")
	flags.StringVar(&o.progress, "progress", progress.ModeAuto, "Progress output `MODE`: "+strings.Join(progress.Modes(), ", "))
	flags.IntVar(&o.maxConcurrency, "max-concurrency", oci.DefaultMaxConcurrency, "Most transfers of blobs over 4 MiB running at once (`N`); smaller blobs and small requests (manifests, checks, mounts) run up to 4 times as many (1: everything in order). The same default as export's")
	bindMaxManifests(flags, &o.maxManifests)
	flags.StringVar(&o.compression, "compression", string(compression.Gzip), "Compress the uncompressed layers of docker save tars and the Docker engine pushed to a registry with `FORMAT`: "+strings.Join(compression.Formats(), ", ")+" (compressed layers are kept as they are)")
	registerCompletions(cmd, map[string]cobra.CompletionFunc{
		"compression": completeValues(compression.Formats()...),
		"tag":         completeOutput, "file": completeFile, "platform": completePlatforms(false),
		"metadata-file": completeFile, "progress": completeProgress(), "annotation": noCompletion,
		"max-concurrency": noCompletion, maxManifestsFlag: noCompletion,
	})
}
