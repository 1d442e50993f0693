package commands

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/internal/version"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/config"
)

// Environment variables that configure registry access (see docs/reference/imgx.md).
const (
	envInsecure     = "DOCKER_IMGX_INSECURE_REGISTRIES" // comma-separated HOST, HOST:PORT or CIDR
	envCertsDirs    = "DOCKER_IMGX_CERTS_DIRS"          // list of certs.d folders (path list)
	envDaemonConfig = "DOCKER_IMGX_DAEMON_CONFIG"       // daemon.json whose insecure-registries apply
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
		return nil, err
	}
	return imagetools.NewResolver(imagetools.ResolverOptions{
		Credentials: imagetools.DockerConfigCredentials(dockerCli.ConfigFile()),
		Insecure:    match,
		CertsDirs:   certsDirs(),
		UserAgent:   version.UserAgent(),
	}), nil
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

// certsDirs are the folders searched for per-registry TLS files: the list in
// DOCKER_IMGX_CERTS_DIRS, else <docker config dir>/certs.d,
// /etc/docker/certs.d and /etc/containerd/certs.d.
func certsDirs() []string {
	if v, ok := os.LookupEnv(envCertsDirs); ok {
		return filepath.SplitList(v)
	}
	return []string{filepath.Join(config.Dir(), "certs.d"), "/etc/docker/certs.d", "/etc/containerd/certs.d"}
}
