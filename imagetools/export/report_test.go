package export

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/moby/buildkit/client"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestReportStatuses drives the reporter through a real
// export and checks the status lines it sends.
func TestReportStatuses(t *testing.T) {
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 1, Compression: fixture.Zstd})
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
	err := reporttestExport(w, img)
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
	for _, l := range img.Layers {
		st := last[l.Desc.Digest.String()]
		if st.Total != l.Desc.Size || st.Current != l.Desc.Size {
			t.Errorf("layer %s: %d/%d, want %d/%d", l.Desc.Digest, st.Current, st.Total, l.Desc.Size, l.Desc.Size)
		}
	}
	for _, want := range []string{"sending tarball", "exporting layers", "exporting manifest " + img.Manifest.Desc.Digest.String(), "exporting config " + img.Config.Desc.Digest.String(), "naming to localhost:5000/app:1"} {
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

// TestReportPlain checks what the plain display prints.
func TestReportPlain(t *testing.T) {
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, LayerSize: 100, Seed: 2})
	var out bytes.Buffer
	t.Setenv(progress.EnvMode, "")
	p, err := progress.NewPrinter(context.Background(), &out, progress.ModePlain)
	if err != nil {
		t.Fatal(err)
	}
	err = reporttestExport(p, img)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	// The job resolves the image first (#1); the export is #2, read as #E.
	got := regexp.MustCompile(` [0-9.]+s`).ReplaceAllString(out.String(), "")
	if !strings.Contains(got, "#1 resolving localhost:5000/app:1\n") {
		t.Errorf("no resolving step first:\n%s", got)
	}
	got = strings.ReplaceAll(got, "#2 ", "#E ")
	for _, want := range []string{
		"#E exporting to docker image format\n",
		"#E exporting manifest " + img.Manifest.Desc.Digest.String() + " done\n",
		"#E exporting config " + img.Config.Desc.Digest.String() + " done\n",
		"#E naming to localhost:5000/app:1 done\n",
		"#E exporting layers done\n",
		"#E sending tarball done\n",
		"#E DONE\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("plain output has no %q:\n%s", want, got)
		}
	}
	if !regexp.MustCompile(`#E ` + img.Layers[0].Desc.Digest.String() + ` [0-9.]+B / [0-9.]+B done\n`).MatchString(got) {
		t.Errorf("no byte count line for the layer:\n%s", got)
	}
}

// reporttestFetcher serves an image's blobs from memory.
type reporttestFetcher map[digest.Digest][]byte

func newReporttestFetcher(img fixture.Image) reporttestFetcher {
	f := reporttestFetcher{}
	for _, b := range img.Blobs() {
		f[b.Desc.Digest] = b.Data
	}
	return f
}

func (f reporttestFetcher) Fetch(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	data, ok := f[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// reporttestRoot is the image's manifest descriptor as a registry resolves it.
func reporttestRoot(img fixture.Image) ocispec.Descriptor {
	d := img.Manifest.Desc
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
}

// reporttestPlace serves one image, as localhost:5000/app:1 names it.
type reporttestPlace struct {
	img fixture.Image
}

func (p reporttestPlace) Manifest(context.Context, ref.Location) (ocispec.Descriptor, []byte, error) {
	return reporttestRoot(p.img), p.img.Manifest.Data, nil
}

func (p reporttestPlace) Fetcher(context.Context, ref.Location) (remotes.Fetcher, error) {
	return newReporttestFetcher(p.img), nil
}

func (p reporttestPlace) Tags(context.Context, ref.Location, int) (map[string]bool, bool, error) {
	return nil, false, errdefs.ErrNotImplemented
}

func (p reporttestPlace) Referrers(context.Context, ref.Location) ([]ocispec.Descriptor, bool, error) {
	return nil, false, nil
}

// reporttestExport exports img (linux/amd64, as localhost:5000/app:1) into
// a buffer through a Job, reported to w as the command's is.
func reporttestExport(w progress.Writer, img fixture.Image) error {
	job, err := NewJob(Request{
		Images:    []string{"localhost:5000/app:1"},
		Output:    ref.Output{Kind: ref.OutputFile, Path: "app.tar"},
		Platforms: []ocispec.Platform{platforms.MustParse("linux/amd64")},
	})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	return job.Run(context.Background(), w, reporttestPlace{img: img}, func(_ context.Context, write func(io.Writer) error) error {
		return write(&buf)
	})
}
