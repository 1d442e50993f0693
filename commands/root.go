// Package commands holds the cobra commands of docker-imgx: flags, validation
// and output only; the work is done by package imagetools.
package commands

import (
	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

// NewRootCmd returns the root command; name is "imgx" when run as a plugin and
// the binary's name when standalone.
func NewRootCmd(name string, isPlugin bool, dockerCli command.Cli) *cobra.Command {
	opts := &rootOptions{}
	cmd := &cobra.Command{
		Use:   name,
		Short: "Create, inspect and export images that live in registries",
		Long: `docker imgx works on images in registries without a Docker daemon:
combine images into multi-platform indexes (create), look at them (inspect)
and write them into a tar that docker, containerd, podman and skopeo load (export).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		CompletionOptions: cobra.CompletionOptions{
			HiddenDefaultCmd: true,
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			setupLogging(opts.debug)
			if isPlugin {
				return plugin.PersistentPreRunE(cmd, args)
			}
			return nil
		},
	}
	if !isPlugin {
		cmd.TraverseChildren = true
		cmd.Args = cli.NoArgs
		cmd.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
	}
	flags := cmd.PersistentFlags()
	flags.BoolVarP(&opts.debug, "debug", "D", false, "Enable debug logging")
	flags.StringArrayVar(&opts.insecure, "insecure-registry", nil,
		"Allow plain HTTP and unverified TLS for a registry (`HOST`, HOST:PORT or CIDR; repeatable; also "+envInsecure+")")

	cmd.AddCommand(
		createCmd(dockerCli, opts),
		inspectCmd(dockerCli, opts),
		exportCmd(dockerCli, opts),
		versionCmd(dockerCli),
	)
	return cmd
}
