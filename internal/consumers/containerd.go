package consumers

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// containerdNamespace is the namespace the Containerd methods import into.
const containerdNamespace = "imgx"

// Containerd is a private containerd (no CRI plugin) driven with ctr.
type Containerd struct {
	// Address is the path of its gRPC socket, for `ctr --address`.
	Address string
	// CTR is the ctr binary used by the methods.
	CTR string
}

// StartContainerd starts a private containerd and waits until `ctr version`
// reaches it.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	bin := lookBinary(t, "containerd", "containerd")
	ctr := lookBinary(t, "ctr", "containerd")
	requireRoot(t, "containerd")

	dir := shortTempDir(t, "ctrd")
	c := &Containerd{Address: filepath.Join(dir, "c.sock"), CTR: ctr}
	config := filepath.Join(dir, "config.toml")
	writeFile(t, config, containerdConfig(2, `"io.containerd.grpc.v1.cri"`, dir, c.Address))
	proc := startDaemon(t, "containerd", filepath.Join(dir, "containerd.log"), nil, bin, "--config", config)
	proc.waitReady(t, func(ctx context.Context) error {
		if err := dialUnix(ctx, c.Address); err != nil {
			return err
		}
		_, err := run(t, nil, ctr, "--address", c.Address, "version")
		return err
	})
	return c
}

// containerdConfig is a configuration of the given version (2 for
// containerd 1.x, 3 for containerd 2) that keeps every path under dir (the
// opt plugin would otherwise create /opt/containerd) and leaves out the
// disabled plugins (CRI), which importing and loading images do not need.
func containerdConfig(version int, disabled, dir, address string) string {
	return fmt.Sprintf(`version = %d
root = %q
state = %q
disabled_plugins = [%s]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, version, filepath.Join(dir, "root"), filepath.Join(dir, "state"), disabled, address, address+".ttrpc", filepath.Join(dir, "opt"))
}

// Run runs ctr against this containerd in ContainerdNamespace.
func (c *Containerd) Run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return run(t, nil, c.CTR, append([]string{"--address", c.Address, "--namespace", containerdNamespace}, args...)...)
}

// Import runs `ctr images import` of tarPath, unpacking with the native
// snapshotter (which works on any file system and still checks every layer
// against its diff_id). allPlatforms adds --all-platforms, which needs every
// blob the index references.
func (c *Containerd) Import(t testing.TB, tarPath string, allPlatforms bool) (string, error) {
	t.Helper()
	args := []string{"images", "import", "--snapshotter", "native"}
	if allPlatforms {
		args = append(args, "--all-platforms")
	}
	return c.Run(t, append(args, tarPath)...)
}

// Images maps each image name in ContainerdNamespace to the digest of its
// target (the manifest or index the name points to).
func (c *Containerd) Images(t testing.TB) map[string]string {
	t.Helper()
	out, err := c.Run(t, "images", "list")
	if err != nil {
		t.Fatalf("list containerd images: %v", err)
	}
	images := map[string]string{}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// Columns: REF TYPE DIGEST SIZE PLATFORMS LABELS, after a header line.
	for _, line := range lines[1:] {
		fields := strings.Fields(line)
		if len(fields) < 3 {
			continue
		}
		images[fields[0]] = fields[2]
	}
	return images
}
