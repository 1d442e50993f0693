// Package tests drives the real docker-imgx binary against real registries.
package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// raceOptions are the race detector's options for the binary under test:
// no sleep at exit.
const raceOptions = "atexit_sleep_ms=0"

// imgxBinary is the binary under test: $IMGX_BINARY (make test builds it),
// else built once into a temp folder by TestMain.
var imgxBinary string

func TestMain(m *testing.M) {
	if os.Getenv(measureEnv) != "" {
		os.Exit(measureChild())
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	// make test runs a binary built with -race, whose runtime sleeps a
	// second at exit (so that other threads can still report a race) unless
	// told not to: a second per run, hundreds of runs. A race still fails
	// the run (exit 66, WARNING: DATA RACE on stderr).
	if os.Getenv("GORACE") == "" {
		if err := os.Setenv("GORACE", raceOptions); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	imgxBinary = os.Getenv("IMGX_BINARY")
	if imgxBinary == "" {
		dir, err := os.MkdirTemp("", "imgx-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		imgxBinary = filepath.Join(dir, "docker-imgx")
		cmd := exec.Command("go", "build", "-o", imgxBinary, "../cmd/docker-imgx")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build docker-imgx:", err)
			return 1
		}
	}
	return m.Run()
}

// result of one run of the binary.
type result struct {
	Stdout, Stderr string
	ExitCode       int
	// MaxRSSKiB is the binary's peak resident memory (Linux: KiB; set by
	// RunMeasured), Elapsed its wall time: for generous ceilings, never
	// for benchmarks.
	MaxRSSKiB int64
	Elapsed   time.Duration
}

// measureEnv makes the test binary a small parent that runs the command
// its arguments name and writes the child's peak RSS to fd 3. A child of
// the test process itself would be charged the test process's own RSS:
// Linux counts the memory a vfork child shares at its exec.
const measureEnv = "IMGX_MEASURE_RSS"

func measureChild() int {
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, measureEnv+"=") })
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, err)
		return 127
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		fmt.Fprint(os.NewFile(3, "rss"), ru.Maxrss)
	}
	return cmd.ProcessState.ExitCode()
}

// RunMeasured runs docker-imgx standalone, as Run, and measures its peak
// memory (MaxRSSKiB).
func (x *imgx) RunMeasured(args ...string) result {
	x.t.Helper()
	rss, err := os.CreateTemp(x.t.TempDir(), "rss")
	if err != nil {
		x.t.Fatal(err)
	}
	defer rss.Close()
	y := x.With(measureEnv + "=1")
	y.extra = rss
	res := y.exec(os.Args[0], append([]string{imgxBinary}, args...)...)
	dt, err := os.ReadFile(rss.Name())
	if err != nil {
		x.t.Fatal(err)
	}
	if res.MaxRSSKiB, err = strconv.ParseInt(string(dt), 10, 64); err != nil {
		x.t.Fatalf("peak RSS of docker-imgx %s: %q: %v", strings.Join(args, " "), dt, err)
	}
	return res
}

// imgx is one way of running the binary: its environment and config folder.
type imgx struct {
	t testing.TB
	// DockerConfig is the DOCKER_CONFIG folder (credentials, cli-plugins).
	DockerConfig string
	Env          []string
	// Stdin is fed to the process when set.
	Stdin []byte
	// StdoutFile, when set, receives stdout instead of a pipe (a shell's
	// "> file" redirection).
	StdoutFile *os.File
	// extra is passed as fd 3 (RunMeasured's report).
	extra *os.File
}

// newImgx returns a runner with an empty Docker config folder and no access
// to the host's daemon.json or certs.d folders.
func newImgx(t testing.TB) *imgx {
	t.Helper()
	cfg := t.TempDir()
	return &imgx{t: t, DockerConfig: cfg, Env: []string{
		"DOCKER_CONFIG=" + cfg,
		"DOCKER_IMGX_DAEMON_CONFIG=",
		"DOCKER_IMGX_CERTS_DIRS=" + filepath.Join(cfg, "certs.d"),
		"HOME=" + cfg,
		"PATH=" + os.Getenv("PATH"),
		"NO_COLOR=1",
		"GORACE=" + os.Getenv("GORACE"),
	}}
}

// With returns a copy with more environment variables.
func (x *imgx) With(env ...string) *imgx {
	y := *x
	y.Env = append(append([]string{}, x.Env...), env...)
	return &y
}

// CertsDir is where per-registry TLS files go for this runner.
func (x *imgx) CertsDir() string { return filepath.Join(x.DockerConfig, "certs.d") }

// Run runs docker-imgx standalone.
func (x *imgx) Run(args ...string) result {
	x.t.Helper()
	return x.exec(imgxBinary, args...)
}

// RunPlugin runs `docker imgx ...` through the real docker client, with the
// binary installed in DOCKER_CONFIG/cli-plugins.
func (x *imgx) RunPlugin(args ...string) result {
	x.t.Helper()
	return x.RunDocker(append([]string{"imgx"}, args...)...)
}

// RunDocker runs the real docker client with args (its own flags first, as
// in docker -D imgx ...), with the binary installed as a plugin in
// DOCKER_CONFIG/cli-plugins.
func (x *imgx) RunDocker(args ...string) result {
	x.t.Helper()
	return x.exec(x.installPlugin(), args...)
}

// installPlugin copies the binary into DOCKER_CONFIG/cli-plugins, once, and
// returns the path of the docker client.
func (x *imgx) installPlugin() string {
	x.t.Helper()
	docker, err := exec.LookPath("docker")
	if err != nil {
		requireTool(x.t, "docker", "docker.io (the docker client)")
	}
	plugins := filepath.Join(x.DockerConfig, "cli-plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		x.t.Fatal(err)
	}
	dst := filepath.Join(plugins, "docker-imgx")
	if _, err := os.Stat(dst); err != nil {
		src, err := os.ReadFile(imgxBinary)
		if err != nil {
			x.t.Fatal(err)
		}
		if err := writeExecutable(dst, src); err != nil {
			x.t.Fatal(err)
		}
	}
	return docker
}

// writeExecutable writes a program the tests then run, with
// syscall.ForkLock held for reading: a process forked (by another test)
// while the file is open for writing would hold it open until it execs,
// and an exec of the program in that window fails with "text file busy"
// (ETXTBSY; the docker client then reports its plugin as an unknown
// command).
func writeExecutable(path string, data []byte) error {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	return os.WriteFile(path, data, 0o755)
}

func (x *imgx) exec(bin string, args ...string) result {
	x.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = x.Env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if x.StdoutFile != nil {
		cmd.Stdout = x.StdoutFile
	}
	if x.Stdin != nil {
		cmd.Stdin = bytes.NewReader(x.Stdin)
	}
	if x.extra != nil {
		cmd.ExtraFiles = []*os.File{x.extra}
	}
	start := time.Now()
	err := cmd.Run()
	res := result{Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	case err != nil:
		x.t.Fatalf("run %s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	return res
}

// MustRun runs the binary and fails the test unless it exits 0.
func (x *imgx) MustRun(args ...string) result {
	x.t.Helper()
	res := x.Run(args...)
	if res.ExitCode != 0 {
		x.t.Fatalf("docker-imgx %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.ExitCode, res.Stdout, res.Stderr)
	}
	return res
}

// MustFail runs the binary, wants exit code 1 and a one-line ERROR on stderr
// containing every want string, and returns that line.
func (x *imgx) MustFail(wants []string, args ...string) string {
	x.t.Helper()
	res := x.Run(args...)
	if res.ExitCode != 1 {
		x.t.Fatalf("docker-imgx %s: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.ExitCode, res.Stdout, res.Stderr)
	}
	lines := strings.Split(strings.TrimRight(res.Stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "ERROR: ") {
		x.t.Fatalf("last stderr line %q does not start with ERROR: ", last)
	}
	for _, w := range wants {
		if !strings.Contains(last, w) {
			x.t.Fatalf("error %q does not contain %q", last, w)
		}
	}
	return last
}

// requireTool fails in CI (IMGX_REQUIRE_CONSUMERS set) and skips elsewhere
// when a program the test needs is missing.
func requireTool(t testing.TB, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	msg := fmt.Sprintf("%s not found (install the Debian package %s)", name, pkg)
	if os.Getenv("IMGX_REQUIRE_CONSUMERS") != "" || os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
