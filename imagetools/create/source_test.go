package create

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const testHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseSource(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    sourceArg
		wantErr string // substring; empty means success
	}{
		{name: "digest", in: "sha256:" + testHex, want: sourceArg{Kind: sourceDigest, Desc: ocispec.Descriptor{Digest: digest.Digest("sha256:" + testHex)}}},
		{name: "digest with newline from a file", in: "sha256:" + testHex + "\n", want: sourceArg{Kind: sourceDigest, Desc: ocispec.Descriptor{Digest: digest.Digest("sha256:" + testHex)}}},
		{name: "short digest", in: "sha256:abc", wantErr: `"sha256:abc" is not a valid digest`},
		{name: "docker hub name", in: "alpine", want: sourceArg{Kind: sourceRef, Ref: "alpine"}},
		{name: "tag and digest", in: "localhost:5000/a/b:1@sha256:" + testHex, want: sourceArg{Kind: sourceRef, Ref: "localhost:5000/a/b:1@sha256:" + testHex}},
		{name: "oci layout", in: "oci-layout://./out:v1", want: sourceArg{Kind: sourceRef, Ref: "oci-layout://./out:v1"}},
		{name: "oci layout without path", in: "oci-layout://", wantErr: "names no directory"},
		{name: "upper case name", in: "Alpine", wantErr: "must be lowercase (want NAME[:TAG][@DIGEST], oci-layout://PATH[:TAG][@DIGEST], a digest or descriptor JSON)"},
		{name: "empty", in: "  ", wantErr: "empty source"},
		{
			name: "descriptor",
			in:   `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + testHex + `","size":42,"platform":{"os":"linux","architecture":"arm64"},"annotations":{"a":"b"}}`,
			want: sourceArg{Kind: sourceDescriptor, Desc: ocispec.Descriptor{
				MediaType:   ocispec.MediaTypeImageManifest,
				Digest:      digest.Digest("sha256:" + testHex),
				Size:        42,
				Platform:    &ocispec.Platform{OS: "linux", Architecture: "arm64"},
				Annotations: map[string]string{"a": "b"},
			}},
		},
		{name: "descriptor missing all", in: `{}`, wantErr: "missing mediaType, digest, size"},
		{name: "descriptor missing size", in: `{"mediaType":"x","digest":"sha256:` + testHex + `"}`, wantErr: "missing size"},
		{name: "descriptor bad digest", in: `{"mediaType":"x","digest":"sha256:zz","size":1}`, wantErr: "digest"},
		{name: "descriptor bad json", in: `{"mediaType":`, wantErr: "descriptor {\"mediaType\":"},
		{name: "descriptor trailing data", in: `{"mediaType":"x","digest":"sha256:` + testHex + `","size":1} x`, wantErr: "invalid source"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSource(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, imagetools.ErrInvalidSource) {
					t.Fatalf("parseSource(%q) error = %v, want imagetools.ErrInvalidSource containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseSource(%q): %v", tc.in, err)
			}
			if !sourceEqual(got, tc.want) {
				t.Fatalf("parseSource(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestSourceNeedsRepository(t *testing.T) {
	for kind, want := range map[sourceKind]bool{sourceRef: false, sourceDigest: true, sourceDescriptor: true} {
		if got := (sourceArg{Kind: kind}).needsRepository(); got != want {
			t.Errorf("%s: needsRepository() = %v, want %v", kind, got, want)
		}
	}
}

func TestInferRepository(t *testing.T) {
	tests := []struct {
		name    string
		repos   []string
		want    string
		wantErr error
	}{
		{name: "one", repos: []string{"docker.io/library/alpine"}, want: "docker.io/library/alpine"},
		{name: "same twice", repos: []string{"localhost:5000/app", "localhost:5000/app"}, want: "localhost:5000/app"},
		{name: "oci layout path", repos: []string{"./out"}, want: "./out"},
		{name: "empty names ignored", repos: []string{"", "localhost:5000/app"}, want: "localhost:5000/app"},
		{name: "none", repos: nil, wantErr: imagetools.ErrNoRepository},
		{name: "several", repos: []string{"localhost:5000/a", "localhost:5000/b"}, wantErr: imagetools.ErrMultipleRepositories},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := inferRepository("sha256:"+testHex, tc.repos)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("inferRepository = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestInferRepositoryMessage(t *testing.T) {
	_, err := inferRepository("sha256:"+testHex, []string{"a", "b"})
	want := `multiple repositories specified, cannot infer repository for "sha256:` + testHex + `" among a, b: write it as REPOSITORY@DIGEST`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
}

func sourceEqual(a, b sourceArg) bool {
	ja, _ := json.Marshal(a.Desc)
	jb, _ := json.Marshal(b.Desc)
	return a.Kind == b.Kind && a.Ref == b.Ref && string(ja) == string(jb)
}

func FuzzParseSource(f *testing.F) {
	for _, s := range []string{
		"sha256:" + testHex, "alpine", "localhost:5000/a:b", "oci-layout://x:y@sha256:" + testHex,
		`{"mediaType":"m","digest":"sha256:` + testHex + `","size":3,"platform":{"os":"linux","architecture":"amd64"}}`,
		"{", "sha256:", "", "a@b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		src, err := parseSource(in)
		if err != nil {
			if !errors.Is(err, imagetools.ErrInvalidSource) {
				t.Fatalf("parseSource(%q) error %v is not imagetools.ErrInvalidSource", in, err)
			}
			return
		}
		trimmed := strings.TrimSpace(in)
		switch src.Kind {
		case sourceDigest:
			if src.Desc.Digest.String() != trimmed {
				t.Fatalf("digest %q parsed as %q", trimmed, src.Desc.Digest)
			}
		case sourceRef:
			if src.Ref != trimmed {
				t.Fatalf("ref %q kept as %q", trimmed, src.Ref)
			}
			if !strings.HasPrefix(trimmed, ref.LayoutPrefix) {
				if _, err := reference.ParseNormalizedNamed(src.Ref); err != nil {
					t.Fatalf("ref %q does not parse: %v", src.Ref, err)
				}
			}
		case sourceDescriptor:
			if src.Desc.MediaType == "" || src.Desc.Size <= 0 || src.Desc.Digest.Validate() != nil {
				t.Fatalf("incomplete descriptor accepted: %+v", src.Desc)
			}
			b, err := json.Marshal(src.Desc)
			if err != nil {
				t.Fatal(err)
			}
			again, err := parseSource(string(b))
			if err != nil {
				t.Fatalf("re-parse of %s: %v", b, err)
			}
			if !sourceEqual(src, again) {
				t.Fatalf("round trip changed %+v into %+v", src, again)
			}
		default:
			t.Fatalf("unknown kind %v", src.Kind)
		}
	})
}
