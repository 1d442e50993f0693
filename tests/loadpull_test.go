package tests

import (
	"bytes"
	"cmp"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/internal/consumers"
	"github.com/docker-imgx/docker-imgx/internal/faultproxy"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

// engineState is what an engine's image list and inspect show of every
// image it holds: a row per name (repository, tag, digest, ID), and per
// image ID its RepoTags and RepoDigests, sorted.
func engineState(t *testing.T, d *consumers.Docker) string {
	t.Helper()
	out, err := d.Run(t, "images", "-a", "--digests", "--no-trunc", "--format", "{{.Repository}} {{.Tag}} {{.Digest}} {{.ID}}")
	if err != nil {
		t.Fatalf("list images: %v", err)
	}
	rows := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(rows)
	var ids []string
	for _, r := range rows {
		if f := strings.Fields(r); len(f) == 4 && !slices.Contains(ids, f[3]) {
			ids = append(ids, f[3])
		}
	}
	state := strings.Join(rows, "\n")
	for _, id := range ids {
		tags, err := d.Run(t, "image", "inspect", "--format", "{{range .RepoTags}}{{.}}\n{{end}}", id)
		if err != nil {
			t.Fatalf("inspect %s: %v", id, err)
		}
		digests, err := d.Run(t, "image", "inspect", "--format", "{{range .RepoDigests}}{{.}}\n{{end}}", id)
		if err != nil {
			t.Fatalf("inspect %s: %v", id, err)
		}
		state += "\n" + id + " tags " + sortedLines(tags) + " digests " + sortedLines(digests)
	}
	return state
}

// sortedLines is the non-empty lines of s, sorted, joined by spaces.
func sortedLines(s string) string {
	lines := strings.Fields(s)
	slices.Sort(lines)
	return "[" + strings.Join(lines, " ") + "]"
}

// TestLoadPullParity loads the same sequence of images into two fresh
// engines of each image store, one by the streamed tar and one by the
// engine's own pull where it can (--load-via auto), and wants the engines
// to show the same images, IDs, names, RepoTags and RepoDigests after every
// step: the name the pull by digest gives (REPOSITORY@DIGEST) is taken away
// again, the repository's other names kept, and one the user pulled before
// is left. A mixed load pulls its registry image and streams its layout
// image; images that share a root go together by the stream; a single
// image of another architecture is pulled with its platform; an image
// named by digest alone is pulled into the containerd image store only.
func TestLoadPullParity(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	multi := e.multi.Index.Desc.Digest.String()
	pushImage(t, e.reg, "test/armonly", "1", e.multi.Images[1])
	multiLayout, appLayout := layoutOf(t, e, "test/multi:v1"), layoutOf(t, e, "test/app:1")
	appPinned := e.ref("test/app@" + e.app.Manifest.Desc.Digest.String())
	steps := []parityStep{
		{name: "single image", args: []string{e.ref("test/app:1")}},
		{name: "index, named in another repository", args: []string{"--name", "127.0.0.1:5999/other/multi:x", e.ref("test/multi:v1")}},
		{name: "index platform, named in its own repository", args: []string{"--platform", "linux/arm64", "--name", e.ref("test/multi:arm"), e.ref("test/multi:v1")}},
		{name: "the same again", args: []string{e.ref("test/app:1")}},
		{name: "pulled by digest before", docker: []string{"pull", e.ref("test/multi@" + multi)}, args: []string{e.ref("test/multi:v1")}},
		{name: "registry and layout", via: viaBoth, args: []string{"--name", "127.0.0.1:5999/mixed/app:2", "--name", "127.0.0.1:5999/layout/multi:1", e.ref("test/app:2"), "oci-layout://" + multiLayout + ":v1"},
			debug: "oci-layout://" + multiLayout + ":v1 is not in a registry"},
		{name: "registry and layout of one root", via: viaStream, args: []string{"--name", "127.0.0.1:5999/shared/app:1", "--name", "127.0.0.1:5999/shared/app:2", e.ref("test/app:1"), "oci-layout://" + appLayout + ":1"},
			debug: "127.0.0.1:5999/shared/app:1 goes with 127.0.0.1:5999/shared/app:2, which shares its manifest, image ID or a name"},
		{name: "another architecture asked for", args: []string{"--platform", "linux/arm64", "--name", "127.0.0.1:5999/arm/only:1", e.ref("test/armonly:1")}},
		{name: "another architecture", args: []string{e.ref("test/armonly:1")}},
		{name: "named by digest", classicVia: viaStream, args: []string{appPinned}, debug: "has no tag to name it by: the classic image store leaves"},
		{name: "index named by digest", classicVia: viaStream, args: []string{e.ref("test/multi@" + multi)}},
	}
	for _, start := range []struct {
		name    string
		classic bool
		start   func(testing.TB) *consumers.Docker
	}{{"classic store", true, consumers.StartDocker}, {"containerd store", false, consumers.StartDocker29}} {
		t.Run(start.name, func(t *testing.T) {
			streamed, pulled := start.start(t), start.start(t)
			xs := newImgx(t).With("DOCKER_HOST=" + streamed.Host)
			xp := newImgx(t).With("DOCKER_HOST=" + pulled.Host)
			for _, step := range steps {
				step.run(t, start.classic, streamed, pulled, xs, xp)
			}
			t.Log(engineState(t, pulled))
			// A name of the user's in the repository, at the image: taking
			// the pull's own name away would take it too (containerd
			// store), so the pull's name stays and the user's is never gone.
			app, appDigest := e.ref("test/app:1"), e.ref("test/app@"+e.app.Manifest.Desc.Digest.String())
			if _, err := pulled.Run(t, "tag", app, e.ref("test/app:mine")); err != nil {
				t.Fatal(err)
			}
			if _, err := pulled.Run(t, "rmi", app); err != nil {
				t.Fatal(err)
			}
			xp.MustRun("export", "--load", "--progress", "quiet", app)
			for _, name := range []string{app, e.ref("test/app:mine"), appDigest} {
				if _, err := pulled.Run(t, "image", "inspect", name); err != nil {
					t.Errorf("after a load beside a name of the user's: %s is not in the engine: %v", name, err)
				}
			}
		})
	}
}

// The ways a parityStep's load under --load-via auto takes.
const (
	viaPull   = "pull"
	viaStream = "stream"
	viaBoth   = "both"
)

// parityStep is one load of TestLoadPullParity.
type parityStep struct {
	name string
	// docker runs docker with these arguments on both engines first.
	docker []string
	args   []string
	// via is the way the load under auto takes (default viaPull);
	// classicVia, when set, the way into the classic store.
	via, classicVia string
	// debug is a line of the auto load's --debug output.
	debug string
}

// run loads the step into streamed by --load-via stream and into pulled
// by --load-via auto, and wants the two engines to show the same.
func (step parityStep) run(t *testing.T, classic bool, streamed, pulled *consumers.Docker, xs, xp *imgx) {
	t.Helper()
	if step.docker != nil {
		for _, d := range []*consumers.Docker{streamed, pulled} {
			if _, err := d.Run(t, step.docker...); err != nil {
				t.Fatalf("%s: docker %v: %v", step.name, step.docker, err)
			}
		}
	}
	rs := xs.MustRun(append([]string{"export", "--load", "--load-via", "stream", "--progress", "plain"}, step.args...)...)
	rp := xp.MustRun(append([]string{"export", "--load", "--progress", "plain", "--debug"}, step.args...)...)
	if !strings.Contains(rs.Stderr, "exporting layers") || strings.Contains(rs.Stderr, "into the Docker engine") {
		t.Errorf("%s: --load-via stream did not stream:\n%s", step.name, rs.Stderr)
	}
	via := cmp.Or(step.via, viaPull)
	if classic && step.classicVia != "" {
		via = step.classicVia
	}
	pulledIt, streamedIt := strings.Contains(rp.Stderr, "into the Docker engine"), strings.Contains(rp.Stderr, "exporting layers")
	if pulledIt != (via != viaStream) || streamedIt != (via != viaPull) {
		t.Errorf("%s: the load did not go by %s (pulled %v, streamed %v):\n%s", step.name, via, pulledIt, streamedIt, rp.Stderr)
	}
	if step.debug != "" && (via != viaPull) && !strings.Contains(rp.Stderr, step.debug) {
		t.Errorf("%s: no %q in the --debug output:\n%s", step.name, step.debug, rp.Stderr)
	}
	if s, p := engineState(t, streamed), engineState(t, pulled); s != p {
		t.Fatalf("%s: the engines differ\nstreamed:\n%s\npulled:\n%s", step.name, s, p)
	}
}

// TestLoadPullFallback loads from a TLS registry whose CA only
// docker-imgx's certs.d holds, on an address that is not loopback (the
// engine trusts any loopback registry, and verifies the others): the
// engine's pull fails, and --load goes on by the streamed tar, saying so
// in a step; --load-via pull fails with one line naming the engine's
// reason, and leaves the engine as it was.
func TestLoadPullFallback(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{TLS: true, Addr: outsideAddress(t) + ":0"})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 71})
	pushImage(t, reg, "test/tls", "1", img)
	d := consumers.StartDocker29(t)
	x := newImgx(t).With("DOCKER_HOST=" + d.Host)
	if err := reg.WriteCertsDir(x.CertsDir()); err != nil {
		t.Fatal(err)
	}
	ref := reg.Host + "/test/tls:1"
	pinned := reg.Host + "/test/tls@" + img.Manifest.Desc.Digest.String()
	empty := engineState(t, d)

	t.Run("forced pull", func(t *testing.T) {
		t.Log(x.MustFail([]string{"the Docker engine's pull of " + pinned, "certificate", "use --load-via auto or stream"},
			"export", "--load", "--load-via", "pull", ref))
		if got := engineState(t, d); got != empty {
			t.Errorf("the engine holds images after a failed pull:\n%s", got)
		}
	})
	t.Run("forced pull of a layout", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "layout")
		x.MustRun("export", "--progress", "quiet", "-o", "oci-layout://"+dir, ref)
		t.Log(x.MustFail([]string{"--load-via pull: the Docker engine cannot pull this load", "oci-layout://" + dir + ":1 is not in a registry", "use --load-via auto or stream"},
			"export", "--load", "--load-via", "pull", "--name", ref, "oci-layout://"+dir+":1"))
		// A mixed load: the first image that cannot be pulled is named.
		t.Log(x.MustFail([]string{"--load-via pull: the Docker engine cannot pull this load (oci-layout://" + dir + ":1 is not in a registry)"},
			"export", "--load", "--load-via", "pull", "--name", ref, "--name", "127.0.0.1:5999/layout/tls:1", ref, "oci-layout://"+dir+":1"))
		if got := engineState(t, d); got != empty {
			t.Errorf("the engine holds images after a refused load:\n%s", got)
		}
	})
	t.Run("auto", func(t *testing.T) {
		res := x.MustRun("export", "--load", "--progress", "plain", "--debug", ref)
		for _, want := range []string{
			"the Docker engine cannot pull " + pinned + ": sending the image tar instead",
			"the engine's pull failed, streaming the image tar instead",
			"exporting layers", "naming to " + ref,
		} {
			if !strings.Contains(res.Stderr, want) {
				t.Errorf("no %q in the progress:\n%s", want, res.Stderr)
			}
		}
		if got := d.ImageIDs(t)[ref]; got != img.Manifest.Desc.Digest.String() {
			t.Errorf("image ID of %s = %q, want %s", ref, got, img.Manifest.Desc.Digest)
		}
	})
}

// TestLoadPullAuth: the engine's pull of a registry that wants a login
// carries the user's credentials (X-Registry-Auth, as docker pull sends
// them).
func TestLoadPullAuth(t *testing.T) {
	t.Parallel()
	for _, mode := range []registrytest.AuthMode{registrytest.AuthBasic, registrytest.AuthToken} {
		t.Run(mode.String(), func(t *testing.T) {
			reg := registrytest.Start(t, registrytest.Options{Auth: mode})
			img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 73})
			pushImage(t, reg, "test/private", "1", img)
			d := consumers.StartDocker29(t)
			x := newImgx(t).With("DOCKER_HOST=" + d.Host)
			if err := reg.WriteDockerConfig(x.DockerConfig); err != nil {
				t.Fatal(err)
			}
			ref := reg.Host + "/test/private:1"
			res := x.MustRun("export", "--load", "--load-via", "pull", "--progress", "plain", ref)
			if !strings.Contains(res.Stderr, "into the Docker engine") {
				t.Errorf("not the engine's pull:\n%s", res.Stderr)
			}
			if got := d.ImageIDs(t)[ref]; got != img.Manifest.Desc.Digest.String() {
				t.Errorf("image ID of %s = %q, want %s", ref, got, img.Manifest.Desc.Digest)
			}
		})
	}
}

// TestLoadPullCancel interrupts the load while the engine pulls (SIGINT
// sent when the engine asks for a layer, whose answer then stalls): exit
// 130, the engine ends its pull (its request for the layer is closed), and
// the engine holds no image, neither a name nor the pull's own.
func TestLoadPullCancel(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, LayerSize: 1 << 20, Seed: 79, Compression: fixture.Uncompressed})
	pushImage(t, reg, "test/cancel", "1", img)
	for _, start := range []struct {
		name  string
		start func(testing.TB) *consumers.Docker
	}{{"classic store", consumers.StartDocker}, {"containerd store", consumers.StartDocker29}} {
		t.Run(start.name, func(t *testing.T) {
			var cmd *exec.Cmd
			started, ended := make(chan struct{}), make(chan struct{})
			var once sync.Once
			px := faultproxy.Start(t, reg.Host, faultproxy.Fault{
				Method: http.MethodGet, PathContains: "/blobs/" + img.Layers[0].Desc.Digest.String(), Times: 1, Kind: faultproxy.Stall,
				Before: func() {
					<-started
					_ = cmd.Process.Signal(syscall.SIGINT)
				},
				After: func() { once.Do(func() { close(ended) }) },
			})
			d := start.start(t)
			x := newImgx(t).With("DOCKER_HOST=" + d.Host)
			empty := engineState(t, d)
			var stderr *bytes.Buffer
			cmd, stderr = startImgx(t, x, "export", "--load", "--load-via", "pull", "--progress", "plain", px.Host()+"/test/cancel:1")
			close(started)
			wantInterrupted(t, cmd, stderr)
			select {
			case <-ended:
			case <-time.After(time.Minute):
				t.Fatal("the engine's request for the layer is still open a minute after the interrupt: its pull goes on")
			}
			if got := engineState(t, d); got != empty {
				t.Errorf("the engine holds images after the interrupt:\n%s", got)
			}
		})
	}
}

// TestLoadPullMixedCancel interrupts a mixed load (a registry image the
// engine pulls, and a registry image and an OCI layout of one root, which
// go by the stream together) once while the engine pulls and once while
// the stream is sent (SIGINT when a layer is asked for, whose answer then
// stalls): exit 130, the stalled request is closed, and the engine holds
// no image, neither a name of the load nor the pull's own: the pulled
// image is named only once the stream is loaded.
func TestLoadPullMixedCancel(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	pulledImg := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, LayerSize: 1 << 20, Seed: 83, Compression: fixture.Uncompressed})
	streamedImg := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, LayerSize: 1 << 20, Seed: 89, Compression: fixture.Uncompressed})
	pushImage(t, reg, "test/pulled", "1", pulledImg)
	pushImage(t, reg, "test/streamed", "1", streamedImg)
	layout := filepath.Join(t.TempDir(), "layout")
	newImgx(t).MustRun("export", "--progress", "quiet", "-o", "oci-layout://"+layout, reg.Host+"/test/streamed:1")
	for _, half := range []struct {
		name  string
		layer string
	}{{"pull", pulledImg.Layers[0].Desc.Digest.String()}, {"stream", streamedImg.Layers[0].Desc.Digest.String()}} {
		for _, start := range []struct {
			name  string
			start func(testing.TB) *consumers.Docker
		}{{"classic store", consumers.StartDocker}, {"containerd store", consumers.StartDocker29}} {
			t.Run(half.name+"/"+start.name, func(t *testing.T) {
				var (
					cmd    *exec.Cmd
					sent   time.Time
					once   sync.Once
					stderr *bytes.Buffer
				)
				started, ended := make(chan struct{}), make(chan struct{})
				px := faultproxy.Start(t, reg.Host, faultproxy.Fault{
					Method: http.MethodGet, PathContains: "/blobs/" + half.layer, Times: 1, Kind: faultproxy.Stall,
					Before: func() {
						<-started
						sent = time.Now()
						_ = cmd.Process.Signal(syscall.SIGINT)
					},
					After: func() { once.Do(func() { close(ended) }) },
				})
				d := start.start(t)
				x := newImgx(t).With("DOCKER_HOST=" + d.Host)
				empty := engineState(t, d)
				cmd, stderr = startImgx(t, x, "export", "--load", "--progress", "plain",
					px.Host()+"/test/pulled:1", px.Host()+"/test/streamed:1", "oci-layout://"+layout+":1")
				close(started)
				wantInterrupted(t, cmd, stderr)
				t.Logf("exit %v after the interrupt", time.Since(sent))
				if want := "into the Docker engine"; !strings.Contains(stderr.String(), want) {
					t.Errorf("no %q step: the pull half did not run:\n%s", want, stderr.String())
				}
				select {
				case <-ended:
				case <-time.After(time.Minute):
					t.Fatal("the request for the layer is still open a minute after the interrupt")
				}
				if got := engineState(t, d); got != empty {
					t.Errorf("the engine holds images after the interrupt:\n%s\nprogress:\n%s", got, stderr.String())
				}
			})
		}
	}
}
