package tests

import (
	"slices"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/consumers"
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
// engine's own pull, and wants the engines to show the same images, IDs,
// names, RepoTags and RepoDigests after every step: the name the pull by
// digest gives (REPOSITORY@DIGEST) is taken away again, the repository's
// other names kept, and one the user pulled before is left.
func TestLoadPullParity(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	multi := e.multi.Index.Desc.Digest.String()
	steps := []struct {
		name string
		// docker runs docker with these arguments on both engines first.
		docker []string
		args   []string
	}{
		{name: "single image", args: []string{e.ref("test/app:1")}},
		{name: "index, named in another repository", args: []string{"--name", "127.0.0.1:5999/other/multi:x", e.ref("test/multi:v1")}},
		{name: "index platform, named in its own repository", args: []string{"--platform", "linux/arm64", "--name", e.ref("test/multi:arm"), e.ref("test/multi:v1")}},
		{name: "the same again", args: []string{e.ref("test/app:1")}},
		{name: "pulled by digest before", docker: []string{"pull", e.ref("test/multi@" + multi)}, args: []string{e.ref("test/multi:v1")}},
	}
	for _, start := range []struct {
		name  string
		start func(testing.TB) *consumers.Docker
	}{{"classic store", consumers.StartDocker}, {"containerd store", consumers.StartDocker29}} {
		t.Run(start.name, func(t *testing.T) {
			streamed, pulled := start.start(t), start.start(t)
			xs := newImgx(t).With("DOCKER_HOST=" + streamed.Host)
			xp := newImgx(t).With("DOCKER_HOST=" + pulled.Host)
			for _, step := range steps {
				if step.docker != nil {
					for _, d := range []*consumers.Docker{streamed, pulled} {
						if _, err := d.Run(t, step.docker...); err != nil {
							t.Fatalf("%s: docker %v: %v", step.name, step.docker, err)
						}
					}
				}
				rs := xs.MustRun(append([]string{"export", "--load", "--load-via", "stream", "--progress", "plain"}, step.args...)...)
				rp := xp.MustRun(append([]string{"export", "--load", "--progress", "plain"}, step.args...)...)
				if !strings.Contains(rs.Stderr, "exporting layers") || strings.Contains(rs.Stderr, "into the Docker engine") {
					t.Errorf("%s: --load-via stream did not stream:\n%s", step.name, rs.Stderr)
				}
				if !strings.Contains(rp.Stderr, "into the Docker engine") || strings.Contains(rp.Stderr, "exporting layers") {
					t.Errorf("%s: the load was not the engine's pull:\n%s", step.name, rp.Stderr)
				}
				if s, p := engineState(t, streamed), engineState(t, pulled); s != p {
					t.Fatalf("%s: the engines differ\nstreamed:\n%s\npulled:\n%s", step.name, s, p)
				}
			}
			t.Log(engineState(t, pulled))
		})
	}
}
