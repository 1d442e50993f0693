package consumers

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
)

// skopeoInspect runs `skopeo inspect transportRef` (for example
// "docker-archive:/x.tar", "docker-archive:/x.tar:@1",
// "oci-archive:/x.tar:refname") and returns its JSON.
func skopeoInspect(t testing.TB, transportRef string) ([]byte, error) {
	t.Helper()
	return skopeo(t, "inspect", transportRef)
}

// SkopeoDigest returns the manifest digest `skopeo inspect` reports for
// transportRef.
func SkopeoDigest(t testing.TB, transportRef string) (string, error) {
	t.Helper()
	out, err := skopeoInspect(t, transportRef)
	if err != nil {
		return "", err
	}
	var inspected struct{ Digest string }
	if err := json.Unmarshal(out, &inspected); err != nil {
		return "", fmt.Errorf("parse skopeo inspect %s: %w\n%s", transportRef, err, out)
	}
	return inspected.Digest, nil
}

// SkopeoInspectRaw runs `skopeo inspect --raw transportRef` and returns the
// manifest as skopeo reads it.
func SkopeoInspectRaw(t testing.TB, transportRef string) ([]byte, error) {
	t.Helper()
	return skopeo(t, "inspect", "--raw", transportRef)
}

// skopeo runs skopeo with a private policy, registries configuration and
// temporary directory (oci-archive is extracted there).
func skopeo(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	bin := lookBinary(t, "skopeo", "skopeo")
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	registries := filepath.Join(dir, "registries.conf")
	writeFile(t, policy, acceptAnythingPolicy)
	writeFile(t, registries, "unqualified-search-registries = []\n")
	env := []string{"HOME=" + dir, "TMPDIR=" + dir, "CONTAINERS_REGISTRIES_CONF=" + registries}
	global := []string{"--policy", policy, "--tmpdir", dir}
	out, err := run(t, env, bin, append(global, args...)...)
	return []byte(out), err
}

// SkopeoCopy runs `skopeo copy src dst` with extra flags before them (for
// example --src-tls-verify=false).
func SkopeoCopy(t testing.TB, src, dst string, flags ...string) error {
	t.Helper()
	_, err := skopeo(t, append(append([]string{"copy"}, flags...), src, dst)...)
	return err
}
