package consumers

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
)

// Podman runs podman as root with a private vfs store and private
// configuration files, so the host's containers configuration is irrelevant.
// Podman has no daemon: each method is one podman command.
type Podman struct {
	Root, RunRoot string
	// Bin is the podman binary used by the methods.
	Bin string
	dir string
}

// NewPodman prepares a private podman store and configuration.
func NewPodman(t testing.TB) *Podman {
	t.Helper()
	bin := lookBinary(t, "podman", "podman")
	requireRoot(t, "podman")
	dir := shortTempDir(t, "podman")
	p := &Podman{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "runroot"), Bin: bin, dir: dir}
	writeFile(t, filepath.Join(dir, "storage.conf"), fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", p.Root, p.RunRoot))
	writeFile(t, filepath.Join(dir, "containers.conf"), "[engine]\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n")
	writeFile(t, filepath.Join(dir, "registries.conf"), "unqualified-search-registries = []\n")
	// podman load has no policy flag: containers/image reads
	// $HOME/.config/containers/policy.json before /etc/containers/policy.json.
	writeFile(t, filepath.Join(dir, "home", ".config", "containers", "policy.json"), acceptAnythingPolicy)
	writeFile(t, filepath.Join(dir, "tmp", ".keep"), "")
	return p
}

// acceptAnythingPolicy is a signature policy that accepts every image.
const acceptAnythingPolicy = `{"default":[{"type":"insecureAcceptAnything"}]}` + "\n"

// env isolates podman from the host's configuration and temporary space.
func (p *Podman) env() []string {
	return []string{
		"HOME=" + filepath.Join(p.dir, "home"),
		"TMPDIR=" + filepath.Join(p.dir, "tmp"),
		"CONTAINERS_CONF=" + filepath.Join(p.dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF=" + filepath.Join(p.dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF=" + filepath.Join(p.dir, "registries.conf"),
	}
}

// Run runs podman with the private store and returns its standard output.
func (p *Podman) Run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	global := []string{
		"--root", p.Root,
		"--runroot", p.RunRoot,
		"--tmpdir", filepath.Join(p.dir, "libpod"),
		"--storage-driver", "vfs",
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "file",
	}
	return run(t, p.env(), p.Bin, append(global, args...)...)
}

// Load runs `podman load -i tarPath` and returns its standard output
// ("Loaded image: ..." lines).
func (p *Podman) Load(t testing.TB, tarPath string) (string, error) {
	t.Helper()
	return p.Run(t, "load", "-i", tarPath)
}

// Images maps each image name in the store to its image ID
// ("sha256:<config digest>", like Docker's).
func (p *Podman) Images(t testing.TB) map[string]string {
	t.Helper()
	out, err := p.Run(t, "images", "--format", "json")
	if err != nil {
		t.Fatalf("list podman images: %v", err)
	}
	var list []struct {
		ID    string   `json:"Id"`
		Names []string `json:"Names"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("parse podman images: %v\n%s", err, out)
	}
	images := map[string]string{}
	for _, img := range list {
		for _, name := range img.Names {
			images[name] = "sha256:" + img.ID
		}
	}
	return images
}
