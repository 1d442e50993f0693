// Command docs regenerates the reference pages in docs/reference from the
// cobra command tree, with cli-docs-tool in plugin mode. Text outside the
// <!---MARKER_GEN_START--> and <!---MARKER_GEN_END--> markers is written by
// hand and kept; a page that does not exist yet is created with empty markers.
//
//	go run ./docs [-formats md] [-source docs/reference]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker-imgx/docker-imgx/commands"
	clidocstool "github.com/docker/cli-docs-tool"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

const defaultSourceDir = "docs/reference"

type options struct {
	source  string
	formats []string
}

func main() {
	log.SetFlags(0)
	if err := run(os.Args[1:], os.Stderr); err != nil {
		log.Printf("ERROR: %v", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	opts, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	return generate(opts)
}

func parseArgs(args []string, stderr io.Writer) (options, error) {
	var (
		opts    options
		formats string
	)
	flags := flag.NewFlagSet("docs", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.StringVar(&opts.source, "source", defaultSourceDir, "Folder of the reference pages, read and rewritten in place")
	flags.StringVar(&formats, "formats", "md", "Comma-separated output formats (md)")
	if err := flags.Parse(args); err != nil {
		return options{}, err
	}
	if flags.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %s", strings.Join(flags.Args(), " "))
	}
	for _, f := range strings.Split(formats, ",") {
		if f = strings.TrimSpace(f); f != "" {
			opts.formats = append(opts.formats, f)
		}
	}
	if len(opts.formats) == 0 {
		return options{}, errors.New("no output format given")
	}
	return opts, nil
}

// rootCmd returns the command tree as the docker CLI shows it: the plugin's
// root under "docker", so pages are named imgx.md, imgx_version.md and so on.
func rootCmd() (*cobra.Command, error) {
	dockerCli, err := command.NewDockerCli()
	if err != nil {
		return nil, fmt.Errorf("create docker cli: %w", err)
	}
	cmd := &cobra.Command{
		Use:               "docker [OPTIONS] COMMAND [ARG...]",
		Short:             "The base command for the Docker CLI.",
		DisableAutoGenTag: true,
	}
	cmd.AddCommand(commands.NewRootCmd("imgx", true, dockerCli))
	return cmd, nil
}

func generate(opts options) error {
	cmd, err := rootCmd()
	if err != nil {
		return err
	}
	c, err := clidocstool.New(clidocstool.Options{
		Root:      cmd,
		SourceDir: opts.source,
		Plugin:    true,
	})
	if err != nil {
		return fmt.Errorf("docs in %s: %w", opts.source, err)
	}
	for _, format := range opts.formats {
		switch format {
		case "md":
			if err := c.GenMarkdownTree(cmd); err != nil {
				return fmt.Errorf("generate markdown in %s: %w", opts.source, err)
			}
			if err := addExamples(cmd, opts.source); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown format %q: valid formats are md", format)
		}
	}
	return nil
}

// addExamples writes each command's examples (cobra's Example, the text
// --help shows) at the end of the generated part of its page, so that they
// are written once, in the command. cli-docs-tool's Markdown leaves them out.
func addExamples(cmd *cobra.Command, dir string) error {
	for _, sub := range cmd.Commands() {
		if err := addExamples(sub, dir); err != nil {
			return err
		}
	}
	if !cmd.HasParent() || cmd.Example == "" {
		return nil
	}
	_, name, _ := strings.Cut(cmd.CommandPath(), " ")
	path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".md")
	dt, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	page := string(dt)
	end := strings.Index(page, endMarker)
	if end < 0 {
		return fmt.Errorf("no end marker in %s", path)
	}
	var lines []string
	for _, l := range strings.Split(cmd.Example, "\n") {
		lines = append(lines, strings.TrimPrefix(l, "  "))
	}
	examples := "### Examples\n\n```console\n" + strings.Join(lines, "\n") + "\n```\n\n"
	page = strings.TrimRight(page[:end], "\n") + "\n\n" + examples + page[end:]
	return os.WriteFile(path, []byte(page), 0o644)
}

const endMarker = "<!---MARKER_GEN_END-->"
