package commands

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
)

// flagtestLayout writes an OCI layout holding one linux/amd64 image tagged
// "v1" and returns its oci-layout:// location: a source read without a
// network.
func flagtestLayout(t *testing.T) string {
	t.Helper()
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 7})
	dir := filepath.Join(t.TempDir(), "src")
	if err := fixture.WriteLayout(dir, map[string]fixture.Blob{"v1": img.Manifest}, img.Blobs()...); err != nil {
		t.Fatal(err)
	}
	return "oci-layout://" + dir + ":v1"
}

// tarNames lists the entries of a tar.
func tarNames(t *testing.T, data []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatalf("not a tar: %v", err)
		}
		names = append(names, hdr.Name)
	}
}

func TestMaxConcurrencyRefused(t *testing.T) {
	src := flagtestLayout(t)
	for _, args := range [][]string{
		{"create", "--max-concurrency", "0", "-t", "oci-layout://" + t.TempDir() + ":x", src},
		{"export", "--max-concurrency", "0", "-o", filepath.Join(t.TempDir(), "a.tar"), src},
		{"export", "--load", "--max-concurrency", "-1", src},
	} {
		_, _, err := cobraTest(t, "", args...)
		wantError(t, args, err, "invalid --max-concurrency "+args[slices.Index(args, "--max-concurrency")+1]+": want 1 or more")
	}
}

func TestExportOutput(t *testing.T) {
	src := flagtestLayout(t)
	t.Run("stdout", func(t *testing.T) {
		for _, o := range []string{"-", ""} {
			args := []string{"export", "--progress", "quiet", src}
			if o != "" {
				args = append(args, "-o", o)
			}
			stdout, _, err := cobraTest(t, "", args...)
			if err != nil {
				t.Fatalf("%q: %v", args, err)
			}
			if names := tarNames(t, []byte(stdout)); !slices.Contains(names, "manifest.json") || !slices.Contains(names, "index.json") {
				t.Errorf("%q: stdout tar holds %q, want manifest.json and index.json", args, names)
			}
		}
	})
	t.Run("file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "app.tar")
		stdout, _, err := cobraTest(t, "", "export", "--progress", "quiet", "-o", file, "--name", "app:1", src)
		if err != nil || stdout != "" {
			t.Fatalf("export -o FILE: %v, stdout %q", err, stdout)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if names := tarNames(t, data); !slices.Contains(names, "manifest.json") {
			t.Errorf("file tar holds %q, want manifest.json", names)
		}
		if !bytes.Contains(data, []byte(`"docker.io/library/app:1"`)) {
			t.Errorf("the tar does not name the image docker.io/library/app:1")
		}
	})
	t.Run("layout", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "out")
		if _, _, err := cobraTest(t, "", "export", "--progress", "quiet", "-o", "oci-layout://"+dir, src); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"oci-layout", "index.json"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("layout folder: %v", err)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
			t.Errorf("a layout folder defaults to the oci format, without manifest.json")
		}
	})
	t.Run("layout tagged refused", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "out")
		args := []string{"export", "-o", "oci-layout://" + dir + ":v2", src}
		_, _, err := cobraTest(t, "", args...)
		wantError(t, args, err, "invalid output", "without :TAG or @DIGEST")
		if _, serr := os.Stat(dir); serr == nil {
			t.Errorf("the refused output folder was created")
		}
	})
}

func TestExportFlagErrors(t *testing.T) {
	src := flagtestLayout(t)
	file := filepath.Join(t.TempDir(), "a.tar")
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"export", "-o", file, "--name", "a:1", "--name", "b:1", src}, []string{"2 --name for 1 images", "one --name per IMAGE"}},
		{[]string{"export", "-o", file, "--name", "a@sha256:" + strings.Repeat("a", 64), src}, []string{"invalid --name", "a tag, not a digest"}},
		{[]string{"export", "-o", file, "--name", "a:1", "--name", "a:1", src, src}, []string{`--name "a:1" and --name "a:1" both name docker.io/library/a:1`}},
		{[]string{"export", "-o", file, "--format", "tarball", src}, []string{`invalid --format "tarball": want docker or oci`}},
		{[]string{"export", "-o", file, "-p", "linux/amd64/v2/x", src}, []string{`invalid --platform "linux/amd64/v2/x"`}},
		{[]string{"export", "-o", file, "--progress", "quiet", "-p", "linux/arm64", src}, []string{"a single linux/amd64 image, not linux/arm64", "drop --platform"}},
		{[]string{"export", "--load", "-o", file, src}, []string{"--load and --output are exclusive"}},
		{[]string{"export", "--load", "--format", "oci", src}, []string{"--load with --format oci"}},
		{[]string{"export", "-o", file, "--progress", "fancy", src}, []string{`unknown progress mode "fancy"`}},
		{[]string{"export", "-o", file}, []string{`"docker-imgx export" takes at least 1 argument(s)`}},
	}
	for _, tc := range tests {
		_, _, err := cobraTest(t, "", tc.args...)
		wantError(t, tc.args, err, tc.want...)
	}
	if _, err := os.Stat(file); err == nil {
		t.Errorf("a refused export left %s", file)
	}
}

func TestCreateFlagErrors(t *testing.T) {
	src := flagtestLayout(t)
	target := "oci-layout://" + filepath.Join(t.TempDir(), "dst") + ":v1"
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"create", "--progress", "quiet", src}, []string{"no --tag given", "--dry-run"}},
		{[]string{"create", "--append", "--progress", "quiet", src}, []string{"--append needs a --tag"}},
		{[]string{"create", "-p", "all", "-t", target, src}, []string{`invalid --platform "all"`}},
		{[]string{"create", "--annotation", "novalue", "-t", target, src}, []string{"novalue"}},
		{[]string{"create", "-f", filepath.Join(t.TempDir(), "missing.txt"), "-t", target}, []string{"read sources from", "missing.txt"}},
		{[]string{"create", "--oci", "--prefer-index=false", "--progress", "quiet", "-t", target, src}, []string{"drop one of them"}},
		{[]string{"create", "--metadata-file", t.TempDir(), "-t", target, src}, []string{"--metadata-file"}},
	}
	for _, tc := range tests {
		_, _, err := cobraTest(t, "", tc.args...)
		wantError(t, tc.args, err, tc.want...)
	}
}

func TestCreateDryRunFromStdin(t *testing.T) {
	src := flagtestLayout(t)
	stdout, _, err := cobraTest(t, "# one source\n"+src+"\n", "create", "--dry-run", "--progress", "quiet", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, `"manifests"`) || !strings.Contains(stdout, `"architecture": "amd64"`) {
		t.Errorf("dry run printed no index with the amd64 image:\n%s", stdout)
	}
}

func TestUnknownCommandOneLine(t *testing.T) {
	args := []string{"creat", "-t", "x"}
	_, _, err := cobraTest(t, "", args...)
	wantError(t, args, err, `unknown command "creat"`, `did you mean "create"?`)
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"platform", "platform", 0},
		{"platfrom", "platform", 1}, // two neighbours swapped
		{"plat", "platform", 4},
		{"tga", "tag", 1},
		{"debgu", "debug", 1},
		{"fromat", "format", 1},
		{"", "raw", 3},
		{"xyzzy", "raw", 5},
	} {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
