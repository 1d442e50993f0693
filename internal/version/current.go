package version

import "runtime/debug"

// Current returns the version and revision to show: the stamps the Makefile
// sets, else, for a go install build, the module version and the commit Go
// recorded ("dev" and "unknown" when neither is known).
func Current() (version, revision string) {
	version, revision = Version, Revision
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version, revision
	}
	if version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		version = info.Main.Version
	}
	if revision == "unknown" {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	return version, revision
}
