package oci

import (
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// CheckConfig checks an image config against its manifest's layer count as
// docker load, podman and buildah do: as many rootfs.diff_ids as layers and,
// when there is a history, as many non-empty history entries as layers.
func CheckConfig(cfg *ocispec.Image, layers int) error {
	if n := len(cfg.RootFS.DiffIDs); n != layers {
		return fmt.Errorf("config lists %d diff_ids for %d layers", n, layers)
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return fmt.Errorf("config has an invalid diff_id %q: %w", d, err)
		}
	}
	if len(cfg.History) == 0 {
		return nil
	}
	nonEmpty := 0
	for _, h := range cfg.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty != layers {
		return fmt.Errorf("config has %d non-empty history entries for %d layers", nonEmpty, layers)
	}
	return nil
}
