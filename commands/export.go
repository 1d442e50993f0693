package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/docker-imgx/docker-imgx/imagetools/compression"
	"github.com/docker-imgx/docker-imgx/imagetools/export"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

type exportOptions struct {
	*rootOptions
	images         []string
	output         string
	platforms      []string
	format         string
	names          []string
	includeForeign bool
	attestations   bool
	maxConcurrency int
	maxManifests   int
	progress       string
	load           bool
	loadVia        string
	compression    string
}

func runExport(ctx context.Context, dockerCli command.Cli, opts exportOptions) error {
	out, req, err := opts.request()
	if err != nil {
		return err
	}
	if opts.load {
		return runLoad(ctx, dockerCli, opts, req)
	}
	comp, err := outputCompression(out, opts.compression)
	if err != nil {
		return err
	}
	if out.Kind == ref.OutputStdout && dockerCli.Out().IsTerminal() {
		return errors.New("refusing to write a tar to a terminal: use -o FILE, or redirect the output (docker imgx export IMAGE > image.tar)")
	}
	job, err := export.NewJob(req)
	if err != nil {
		return err
	}
	reg, err := opts.registryOptions(dockerCli)
	if err != nil {
		return err
	}
	sink, err := openSink(ctx, out, stdoutWriter(dockerCli), comp)
	if err != nil {
		return err
	}
	defer sink.abort()
	err = withProgress(ctx, dockerCli, reg, opts.progress, "Exporting", func(ctx context.Context, p place.Place, pw progress.Writer) error {
		return job.Run(ctx, pw, p, sink.write)
	})
	return sink.explain(explainPlatform(err))
}

// request reads the flags export and --load share into one request, all
// checked before anything is shown or sent.
func (o exportOptions) request() (ref.Output, export.Request, error) {
	if err := checkMaxConcurrency(o.maxConcurrency); err != nil {
		return ref.Output{}, export.Request{}, err
	}
	limits, err := graphLimits(o.maxManifests)
	if err != nil {
		return ref.Output{}, export.Request{}, err
	}
	out, err := ref.ParseOutput(o.output)
	if err != nil && !o.load {
		return out, export.Request{}, err
	}
	plats, all, err := parsePlatformsOrAll(o.platforms)
	if err != nil {
		return out, export.Request{}, err
	}
	return out, export.Request{
		Images: o.images, Names: o.names, Output: out, Platforms: plats, AllPlatforms: all,
		Format: o.format, SkipAttestations: !o.attestations, IncludeForeign: o.includeForeign,
		MaxConcurrency: o.maxConcurrency, Limits: limits,
	}, nil
}

// runLoad exports the images into the Docker engine of the current context
// (DOCKER_HOST, docker context) instead of a tar. The platforms named (none:
// the engine's) are the engine's to accept (export.Load).
func runLoad(ctx context.Context, dockerCli command.Cli, opts exportOptions, req export.Request) error {
	if opts.output != "" {
		return errors.New("--load and --output are exclusive: --load sends the images to the Docker engine, not to a file")
	}
	if opts.compression != "" {
		return errors.New("--load and --compression are exclusive: --compression compresses a tar written to a file or stdout")
	}
	if !slices.Contains(export.LoadVias(), opts.loadVia) {
		return fmt.Errorf("invalid --load-via %q: want %s", opts.loadVia, strings.Join(export.LoadVias(), ", "))
	}
	if req.Format != "" && req.Format != export.FormatDocker {
		return fmt.Errorf("--load with --format %s: the Docker engine loads the docker format (manifest.json)", req.Format)
	}
	sources, err := export.Sources(req.Images, req.Names)
	if err != nil {
		return err
	}
	reg, err := opts.registryOptions(dockerCli)
	if err != nil {
		return err
	}
	return withProgress(ctx, dockerCli, reg, opts.progress, "Loading", func(ctx context.Context, p place.Place, pw progress.Writer) error {
		return export.Load(ctx, pw, p, dockerCli.Client(), sources, export.EngineOptions{
			Platforms: req.Platforms, AllPlatforms: req.AllPlatforms, SkipAttestations: req.SkipAttestations,
			IncludeForeign: req.IncludeForeign, MaxConcurrency: req.MaxConcurrency, Limits: req.Limits,
			Via: opts.loadVia, RegistryAuth: func(repo string) (string, error) {
				return command.RetrieveAuthTokenFromImage(dockerCli.ConfigFile(), repo)
			},
		})
	})
}

func exportCmd(dockerCli command.Cli, root *rootOptions) *cobra.Command {
	opts := exportOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:               "export [OPTIONS] IMAGE [IMAGE...]",
		Short:             "Write images from registries into a tar that docker, containerd, podman and skopeo load",
		Long:              exportLong,
		Example:           exportExample,
		Args:              argCount(1, -1, "IMAGE [IMAGE...]"),
		ValidArgsFunction: completeSource(dockerCli, root),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.images = args
			return runExport(cmd.Context(), dockerCli, opts)
		},
		DisableFlagsInUseLine: true,
	}
	flags := cmd.Flags()
	flags.StringVarP(&opts.output, "output", "o", "", "Write to `FILE` (\"-\" or unset: stdout), or to an OCI layout folder with oci-layout://DIR")
	flags.StringArrayVarP(&opts.platforms, "platform", "p", nil, "Platforms to keep from an index (`OS/ARCH[/VARIANT]`, repeatable, comma lists; \"all\" keeps every one). The first goes to manifest.json (default: the local platform)")
	flags.StringVar(&opts.format, "format", "", "Output `FORMAT`: \"docker\" (manifest.json plus OCI layout; default for a tar) or \"oci\" (OCI layout only; default for oci-layout://)")
	flags.StringArrayVar(&opts.names, "name", nil, "Name the i-th IMAGE `NAME[:TAG]` in the output instead of its source reference (repeatable, once per IMAGE)")
	flags.BoolVar(&opts.attestations, "attestations", true, "Keep the attestation manifests (provenance, SBOM) of the exported platforms, as docker save does (false: leave them out)")
	flags.BoolVar(&opts.includeForeign, "include-foreign", false, "Include foreign (non-distributable) layers; by default they are left out and their URLs kept")
	flags.IntVar(&opts.maxConcurrency, "max-concurrency", oci.DefaultMaxConcurrency, "Number of blobs fetched in parallel (`N`); manifests, configs and, to a file, blobs up to 4 MiB go up to 4 times as many at once. The same default as create's")
	bindMaxManifests(flags, &opts.maxManifests)
	flags.BoolVar(&opts.load, "load", false, "Load the images into the Docker engine of the current context instead of writing a tar (default platform: the engine's; several or \"all\" need the engine's containerd image store)")
	flags.StringVar(&opts.loadVia, "load-via", export.ViaAuto, "How --load gets images into the engine (`WAY`): \"pull\" (the engine pulls a registry image itself, by its digest), \"stream\" (a tar into the image-load API) or \"auto\" (the engine pulls each registry image it can, the others go in one streamed tar)")
	flags.StringVar(&opts.compression, "compression", "", "Compress the tar with `FORMAT`: "+strings.Join(compression.Formats(), ", ")+" (default: by the name of -o: .tar.gz or .tgz gzip, .tar.zst zstd, else none); docker load reads each")
	flags.StringVar(&opts.progress, "progress", progress.ModeAuto, "Progress output `MODE`: "+strings.Join(progress.Modes(), ", "))
	registerCompletions(cmd, map[string]cobra.CompletionFunc{
		"output": completeOutput, "platform": completePlatforms(true), "format": completeExportFormat(),
		"progress": completeProgress(), "name": noCompletion, "compression": completeValues(compression.Formats()...), "max-concurrency": noCompletion,
		"load-via":       completeValues(export.LoadVias()...),
		maxManifestsFlag: noCompletion,
	})
	return cmd
}
