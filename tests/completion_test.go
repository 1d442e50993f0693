package tests

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"golang.org/x/sync/errgroup"
)

// completions splits the answer of __complete into its items and the
// directive line (":4").
func completions(t *testing.T, res result) ([]string, string) {
	t.Helper()
	if res.ExitCode != 0 {
		t.Fatalf("__complete: exit %d\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	lines := strings.Split(strings.TrimRight(res.Stdout, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, ":") {
		t.Fatalf("__complete: no directive line in\n%s", res.Stdout)
	}
	return lines[:len(lines)-1], last
}

// TestCompletion asks the docker client for completions of docker imgx
// (docker __complete imgx ..., what docker imgx <TAB> runs), and the
// standalone binary for the same, and wants the flag values, the platforms
// and the paths after oci-layout:// and archive://. Directives: 4 no file
// names, 6 no space either, 0 the shell completes file names.
func TestCompletion(t *testing.T) {
	t.Parallel()
	requireTool(t, "docker", "docker.io (the docker client)")
	dir := t.TempDir()
	for _, p := range []string{"layouts/app", "layouts/base", "tars"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tars", "app.tar"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	x := newImgx(t)
	cases := []struct {
		args      []string
		want      []string
		directive string
	}{
		{[]string{"export", "--progress", ""}, []string{"auto", "tty", "plain", "rawjson", "quiet"}, ":4"},
		{[]string{"create", "--progress", "p"}, []string{"plain"}, ":4"},
		{[]string{"export", "--format", ""}, []string{"docker", "oci"}, ":4"},
		{[]string{"inspect", "--format", "j"}, []string{"json"}, ":4"},
		{[]string{"export", "-p", "a"}, []string{"all"}, ":4"},
		{[]string{"create", "--platform", "linux/amd64,linux/arm"}, []string{"linux/amd64,linux/arm64", "linux/amd64,linux/arm/v7", "linux/amd64,linux/arm/v6"}, ":4"},
		{[]string{"inspect", "-p", "windows/"}, []string{"windows/amd64", "windows/arm64"}, ":4"},
		{[]string{"export", "-o", ""}, nil, ":0"},
		{[]string{"create", "--metadata-file", ""}, nil, ":0"},
		{[]string{"create", "-f", ""}, nil, ":0"},
		{[]string{"export", "-o", "oci-layout://" + dir + "/layouts/"}, []string{"oci-layout://" + dir + "/layouts/app/", "oci-layout://" + dir + "/layouts/base/"}, ":6"},
		{[]string{"inspect", "oci-layout://" + dir + "/layouts/b"}, []string{"oci-layout://" + dir + "/layouts/base/"}, ":6"},
		{[]string{"create", "-t", "x", "oci-layout://" + dir + "/t"}, []string{"oci-layout://" + dir + "/tars/"}, ":6"},
		{[]string{"export", "archive://" + dir + "/tars/"}, []string{"archive://" + dir + "/tars/app.tar"}, ":6"},
		{[]string{"inspect", "oci-"}, []string{"oci-layout://"}, ":6"},
		{[]string{"inspect", "--insecure-registry", ""}, nil, ":4"},
	}
	for _, c := range cases {
		for name, res := range map[string]result{
			"docker":     x.RunDocker(append([]string{"__complete", "imgx"}, c.args...)...),
			"standalone": x.Run(append([]string{"__complete"}, c.args...)...),
		} {
			got, directive := completions(t, res)
			if !slices.Equal(got, c.want) || directive != c.directive {
				t.Errorf("%s: complete %q: got %q %s, want %q %s", name, c.args, got, directive, c.want, c.directive)
			}
		}
	}
}

// TestCompletionScripts: standalone, "completion SHELL" is listed in the help
// and writes each shell's script; docker imgx leaves that to docker's own.
func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	x := newImgx(t)
	help := x.MustRun("--help").Stdout
	if !strings.Contains(help, "completion") {
		t.Fatalf("--help does not list completion:\n%s", help)
	}
	for shell, want := range map[string]string{
		"bash":       "__start_docker-imgx",
		"zsh":        "#compdef docker-imgx",
		"fish":       "complete -c docker-imgx",
		"powershell": "Register-ArgumentCompleter",
	} {
		if out := x.MustRun("completion", shell).Stdout; !strings.Contains(out, want) {
			t.Errorf("completion %s: no %q in the script", shell, want)
		}
	}
}

// TestHelpExamples: every command's --help shows its examples, placeholders
// name what goes in a flag, and -p is --platform wherever there is one,
// standalone and through docker.
func TestHelpExamples(t *testing.T) {
	t.Parallel()
	requireTool(t, "docker", "docker.io (the docker client)")
	x := newImgx(t)
	for _, cmd := range []string{"create", "inspect", "export", "version"} {
		for name, res := range map[string]result{
			"docker":     x.RunPlugin(cmd, "--help"),
			"standalone": x.Run(cmd, "--help"),
		} {
			out := res.Stdout
			if res.ExitCode != 0 || !strings.Contains(out, "Examples:\n  ") || !strings.Contains(out, "docker imgx "+cmd) {
				t.Errorf("%s %s --help: exit %d, no examples:\n%s", name, cmd, res.ExitCode, out)
			}
			for _, bad := range []string{" string ", " stringArray ", " int "} {
				if strings.Contains(out, bad) {
					t.Errorf("%s %s --help: a placeholder says only the type (%q):\n%s", name, cmd, bad, out)
				}
			}
			if cmd != "version" && !strings.Contains(out, "-p, --platform OS/ARCH[/VARIANT]") {
				t.Errorf("%s %s --help: no -p, --platform OS/ARCH[/VARIANT]:\n%s", name, cmd, out)
			}
		}
	}
}

// completeBoth asks docker (docker __complete imgx ...) and the standalone
// binary for the completions of args and wants want with directive :4
// (no file names) from both, and nothing on stderr but cobra's own line.
func completeBoth(t *testing.T, x *imgx, want []string, args ...string) {
	t.Helper()
	for name, res := range map[string]result{
		"docker":     x.RunDocker(append([]string{"__complete", "imgx"}, args...)...),
		"standalone": x.Run(append([]string{"__complete"}, args...)...),
	} {
		got, directive := completions(t, res)
		if !slices.Equal(got, want) || directive != ":4" {
			t.Errorf("%s: complete %q: got %q %s, want %q :4", name, args, got, directive, want)
		}
		if res.Stderr != "Completion ended with directive: ShellCompDirectiveNoFileComp\n" {
			t.Errorf("%s: complete %q wrote on stderr:\n%s", name, args, res.Stderr)
		}
	}
}

// TestCompletionRegistryTags: a source completes NAME:TAG from the tags of
// the typed repository, with the credentials of the Docker config (a
// registry with basic auth); without credentials it completes nothing and
// says nothing.
func TestCompletionRegistryTags(t *testing.T) {
	t.Parallel()
	requireTool(t, "docker", "docker.io (the docker client)")
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 95})
	for _, tag := range []string{"1.0", "1.1", "2.0"} {
		pushImage(t, reg, "test/app", tag, img)
	}
	// The default budget (500 ms, TestCompletionUnreachable) is meant for
	// a registry's answer, not for the race-built binary on a busy machine.
	x := newImgx(t).With("DOCKER_IMGX_COMPLETION_TIMEOUT=20s")
	if err := reg.WriteDockerConfig(x.DockerConfig); err != nil {
		t.Fatal(err)
	}
	repo := reg.Host + "/test/app"
	completeBoth(t, x, []string{repo + ":1.0", repo + ":1.1", repo + ":2.0"}, "inspect", repo+":")
	completeBoth(t, x, []string{repo + ":1.0", repo + ":1.1"}, "create", "-t", reg.Host+"/test/new:1", repo+":1")
	completeBoth(t, x, nil, "export", "-o", "x.tar", repo+":9")
	completeBoth(t, newImgx(t).With("DOCKER_IMGX_COMPLETION_TIMEOUT=20s"), nil, "inspect", repo+":")
}

// silentListener accepts connections and never answers: a registry or an
// engine that cannot be reached in time.
func silentListener(t *testing.T, network, address string) string {
	t.Helper()
	l, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	var eg errgroup.Group
	t.Cleanup(func() {
		_ = l.Close()
		_ = eg.Wait()
	})
	eg.Go(func() error {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return nil // closed by the cleanup
			}
			conns = append(conns, c)
		}
	})
	return l.Addr().String()
}

// TestCompletionUnreachable: a registry or Docker engine that refuses the
// connection or never answers completes nothing and says nothing, within
// the completion's own budget (500 ms) and the start of two processes.
// The ceiling is generous, for the race-built binary beside the rest of
// the suite on a busy machine (two runs took 2.4 s at a load of 24 where
// they take 0.3 s alone); without the budget a silent host holds the
// shell for 30 s and more.
func TestCompletionUnreachable(t *testing.T) {
	t.Parallel()
	requireTool(t, "docker", "docker.io (the docker client)")
	silentHost := silentListener(t, "tcp", "127.0.0.1:0")
	sock := filepath.Join(t.TempDir(), "engine.sock")
	silentListener(t, "unix", sock)
	cases := []struct {
		env  []string
		args []string
	}{
		{nil, []string{"inspect", silentHost + "/test/app:"}},
		{nil, []string{"create", "-t", silentHost + "/test/new:1", "127.0.0.1:1/test/app:1"}},
		{[]string{"DOCKER_HOST=unix://" + sock}, []string{"inspect", "docker-daemon://"}},
		{[]string{"DOCKER_HOST=unix://" + filepath.Join(t.TempDir(), "missing.sock")}, []string{"export", "docker-daemon://app"}},
	}
	for _, c := range cases {
		start := time.Now()
		completeBoth(t, newImgx(t).With(c.env...), nil, c.args...)
		took := time.Since(start)
		if took > 10*time.Second {
			t.Errorf("complete %q %v: %v for two runs, want well under 5 s each", c.args, c.env, took)
		}
		t.Logf("complete %q %v: %v for two runs (docker, standalone)", c.args, c.env, took)
	}
}
