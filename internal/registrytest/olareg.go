package registrytest

import (
	"github.com/olareg/olareg"
	"github.com/olareg/olareg/config"
)

// newOlareg returns an olareg registry storing in memory (its folder store
// races under -race: a repository's existence is read unlocked), with the
// referrers API on, pushes and deletes allowed (as the
// distribution registries here allow them). Its garbage collection is off,
// so an untagged manifest stays, as in distribution.
func newOlareg() *olareg.Server {
	enabled := true
	return olareg.New(config.Config{
		Storage: config.ConfigStorage{
			StoreType: config.StoreMem,
			GC:        config.ConfigGC{Frequency: -1},
		},
		API: config.ConfigAPI{DeleteEnabled: &enabled},
	})
}
