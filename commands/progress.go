package commands

import (
	"context"

	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/registry"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/docker/cli/cli/command"
)

// withProgress runs fn under a progress display on stderr in mode ("auto",
// "plain", ...), headed phase in a tty. The display outlives ctx, so that a
// cancelled run still shows why. fn gets the places to work on (reached as
// reg says), whose notices (retries, resumed downloads) go into the display
// as one-off steps: "retrying GET ... (attempt 2/5)".
func withProgress(ctx context.Context, dockerCli command.Cli, reg registry.Options, mode, phase string, fn func(ctx context.Context, pl place.Place, pw progress.Writer) error) error {
	printer, err := progress.NewPrinter(context.WithoutCancel(ctx), dockerCli.Err(), mode, progress.WithPhase(phase))
	if err != nil {
		return err
	}
	pl, closePlaces, err := placesFor(dockerCli, reg, printer)
	if err == nil {
		defer closePlaces()
		err = fn(ctx, pl, printer)
	}
	if waitErr := printer.Wait(); err == nil {
		err = waitErr
	}
	return err
}
