package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/inspect"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/termtext"
	"github.com/docker/cli/cli/command"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
)

type inspectOptions struct {
	*rootOptions
	name     string
	format   string
	raw      bool
	platform string
	// maxManifests is --max-manifests.
	maxManifests int
}

func runInspect(ctx context.Context, dockerCli command.Cli, opts inspectOptions) error {
	if opts.raw && opts.format != "" {
		return fmt.Errorf("--format and --raw cannot be used together: pick one")
	}
	loc, err := ref.Parse(opts.name)
	if err != nil {
		return err
	}
	var p *ocispec.Platform
	if opts.platform != "" {
		pl, err := parsePlatform(opts.platform)
		if err != nil {
			return err
		}
		p = &pl
	}
	limits, err := graphLimits(opts.maxManifests)
	if err != nil {
		return err
	}
	reg, err := opts.registryOptions(dockerCli)
	if err != nil {
		return err
	}
	needData := opts.format != "" && opts.format != "{{.Manifest}}"
	pl, closePlaces, err := placesFor(dockerCli, reg, nil)
	if err != nil {
		return err
	}
	defer closePlaces()
	img, err := inspect.Read(ctx, pl, loc, inspect.Options{
		Platform: p, Configs: needData, Attestations: needData, ManifestOnly: opts.raw, Limits: limits,
	})
	if err != nil {
		return explainPlatform(err)
	}
	for _, w := range img.Warnings {
		fmt.Fprintf(dockerCli.Err(), "WARNING: %s\n", termtext.Message(w))
	}
	pr := inspect.NewPrinter(img)
	if opts.raw {
		return pr.Raw(dockerCli.Out())
	}
	err = pr.Format(dockerCli.Out(), opts.format)
	if fe := (*inspect.FormatError)(nil); errors.As(err, &fe) {
		return errors.New(fe.Explain("--format"))
	}
	return err
}

// explainPlatform names the flag of a platform asked of a single image.
func explainPlatform(err error) error {
	if errors.Is(err, imagetools.ErrSingleImagePlatform) {
		return fmt.Errorf("%w: drop --platform", err)
	}
	return err
}

func inspectCmd(dockerCli command.Cli, root *rootOptions) *cobra.Command {
	opts := inspectOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME",
		Short: "Show an image or index in a registry or OCI layout",
		Long: `Show an image or index: in a registry (NAME[:TAG][@DIGEST]), an OCI layout
(oci-layout://PATH[:TAG][@DIGEST]), an image tar (archive://FILE[:NAME][@DIGEST])
or the Docker engine (docker-daemon://NAME[:TAG]).

` + templateFieldsHelp(),
		Example: `  # Look at a multi-platform image, then one platform of it
  docker imgx inspect registry.example/app:1.2.3
  docker imgx inspect -p linux/arm64 registry.example/app:1.2.3

  # The exact bytes: their sha256 is the digest
  docker imgx inspect --raw registry.example/app:1.2.3 | sha256sum

  # Templates and JSON
  docker imgx inspect --format '{{range .Platforms}}{{println .}}{{end}}' registry.example/app:1.2.3
  docker imgx inspect --format '{{json (index .Image "linux/amd64").Config.Env}}' registry.example/app:1.2.3
  docker imgx inspect --format json registry.example/app:1.2.3 > app.json

  # An OCI image layout folder
  docker imgx inspect oci-layout://./out:1.2.3

  # An image tar, and an image of the Docker engine
  docker imgx inspect archive://app.tar
  docker imgx inspect --format '{{json .Image}}' docker-daemon://app:dev

  # An index of more than 10000 images and attestations
  docker imgx inspect --max-manifests 50000 --format json registry.example/mirror:all`,
		Args:              argCount(1, 1, "NAME"),
		ValidArgsFunction: completeSource(dockerCli, root),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = args[0]
			return runInspect(cmd.Context(), dockerCli, opts)
		},
		DisableFlagsInUseLine: true,
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.format, "format", "", "Print `FORMAT`: \"json\" (all data as JSON) or a Go template")
	flags.BoolVar(&opts.raw, "raw", false, "Show the manifest bytes exactly as the registry sent them")
	flags.StringVarP(&opts.platform, "platform", "p", "", "Show one platform of an index (`OS/ARCH[/VARIANT]`)")
	bindMaxManifests(flags, &opts.maxManifests)
	registerCompletions(cmd, map[string]cobra.CompletionFunc{
		"format":   completeValues("json", "{{json .Manifest}}", "{{json .Image}}", "{{range .Platforms}}{{println .}}{{end}}"),
		"platform": completePlatforms(false), maxManifestsFlag: noCompletion,
	})
	return cmd
}

// templateFieldsHelp lists the fields --format templates see, from the one
// list the error of an unknown field names too.
func templateFieldsHelp() string {
	var b strings.Builder
	b.WriteString("A --format template sees:\n")
	for _, f := range inspect.TemplateFields {
		fmt.Fprintf(&b, "  %-12s %s\n", f.Name, f.Help)
	}
	b.WriteString("and the function json (any value as JSON).")
	return b.String()
}
