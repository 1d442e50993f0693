package registrytest

import (
	"path/filepath"

	"github.com/olareg/olareg"
	"github.com/olareg/olareg/config"
)

// newOlareg returns an olareg registry storing under dir: an OCI layout per
// repository, the referrers API on, pushes and deletes allowed (as the
// distribution registries here allow them). Its garbage collection is off,
// so an untagged manifest stays, as in distribution.
func newOlareg(dir string) *olareg.Server {
	enabled := true
	return olareg.New(config.Config{
		Storage: config.ConfigStorage{
			StoreType: config.StoreDir,
			RootDir:   filepath.Join(dir, "storage"),
			GC:        config.ConfigGC{Frequency: -1},
		},
		API: config.ConfigAPI{DeleteEnabled: &enabled},
	})
}
