package commands

import (
	"context"
	"fmt"

	"github.com/docker-imgx/docker-imgx/imagetools"
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
}

func runInspect(ctx context.Context, dockerCli command.Cli, opts inspectOptions) error {
	if opts.raw && opts.format != "" {
		return fmt.Errorf("--format and --raw cannot be used together: pick one")
	}
	loc, err := imagetools.ParseLocation(opts.name)
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
	r, err := opts.newResolver(dockerCli)
	if err != nil {
		return err
	}
	needData := opts.format != "" && opts.format != "{{.Manifest}}"
	img, err := imagetools.Load(ctx, r, loc, imagetools.LoadOptions{
		Platform: p, Configs: needData, Attestations: needData, ManifestOnly: opts.raw,
	})
	if err != nil {
		return err
	}
	for _, w := range img.Warnings {
		fmt.Fprintf(dockerCli.Err(), "WARNING: %s\n", w)
	}
	pr := imagetools.NewPrinter(img)
	if opts.raw {
		return pr.Raw(dockerCli.Out())
	}
	return pr.Format(dockerCli.Out(), opts.format)
}

func inspectCmd(dockerCli command.Cli, root *rootOptions) *cobra.Command {
	opts := inspectOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME",
		Short: "Show an image or index in a registry or OCI layout",
		Args:  argCount(1, 1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = args[0]
			return runInspect(cmd.Context(), dockerCli, opts)
		},
		DisableFlagsInUseLine: true,
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.format, "format", "", "Format the output using a Go template (`json` prints all data as JSON)")
	flags.BoolVar(&opts.raw, "raw", false, "Show the manifest bytes exactly as the registry sent them")
	flags.StringVar(&opts.platform, "platform", "", "Show one platform of an index (`OS/ARCH[/VARIANT]`)")
	return cmd
}
