package ref

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestParse(t *testing.T) {
	d := digest.FromString("x")
	tests := []struct {
		in                   string
		repo, tag, str, host string
		dgst                 digest.Digest
		layout               bool
	}{
		{in: "alpine", repo: "docker.io/library/alpine", str: "docker.io/library/alpine", host: "docker.io"},
		{in: "alpine:3.20", repo: "docker.io/library/alpine", tag: "3.20", str: "docker.io/library/alpine:3.20", host: "docker.io"},
		{in: "127.0.0.1:5000/a/b:1@" + d.String(), repo: "127.0.0.1:5000/a/b", tag: "1", dgst: d, str: "127.0.0.1:5000/a/b:1@" + d.String(), host: "127.0.0.1:5000"},
		{in: "localhost:5000/app@" + d.String(), repo: "localhost:5000/app", dgst: d, str: "localhost:5000/app@" + d.String(), host: "localhost:5000"},
		{in: "oci-layout://out", repo: "oci-layout://out", str: "oci-layout://out", layout: true},
		{in: "oci-layout://./dir/sub:v1", repo: "oci-layout://dir/sub", tag: "v1", str: "oci-layout://dir/sub:v1", layout: true},
		{in: "oci-layout:///abs/p:v1@" + d.String(), repo: "oci-layout:///abs/p", tag: "v1", dgst: d, str: "oci-layout:///abs/p:v1@" + d.String(), layout: true},
		{in: "oci-layout://host:5000/x", repo: "oci-layout://host:5000/x", str: "oci-layout://host:5000/x", layout: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			loc, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if loc.Repository() != tc.repo || loc.Tag != tc.tag || loc.Digest != tc.dgst || loc.String() != tc.str || (loc.Scheme == SchemeLayout) != tc.layout || loc.Host() != tc.host {
				t.Fatalf("got repo=%q tag=%q digest=%q str=%q layout=%v host=%q", loc.Repository(), loc.Tag, loc.Digest, loc.String(), (loc.Scheme == SchemeLayout), loc.Host())
			}
		})
	}
}

func TestParseLocationErrors(t *testing.T) {
	for in, want := range map[string]string{
		"app:bad tag":             "invalid reference \"app:bad tag\"",
		"a:b:c":                   "invalid reference",
		"oci-layout://":           "no path",
		"oci-layout://x@sha256:1": "bad digest",
		"oci-layout://x:-bad":     "bad tag",
	} {
		_, err := Parse(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want error containing %q", in, err, want)
		}
	}
}

func TestLocationTagging(t *testing.T) {
	loc, err := Parse("r.example/app")
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.TagOrLatest().String(); got != "r.example/app:latest" {
		t.Fatalf("TagOrLatest: %s", got)
	}
	d := digest.FromString("y")
	if got := loc.WithTag("v1").WithDigest(d).String(); got != "r.example/app@"+d.String() {
		t.Fatalf("WithDigest: %s", got)
	}
}

// TestValidTag checks the hand-written tag check against the distribution
// spec's pattern.
func TestValidTag(t *testing.T) {
	pattern := regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	for _, tag := range []string{"", "latest", "v1.2.3", "_x", ".x", "-x", "a-", "a.b_c-D9", "a/b", "a:b", "a@b",
		"é", "a b", strings.Repeat("a", 128), strings.Repeat("a", 129), "A" + strings.Repeat(".", 127)} {
		if got, want := validTag(tag), pattern.MatchString(tag); got != want {
			t.Errorf("validTag(%q) = %v, want %v", tag, got, want)
		}
	}
}

func TestParseArchiveAndDaemon(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/app:1.tar" // a file whose own name holds ':'
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("x")
	tests := []struct {
		in, scheme, path, tag, engineRef string
		dgst                             digest.Digest
	}{
		{in: "archive://" + file, scheme: SchemeArchive, path: file},
		{in: "archive://" + file + ":registry:5000/app:1", scheme: SchemeArchive, path: file, tag: "registry:5000/app:1"},
		{in: "archive://" + file + "@" + d.String(), scheme: SchemeArchive, path: file, dgst: d},
		{in: "archive://missing.tar:app:1", scheme: SchemeArchive, path: "missing.tar", tag: "app:1"},
		{in: "docker-archive:" + file + ":app", scheme: SchemeArchive, path: file, tag: "app"},
		{in: "oci-archive:" + file, scheme: SchemeArchive, path: file},
		{in: "docker-daemon://app", scheme: SchemeDaemon, path: "app", engineRef: "app:latest"},
		{in: "docker-daemon://r.example/app:2@" + d.String(), scheme: SchemeDaemon, path: "r.example/app", tag: "2", dgst: d, engineRef: "r.example/app:2@" + d.String()},
	}
	for _, tc := range tests {
		loc, err := Parse(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if loc.Scheme != tc.scheme || loc.Path != tc.path || loc.Tag != tc.tag || loc.Digest != tc.dgst {
			t.Errorf("%s: got %+v", tc.in, loc)
		}
		if tc.engineRef != "" && loc.EngineRef() != tc.engineRef {
			t.Errorf("%s: engine ref %q, want %q", tc.in, loc.EngineRef(), tc.engineRef)
		}
	}
	for in, want := range map[string]string{
		file:                      "write archive://" + file,
		"archive://":              "no file",
		"archive://" + file + ":": "empty NAME",
		"docker-daemon://":        "no image",
		"docker-daemon://A:b":     "invalid Docker engine location",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want error containing %q", in, err, want)
		}
	}
}

func TestDistributionSource(t *testing.T) {
	for _, tc := range []struct{ in, key, value string }{
		{"alpine:3", "containerd.io/distribution.source.docker.io", "library/alpine"},
		{"127.0.0.1:5000/test/app@sha256:" + strings.Repeat("a", 64), "containerd.io/distribution.source.127.0.0.1", "test/app"},
		{"[::1]:5000/a", "containerd.io/distribution.source.::1", "a"},
		{"oci-layout:///tmp/x:1", "", ""},
	} {
		loc, err := Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if k, v := loc.DistributionSource(); k != tc.key || v != tc.value {
			t.Errorf("DistributionSource(%s) = %q, %q; want %q, %q", tc.in, k, v, tc.key, tc.value)
		}
	}
}

// TestPullRepository: only a registry location names a repository an
// engine pulls from; an engine image has a Name too, but is no registry's.
func TestPullRepository(t *testing.T) {
	for in, want := range map[string]string{
		"alpine:3": "docker.io/library/alpine",
		"127.0.0.1:5000/test/app@sha256:" + strings.Repeat("a", 64): "127.0.0.1:5000/test/app",
		"docker-daemon://alpine:3":                                  "",
		"oci-layout:///data/x:1":                                    "",
		"archive:///data/x.tar:app:1":                               "",
	} {
		loc, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := loc.PullRepository(); got != want {
			t.Errorf("PullRepository(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestPlaceForm(t *testing.T) {
	file := t.TempDir() + "/img.tar"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in      string
		want    bool
		wantErr string
	}{
		{in: "oci-layout://out:v1", want: true},
		{in: "archive://img.tar", want: true},
		{in: "archive://", want: true}, // Parse names what is missing
		{in: "docker-daemon://alpine", want: true},
		{in: "docker-archive:img.tar", want: true},
		{in: "oci-archive:img.tar", want: true},
		{in: file, want: true},
		{in: "alpine", want: false},
		{in: "localhost:5000/app:1", want: false},
		{in: "sha256:" + strings.Repeat("a", 64), want: false},
		{in: `{"mediaType":"x"}`, want: false},
		{in: "oci-layout://", wantErr: `"oci-layout://" names no directory`},
	}
	for _, tc := range tests {
		got, err := PlaceForm(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("PlaceForm(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("PlaceForm(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
