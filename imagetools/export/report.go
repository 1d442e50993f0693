package export

import (
	"github.com/docker-imgx/docker-imgx/progress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Status line names, as BuildKit's image exporter writes them.
const (
	statusLayers   = "exporting layers"
	statusManifest = "exporting manifest "
	statusConfig   = "exporting config "
	statusNaming   = "naming to "
)

var _ Progress = reporter{}

// reporter is the Progress of a write shown as status lines of one vertex,
// like BuildKit's image exporter: "exporting layers" with one byte line per
// blob, "exporting manifest sha256:...", "exporting config sha256:...",
// "naming to NAME", and a final line ("sending tarball", "writing layout")
// that spans the whole write.
type reporter struct {
	lines *progress.Lines
	final string
}

// writing starts the final line at the first tar entry.
func (r reporter) writing() { r.lines.Start(r.final) }

// Blob implements Progress: the first blob starts "exporting layers".
func (r reporter) Blob(desc ocispec.Descriptor, written int64) {
	r.writing()
	r.lines.Start(statusLayers)
	r.lines.Bytes(desc.Digest.String(), written, desc.Size)
}

// Manifest implements Progress.
func (r reporter) Manifest(desc ocispec.Descriptor) {
	r.writing()
	r.lines.OneOff(statusManifest + desc.Digest.String())
}

// Config implements Progress.
func (r reporter) Config(desc ocispec.Descriptor) {
	r.writing()
	r.lines.OneOff(statusConfig + desc.Digest.String())
}

// Naming implements Progress.
func (r reporter) Naming(name string) { r.lines.OneOff(statusNaming + name) }

// report runs write under one vertex of pw, "exporting to FORMAT image
// format", with a reporter whose final line is final; the warnings write
// returns are logged on the same vertex, failed or not.
func report(pw progress.Writer, format, final string, write func(Progress) (result, error)) error {
	return progress.Wrap("exporting to "+format+" image format", pw, func(sub progress.SubLogger) error {
		lines := progress.NewLines(sub)
		defer lines.Done()
		res, err := write(reporter{lines: lines, final: final})
		for _, w := range res.Warnings {
			lines.Warn(w)
		}
		return err
	})
}
