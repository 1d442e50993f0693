// Package commands holds the cobra commands of docker-imgx: flags, validation
// and output only; the work is done by package imagetools.
package commands

import (
	"fmt"
	"strings"

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
		cmd.Args = noSubcommand
		cmd.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
	}
	flags := cmd.PersistentFlags()
	flags.BoolVarP(&opts.debug, "debug", "D", false, "Enable debug logging")
	flags.StringArrayVar(&opts.insecure, "insecure-registry", nil,
		"Allow plain HTTP and unverified TLS for a registry (`HOST`, HOST:PORT or CIDR; repeatable; also "+envInsecure+"; wins over a hosts.toml)")

	cmd.AddCommand(
		createCmd(dockerCli, opts),
		inspectCmd(dockerCli, opts),
		exportCmd(dockerCli, opts),
		versionCmd(dockerCli),
	)
	return cmd
}

// noSubcommand is the root's argument check: anything left is an unknown
// command, reported on one line.
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return fmt.Errorf("unknown command %q for %q: see '%s --help' (commands: create, inspect, export, version)", args[0], cmd.CommandPath(), cmd.CommandPath())
}

// argCount checks a command's number of arguments, min to max (max < 0: no
// limit), and says on one line what it takes; usage names them, e.g. "NAME".
func argCount(min, max int, usage string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= min && (max < 0 || len(args) <= max) {
			return nil
		}
		want := fmt.Sprintf("%d", min)
		switch {
		case max < 0:
			want = fmt.Sprintf("at least %d", min)
		case max != min:
			want = fmt.Sprintf("%d to %d", min, max)
		}
		got := "none"
		if len(args) > 0 {
			got = fmt.Sprintf("%d (%s)", len(args), strings.Join(args, " "))
		}
		if usage != "" {
			usage = " (" + usage + ")"
		}
		return fmt.Errorf("%q takes %s argument(s)%s, got %s: see '%s --help'", cmd.CommandPath(), want, usage, got, cmd.CommandPath())
	}
}
