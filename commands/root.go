// Package commands holds the cobra commands of docker-imgx: flags, validation
// and output only; the work is done by package imagetools.
package commands

import (
	"errors"
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
	var root *cobra.Command
	cmd := &cobra.Command{
		Use:                        name,
		Short:                      "Create, inspect, export and copy images wherever they live",
		Long:                       rootLong,
		SilenceUsage:               true,
		SilenceErrors:              true,
		SuggestionsMinimumDistance: 2,
		Example: `  docker imgx inspect alpine
  docker imgx create -t registry.example/app:1.2.3 registry.example/app:1.2.3-amd64 registry.example/app:1.2.3-arm64
  docker imgx export -o app.tar registry.example/app:1.2.3`,
		// Standalone, "completion bash|zsh|fish|powershell" writes a
		// completion script; under docker, docker's own completion asks
		// the plugin (docker __complete imgx ...).
		CompletionOptions: cobra.CompletionOptions{
			HiddenDefaultCmd: isPlugin,
		},
		PersistentPreRunE: func(leaf *cobra.Command, args []string) error {
			if isPlugin {
				inheritContext(leaf, root)
				// The Docker CLI's set-up sets the log level from its own
				// flags: ours comes after it. It also cancels the leaf's
				// context when docker closes the plugin socket.
				if err := plugin.PersistentPreRunE(leaf, args); err != nil {
					return err
				}
			}
			setupLogging(opts.debug)
			return nil
		},
		// An unknown command is an error in both modes: as a plugin, cobra
		// would print the help and exit 0.
		Args: noSubcommand,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	root = cmd
	if !isPlugin {
		cmd.TraverseChildren = true
	}
	cmd.SetFlagErrorFunc(flagError)
	flags := cmd.PersistentFlags()
	flags.BoolVarP(&opts.debug, "debug", "D", false, "Enable debug logging")
	flags.StringArrayVar(&opts.insecure, "insecure-registry", nil,
		"Allow plain HTTP and unverified TLS for a registry (`HOST`, HOST:PORT or CIDR; repeatable; also "+envInsecure+"; wins over a hosts.toml)")

	registerCompletions(cmd, map[string]cobra.CompletionFunc{"insecure-registry": noCompletion})
	cmd.AddCommand(
		createCmd(dockerCli, opts),
		inspectCmd(dockerCli, opts),
		exportCmd(dockerCli, opts),
		copyCmd(dockerCli, opts),
		versionCmd(dockerCli),
	)
	return cmd
}

// inheritContext gives the command about to run the context of our root
// (cancelled by SIGINT and SIGTERM). Under docker, plugin.RunPlugin runs it
// from a root of docker's, whose context is context.Background: Ctrl-C on
// a terminal, which reaches the plugin itself, would cancel nothing.
func inheritContext(leaf, root *cobra.Command) {
	if ctx := root.Context(); ctx != nil {
		leaf.SetContext(ctx)
	}
}

// interruptReport is the error of an interrupted command that says what
// the interruption left (where each tag points after a create).
type interruptReport struct{ error }

func (r interruptReport) Unwrap() error { return r.error }

// InterruptedMessage is the error line of an interrupted command (exit code
// 130): "interrupted", or what the interruption left when the command tells.
func InterruptedMessage(err error) string {
	var r interruptReport
	if errors.As(err, &r) {
		return r.Error()
	}
	return "interrupted"
}

// noSubcommand is the root's argument check: anything left is an unknown
// command, reported on one line.
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return unknownCommand(cmd, args[0])
}

// unknownCommand says which commands come close to name ("did you mean")
// and where the list is.
func unknownCommand(cmd *cobra.Command, name string) error {
	hint := ""
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		hint = fmt.Sprintf(": did you mean %q?", strings.Join(s, `" or "`))
	}
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return fmt.Errorf("unknown command %q for %q%s (commands: %s; see '%s --help')", name, cmd.CommandPath(), hint, strings.Join(names, ", "), cmd.CommandPath())
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

// checkMaxConcurrency is the one check of --max-concurrency, for every
// command that has it.
func checkMaxConcurrency(n int) error {
	if n < 1 {
		return fmt.Errorf("invalid --max-concurrency %d: want 1 or more", n)
	}
	return nil
}
