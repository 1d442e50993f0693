package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/imagetools/export"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/ocilayout"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/imagetools/registry"
	"github.com/docker-imgx/docker-imgx/internal/atomicfile"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/docker/cli/cli/command"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
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
	progress       string
	load           bool
}

// exportTarget is where the export goes: stdout, a file or a layout folder.
type exportTarget struct {
	stdout    bool
	file      string
	layoutDir string
	// out is the file, opened before any request (see open).
	out *atomicfile.File
}

// open looks at the target before anything is fetched: a folder where a
// file is wanted, a file where a folder is wanted, or a file that cannot be
// created fails here. The caller aborts out when it does not commit it.
func (t *exportTarget) open() error {
	var err error
	switch {
	case t.file != "":
		if t.out, err = atomicfile.Open(t.file); err != nil {
			return fmt.Errorf("-o %w", err)
		}
	case t.layoutDir != "":
		return ocilayout.CheckNewFolder(t.layoutDir)
	}
	return nil
}

func runExport(ctx context.Context, dockerCli command.Cli, opts exportOptions) error {
	if opts.load {
		return runLoad(ctx, dockerCli, opts)
	}
	target, err := parseExportTarget(opts.output)
	if err != nil {
		return err
	}
	if target.stdout && dockerCli.Out().IsTerminal() {
		return errors.New("refusing to write a tar to a terminal: use -o FILE, or redirect the output (docker imgx export IMAGE > image.tar)")
	}
	engineOpts, err := opts.engineOptions(target)
	if err != nil {
		return err
	}
	sources, reg, err := opts.sourcesAndRegistry(dockerCli)
	if err != nil {
		return err
	}
	if err := target.open(); err != nil {
		return err
	}
	defer target.out.Abort()
	err = withProgress(ctx, dockerCli, reg, opts.progress, "Exporting", func(ctx context.Context, p place.Place, pw progress.Writer) error {
		return exportWithProgress(ctx, pw, p, sources, target, stdoutWriter(dockerCli), engineOpts)
	})
	err = explainPlatform(err)
	switch {
	case err != nil && target.stdout:
		return fmt.Errorf("the tar stream on stdout is incomplete: %w", err)
	case err != nil && target.out.Streams():
		return fmt.Errorf("the tar stream to %s is incomplete: %w", target.file, err)
	}
	return err
}

// sourcesAndRegistry parses the IMAGE arguments with their --name values
// and reads how registries are reached: what export and --load share, all
// checked before anything is shown or sent.
func (o exportOptions) sourcesAndRegistry(dockerCli command.Cli) ([]exportSource, registry.Options, error) {
	sources, err := exportSources(o.images, o.names)
	if err != nil {
		return nil, registry.Options{}, err
	}
	reg, err := o.registryOptions(dockerCli)
	if err != nil {
		return nil, registry.Options{}, err
	}
	return sources, reg, nil
}

// runLoad exports the images into the Docker engine of the current context
// (DOCKER_HOST, docker context) instead of a tar.
func runLoad(ctx context.Context, dockerCli command.Cli, opts exportOptions) error {
	engineOpts, err := opts.loadOptions()
	if err != nil {
		return err
	}
	sources, reg, err := opts.sourcesAndRegistry(dockerCli)
	if err != nil {
		return err
	}
	return withProgress(ctx, dockerCli, reg, opts.progress, "Loading", func(ctx context.Context, p place.Place, pw progress.Writer) error {
		engineOpts.Progress = pw
		return loadWithProgress(ctx, pw, p, dockerCli.Client(), sources, engineOpts)
	})
}

func loadWithProgress(ctx context.Context, pw progress.Writer, p place.Place, engine export.EngineClient, sources []exportSource, opts export.EngineOptions) error {
	imgs, err := resolveExportImages(ctx, pw, p, sources)
	if err != nil {
		return err
	}
	res, err := export.ToEngine(ctx, engine, imgs, opts)
	showWarnings(pw, res.Warnings)
	return err
}

// loadOptions checks the flags that go with --load and returns the engine's
// options: the platforms named (none: the engine's) and whether "all" was
// given. Whether the engine holds them is its to say (export.ToEngine).
func (o exportOptions) loadOptions() (export.EngineOptions, error) {
	if o.output != "" {
		return export.EngineOptions{}, errors.New("--load and --output are exclusive: --load sends the images to the Docker engine, not to a file")
	}
	if o.format != "" && o.format != export.FormatDocker {
		return export.EngineOptions{}, fmt.Errorf("--load with --format %s: the Docker engine loads the docker format (manifest.json)", o.format)
	}
	if o.maxConcurrency < 1 {
		return export.EngineOptions{}, fmt.Errorf("invalid --max-concurrency %d: want 1 or more", o.maxConcurrency)
	}
	plats, all, err := parsePlatformsOrAll(o.platforms)
	if err != nil {
		return export.EngineOptions{}, err
	}
	return export.EngineOptions{
		Platforms: plats, AllPlatforms: all, SkipAttestations: !o.attestations,
		IncludeForeign: o.includeForeign, MaxConcurrency: o.maxConcurrency,
	}, nil
}

// exportWithProgress resolves the sources, then writes them to the target
// under one "exporting to ..." vertex.
func exportWithProgress(ctx context.Context, pw progress.Writer, p place.Place, sources []exportSource, target exportTarget, stdout io.Writer, opts export.Options) error {
	imgs, err := resolveExportImages(ctx, pw, p, sources)
	if err != nil {
		return err
	}
	final := "sending tarball"
	if target.layoutDir != "" {
		final = "writing layout"
	}
	return progress.Wrap("exporting to "+opts.Format+" image format", pw, func(sub progress.SubLogger) error {
		return reportExport(sub, final, func(rep export.Progress) (export.Result, error) {
			opts.Progress = rep
			return writeExport(ctx, target, stdout, imgs, opts)
		})
	})
}

// resolveExportImages reads the root of each source, in order.
func resolveExportImages(ctx context.Context, pw progress.Writer, p place.Place, sources []exportSource) ([]export.Image, error) {
	imgs := make([]export.Image, 0, len(sources))
	for _, s := range sources {
		img, err := resolveExportImage(ctx, pw, p, s)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}

func resolveExportImage(ctx context.Context, pw progress.Writer, p place.Place, s exportSource) (export.Image, error) {
	done := progress.OneOff(pw, "resolving "+s.loc.String())
	img := export.Image{Name: s.name}
	// As docker save writes it for an image pulled from a registry.
	if k, v := s.loc.DistributionSource(); k != "" {
		img.SourceAnnotations = map[string]string{k: v}
	}
	var err error
	// One GET by tag gives the descriptor and the bytes the engine needs.
	if img.Desc, img.Data, err = p.Manifest(ctx, s.loc); err == nil {
		img.Fetcher, err = p.Fetcher(ctx, s.loc)
	}
	return img, done(err)
}

// stdoutWriter is the CLI's stdout, or the file behind it when stdout is
// redirected to a regular file (export IMAGE > image.tar), so that the
// engine can write blobs in parallel at their offsets.
func stdoutWriter(dockerCli command.Cli) io.Writer {
	out := dockerCli.Out()
	if out.FD() != os.Stdout.Fd() {
		return out
	}
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode().IsRegular() {
		return os.Stdout
	}
	return out
}

// writeExport writes the tar to stdout or a file (beside the target, renamed
// on success), or the layout folder.
func writeExport(ctx context.Context, target exportTarget, stdout io.Writer, imgs []export.Image, opts export.Options) (export.Result, error) {
	var res export.Result
	// No bufio: the engine writes blobs in 512 KiB chunks, which a buffer
	// would only copy once more; the few small entries cost little.
	write := func(w io.Writer) error {
		var err error
		res, err = export.Write(ctx, w, imgs, opts)
		return err
	}
	var err error
	switch {
	case target.layoutDir != "":
		err = ocilayout.WriteFolder(ctx, target.layoutDir, write)
	case target.out != nil:
		err = target.out.Commit(write)
	default:
		err = write(stdout)
	}
	// res is read after write has set it: in "return res, f()" Go may read
	// res first.
	return res, err
}

// parseExportTarget reads -o: "" or "-" is stdout, oci-layout://DIR a
// layout folder, anything else a file.
func parseExportTarget(output string) (exportTarget, error) {
	switch {
	case output == "" || output == "-":
		return exportTarget{stdout: true}, nil
	case strings.HasPrefix(output, ref.LayoutPrefix):
		dir := strings.TrimPrefix(output, ref.LayoutPrefix)
		if dir == "" || strings.ContainsAny(dir, "@") || layoutTagged(dir) {
			return exportTarget{}, fmt.Errorf("invalid output %q: want %sDIR, without :TAG or @DIGEST (names come from the images or --name)", output, ref.LayoutPrefix)
		}
		return exportTarget{layoutDir: dir}, nil
	default:
		return exportTarget{file: output}, nil
	}
}

// layoutTagged reports whether an oci-layout:// path ends in ":TAG", which
// reads back as PATH:TAG and so cannot name an output folder.
func layoutTagged(dir string) bool {
	i := strings.LastIndex(dir, ":")
	return i >= 0 && !strings.ContainsAny(dir[i+1:], `/\`)
}

// engineOptions turns the flags into the engine's options. The format
// defaults to docker for a tar and oci for a layout folder.
func (o exportOptions) engineOptions(target exportTarget) (export.Options, error) {
	opts := export.Options{
		Format:           o.format,
		SkipAttestations: !o.attestations,
		IncludeForeign:   o.includeForeign,
		MaxConcurrency:   o.maxConcurrency,
	}
	if opts.Format == "" {
		opts.Format = export.FormatDocker
		if target.layoutDir != "" {
			opts.Format = export.FormatOCI
		}
	}
	if opts.Format != export.FormatDocker && opts.Format != export.FormatOCI {
		return opts, fmt.Errorf("invalid --format %q: want %s or %s", o.format, export.FormatDocker, export.FormatOCI)
	}
	if o.maxConcurrency < 1 {
		return opts, fmt.Errorf("invalid --max-concurrency %d: want 1 or more", o.maxConcurrency)
	}
	plats, all, err := parsePlatformsOrAll(o.platforms)
	if err != nil {
		return opts, err
	}
	// Without a platform (or with "all" alone) the local platform is the one
	// docker load sees; a named one also refuses a single image of another.
	opts.ExplicitPlatforms = len(plats) > 0
	if len(plats) == 0 {
		plats = []ocispec.Platform{platforms.DefaultSpec()}
	}
	opts.Platforms, opts.AllPlatforms = plats, all
	return opts, nil
}

// exportSource is one IMAGE argument and the name it gets in the tar.
type exportSource struct {
	loc  ref.Location
	name string
}

// exportSources pairs each image with its name: the i-th --name, else the
// image's own reference, fully qualified, with ":latest" when it has neither
// tag nor digest. An image given by digest alone keeps "repo@digest" (no tag
// for docker load); an OCI layout source has no name without --name.
func exportSources(images, names []string) ([]exportSource, error) {
	if len(names) > 0 && len(names) != len(images) {
		return nil, fmt.Errorf("%d --name for %d images: give one --name per IMAGE, in the same order", len(names), len(images))
	}
	out := make([]exportSource, 0, len(images))
	for i, img := range images {
		loc, err := ref.Parse(img)
		if err != nil {
			return nil, err
		}
		s := exportSource{loc: loc, name: loc.ImageName()}
		if len(names) > 0 {
			if s.name, err = normalizeExportName(names[i]); err != nil {
				return nil, err
			}
		}
		if err := checkExportName(img, s.name, len(names) > 0); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, checkNamesUnique(names, out)
}

// checkExportName refuses, before any transfer, a name docker load and
// podman load reject: a registry given by an IPv6 address
// ("[::1]:5000/app:1").
func checkExportName(img, name string, given bool) error {
	if !strings.HasPrefix(name, "[") {
		return nil
	}
	if given {
		return fmt.Errorf("invalid --name %q: docker load and podman load refuse a registry given by an IPv6 address: name it by host name", name)
	}
	return fmt.Errorf("%s: docker load and podman load refuse a name whose registry is an IPv6 address: give the image another name with --name NAME[:TAG]", img)
}

// checkNamesUnique refuses two images given the same --name: the second
// would take the name from the first in the engine.
func checkNamesUnique(given []string, sources []exportSource) error {
	if len(given) == 0 {
		return nil
	}
	seen := map[string]int{}
	for i, s := range sources {
		if j, dup := seen[s.name]; dup {
			return fmt.Errorf("--name %q and --name %q both name %s: give each IMAGE its own name", given[j], given[i], s.name)
		}
		seen[s.name] = i
	}
	return nil
}

// normalizeExportName qualifies a --name fully ("app:1" is
// "docker.io/library/app:1") and tags it "latest" when it has no tag.
func normalizeExportName(name string) (string, error) {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("invalid --name %q: %w (want NAME[:TAG])", name, err)
	}
	if _, ok := ref.(reference.Digested); ok {
		return "", fmt.Errorf("invalid --name %q: a name has a tag, not a digest", name)
	}
	return reference.TagNameOnly(ref).String(), nil
}

func exportCmd(dockerCli command.Cli, root *rootOptions) *cobra.Command {
	opts := exportOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] IMAGE [IMAGE...]",
		Short: "Write images from registries into a tar that docker, containerd, podman and skopeo load",
		Long: `Write images from registries, OCI layouts, image tars (archive://FILE[:NAME])
or the Docker engine (docker-daemon://NAME[:TAG]) into one tar: a Docker image tar
(manifest.json, for docker load) and an OCI image layout (for ctr images import,
podman load and skopeo) at once. Blobs are the registry's bytes, checked against
their digests while they are copied; the output file appears only when complete.
With --load, the same tar is streamed into the Docker engine of the current
context (DOCKER_HOST, docker context) and its answer checked, without a file.`,
		Example: `  # A docker save of an image you never pulled (the local platform)
  docker imgx export -o app.tar registry.example/app:1.2.3
  docker load -i app.tar

  # Every platform, into an OCI layout folder
  docker imgx export -p all -o oci-layout://./app registry.example/app:1.2.3

  # Two images in one tar, named as you want them loaded
  docker imgx export -o both.tar --name app:1 --name tools:1 registry.example/app:1 registry.example/tools:1

  # Into the Docker engine of the current context, no file in between
  docker imgx export --load registry.example/app:1.2.3

  # Air-gapped copy: every platform of the images into one tar ...
  docker imgx export -p all -o images.tar registry.example/app:1.2.3 registry.example/db:16
  # ... and, on the other side, each pushed from the tar with its digests unchanged
  docker imgx create --prefer-index=false -t mirror.internal/app:1.2.3 archive://images.tar:registry.example/app:1.2.3`,
		Args:              argCount(1, -1, "IMAGE [IMAGE...]"),
		ValidArgsFunction: completeSource,
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
	flags.BoolVar(&opts.load, "load", false, "Load the images into the Docker engine of the current context instead of writing a tar (default platform: the engine's; several or \"all\" need the engine's containerd image store)")
	flags.StringVar(&opts.progress, "progress", progress.ModeAuto, "Progress output `MODE`: "+strings.Join(progress.Modes(), ", "))
	registerCompletions(cmd, map[string]cobra.CompletionFunc{
		"output": completeOutput, "platform": completePlatforms(true), "format": completeExportFormat(),
		"progress": completeProgress(), "name": noCompletion, "max-concurrency": noCompletion,
	})
	return cmd
}
