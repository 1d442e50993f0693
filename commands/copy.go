package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/docker-imgx/docker-imgx/imagetools/compression"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/imagetools/sets"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

type copyOptions struct {
	*rootOptions
	sources        []string
	target         string
	files          []string
	platforms      []string
	scoped         bool
	allTags        bool
	referrers      bool
	failFast       bool
	metadataFile   string
	progress       string
	compression    string
	maxConcurrency int
}

func runCopy(ctx context.Context, dockerCli command.Cli, opts copyOptions) error {
	sources, setOpts, err := opts.request(dockerCli.In())
	if err != nil {
		return err
	}
	reg, meta, err := opts.startPush(ctx, dockerCli, opts.metadataFile)
	if err != nil {
		return err
	}
	defer meta.Abort()
	var rep sets.Report
	err = withProgress(ctx, dockerCli, reg, opts.progress, "Copying", func(ctx context.Context, pl place.Place, pw progress.Writer) error {
		expanded, err := sets.Expand(ctx, pl, sources, sets.ExpandOptions{Referrers: setOpts.Referrers, AllTags: opts.allTags})
		if errors.Is(err, sets.ErrNoTagOrDigest) {
			return fmt.Errorf("%w; --all-tags copies every tag", err)
		}
		if err != nil {
			return err
		}
		pairs, err := sets.Pairs(expanded, opts.target, opts.scoped)
		if err != nil {
			return err
		}
		setOpts.Progress = pw
		if isBundle(pairs) {
			rep, err = writeBundle(ctx, pl, pw, pairs, setOpts)
			return err
		}
		if setOpts.Referrers && (intoLayout(pairs) || len(pairs) == 1) {
			if pairs, pl, err = sets.WithReferrers(ctx, pl, pairs); err != nil {
				return err
			}
		}
		rep, err = sets.Copy(ctx, pl, pairs, setOpts)
		return err
	})
	if len(rep.Items) == 0 {
		return err
	}
	return errors.Join(err, reportCopy(dockerCli.Out(), meta, rep))
}

// request reads the flags, all checked before anything is sent: the
// sources (arguments, then -f lists) and the set's options.
func (o copyOptions) request(stdin io.Reader) ([]string, sets.Options, error) {
	listed, err := readSourceFiles(o.files, stdin)
	if err != nil {
		return nil, sets.Options{}, err
	}
	sources := append(listed, o.sources...)
	if len(sources) == 0 {
		return nil, sets.Options{}, errors.New("no SOURCE: name images to copy, or a list with -f FILE (\"-\" for stdin)")
	}
	plats, comp, err := pushFlags(o.platforms, o.maxConcurrency, o.compression)
	if err != nil {
		return nil, sets.Options{}, err
	}
	return sources, sets.Options{
		Platforms: plats, Referrers: o.referrers, FailFast: o.failFast, MaxConcurrency: o.maxConcurrency, Compression: comp,
	}, nil
}

func copyCmd(dockerCli command.Cli, root *rootOptions) *cobra.Command {
	opts := copyOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:               "copy [OPTIONS] SOURCE... TARGET",
		Short:             "Copy images, unchanged, between registries, OCI layouts and image tars",
		Long:              copyLong,
		Example:           copyExample,
		Args:              argCount(1, -1, "SOURCE... TARGET"),
		ValidArgsFunction: completeSource(dockerCli, root),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.sources, opts.target = args[:len(args)-1], args[len(args)-1]
			return runCopy(cmd.Context(), dockerCli, opts)
		},
		DisableFlagsInUseLine: true,
	}
	flags := cmd.Flags()
	flags.StringArrayVarP(&opts.files, "file", "f", nil, "Read sources from `LIST` (one reference a line, # comments; \"-\" for stdin)")
	flags.BoolVar(&opts.scoped, "scoped", false, "Under a prefix, keep the source registry's host as the first path component (PREFIX/docker.io/library/alpine:3.20)")
	flags.BoolVar(&opts.allTags, "all-tags", false, "Copy every tag of a SOURCE repository named without tag or digest (signature and referrer tags travel with their images)")
	flags.BoolVar(&opts.referrers, "referrers", true, "Copy the cosign signatures and OCI referrers of the images along")
	flags.BoolVar(&opts.failFast, "fail-fast", false, "Stop at the first image that fails (default: copy the others, report each)")
	flags.StringArrayVarP(&opts.platforms, "platform", "p", nil, "Keep only these platforms of an index (`OS/ARCH[/VARIANT]`, repeatable); the copy is then a new index with a digest of its own")
	flags.StringVar(&opts.compression, "compression", string(compression.Gzip), "Compress the plain layers of images from docker save tars and the Docker engine copied to a registry with `FORMAT`: "+strings.Join(compression.Formats(), ", ")+" (their digest is then the copy's own; compressed layers are kept as they are)")
	flags.StringVar(&opts.metadataFile, "metadata-file", "", "Write the report (source, target, digest, outcome of each image) as JSON to `FILE`")
	flags.StringVar(&opts.progress, "progress", progress.ModeAuto, "Progress output `MODE`: "+strings.Join(progress.Modes(), ", "))
	flags.IntVar(&opts.maxConcurrency, "max-concurrency", oci.DefaultMaxConcurrency, "Bound of the whole run (`N`): transfers of blobs over 4 MiB over all images; images, smaller blobs and small requests go up to 4 times as many at once")
	registerCompletions(cmd, map[string]cobra.CompletionFunc{
		"file": completeFile, "platform": completePlatforms(false), "metadata-file": completeFile,
		"progress": completeProgress(), "max-concurrency": noCompletion, "compression": completeValues(compression.Formats()...),
	})
	return cmd
}

// isBundle reports whether the set goes into an image tar, which export
// writes in one piece.
func isBundle(pairs []sets.Pair) bool {
	return len(pairs) > 0 && pairs[0].Target.Scheme == ref.SchemeArchive
}

// intoLayout reports whether the set goes into an OCI layout: the tags
// that hold referrers of the images (cosign tags, fallback tags) then go
// along as images of their own names, as a bundle carries them. One image
// out of a layout or a tar takes the tags named so beside it along.
func intoLayout(pairs []sets.Pair) bool {
	return len(pairs) > 0 && pairs[0].Target.Scheme == ref.SchemeLayout
}
