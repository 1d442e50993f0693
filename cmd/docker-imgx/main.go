// Command docker-imgx is a Docker CLI plugin (docker imgx) and a standalone tool
// for creating, inspecting and exporting images that live in registries.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"

	"github.com/docker-imgx/docker-imgx/commands"
	"github.com/docker-imgx/docker-imgx/internal/termtext"
	"github.com/docker-imgx/docker-imgx/internal/version"
	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	cliflags "github.com/docker/cli/cli/flags"
)

func main() {
	os.Exit(run())
}

func run() int {
	if path := os.Getenv("DOCKER_IMGX_CPUPROFILE"); path != "" {
		stop, err := startCPUProfile(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ERROR: %v\n", err)
			return 1
		}
		defer stop()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dockerCli, err := command.NewDockerCli()
	if err != nil {
		fmt.Fprintf(os.Stderr, "ERROR: %v\n", err)
		return 1
	}
	err = execute(ctx, dockerCli)
	if err == nil {
		return 0
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		fmt.Fprintln(dockerCli.Err(), "ERROR: "+termtext.Message(commands.InterruptedMessage(err)))
		return 130
	}
	// The one way an error reaches the user: whatever it quotes from
	// outside (a registry's words, a name in a tar, a URL) made safe here.
	fmt.Fprintf(dockerCli.Err(), "ERROR: %s\n", termtext.Message(err.Error()))
	return 1
}

func execute(ctx context.Context, dockerCli *command.DockerCli) error {
	if plugin.RunningStandalone() {
		if err := dockerCli.Initialize(cliflags.NewClientOptions()); err != nil {
			return err
		}
		cmd := commands.NewRootCmd(filepath.Base(os.Args[0]), false, dockerCli)
		return cmd.ExecuteContext(ctx)
	}
	cmd := commands.NewRootCmd("imgx", true, dockerCli)
	cmd.SetContext(ctx)
	return plugin.RunPlugin(dockerCli, cmd, metadata.Metadata{
		SchemaVersion:    "0.1.0",
		Vendor:           "docker-imgx",
		Version:          version.Version,
		ShortDescription: "Create, inspect, export and copy images wherever they live",
		URL:              "https://" + version.Package,
	})
}

// startCPUProfile writes a CPU profile to path until the returned func is
// called: DOCKER_IMGX_CPUPROFILE=FILE, for measuring (go tool pprof FILE).
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("DOCKER_IMGX_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close() // the profile was never started: nothing to lose
		return nil, fmt.Errorf("DOCKER_IMGX_CPUPROFILE: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "WARN: DOCKER_IMGX_CPUPROFILE: %v\n", err)
		}
	}, nil
}
