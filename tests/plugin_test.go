package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

// runner runs docker-imgx one way: standalone, or through the docker client
// with docker's own flags (args before "imgx") and the plugin's.
type runner struct {
	name string
	run  func(x *imgx, dockerFlags []string, args ...string) result
}

func runners() []runner {
	return []runner{
		{name: "standalone", run: func(x *imgx, dockerFlags []string, args ...string) result {
			x.t.Helper()
			if len(dockerFlags) > 0 {
				args = append([]string{"--debug"}, args...)
			}
			return x.Run(args...)
		}},
		{name: "docker", run: func(x *imgx, dockerFlags []string, args ...string) result {
			x.t.Helper()
			return x.RunDocker(append(append(dockerFlags, "imgx"), args...)...)
		}},
	}
}

// requestLine is how a registry request shows at debug level.
func requestLine(method, url string, status int) []string {
	return []string{`msg="registry request"`, "method=" + method, `url="` + url + `"`, fmt.Sprintf("status=%d", status)}
}

// debugLines returns the stderr lines holding every part of want.
func debugLines(stderr string, want []string) []string {
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// TestPluginDebug runs inspect with every way of asking for debug output,
// standalone and through the docker client (docker's -D and --log-level
// before imgx, the plugin's --debug and -D anywhere after it), and wants a
// line per registry request, with the manifest's size; without any of them,
// stderr stays empty.
func TestPluginDebug(t *testing.T) {
	t.Parallel()
	requireTool(t, "docker", "docker.io (the docker client)")
	reg := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 61})
	pushImage(t, reg, "test/debug", "1", img)
	ref := reg.Host + "/test/debug:1"
	want := append(requestLine("GET", "http://"+reg.Host+"/v2/test/debug/manifests/1", 200),
		fmt.Sprintf("bytes=%d", len(img.Manifest.Data)), "duration=")
	x := newImgx(t)
	cases := []struct {
		name        string
		dockerFlags []string
		args        []string
	}{
		{"--debug", nil, []string{"--debug", "inspect", "--raw", ref}},
		{"-D after the command", nil, []string{"inspect", "-D", "--raw", ref}},
		{"docker -D", []string{"-D"}, []string{"inspect", "--raw", ref}},
		{"docker --log-level debug", []string{"--log-level", "debug"}, []string{"inspect", "--raw", ref}},
	}
	for _, r := range runners() {
		for _, c := range cases {
			t.Run(r.name+"/"+c.name, func(t *testing.T) {
				res := r.run(x, c.dockerFlags, c.args...)
				if res.ExitCode != 0 || res.Stdout != string(img.Manifest.Data) {
					t.Fatalf("exit %d, stdout %q\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
				}
				if got := debugLines(res.Stderr, want); len(got) != 1 {
					t.Fatalf("%d lines hold %q, want 1; stderr:\n%s", len(got), want, res.Stderr)
				}
			})
		}
		t.Run(r.name+"/quiet", func(t *testing.T) {
			res := r.run(x, nil, "inspect", "--raw", ref)
			if res.ExitCode != 0 || res.Stderr != "" {
				t.Fatalf("exit %d, want 0 and nothing on stderr:\n%s", res.ExitCode, res.Stderr)
			}
		})
	}
}

// TestPluginLayoutQuiet reads and writes OCI layouts through the docker
// client: containerd's warnings (fsverity support and the like) stay out of
// stderr, and show only with --debug.
func TestPluginLayoutQuiet(t *testing.T) {
	t.Parallel()
	requireTool(t, "docker", "docker.io (the docker client)")
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 62})
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	if err := fixture.WriteLayout(layout, map[string]fixture.Blob{"1": img.Manifest}, img.Blobs()...); err != nil {
		t.Fatal(err)
	}
	x := newImgx(t)
	for _, args := range [][]string{
		{"inspect", "oci-layout://" + layout + ":1"},
		{"export", "--progress", "quiet", "-o", filepath.Join(dir, "out.tar"), "oci-layout://" + layout + ":1"},
		{"create", "--progress", "quiet", "-t", "oci-layout://" + filepath.Join(dir, "copy") + ":1", "oci-layout://" + layout + ":1"},
	} {
		res := x.RunPlugin(args...)
		if res.ExitCode != 0 || res.Stderr != "" {
			t.Fatalf("docker imgx %s: exit %d, want 0 and nothing on stderr:\n%s", strings.Join(args, " "), res.ExitCode, res.Stderr)
		}
	}
}

// TestUnknownCommand: a mistyped command fails with a suggestion, standalone
// and through docker, whatever flags follow it.
func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	requireTool(t, "docker", "docker.io (the docker client)")
	x := newImgx(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"inpsect", "alpine"}, `unknown command "inpsect"`},
		{[]string{"creat", "-t", "x", "y"}, `unknown command "creat"`},
		{[]string{"exprot", "--platform", "all", "alpine"}, `unknown command "exprot"`},
	}
	for _, r := range runners() {
		for _, c := range cases {
			res := r.run(x, nil, c.args...)
			lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
			suggestion := fmt.Sprintf("did you mean %q?", map[string]string{"inpsect": "inspect", "creat": "create", "exprot": "export"}[c.args[0]])
			if res.ExitCode != 1 || len(lines) != 1 || !strings.Contains(lines[0], c.want) || !strings.Contains(lines[0], suggestion) || res.Stdout != "" {
				t.Errorf("%s %v: exit %d, want 1 and one line with %q and %q\nstdout:\n%s\nstderr:\n%s", r.name, c.args, res.ExitCode, c.want, suggestion, res.Stdout, res.Stderr)
			}
		}
	}
}

// TestVersionMatchesDocs: docker imgx version prints what its reference page
// shows: the name, the version and the full commit, standalone and through
// docker.
func TestVersionMatchesDocs(t *testing.T) {
	t.Parallel()
	requireTool(t, "docker", "docker.io (the docker client)")
	page, err := os.ReadFile("../docs/reference/imgx_version.md")
	if err != nil {
		t.Fatal(err)
	}
	shape := regexp.MustCompile(`^docker-imgx v?[0-9A-Za-z.+-]+ [0-9a-f]{40}\n$`)
	doc := regexp.MustCompile("(?m)^docker-imgx .*\n").FindString(string(page))
	if !shape.MatchString(doc) {
		t.Fatalf("the reference page shows %q, not NAME VERSION COMMIT", doc)
	}
	x := newImgx(t)
	for name, res := range map[string]result{"standalone": x.Run("version"), "docker": x.RunPlugin("version")} {
		if res.ExitCode != 0 || !shape.MatchString(res.Stdout) {
			t.Errorf("%s: version printed %q (exit %d), want the shape of %q", name, res.Stdout, res.ExitCode, doc)
		}
	}
}

// TestUnknownFlag: a mistyped flag fails with one line that names the flags
// that come close to it (as cobra does for commands) and where the help is,
// standalone and through docker.
func TestUnknownFlag(t *testing.T) {
	t.Parallel()
	requireTool(t, "docker", "docker.io (the docker client)")
	x := newImgx(t)
	cases := []struct {
		args []string
		want string // with %s for the command path's first word
	}{
		{[]string{"inspect", "--platfrom", "linux/amd64", "alpine"}, `unknown flag --platfrom for "%[1]s inspect": did you mean --platform? (see '%[1]s inspect --help')`},
		{[]string{"export", "--fromat", "oci", "alpine"}, `unknown flag --fromat for "%[1]s export": did you mean --format? (see '%[1]s export --help')`},
		{[]string{"create", "--plat", "linux/amd64", "alpine"}, `unknown flag --plat for "%[1]s create": did you mean --platform? (see '%[1]s create --help')`},
		{[]string{"create", "--debgu", "alpine"}, `unknown flag --debgu for "%[1]s create": did you mean --debug? (see '%[1]s create --help')`},
		{[]string{"inspect", "--xyzzy", "alpine"}, `unknown flag --xyzzy for "%[1]s inspect" (see '%[1]s inspect --help')`},
		{[]string{"inspect", "-z", "alpine"}, `unknown flag -z for "%[1]s inspect" (see '%[1]s inspect --help')`},
	}
	for _, r := range runners() {
		path := map[string]string{"standalone": "docker-imgx", "docker": "docker imgx"}[r.name]
		for _, c := range cases {
			res := r.run(x, nil, c.args...)
			want := "ERROR: " + fmt.Sprintf(c.want, path) + "\n"
			if res.ExitCode != 1 || res.Stderr != want || res.Stdout != "" {
				t.Errorf("%s %v: exit %d, want 1 and stderr %q\nstdout:\n%s\nstderr:\n%s", r.name, c.args, res.ExitCode, want, res.Stdout, res.Stderr)
			}
		}
	}
}
