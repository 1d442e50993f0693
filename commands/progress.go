package commands

import (
	"context"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/docker/cli/cli/command"
)

// withProgress runs fn under a progress display on stderr in mode ("auto",
// "plain", ...), headed phase in a tty. The display outlives ctx, so that a
// cancelled run still shows why, and registry notices (retries, resumed
// downloads) go into it as one-off steps: "retrying GET ... (attempt 2/5)".
func withProgress(ctx context.Context, dockerCli command.Cli, mode, phase string, fn func(ctx context.Context, pw progress.Writer) error) error {
	printer, err := progress.NewPrinter(context.WithoutCancel(ctx), dockerCli.Err(), mode, progress.WithPhase(phase))
	if err != nil {
		return err
	}
	ctx = imagetools.WithNotices(ctx, func(msg string) {
		_ = progress.OneOff(printer, msg)(nil)
	})
	err = fn(ctx, printer)
	if waitErr := printer.Wait(); err == nil {
		err = waitErr
	}
	return err
}
