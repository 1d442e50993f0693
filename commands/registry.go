package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools/registry"
	"github.com/docker-imgx/docker-imgx/internal/termtext"
	"github.com/docker-imgx/docker-imgx/internal/version"
	"github.com/docker-imgx/docker-imgx/progress"
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

// registryOptions reads how registries are reached from the flags, the
// environment and the Docker CLI configuration (credentials), failing on a
// bad setting before anything is shown or sent.
func (o *rootOptions) registryOptions(dockerCli command.Cli) (registry.Options, error) {
	insecure, err := o.insecureRegistries()
	if err != nil {
		return registry.Options{}, err
	}
	match, err := registry.NewHostMatcher(insecure)
	if err != nil {
		return registry.Options{}, o.insecureOrigin(err)
	}
	stall, err := stallTimeout()
	if err != nil {
		return registry.Options{}, err
	}
	dirs := certsDirs()
	return registry.Options{
		Credentials: registry.DockerConfigCredentials(dockerCli.ConfigFile()),
		Insecure:    match,
		CertsDirs:   dirs,
		UserAgent:   version.UserAgent(),
		// Retries: 5 attempts per request, full-jitter backoff from 200ms
		// to 10s, Retry-After honoured up to 30s (the defaults); placesFor
		// routes their notices.
		Retry:         &registry.RetryOptions{StallTimeout: stall},
		UntrustedHint: func(host, certsDir, hostsFile string) string { return untrustedHint(dirs, host, certsDir, hostsFile) },
		PlainHTTPHint: func(host, _, hostsFile string) string { return plainHTTPHint(dirs, host, hostsFile) },
	}, nil
}

// untrustedHint says how to trust a host's certificate, naming what is
// read: the hosts.toml that configures the host (its ca setting), else the
// ca.crt of the host's certs folder (the one found, or where one would be
// found first). --insecure-registry works either way.
func untrustedHint(dirs []string, host, certsDir, hostsFile string) string {
	switch {
	case hostsFile != "":
		return fmt.Sprintf("to trust this host give its CA certificate with ca = \"<file>\" in %s, or mark it with --insecure-registry %s", hostsFile, host)
	case certsDir != "":
		return fmt.Sprintf("to trust this registry put its CA certificate in %s, or mark it with --insecure-registry %s", filepath.Join(certsDir, "ca.crt"), host)
	case len(dirs) == 0:
		return fmt.Sprintf("to trust this registry list a certs folder in %s and put its CA certificate in <folder>/%s/ca.crt, or mark it with --insecure-registry %s", envCertsDirs, host, host)
	}
	return fmt.Sprintf("to trust this registry put its CA certificate in %s (certs folders read: %s; set %s to change them), or mark it with --insecure-registry %s",
		filepath.Join(dirs[0], host, "ca.crt"), strings.Join(dirs, ", "), envCertsDirs, host)
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

// notices shows the registry layer's notices: in the progress display pw
// when the command has one, else one WARN line each on stderr.
type notices struct {
	mu sync.Mutex
	w  io.Writer
	pw progress.Writer
}

func (n *notices) retry(req *http.Request, attempt, max int, reason string) {
	n.show(registry.RetryMessage(req, attempt, max, reason))
}

func (n *notices) resume(_ context.Context, desc ocispec.Descriptor, offset int64, cause error) {
	n.show(fmt.Sprintf("resuming %s at byte %d of %d: %v", desc.Digest, offset, desc.Size, cause))
}

func (n *notices) show(msg string) {
	if n.pw != nil {
		_ = progress.OneOff(n.pw, msg)(nil)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Fprintf(n.w, "WARN: %s\n", termtext.Message(msg))
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
	fromDaemon, err := readDaemonInsecureRegistries(path)
	if err != nil {
		return nil, err
	}
	return append(out, fromDaemon...), nil
}

// insecureOrigin names where a bad insecure registry entry came from: the
// flag or the environment variable (else daemon.json).
func (o *rootOptions) insecureOrigin(err error) error {
	if _, ferr := registry.NewHostMatcher(o.insecure); ferr != nil {
		return fmt.Errorf("invalid --insecure-registry: %w", ferr)
	}
	if _, eerr := registry.NewHostMatcher(strings.Split(os.Getenv(envInsecure), ",")); eerr != nil {
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

// readDaemonInsecureRegistries returns the "insecure-registries" of a Docker
// daemon.json. A missing file is no error: it just lists none.
func readDaemonInsecureRegistries(path string) ([]string, error) {
	dt, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read daemon config %s: %w", path, err)
	}
	var cfg struct {
		InsecureRegistries []string `json:"insecure-registries"`
	}
	if err := json.Unmarshal(dt, &cfg); err != nil {
		return nil, fmt.Errorf("read daemon config %s: %w (fix the file, or set DOCKER_IMGX_DAEMON_CONFIG to another file, or to empty to skip it)", path, err)
	}
	return cfg.InsecureRegistries, nil
}
