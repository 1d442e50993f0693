package commands

import (
	"context"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/progress"
)

// withProgressNotices sends the registry notices of ctx (retries, resumed
// downloads) to the progress display as one-off steps, so they neither break
// a tty display nor vanish: "retrying GET ... (attempt 2/5): 503 ...".
func withProgressNotices(ctx context.Context, w progress.Writer) context.Context {
	return imagetools.WithNotices(ctx, func(msg string) {
		_ = progress.OneOff(w, msg)(nil)
	})
}
