package registry

import (
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker"
)

func writeHostsFile(t *testing.T, content string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "hosts.toml")
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestReadHostsFile(t *testing.T) {
	file := writeHostsFile(t, `server = "https://registry.example"

[host."http://mirror-b.example:5000"]
  capabilities = ["pull"]
  header = { X-A = "1", X-B = ["2", "3"] }

[host."https://mirror-a.example/base"]
  capabilities = ["pull", "resolve"]
  ca = "ca.pem"
  client = [["c.cert", "/abs/c.key"]]
  skip_verify = false
  dial_timeout = "3s"
`)
	dir := filepath.Dir(file)
	got, err := readHostsFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d hosts, want 3 (two mirrors in file order, then the server)", len(got))
	}
	b, a, server := got[0], got[1], got[2]
	if b.scheme != "http" || b.host != "mirror-b.example:5000" || b.path != "/v2" || b.caps != docker.HostCapabilityPull {
		t.Errorf("first mirror: %+v", b)
	}
	if !reflect.DeepEqual(b.header, http.Header{"X-A": {"1"}, "X-B": {"2", "3"}}) {
		t.Errorf("first mirror header: %v", b.header)
	}
	if a.scheme != "https" || a.host != "mirror-a.example" || a.path != "/base/v2" || a.caps != docker.HostCapabilityPull|docker.HostCapabilityResolve {
		t.Errorf("second mirror: %+v", a)
	}
	if !reflect.DeepEqual(a.caFiles, []string{filepath.Join(dir, "ca.pem")}) || !reflect.DeepEqual(a.clientPairs, [][2]string{{filepath.Join(dir, "c.cert"), "/abs/c.key"}}) {
		t.Errorf("second mirror TLS files: %v %v", a.caFiles, a.clientPairs)
	}
	if a.skipVerify == nil || *a.skipVerify || a.dialTimeout.String() != "3s" {
		t.Errorf("second mirror skip_verify %v dial_timeout %v", a.skipVerify, a.dialTimeout)
	}
	if server.host != "registry.example" || server.caps != allCapabilities || server.file != file {
		t.Errorf("server: %+v", server)
	}
}

func TestReadHostsFileSetsNothing(t *testing.T) {
	for name, content := range map[string]string{"empty": "", "comments": "# nothing yet\n\n  # really\n"} {
		got, err := readHostsFile(writeHostsFile(t, content))
		if err != nil || got != nil {
			t.Errorf("%s: got %v, %v; want nil, nil (the file changes nothing)", name, got, err)
		}
	}
}

func TestReadHostsFileErrors(t *testing.T) {
	for _, tc := range []struct{ content, want string }{
		{"# a mirror\nserver = \"https://x\n", "hosts.toml:2:"},
		{"server = \"https://x\"\n[host.\"https://m\"]\ncapabilities = \"pull\"\n", "hosts.toml:3:"},
		{"[host.\"https://m\"]\n  capabilities = [\"pull\", \"fetch\"]\n", `hosts.toml:1: [host."https://m"]: unknown capability "fetch"`},
		{"server = \"https://x\"\ndial_timeout = \"soon\"\n", `hosts.toml:1: dial_timeout "soon"`},
	} {
		file := writeHostsFile(t, tc.content)
		_, err := readHostsFile(file)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), file) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line starting with the file and containing %q", tc.content, err, tc.want)
		}
	}
}

func TestHostDirNames(t *testing.T) {
	for host, want := range map[string][]string{
		"registry.example":      {"registry.example"},
		"registry.example:5000": {"registry.example_5000_", "registry.example:5000"},
		"[::1]:5000":            {"[::1]_5000_", "[::1]:5000"},
		"[::1]":                 {"[::1]"},
	} {
		if got := hostDirNames(host); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", host, got, want)
		}
	}
}

func TestFindHostDir(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	for _, d := range []string{
		filepath.Join(first, "reg.example:5000"),
		filepath.Join(second, "reg.example_5000_"),
		filepath.Join(second, "_default"),
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(second, "_default", "hosts.toml"), []byte("# all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if dir, file := findHostDir([]string{first, second}, "reg.example:5000"); dir != filepath.Join(first, "reg.example:5000") || file != "" {
		t.Errorf("first folder naming the host: %q %q", dir, file)
	}
	if dir, file := findHostDir([]string{second, first}, "reg.example:5000"); dir != filepath.Join(second, "reg.example_5000_") || file != "" {
		t.Errorf("containerd's name first: %q %q", dir, file)
	}
	if dir, file := findHostDir([]string{first, second}, "other.example"); dir != "" || file != filepath.Join(second, "_default", "hosts.toml") {
		t.Errorf("_default: %q %q", dir, file)
	}
}

func TestRequestCapability(t *testing.T) {
	for _, tc := range []struct {
		req  apiRequest
		want docker.HostCapabilities
	}{
		{apiRequest{path: "manifests/v1"}, docker.HostCapabilityResolve},
		{apiRequest{path: "manifests/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}, docker.HostCapabilityPull},
		{apiRequest{path: "blobs/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}, docker.HostCapabilityPull},
		{apiRequest{path: "tags/list"}, docker.HostCapabilityResolve},
		{apiRequest{path: "referrers/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}, docker.HostCapabilityReferrers},
		{apiRequest{path: "manifests/v1", push: true}, docker.HostCapabilityPush},
	} {
		if got, _ := tc.req.capability(); got != tc.want {
			t.Errorf("%s (push %v): %v, want %v", tc.req.path, tc.req.push, got, tc.want)
		}
	}
}
