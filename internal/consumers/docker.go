package consumers

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// engineKind says which Docker engine startEngine starts.
type engineKind int

const (
	// engineClassic is Debian's dockerd (20.10) with the classic image
	// store: one platform per image, the config digest as image ID.
	engineClassic engineKind = iota
	// engine29 is a Docker 29-line dockerd (moby v2) with containerd v2 and
	// the containerd image store: an image is its whole index, with the
	// index digest as image ID. make engine builds both into engineDirEnv.
	engine29
)

// String names the kind in test names and messages.
func (k engineKind) String() string {
	if k == engine29 {
		return "docker29"
	}
	return "docker20"
}

// engineDirEnv is the environment variable naming the folder that holds the
// Docker 29-line dockerd and containerd (make test sets it to
// bin/tools/engine); unset, that folder of this module is used.
const engineDirEnv = "IMGX_ENGINE_DIR"

// Docker is a private dockerd (vfs storage, no networking set-up) backed by a
// private containerd.
type Docker struct {
	// kind is the Docker engine started.
	kind engineKind
	// Host is the daemon address, for DOCKER_HOST: unix:///.../docker.sock.
	Host string
	// Config is an empty Docker CLI configuration directory, for
	// DOCKER_CONFIG, so that the user's contexts and credentials are not used.
	Config string
	// CLI is the docker client binary used by the methods.
	CLI string
}

// StartDocker starts a private Debian dockerd (engineClassic) and waits until
// it answers /_ping.
func StartDocker(t testing.TB) *Docker {
	t.Helper()
	return startEngine(t, engineClassic)
}

// StartDocker29 starts a private Docker 29-line dockerd with the containerd
// image store (engine29) and waits until it answers /_ping.
func StartDocker29(t testing.TB) *Docker {
	t.Helper()
	return startEngine(t, engine29)
}

// startEngine starts a private dockerd of the given kind, on its own
// private containerd, and waits until it answers /_ping.
func startEngine(t testing.TB, kind engineKind) *Docker {
	t.Helper()
	cli := lookBinary(t, "docker", "docker.io")
	var (
		dockerd, address string
		daemonJSON       string
	)
	dir := ""
	switch kind {
	case engine29:
		var containerd string
		dockerd, containerd = engine29Binaries(t)
		requireRoot(t, "dockerd")
		address = startContainerd2(t, containerd)
		dir = shortTempDir(t, "docker29")
		daemonJSON = `{"features": {"containerd-snapshotter": true}}`
	default:
		dockerd = lookBinary(t, "dockerd", "docker.io")
		requireRoot(t, "dockerd")
		// dockerd would use a system containerd at the default socket if
		// one runs; a private one keeps the instance isolated.
		address = StartContainerd(t).Address
		dir = shortTempDir(t, "docker")
		// The key path keeps dockerd 20.10 from writing /etc/docker/key.json.
		daemonJSON = fmt.Sprintf(`{"deprecated-key-path": %q}`, filepath.Join(dir, "key.json"))
	}
	sock := filepath.Join(dir, "docker.sock")
	d := &Docker{kind: kind, Host: "unix://" + sock, Config: filepath.Join(dir, "cli"), CLI: cli}
	// The config file replaces /etc/docker/daemon.json.
	writeFile(t, filepath.Join(dir, "daemon.json"), daemonJSON)
	writeFile(t, filepath.Join(d.Config, "config.json"), "{}")

	args := dockerdArgs(dir, address)
	if kind == engine29 {
		// The containerd image store names containerd's snapshotter: native
		// works on any file system, as vfs does for the classic store.
		args[slices.Index(args, "vfs")] = "native"
	}
	proc := startDaemon(t, kind.String(), filepath.Join(dir, "dockerd.log"), nil, dockerd, args...)
	client := unixHTTPClient(sock)
	proc.waitReady(t, func(ctx context.Context) error { return ping(ctx, client) })
	return d
}

// dockerdArgs returns the dockerd flags used for a private instance rooted at
// dir and using the containerd at containerdAddress.
func dockerdArgs(dir, containerdAddress string) []string {
	return []string{
		"--config-file", filepath.Join(dir, "daemon.json"),
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--host", "unix://" + filepath.Join(dir, "docker.sock"),
		"--containerd", containerdAddress,
		"--storage-driver", "vfs",
		"--iptables=false",
		"--ip6tables=false",
		"--ip-masq=false",
		"--bridge=none",
		"--userland-proxy=false",
		"--exec-opt", "native.cgroupdriver=cgroupfs",
	}
}

// unixHTTPClient returns an HTTP client that reaches the daemon socket.
func unixHTTPClient(sock string) *http.Client {
	var dialer net.Dialer
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", sock)
		},
	}}
}

// ping asks the daemon whether it serves its API.
func ping(ctx context.Context, client *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping: %s", resp.Status)
	}
	return nil
}

// Env returns the environment that points a docker CLI (or a CLI plugin) at
// this daemon.
func (d *Docker) Env() []string {
	return []string{"DOCKER_HOST=" + d.Host, "DOCKER_CONFIG=" + d.Config}
}

// Run runs the docker CLI against this daemon and returns its standard output.
func (d *Docker) Run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return run(t, d.Env(), d.CLI, args...)
}

// Load runs `docker load -i tarPath` and returns its standard output
// ("Loaded image: ..." lines).
func (d *Docker) Load(t testing.TB, tarPath string) (string, error) {
	t.Helper()
	return d.Run(t, "load", "-i", tarPath)
}

// ImageIDs maps each repo:tag of the daemon's images to its image ID
// ("sha256:<config digest>"). Untagged images are left out.
func (d *Docker) ImageIDs(t testing.TB) map[string]string {
	t.Helper()
	out, err := d.Run(t, "images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}}\t{{.ID}}")
	if err != nil {
		t.Fatalf("list docker images: %v", err)
	}
	ids := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		ref, id, ok := strings.Cut(line, "\t")
		if !ok || strings.Contains(ref, "<none>") {
			continue
		}
		ids[ref] = id
	}
	return ids
}

// Inspect returns `docker image inspect ref` (a JSON array of one object).
func (d *Docker) Inspect(t testing.TB, ref string) ([]byte, error) {
	t.Helper()
	out, err := d.Run(t, "image", "inspect", ref)
	return []byte(out), err
}
