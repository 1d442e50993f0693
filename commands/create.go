package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/combine"
	"github.com/docker-imgx/docker-imgx/imagetools/create"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/atomicfile"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/docker/cli/cli/command"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
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
}

func runCreate(ctx context.Context, dockerCli command.Cli, opts createOptions) error {
	fileSources, err := readSourceFiles(opts.files, dockerCli.In())
	if err != nil {
		return err
	}
	anns, err := combine.ParseAnnotations(opts.annotations)
	if err != nil {
		return err
	}
	plats, err := parsePlatforms(opts.platforms)
	if err != nil {
		return err
	}
	if err := checkMaxConcurrency(opts.maxConcurrency); err != nil {
		return err
	}
	reg, err := opts.registryOptions(dockerCli)
	if err != nil {
		return err
	}
	// Opened before the push, so that no tag moves for a file that cannot
	// be written.
	meta, err := openMetadataFile(opts.metadataFile)
	if err != nil {
		return err
	}
	defer meta.Abort()
	var res *create.Result
	err = withProgress(ctx, dockerCli, reg, opts.progress, "Pushing", func(ctx context.Context, pl place.Place, pw progress.Writer) error {
		var err error
		res, err = create.Create(ctx, pl, create.Options{
			Sources: append(fileSources, opts.sources...), Tags: opts.tags,
			Annotations: anns, Platforms: plats, PreferIndex: opts.preferIndex, ForceOCI: opts.oci,
			Append: opts.appendTo, DryRun: opts.dryRun, Referrers: opts.referrers, MaxConcurrency: opts.maxConcurrency, Progress: pw,
		})
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
		return opts.explain(err)
	}
	return reportCreate(dockerCli.Out(), opts.dryRun, meta, res)
}

// reportCreate prints the digest (the index, in a dry run) and then writes
// the metadata file: a push that succeeded is said so even when the file
// cannot be written.
func reportCreate(stdout io.Writer, dryRun bool, meta *atomicfile.File, res *create.Result) error {
	out := res.Desc.Digest.String()
	if dryRun {
		out = string(res.Bytes)
	}
	if _, err := fmt.Fprintln(stdout, out); err != nil {
		return err
	}
	if err := writeCreateMetadata(meta, res); err != nil {
		if dryRun {
			return err
		}
		return fmt.Errorf("the push succeeded (%s, digest %s) but %w", joinLocations(res.Targets), res.Desc.Digest, err)
	}
	return nil
}

// openMetadataFile opens --metadata-file before anything is pushed; nil
// when the flag is not given.
func openMetadataFile(path string) (*atomicfile.File, error) {
	if path == "" {
		return nil, nil
	}
	f, err := atomicfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--metadata-file %w", err)
	}
	return f, nil
}

func joinLocations(locs []ref.Location) string {
	s := make([]string, len(locs))
	for i, l := range locs {
		s[i] = l.String()
	}
	return strings.Join(s, ", ")
}

// readSourceFiles reads -f files ("-" is stdin): a file holding descriptor
// JSON is one source, as buildx reads it; otherwise each non-empty line that
// is not a # comment is one source.
func readSourceFiles(files []string, stdin io.Reader) ([]string, error) {
	var out []string
	for _, f := range files {
		var dt []byte
		var err error
		if f == "-" {
			dt, err = io.ReadAll(stdin)
		} else {
			dt, err = os.ReadFile(f)
		}
		if err != nil {
			return nil, fmt.Errorf("read sources from %s: %w", f, err)
		}
		text := strings.TrimSpace(string(dt))
		if strings.HasPrefix(text, "{") {
			out = append(out, text)
			continue
		}
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") {
				out = append(out, line)
			}
		}
	}
	return out, nil
}

// writeCreateMetadata writes buildx's metadata keys, plus the tags that
// point at the result (in a dry run: that would; after a failed tag step,
// those that could not be put back) to f, when f is not nil.
func writeCreateMetadata(f *atomicfile.File, res *create.Result) error {
	if f == nil {
		return nil
	}
	var repos []string
	tags := []string{}
	for _, t := range res.Tagged {
		tags = append(tags, t.String())
	}
	seen := map[string]bool{}
	for _, t := range res.Targets {
		if !seen[t.Repository()] {
			seen[t.Repository()] = true
			repos = append(repos, t.Repository())
		}
	}
	dt, err := json.MarshalIndent(map[string]any{
		"containerimage.descriptor": ocispec.Descriptor{MediaType: res.Desc.MediaType, Digest: res.Desc.Digest, Size: res.Desc.Size},
		"image.name":                strings.Join(repos, ","),
		"image.tags":                tags,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("writing --metadata-file %s failed: %w", f.Name(), err)
	}
	err = f.Commit(func(w io.Writer) error {
		_, err := w.Write(append(dt, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("writing --metadata-file %s failed: %w", f.Name(), err)
	}
	return nil
}

// explain adds to an engine error the flag that changes the outcome: the
// engine says what was wrong, the command which flag to change.
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
		Use:   "create [OPTIONS] [SOURCE...]",
		Short: "Combine images and indexes into one multi-platform index and push it to tags",
		Long: `Combine images and indexes into one multi-platform index and push it to tags.

A SOURCE is a reference (NAME[:TAG][@DIGEST]), a bare digest (its repository is
the one named by the tags and other sources), a descriptor in JSON, an OCI
layout (oci-layout://PATH[:TAG][@DIGEST]), an image tar
(archive://FILE[:NAME][@DIGEST]: docker save, podman save, skopeo, buildx,
docker imgx export; gzip or zstd too; NAME picks one image of several), or an
image of the Docker engine (docker-daemon://NAME[:TAG]). A bare argument that
names a file is refused: write archive://FILE. Content is copied by digest first
(mounted within one registry, streamed between registries); tags move last,
all or none: when one cannot be moved, those already moved are put back.
The digest of the result is printed on stdout.`,
		Example: `  # Combine per-architecture builds into one multi-platform tag
  docker imgx create -t registry.example/app:1.2.3 \
    registry.example/app:1.2.3-amd64 registry.example/app:1.2.3-arm64

  # Tag a release without changing its digest
  docker imgx create -t registry.example/app:1.2 -t registry.example/app:latest registry.example/app@sha256:3f9a...

  # Add or replace a platform in an existing image
  docker imgx create --append -t registry.example/app:edge registry.example/app:edge-riscv64

  # See the index first: keep two platforms, push nothing
  docker imgx create --dry-run -p linux/amd64,linux/arm64 registry.example/app:all

  # Annotate the index and one platform's descriptor
  docker imgx create --oci --annotation org.opencontainers.image.source=https://git.example/app \
    --annotation 'manifest-descriptor[linux/arm64]:com.example.tuned=true' \
    -t registry.example/app:1.2.3 registry.example/app:1.2.3-amd64 registry.example/app:1.2.3-arm64

  # Sources from a file, the result's descriptor into a metadata file
  docker imgx create -f sources.txt --metadata-file meta.json -t registry.example/app:1.2.3

  # From an OCI layout folder to a registry
  docker imgx create -t registry.example/app:1.2.3 oci-layout://./out:1.2.3

  # Push local builds of the Docker engine as one multi-platform image
  docker imgx create -t registry.example/app:1.2.3 docker-daemon://app:amd64 docker-daemon://app:arm64

  # Push an image tar (docker save, podman save); NAME picks one of several
  docker imgx create -t registry.example/app:1.2.3 archive://app.tar
  docker imgx create -t registry.example/app:1.2.3 archive://images.tar.gz:registry.example/app:1.2.3`,
		ValidArgsFunction: completeSource,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.sources = args
			return runCreate(cmd.Context(), dockerCli, opts)
		},
		DisableFlagsInUseLine: true,
	}
	flags := cmd.Flags()
	flags.StringArrayVarP(&opts.tags, "tag", "t", nil, "Push the result to `REF` (repeatable; NAME[:TAG] or oci-layout://PATH[:TAG])")
	flags.StringArrayVarP(&opts.files, "file", "f", nil, "Read sources from `FILE` (one per line, or descriptor JSON; \"-\" for stdin)")
	flags.BoolVar(&opts.appendTo, "append", false, "Append the sources to the image at the first tag (created when missing)")
	flags.BoolVar(&opts.dryRun, "dry-run", false, "Print the resulting index on stdout and push nothing")
	flags.StringArrayVar(&opts.annotations, "annotation", nil, "Add an annotation (`[TYPE:]KEY=VALUE`, TYPE index or manifest-descriptor[OS/ARCH])")
	flags.BoolVar(&opts.preferIndex, "prefer-index", true, "Wrap a single image manifest in an index (false: tag the manifest as it is)")
	flags.BoolVar(&opts.referrers, "referrers", true, "Copy the cosign signatures and OCI referrers of the images copied to another repository")
	flags.BoolVar(&opts.oci, "oci", false, "Make an OCI image index even when every child is a Docker manifest")
	flags.StringArrayVarP(&opts.platforms, "platform", "p", nil, "Keep only these platforms (`OS/ARCH[/VARIANT]`, repeatable or comma-separated)")
	flags.StringVar(&opts.metadataFile, "metadata-file", "", "Write the result's descriptor and names as JSON to `FILE` (with --dry-run: what would be pushed)")
	flags.StringVar(&opts.progress, "progress", progress.ModeAuto, "Progress output `MODE`: "+strings.Join(progress.Modes(), ", "))
	flags.IntVar(&opts.maxConcurrency, "max-concurrency", oci.DefaultMaxConcurrency, "Most transfers of blobs over 4 MiB running at once (`N`); smaller blobs and small requests (manifests, checks, mounts) run up to 4 times as many (1: everything in order). The same default as export's")
	registerCompletions(cmd, map[string]cobra.CompletionFunc{
		"tag": completeOutput, "file": completeFile, "platform": completePlatforms(false),
		"metadata-file": completeFile, "progress": completeProgress(), "annotation": noCompletion,
		"max-concurrency": noCompletion,
	})
	return cmd
}
