package tests

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

// credentialSource is how a run gets the registries' credentials.
type credentialSource struct {
	name string
	// setup writes the Docker config (and helper) for regs with the given
	// passwords, and returns the runner to use.
	setup func(t *testing.T, x *imgx, regs []*registrytest.Registry, passwords []string) *imgx
}

func credentialSources() []credentialSource {
	return []credentialSource{
		{name: "config-auths", setup: func(t *testing.T, x *imgx, regs []*registrytest.Registry, passwords []string) *imgx {
			var auths []string
			for i, reg := range regs {
				auths = append(auths, fmt.Sprintf(`"%s":{"auth":"%s"}`, reg.Host, basicAuth(reg.Username, passwords[i])))
			}
			writeDockerConfig(t, x.DockerConfig, `{"auths":{`+strings.Join(auths, ",")+`}}`)
			return x
		}},
		{name: "credential-helper", setup: func(t *testing.T, x *imgx, regs []*registrytest.Registry, passwords []string) *imgx {
			bin := filepath.Join(x.DockerConfig, "bin")
			if err := os.MkdirAll(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			script := "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread host\ncase \"$host\" in\n"
			var helpers []string
			for i, reg := range regs {
				script += fmt.Sprintf("%s) printf '{\"ServerURL\":\"%%s\",\"Username\":\"%s\",\"Secret\":\"%s\"}' \"$host\" ;;\n", reg.Host, reg.Username, passwords[i])
				helpers = append(helpers, fmt.Sprintf(`"%s":"imgxsecrets"`, reg.Host))
			}
			script += "*) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n"
			if err := writeExecutable(filepath.Join(bin, "docker-credential-imgxsecrets"), []byte(script)); err != nil {
				t.Fatal(err)
			}
			writeDockerConfig(t, x.DockerConfig, `{"credHelpers":{`+strings.Join(helpers, ",")+`}}`)
			return x.With("PATH=" + bin + ":" + os.Getenv("PATH"))
		}},
	}
}

func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// secretsOf lists what no output may show: the passwords, their base64
// auths, and every bearer token issued (and its signature alone).
func secretsOf(regs []*registrytest.Registry, passwords []string) []string {
	var out []string
	for i, reg := range regs {
		out = append(out, passwords[i], basicAuth(reg.Username, passwords[i]))
		for _, tok := range reg.IssuedTokens() {
			out = append(out, tok)
			if parts := strings.Split(tok, "."); len(parts) == 3 {
				out = append(out, parts[2])
			}
		}
	}
	return out
}

// TestSecretsNeverShown runs every command with --debug, in plain and rawjson
// progress, against registries with basic and token auth, with credentials
// from config.json and from a credential helper, and with a wrong password,
// and searches all output for the credentials and issued tokens.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 51})
	idx := multiIndex()
	for _, mode := range []registrytest.AuthMode{registrytest.AuthBasic, registrytest.AuthToken} {
		// Each mode has registries of its own, so the two run side by side.
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			secretsNeverShown(t, mode, img, idx)
		})
	}
}

// secretsNeverShown runs TestSecretsNeverShown's runs against two
// registries with auth mode, for each source of credentials in turn.
func secretsNeverShown(t *testing.T, mode registrytest.AuthMode, img fixture.Image, idx fixture.Index) {
	src := registrytest.Start(t, registrytest.Options{Auth: mode})
	dst := registrytest.Start(t, registrytest.Options{Auth: mode})
	pushImage(t, src, "test/app", "1", img)
	pushIndex(t, src, "test/multi", "v1", idx)
	regs := []*registrytest.Registry{src, dst}
	for _, cs := range credentialSources() {
		t.Run(cs.name, func(t *testing.T) {
			runs := secretRuns(t, src, dst)
			x := cs.setup(t, newImgx(t), regs, []string{src.Password, dst.Password})
			var outputs []string
			for _, args := range runs {
				res := x.MustRun(append([]string{"--debug"}, args...)...)
				assertAuthLogged(t, mode, src, args, res.Stderr, true)
				outputs = append(outputs, res.Stdout+res.Stderr)
			}
			// Through docker: docker's -D, and the plugin's own --debug.
			for _, args := range runs[:2] {
				for _, full := range [][]string{append([]string{"-D", "imgx"}, args...), append([]string{"imgx", "--debug"}, args...)} {
					res := x.RunDocker(full...)
					if res.ExitCode != 0 {
						t.Fatalf("docker %v: exit %d\n%s", full, res.ExitCode, res.Stderr)
					}
					assertAuthLogged(t, mode, src, full, res.Stderr, true)
					outputs = append(outputs, res.Stdout+res.Stderr)
				}
			}
			wrong := []string{"wrong-" + src.Password, "wrong-" + dst.Password}
			bad := cs.setup(t, newImgx(t), regs, wrong)
			// Outputs of their own: a layout folder the runs above
			// filled is refused before any request.
			for _, args := range secretRuns(t, src, dst) {
				res := bad.Run(append([]string{"--debug"}, args...)...)
				if res.ExitCode == 0 {
					t.Fatalf("%v succeeded with a wrong password", args)
				}
				assertAuthLogged(t, mode, src, args, res.Stderr, false)
				outputs = append(outputs, res.Stdout+res.Stderr)
			}
			secrets := secretsOf(regs, []string{src.Password, dst.Password})
			secrets = append(secrets, wrong[0], wrong[1], basicAuth(src.Username, wrong[0]), basicAuth(dst.Username, wrong[1]))
			if mode == registrytest.AuthToken && len(src.IssuedTokens()) == 0 {
				t.Fatal("the token server issued no token: the runs did not authenticate")
			}
			for i, out := range outputs {
				for _, s := range secrets {
					if strings.Contains(out, s) {
						t.Errorf("run %d shows a secret %q:\n%s", i, s, out)
					}
				}
			}
		})
	}
}

// secretRuns are the command lines of TestSecretsNeverShown.
func secretRuns(t *testing.T, src, dst *registrytest.Registry) [][]string {
	dir := t.TempDir()
	app, multi := src.Host+"/test/app:1", src.Host+"/test/multi:v1"
	var runs [][]string
	runs = append(runs,
		[]string{"inspect", "--raw", multi},
		[]string{"inspect", "--format", "json", multi})
	for i, mode := range []string{"plain", "rawjson"} {
		runs = append(runs,
			[]string{"create", "--progress", mode, "-t", src.Host + fmt.Sprintf("/test/same:%d", i), app, multi},
			[]string{"create", "--progress", mode, "-t", dst.Host + fmt.Sprintf("/test/copy:%d", i), multi},
			[]string{"export", "--progress", mode, "--platform", "all", "-o", filepath.Join(dir, mode+".tar"), multi},
			[]string{"export", "--progress", mode, "-o", "oci-layout://" + filepath.Join(dir, mode), app})
	}
	return runs
}

// assertAuthLogged wants the debug output of a run to show the requests to
// src: a request answered 401 (the challenge), and with token auth the
// token exchange, answered 200 when the password is right.
// What the secrets search then finds nothing in is the real output.
func assertAuthLogged(t *testing.T, mode registrytest.AuthMode, src *registrytest.Registry, args []string, stderr string, ok bool) {
	t.Helper()
	want := [][]string{{`msg="registry request"`, `url="http://` + src.Host + `/v2/`, "status=401"}}
	if mode == registrytest.AuthToken {
		line := []string{`msg="registry request"`, "method=POST", `url="http://` + src.Host + `/token"`}
		if ok {
			line = append(line, "status=200")
		}
		want = append(want, line)
	} else if ok {
		want = append(want, []string{`msg="registry request"`, `url="http://` + src.Host + `/v2/`, "status=200"})
	}
	for _, w := range want {
		if len(debugLines(stderr, w)) == 0 {
			t.Errorf("%v: the debug output has no line with %q:\n%s", args, w, stderr)
		}
	}
}
