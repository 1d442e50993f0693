package commands

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/docker/cli/cli/command"
)

// cobraTest runs the real root command (standalone) with args and returns
// what it printed on stdout and stderr and the error it returns, which
// main prints as "ERROR: ..." (as regctl's cobraTest does). Nothing in it
// reaches a network: DOCKER_CONFIG is an empty folder and no daemon.json
// is read.
func cobraTest(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv(envDaemonConfig, "")
	t.Setenv(envInsecure, "")
	t.Setenv("BUILDKIT_PROGRESS", "")
	var stdout, stderr bytes.Buffer
	dockerCli, err := command.NewDockerCli(
		command.WithInputStream(io.NopCloser(strings.NewReader(stdin))),
		command.WithOutputStream(&stdout),
		command.WithErrorStream(&stderr),
	)
	if err != nil {
		t.Fatal(err)
	}
	cmd := NewRootCmd("docker-imgx", false, dockerCli)
	cmd.SetArgs(args)
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	err = cmd.ExecuteContext(context.Background())
	return stdout.String(), stderr.String(), err
}

// wantError checks that err is one line holding every part of want.
func wantError(t *testing.T, args []string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%q: no error, want one with %q", args, want)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("%q: the error is not one line:\n%s", args, msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%q: error %q has no %q", args, msg, w)
		}
	}
}
