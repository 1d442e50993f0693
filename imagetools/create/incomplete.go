package create

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
)

// IncompleteSourceError reports a source index that lists platforms whose
// manifests its place does not hold, as a layout (or tar) from a
// single-platform export does: it keeps the original index and only one
// platform's blobs. Held names the platforms it can give.
type IncompleteSourceError struct {
	Source  string
	Held    []string
	Missing []string
	Err     error
}

func (e *IncompleteSourceError) Error() string {
	held := "none"
	if len(e.Held) > 0 {
		held = strings.Join(e.Held, ", ")
	}
	return fmt.Sprintf("%v: %s holds the content of %s only, not of %s (as after a single-platform export)",
		imagetools.ErrIncompleteSource, e.Source, held, strings.Join(e.Missing, ", "))
}

func (e *IncompleteSourceError) Unwrap() []error {
	return []error{imagetools.ErrIncompleteSource, e.Err}
}

// explainMissing turns a manifest missing under a source index into an
// IncompleteSourceError naming what the source holds; other errors pass.
// The manifests are read again, one by one outside the graph: the failed
// read cancelled the others, which the graph keeps.
func explainMissing(ctx context.Context, g *graphReader, nodes []*node, err error) error {
	if !errdefs.IsNotFound(err) || len(nodes) < 2 {
		return err
	}
	bySource := map[string]*IncompleteSourceError{}
	var order []string
	for _, n := range nodes {
		if n.desc.Platform == nil || oci.IsAttestation(n.desc) || !oci.IsManifestOrIndex(n.desc.MediaType) {
			continue
		}
		src := n.origin.String()
		e, ok := bySource[src]
		if !ok {
			e = &IncompleteSourceError{Source: src, Err: err}
			bySource[src] = e
			order = append(order, src)
		}
		p := platforms.Format(*n.desc.Platform)
		_, ferr := g.manifest(ctx, n)
		switch {
		case ferr == nil:
			e.Held = append(e.Held, p)
		case errdefs.IsNotFound(ferr):
			e.Missing = append(e.Missing, p)
		default:
			return err
		}
	}
	for _, src := range order {
		if e := bySource[src]; len(e.Missing) > 0 {
			slices.Sort(e.Held)
			slices.Sort(e.Missing)
			return e
		}
	}
	return err
}

// AsIncompleteSource returns the IncompleteSourceError in err, if any.
func AsIncompleteSource(err error) (*IncompleteSourceError, bool) {
	var e *IncompleteSourceError
	ok := errors.As(err, &e)
	return e, ok
}
