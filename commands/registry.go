package commands

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/internal/version"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/config"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Environment variables that configure registry access (see docs/reference/imgx.md).
const (
	envInsecure     = "DOCKER_IMGX_INSECURE_REGISTRIES" // comma-separated HOST, HOST:PORT or CIDR
	envCertsDirs    = "DOCKER_IMGX_CERTS_DIRS"          // list of certs.d folders (path list)
	envDaemonConfig = "DOCKER_IMGX_DAEMON_CONFIG"       // daemon.json whose insecure-registries apply
	// envStallTimeout is how long a registry may send no byte of a response
	// body before the read fails and the download is resumed (a Go duration,
	// default 60s; "0" or a negative value turns the watchdog off).
	envStallTimeout = "DOCKER_IMGX_STALL_TIMEOUT"
)

const defaultDaemonConfig = "/etc/docker/daemon.json"

// rootOptions are the flags every command shares.
type rootOptions struct {
	debug    bool
	insecure []string
}

// newResolver builds the resolver from the flags, the environment and the
// Docker CLI configuration (credentials).
func (o *rootOptions) newResolver(dockerCli command.Cli) (*imagetools.Resolver, error) {
	insecure, err := o.insecureRegistries()
	if err != nil {
		return nil, err
	}
	match, err := imagetools.NewHostMatcher(insecure)
	if err != nil {
		return nil, o.insecureOrigin(err)
	}
	stall, err := stallTimeout()
	if err != nil {
		return nil, err
	}
	warn := &warnings{w: dockerCli.Err()}
	// Retries: 5 attempts per request, full-jitter backoff from 200ms to
	// 10s, Retry-After honoured up to 30s (imagetools.RetryOptions defaults).
	retry := imagetools.RetryOptions{StallTimeout: stall, OnRetry: warn.retry}
	return imagetools.NewResolver(imagetools.ResolverOptions{
		Credentials: imagetools.DockerConfigCredentials(dockerCli.ConfigFile()),
		Insecure:    match,
		CertsDirs:   certsDirs(),
		UserAgent:   version.UserAgent(),
		Transport: func(base http.RoundTripper) http.RoundTripper {
			return imagetools.NewRetryTransport(base, retry)
		},
		Resume: imagetools.ResumeOptions{OnResume: warn.resume},
	}), nil
}

// stallTimeout reads DOCKER_IMGX_STALL_TIMEOUT. Unset or empty gives 0, which
// RetryOptions reads as the default (60s); "0" or a negative duration gives
// -1, which turns the watchdog off.
func stallTimeout() (time.Duration, error) {
	v, ok := os.LookupEnv(envStallTimeout)
	if !ok || v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a duration such as 30s or 2m: %w", envStallTimeout, v, err)
	}
	if d <= 0 {
		return -1, nil
	}
	return d, nil
}

// warnings writes retry and resume notices: into the progress display of a
// command that put one in the context (imagetools.WithNotices), else one
// WARN line each on stderr.
type warnings struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *warnings) retry(req *http.Request, attempt, max int, reason string) {
	l.notice(req.Context(), imagetools.RetryMessage(req, attempt, max, reason))
}

func (l *warnings) resume(ctx context.Context, desc ocispec.Descriptor, offset int64, cause error) {
	l.notice(ctx, fmt.Sprintf("resuming %s at byte %d of %d: %v", desc.Digest, offset, desc.Size, cause))
}

// notice goes to the progress display when the command has one in ctx.
func (l *warnings) notice(ctx context.Context, msg string) {
	if fn := imagetools.NoticesFrom(ctx); fn != nil {
		fn(msg)
		return
	}
	l.printf("WARN: %s\n", msg)
}

func (l *warnings) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}

// insecureRegistries joins --insecure-registry, DOCKER_IMGX_INSECURE_REGISTRIES
// and the insecure-registries of the daemon.json (DOCKER_IMGX_DAEMON_CONFIG,
// default /etc/docker/daemon.json).
func (o *rootOptions) insecureRegistries() ([]string, error) {
	out := append([]string{}, o.insecure...)
	if v := os.Getenv(envInsecure); v != "" {
		out = append(out, strings.Split(v, ",")...)
	}
	path := defaultDaemonConfig
	if v, ok := os.LookupEnv(envDaemonConfig); ok {
		path = v
	}
	if path == "" {
		return out, nil
	}
	fromDaemon, err := imagetools.ReadDaemonInsecureRegistries(path)
	if err != nil {
		return nil, err
	}
	return append(out, fromDaemon...), nil
}

// insecureOrigin names where a bad insecure registry entry came from: the
// flag or the environment variable (else daemon.json).
func (o *rootOptions) insecureOrigin(err error) error {
	if _, ferr := imagetools.NewHostMatcher(o.insecure); ferr != nil {
		return fmt.Errorf("invalid --insecure-registry: %w", ferr)
	}
	if _, eerr := imagetools.NewHostMatcher(strings.Split(os.Getenv(envInsecure), ",")); eerr != nil {
		return fmt.Errorf("invalid %s: %w", envInsecure, eerr)
	}
	return fmt.Errorf("invalid insecure-registries in the daemon config (%s): %w", envDaemonConfig, err)
}

// certsDirs are the folders searched for per-registry TLS files: the list in
// DOCKER_IMGX_CERTS_DIRS, else <docker config dir>/certs.d,
// /etc/docker/certs.d and /etc/containerd/certs.d.
func certsDirs() []string {
	if v, ok := os.LookupEnv(envCertsDirs); ok {
		return filepath.SplitList(v)
	}
	return []string{filepath.Join(config.Dir(), "certs.d"), "/etc/docker/certs.d", "/etc/containerd/certs.d"}
}
