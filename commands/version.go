package commands

import (
	"fmt"

	"github.com/docker-imgx/docker-imgx/internal/version"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

func runVersion(dockerCli command.Cli) error {
	v, rev := version.Current()
	_, err := fmt.Fprintf(dockerCli.Out(), "docker-imgx %s %s\n", v, rev)
	return err
}

func versionCmd(dockerCli command.Cli) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the docker-imgx version and the commit it was built from",
		Example: `  $ docker imgx version
  docker-imgx v0.1.0 3f2c9a1e8d4b7c6a5f0e1d2c3b4a59687f6e5d4c`,
		Args: argCount(0, 0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVersion(dockerCli)
		},
	}
}
