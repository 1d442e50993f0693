package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateKeepsHandWrittenText(t *testing.T) {
	dir := t.TempDir()
	page := "# docker imgx version\n\nIntro by hand.\n\n<!---MARKER_GEN_START-->\nstale generated text\n<!---MARKER_GEN_END-->\n\n## Examples\n\n```console\n$ docker imgx version\n```\n"
	if err := os.WriteFile(filepath.Join(dir, "imgx_version.md"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-source", dir}, io.Discard); err != nil {
		t.Fatalf("generate: %v", err)
	}
	got := readFile(t, dir, "imgx_version.md")
	// Text outside the markers survives byte for byte; inside, the stale text
	// is replaced by the command's description and a row per flag.
	head := "# docker imgx version\n\nIntro by hand.\n\n<!---MARKER_GEN_START-->\nShow the docker-imgx version and the commit it was built from\n\n### Options\n\n"
	tail := "\n\n<!---MARKER_GEN_END-->\n\n## Examples\n\n```console\n$ docker imgx version\n```\n"
	if !strings.HasPrefix(got, head) || !strings.HasSuffix(got, tail) || strings.Contains(got, "stale generated text") {
		t.Errorf("imgx_version.md:\n%s", got)
	}
	// The command's examples (what --help shows) end the generated part.
	if !strings.Contains(got, "### Examples\n\n```console\n$ docker imgx version\ndocker-imgx v0.1.0 ") {
		t.Errorf("imgx_version.md has no generated examples:\n%s", got)
	}
	if !strings.Contains(got, "| `-D`, `--debug` ") {
		t.Errorf("imgx_version.md has no row for --debug:\n%s", got)
	}

	// A page that did not exist is created with the markers around the
	// generated text, and links to the subcommands' pages.
	root := readFile(t, dir, "imgx.md")
	for _, s := range []string{"# docker imgx\n\n<!---MARKER_GEN_START-->\n", "[`version`](imgx_version.md)", "<!---MARKER_GEN_END-->\n"} {
		if !strings.Contains(root, s) {
			t.Errorf("imgx.md lacks %q:\n%s", s, root)
		}
	}

	// Generating again changes nothing.
	if err := run([]string{"-source", dir, "-formats", "md"}, io.Discard); err != nil {
		t.Fatalf("generate again: %v", err)
	}
	if again := readFile(t, dir, "imgx_version.md"); again != got {
		t.Errorf("second run changed imgx_version.md:\n%s", again)
	}
	if again := readFile(t, dir, "imgx.md"); again != root {
		t.Errorf("second run changed imgx.md:\n%s", again)
	}
}

func TestGenerateErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "imgx.md"), []byte("# docker imgx\n\nno markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-source", dir}, io.Discard); err == nil || !strings.Contains(err.Error(), "no start marker in imgx.md") {
		t.Errorf("page without markers: got %v", err)
	}
	if err := run([]string{"-source", t.TempDir(), "-formats", "man"}, io.Discard); err == nil || !strings.Contains(err.Error(), `unknown format "man"`) {
		t.Errorf("unknown format: got %v", err)
	}
	if err := run([]string{"-formats", ","}, io.Discard); err == nil {
		t.Errorf("empty format list: want an error")
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
