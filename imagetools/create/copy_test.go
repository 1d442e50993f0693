package create

import (
	"strings"
	"testing"
)

func TestIsReferrerTag(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for tag, want := range map[string]bool{
		"sha256-" + hex:           true,
		"sha256-" + hex + ".sig":  true,
		"sha256-" + hex + ".att":  true,
		"sha256-" + hex + ".sbom": true,
		"sha256-" + hex + ".txt":  false,
		"sha256-" + hex[:10]:      false,
		"latest":                  false,
		"v1-2":                    false,
	} {
		if got := IsReferrerTag(tag); got != want {
			t.Errorf("IsReferrerTag(%q) = %v, want %v", tag, got, want)
		}
	}
}
