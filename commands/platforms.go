package commands

import (
	"fmt"
	"strings"

	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// allPlatforms is the --platform value that keeps every platform (export).
const allPlatforms = "all"

// parsePlatforms parses repeatable, comma-separated --platform values.
func parsePlatforms(in []string) ([]ocispec.Platform, error) {
	out, all, err := parsePlatformsOrAll(in)
	if err == nil && all {
		err = fmt.Errorf("invalid --platform %q: name platforms as OS/ARCH[/VARIANT], e.g. linux/arm64", allPlatforms)
	}
	return out, err
}

// parsePlatformsOrAll is parsePlatforms that also takes "all", reported apart.
func parsePlatformsOrAll(in []string) (out []ocispec.Platform, all bool, err error) {
	for _, v := range in {
		for _, s := range strings.Split(v, ",") {
			switch s = strings.TrimSpace(s); s {
			case "":
			case allPlatforms:
				all = true
			default:
				p, err := parsePlatform(s)
				if err != nil {
					return nil, false, err
				}
				out = append(out, p)
			}
		}
	}
	return out, all, nil
}

// parsePlatform parses one --platform value, refusing variants that do not
// exist (oci.ValidatePlatform).
func parsePlatform(s string) (ocispec.Platform, error) {
	p, err := platforms.Parse(s)
	if err == nil {
		err = oci.ValidatePlatform(p)
	}
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("invalid --platform %q: %w (want OS/ARCH[/VARIANT], e.g. linux/arm64)", s, err)
	}
	return p, nil
}
