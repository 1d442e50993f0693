package consumers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// engine29Binaries returns the Docker 29-line dockerd and containerd that
// make engine builds, ending the test through unavailable when they are
// missing.
func engine29Binaries(t testing.TB) (dockerd, containerd string) {
	t.Helper()
	dir := os.Getenv(engineDirEnv)
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			unavailable(t, "Docker 29 engine: %v", err)
		}
		dir = filepath.Join(root, "bin", "tools", "engine")
	}
	dockerd, containerd = filepath.Join(dir, "dockerd"), filepath.Join(dir, "containerd")
	for _, bin := range []string{dockerd, containerd} {
		if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
			unavailable(t, "Docker 29 engine: %s is missing: run make engine (it builds dockerd and containerd v2 through the Go module proxy)", bin)
		}
	}
	return dockerd, containerd
}

// moduleRoot finds the folder of this module's go.mod above the working
// directory (a test runs in its package's folder).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module github.com/docker-imgx/docker-imgx\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of github.com/docker-imgx/docker-imgx above the working directory: set %s", engineDirEnv)
		}
		dir = parent
	}
}

// startContainerd2 starts a private containerd v2 for the Docker 29 engine
// and returns its socket once it accepts connections; dockerd then waits
// for its API.
func startContainerd2(t testing.TB, bin string) string {
	t.Helper()
	dir := shortTempDir(t, "ctrd2")
	address := filepath.Join(dir, "c.sock")
	config := filepath.Join(dir, "config.toml")
	writeFile(t, config, containerdConfig(3, `"io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime"`, dir, address))
	proc := startDaemon(t, "containerd2", filepath.Join(dir, "containerd.log"), nil, bin, "--config", config)
	proc.waitReady(t, func(ctx context.Context) error { return dialUnix(ctx, address) })
	return address
}

// ImagePlatforms returns the platforms of the image manifests the engine
// holds in full for ref (content present; attestations left out), sorted,
// as the image-inspect API lists them with manifests=1 (API 1.48, the
// containerd image store).
func (d *Docker) ImagePlatforms(t testing.TB, ref string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/v1.48/images/"+ref+"/json?manifests=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := unixHTTPClient(strings.TrimPrefix(d.Host, "unix://")).Do(req)
	if err != nil {
		t.Fatalf("inspect %s: %v", ref, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("inspect %s: %s: %s", ref, resp.Status, body)
	}
	var inspect struct {
		Manifests []struct {
			Available bool
			Kind      string
			ImageData *struct {
				Platform ocispec.Platform
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&inspect); err != nil {
		t.Fatalf("inspect %s: %v", ref, err)
	}
	var out []string
	for _, m := range inspect.Manifests {
		if m.Available && m.Kind == "image" && m.ImageData != nil {
			out = append(out, platforms.FormatAll(m.ImageData.Platform))
		}
	}
	slices.Sort(out)
	return out
}
