package tests

import (
	"os/exec"
	"strings"
	"testing"
)

// TestFuzzTargetsExist: make fuzz fails on a target that does not exist
// (go test -fuzz with a name that matches nothing passes with a warning, so
// a renamed target once fuzzed nothing while CI said it ran), and every
// target the Makefile lists exists.
func TestFuzzTargetsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the fuzzed packages' tests")
	}
	t.Parallel()
	cmd := exec.Command("make", "-s", "fuzz-check")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make fuzz-check: %v\n%s", err, out)
	}

	for _, tc := range []struct{ targets, missing string }{
		{"ref:FuzzParseLocation:1x oci:FuzzPlatform:1x", "ref:FuzzParseLocation"},
		{"nosuchpackage:FuzzX:1x", "nosuchpackage:FuzzX"},
	} {
		cmd := exec.Command("make", "-s", "fuzz", "FUZZ_TARGETS="+tc.targets)
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("make fuzz FUZZ_TARGETS=%q passed:\n%s", tc.targets, out)
			continue
		}
		if !strings.Contains(string(out), "no such fuzz target: "+tc.missing+" ") {
			t.Errorf("make fuzz FUZZ_TARGETS=%q: want a line naming %s, got:\n%s", tc.targets, tc.missing, out)
		}
		if strings.Contains(string(out), "==> ") {
			t.Errorf("make fuzz FUZZ_TARGETS=%q fuzzed before it refused:\n%s", tc.targets, out)
		}
	}
}
