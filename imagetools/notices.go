package imagetools

import "context"

type noticesKey struct{}

// WithNotices returns a context whose registry notices (retried requests,
// resumed downloads) go to fn, so that a command can show them in its
// progress display instead of as lines on stderr.
func WithNotices(ctx context.Context, fn func(msg string)) context.Context {
	return context.WithValue(ctx, noticesKey{}, fn)
}

// NoticesFrom returns the notice function of ctx, or nil when it has none.
func NoticesFrom(ctx context.Context) func(msg string) {
	fn, _ := ctx.Value(noticesKey{}).(func(string))
	return fn
}
