package commands

import (
	"fmt"

	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/spf13/pflag"
)

// maxManifestsFlag is the flag that raises the number of manifests a
// command reads (create, export, inspect).
const maxManifestsFlag = "max-manifests"

// bindMaxManifests binds --max-manifests to n.
func bindMaxManifests(flags *pflag.FlagSet, n *int) {
	flags.IntVar(n, maxManifestsFlag, oci.DefaultMaxManifests, "Read at most `N` distinct manifests and indexes (each index, image, attestation and referrer counts once); raise it for larger sets of images")
}

// graphLimits is the one check of --max-manifests: the limits of what the
// command reads of manifest graphs, their message naming the flag.
func graphLimits(n int) (oci.GraphLimits, error) {
	if n < 1 {
		return oci.GraphLimits{}, fmt.Errorf("invalid --%s %d: want 1 or more", maxManifestsFlag, n)
	}
	return oci.GraphLimits{Manifests: n, Hint: fmt.Sprintf(" (--%s raises it)", maxManifestsFlag)}, nil
}
