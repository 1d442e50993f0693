package ref

import (
	"fmt"
	"strings"
)

// OutputKind says where an export's output goes.
type OutputKind int

// Output kinds.
const (
	// OutputStdout is the tar on standard output ("" or "-").
	OutputStdout OutputKind = iota
	// OutputFile is the tar in a file.
	OutputFile
	// OutputLayout is an OCI image layout folder (oci-layout://DIR).
	OutputLayout
)

// Output is where an export writes, as -o names it.
type Output struct {
	Kind OutputKind
	// Path is the file or the folder; "" for stdout.
	Path string
}

// ParseOutput reads an output as -o writes it: "" or "-" is stdout,
// oci-layout://DIR a layout folder, anything else a file. A layout output
// takes no :TAG or @DIGEST: the names come from the images.
func ParseOutput(s string) (Output, error) {
	switch {
	case s == "" || s == "-":
		return Output{Kind: OutputStdout}, nil
	case strings.HasPrefix(s, LayoutPrefix):
		dir := strings.TrimPrefix(s, LayoutPrefix)
		if dir == "" || strings.Contains(dir, "@") || layoutTagged(dir) {
			return Output{}, fmt.Errorf("invalid output %q: want %sDIR, without :TAG or @DIGEST (names come from the images or --name)", s, LayoutPrefix)
		}
		return Output{Kind: OutputLayout, Path: dir}, nil
	default:
		return Output{Kind: OutputFile, Path: s}, nil
	}
}

// layoutTagged reports whether a layout path ends in ":TAG", which reads
// back as PATH:TAG and so cannot name an output folder.
func layoutTagged(dir string) bool {
	i := strings.LastIndex(dir, ":")
	return i >= 0 && !strings.ContainsAny(dir[i+1:], `/\`)
}
