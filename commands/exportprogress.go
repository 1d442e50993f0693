package commands

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools/export"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/moby/buildkit/client"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// exportBlobUpdateInterval is how often a blob's byte count is reported at
// most while it is written; its start and end are always reported.
const exportBlobUpdateInterval = 100 * time.Millisecond

// Status line names, as BuildKit's image exporter writes them.
const (
	exportStatusLayers   = "exporting layers"
	exportStatusManifest = "exporting manifest "
	exportStatusConfig   = "exporting config "
	exportStatusNaming   = "naming to "
)

var _ export.Progress = (*exportReporter)(nil)

// exportReporter is an export.Progress that reports as status lines of one
// progress vertex, like BuildKit's image exporter: "exporting layers" with
// one byte-counting line per blob, "exporting manifest sha256:...",
// "exporting config sha256:...", "naming to NAME" and a final line such as
// "sending tarball" that spans the whole write. Warnings are logged as
// "WARNING: ..." lines of the vertex.
type exportReporter struct {
	sub   progress.SubLogger
	final string

	mu     sync.Mutex
	layers *client.VertexStatus
	last   *client.VertexStatus
	blobs  map[digest.Digest]*exportBlobStatus
}

// exportBlobStatus is the status line of one blob and when it was last sent.
type exportBlobStatus struct {
	st   client.VertexStatus
	sent time.Time
}

// newExportReporter reports to sub; final names the line that spans the
// whole write ("sending tarball", "writing layout").
func newExportReporter(sub progress.SubLogger, final string) *exportReporter {
	return &exportReporter{sub: sub, final: final, blobs: map[digest.Digest]*exportBlobStatus{}}
}

// start sends a new status line, started now, and returns it.
func (r *exportReporter) start(id string) *client.VertexStatus {
	now := time.Now()
	st := &client.VertexStatus{ID: id, Started: &now, Timestamp: now}
	r.sub.SetStatus(st)
	return st
}

// complete marks a status line done now.
func (r *exportReporter) complete(st *client.VertexStatus) {
	now := time.Now()
	st.Completed, st.Timestamp = &now, now
	r.sub.SetStatus(st)
}

// oneOff sends a status line that starts and ends now.
func (r *exportReporter) oneOff(id string) {
	r.complete(r.start(id))
}

// writing starts the final line at the first tar entry.
func (r *exportReporter) writing() {
	if r.last == nil {
		r.last = r.start(r.final)
	}
}

// Blob implements export.Progress: the first blob starts "exporting layers",
// and each blob has a line counting its bytes.
func (r *exportReporter) Blob(desc ocispec.Descriptor, written int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writing()
	if r.layers == nil {
		r.layers = r.start(exportStatusLayers)
	}
	b, ok := r.blobs[desc.Digest]
	if !ok {
		now := time.Now()
		b = &exportBlobStatus{st: client.VertexStatus{ID: desc.Digest.String(), Total: desc.Size, Started: &now, Timestamp: now}, sent: now}
		r.blobs[desc.Digest] = b
		r.sub.SetStatus(&b.st)
	}
	b.st.Current = written
	now := time.Now()
	if written >= desc.Size {
		b.st.Timestamp, b.st.Completed = now, &now
		r.sub.SetStatus(&b.st)
		return
	}
	if now.Sub(b.sent) >= exportBlobUpdateInterval {
		b.st.Timestamp, b.sent = now, now
		r.sub.SetStatus(&b.st)
	}
}

// Manifest implements export.Progress.
func (r *exportReporter) Manifest(desc ocispec.Descriptor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writing()
	r.oneOff(exportStatusManifest + desc.Digest.String())
}

// Config implements export.Progress.
func (r *exportReporter) Config(desc ocispec.Descriptor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writing()
	r.oneOff(exportStatusConfig + desc.Digest.String())
}

// Naming implements export.Progress.
func (r *exportReporter) Naming(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.oneOff(exportStatusNaming + name)
}

// warn logs a warning of the write as a line of the vertex.
func (r *exportReporter) warn(msg string) {
	r.sub.Log(2, []byte("WARNING: "+msg+"\n"))
}

// done completes the lines still open: "exporting layers", blobs cut short
// by an error, and the final line. Call it once when the export has ended.
func (r *exportReporter) done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range sortedBlobStatuses(r.blobs) {
		if b.st.Completed == nil {
			r.complete(&b.st)
		}
	}
	if r.layers != nil {
		r.complete(r.layers)
	}
	if r.last != nil {
		r.complete(r.last)
	}
}

// sortedBlobStatuses returns the statuses by digest, so that what is printed
// does not depend on map order.
func sortedBlobStatuses(m map[digest.Digest]*exportBlobStatus) []*exportBlobStatus {
	out := make([]*exportBlobStatus, 0, len(m))
	for _, b := range m {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *exportBlobStatus) int { return strings.Compare(a.st.ID, b.st.ID) })
	return out
}

// reportExport runs write with a reporter on sub, then logs the warnings
// write returns on the same vertex, failed or not.
func reportExport(sub progress.SubLogger, final string, write func(export.Progress) (export.Result, error)) error {
	rep := newExportReporter(sub, final)
	defer rep.done()
	res, err := write(rep)
	for _, w := range res.Warnings {
		rep.warn(w)
	}
	return err
}

// showWarnings shows the warnings of a load into the engine, whose own
// steps have ended by then, each as a step of its own.
func showWarnings(pw progress.Writer, warnings []string) {
	for _, w := range warnings {
		_ = progress.OneOff(pw, "WARNING: "+w)(nil)
	}
}
