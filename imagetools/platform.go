package imagetools

import (
	"fmt"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// platformVariantMax is the highest numeric variant of the architectures
// whose lower variants containerd's matcher walks one by one (amd64 levels
// v1 to v4, arm v5 to v8): a variant such as v6888888864 would keep
// platforms.Only busy for minutes and fill memory (found by FuzzPlatform).
var platformVariantMax = map[string]int{"amd64": 4, "arm": 8}

// ValidatePlatform refuses a requested platform whose variant does not
// exist for its architecture. Use it on every platform a user gives before
// it reaches platforms.Only.
func ValidatePlatform(p ocispec.Platform) error {
	limit, ok := platformVariantMax[p.Architecture]
	if !ok || p.Variant == "" {
		return nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(p.Variant, "v"))
	if err != nil || n <= limit {
		return nil // not numeric: containerd compares it as it is
	}
	return fmt.Errorf("%s has no variant %s (the highest is v%d)", p.Architecture, p.Variant, limit)
}
