package imagetools

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/moby/buildkit/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestExportProgressReporterStatuses drives the reporter through a real
// export and checks the status lines it sends.
func TestExportProgressReporterStatuses(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one", "two"}, layerMediaType: ocispec.MediaTypeImageLayerZstd})
	var statuses []client.VertexStatus
	var logs []string
	w := progress.WriterFunc(func(st *client.SolveStatus) {
		for _, s := range st.Statuses {
			statuses = append(statuses, *s)
		}
		for _, l := range st.Logs {
			logs = append(logs, string(l.Data))
		}
	})
	err := progress.Wrap("exporting to docker image format", w, func(sub progress.SubLogger) error {
		rep := NewExportProgressReporter(sub, "sending tarball")
		defer rep.Done()
		var buf bytes.Buffer
		return Export(context.Background(), &buf, []ExportImage{{Fetcher: s, Desc: exptestRoot(img.manifest), Name: "localhost:5000/app:1"}},
			ExportOptions{Platforms: exptestLinux("amd64"), Progress: rep})
	})
	if err != nil {
		t.Fatal(err)
	}
	// The last update of each line, in the order lines first appeared.
	var order []string
	last := map[string]client.VertexStatus{}
	for _, st := range statuses {
		if _, ok := last[st.ID]; !ok {
			order = append(order, st.ID)
		}
		last[st.ID] = st
	}
	for _, id := range order {
		st := last[id]
		if st.Started == nil || st.Completed == nil {
			t.Errorf("line %q not started and completed: %+v", id, st)
		}
	}
	for _, l := range img.layers {
		st := last[l.Digest.String()]
		if st.Total != l.Size || st.Current != l.Size {
			t.Errorf("layer %s: %d/%d, want %d/%d", l.Digest, st.Current, st.Total, l.Size, l.Size)
		}
	}
	for _, want := range []string{"sending tarball", "exporting layers", "exporting manifest " + img.manifest.Digest.String(), "exporting config " + img.config.Digest.String(), "naming to localhost:5000/app:1"} {
		if _, ok := last[want]; !ok {
			t.Errorf("no line %q in %q", want, order)
		}
	}
	if order[0] != "sending tarball" || order[len(order)-1] != "naming to localhost:5000/app:1" {
		t.Errorf("order %q: want sending tarball first (it spans the write) and naming last", order)
	}
	if len(logs) != 1 || !strings.HasPrefix(logs[0], "WARNING: 2 zstd-compressed layer(s)") || !strings.HasSuffix(logs[0], "\n") {
		t.Errorf("logs %q, want one zstd warning line", logs)
	}
}

// TestExportProgressReporterPlain checks what the plain display prints.
func TestExportProgressReporterPlain(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one"}})
	var out bytes.Buffer
	t.Setenv(progress.EnvMode, "")
	p, err := progress.NewPrinter(context.Background(), &out, progress.ModePlain)
	if err != nil {
		t.Fatal(err)
	}
	err = progress.Wrap("exporting to docker image format", p, func(sub progress.SubLogger) error {
		rep := NewExportProgressReporter(sub, "sending tarball")
		defer rep.Done()
		var buf bytes.Buffer
		return Export(context.Background(), &buf, []ExportImage{{Fetcher: s, Desc: exptestRoot(img.manifest), Name: "localhost:5000/app:1"}},
			ExportOptions{Platforms: exptestLinux("amd64"), Progress: rep})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	got := regexp.MustCompile(` [0-9.]+s`).ReplaceAllString(out.String(), "")
	for _, want := range []string{
		"#1 exporting to docker image format\n",
		"#1 exporting manifest " + img.manifest.Digest.String() + " done\n",
		"#1 exporting config " + img.config.Digest.String() + " done\n",
		"#1 naming to localhost:5000/app:1 done\n",
		"#1 exporting layers done\n",
		"#1 sending tarball done\n",
		"#1 DONE\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("plain output has no %q:\n%s", want, got)
		}
	}
	if !regexp.MustCompile(`#1 ` + img.layers[0].Digest.String() + ` [0-9.]+B / [0-9.]+B done\n`).MatchString(got) {
		t.Errorf("no byte count line for the layer:\n%s", got)
	}
}
