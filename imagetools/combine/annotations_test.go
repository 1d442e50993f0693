package combine

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseAnnotation(t *testing.T) {
	arm64 := &ocispec.Platform{OS: "linux", Architecture: "arm64"}
	tests := []struct {
		in      string
		want    []Annotation
		wantErr string
	}{
		{in: "k=v", want: []Annotation{{Target: AnnotationIndex, Key: "k", Value: "v"}}},
		{in: "k=", want: []Annotation{{Target: AnnotationIndex, Key: "k", Value: ""}}},
		{in: "k=a=b", want: []Annotation{{Target: AnnotationIndex, Key: "k", Value: "a=b"}}},
		{in: "index:org.opencontainers.image.title=x y", want: []Annotation{{Target: AnnotationIndex, Key: "org.opencontainers.image.title", Value: "x y"}}},
		{in: "index:a:b=c", want: []Annotation{{Target: AnnotationIndex, Key: "a:b", Value: "c"}}},
		{in: "manifest-descriptor:k=v", want: []Annotation{{Target: AnnotationManifestDescriptor, Key: "k", Value: "v"}}},
		{in: "manifest-descriptor[linux/arm64]:k=v", want: []Annotation{{Target: AnnotationManifestDescriptor, Platform: arm64, Key: "k", Value: "v"}}},
		{in: "manifest-descriptor[linux/arm64/v8]:k=v", want: []Annotation{{Target: AnnotationManifestDescriptor, Platform: arm64, Key: "k", Value: "v"}}},
		{in: "manifest-descriptor[linux/arm]:k=v", want: []Annotation{{Target: AnnotationManifestDescriptor, Platform: &ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, Key: "k", Value: "v"}}},
		{in: "index,manifest-descriptor:k=v", want: []Annotation{
			{Target: AnnotationIndex, Key: "k", Value: "v"},
			{Target: AnnotationManifestDescriptor, Key: "k", Value: "v"},
		}},
		{in: "k", wantErr: "expected KEY=VALUE"},
		{in: "=v", wantErr: "key must be non-empty"},
		{in: "index:=v", wantErr: "key must be non-empty"},
		{in: "index:a b=v", wantErr: "no white space"},
		{in: "manifest:k=v", wantErr: `use "index:" or "manifest-descriptor:"`},
		{in: "index-descriptor:k=v", wantErr: "invalid while creating an image"},
		{in: "layer:k=v", wantErr: `unknown type "layer"`},
		{in: "Index:k=v", wantErr: `bad type "Index"`},
		{in: "index[linux/amd64]:k=v", wantErr: "only to manifest-descriptor"},
		{in: "manifest-descriptor[amd64]:k=v", wantErr: "must be OS/ARCH"},
		{in: "manifest-descriptor[linux/amd64/v1/x]:k=v", wantErr: "platform"},
		{in: "org.example:k=v", wantErr: `bad type "org.example"`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseAnnotation(tc.in)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, imagetools.ErrInvalidAnnotation) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseAnnotation(%q) error = %v, want imagetools.ErrInvalidAnnotation containing %q", tc.in, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.in) {
					t.Fatalf("error %q does not name the input %q", err, tc.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseAnnotation(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseAnnotation(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseAnnotations(t *testing.T) {
	got, err := ParseAnnotations([]string{"a=1", "", "manifest-descriptor:b=2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Annotation{{Target: AnnotationIndex, Key: "a", Value: "1"}, {Target: AnnotationManifestDescriptor, Key: "b", Value: "2"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, err := ParseAnnotations([]string{"a=1", "manifest:b=2"}); !errors.Is(err, imagetools.ErrInvalidAnnotation) {
		t.Fatalf("error = %v, want imagetools.ErrInvalidAnnotation", err)
	}
}

func TestAnnotationString(t *testing.T) {
	tests := map[string]Annotation{
		"index:k=v":                             {Target: AnnotationIndex, Key: "k", Value: "v"},
		"manifest-descriptor:k=v":               {Target: AnnotationManifestDescriptor, Key: "k", Value: "v"},
		"manifest-descriptor[linux/arm/v7]:k=v": {Target: AnnotationManifestDescriptor, Platform: &ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, Key: "k", Value: "v"},
	}
	for want, a := range tests {
		if got := a.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

func TestAnnotationAppliesTo(t *testing.T) {
	a := Annotation{Target: AnnotationManifestDescriptor, Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}}
	tests := []struct {
		p    *ocispec.Platform
		want bool
	}{
		{p: &ocispec.Platform{OS: "linux", Architecture: "arm64"}, want: true},
		{p: &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, want: true},
		{p: &ocispec.Platform{OS: "linux", Architecture: "aarch64"}, want: true},
		{p: &ocispec.Platform{OS: "linux", Architecture: "amd64"}, want: false},
		{p: &ocispec.Platform{OS: "unknown", Architecture: "unknown"}, want: false},
		{p: nil, want: false},
	}
	for _, tc := range tests {
		if got := a.appliesTo(tc.p); got != tc.want {
			t.Errorf("appliesTo(%+v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if !(Annotation{Target: AnnotationManifestDescriptor}).appliesTo(nil) {
		t.Error("an annotation without platform must apply to every descriptor")
	}
}

func FuzzParseAnnotation(f *testing.F) {
	for _, s := range []string{
		"k=v", "index:k=v", "manifest-descriptor:k=v", "manifest-descriptor[linux/arm64/v8]:k=v",
		"index,manifest-descriptor[linux/arm]:a:b=c=d", "manifest:k=v", "[", "=", ":=", "manifest-descriptor[windows/amd64]:k=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		anns, err := parseAnnotation(in)
		if err != nil {
			if !errors.Is(err, imagetools.ErrInvalidAnnotation) {
				t.Fatalf("parseAnnotation(%q) error %v is not imagetools.ErrInvalidAnnotation", in, err)
			}
			return
		}
		if len(anns) == 0 {
			t.Fatalf("parseAnnotation(%q) gave nothing and no error", in)
		}
		for _, a := range anns {
			again, err := parseAnnotation(a.String())
			if err != nil {
				t.Fatalf("re-parse of %q (from %q): %v", a.String(), in, err)
			}
			if len(again) != 1 || !reflect.DeepEqual(again[0], a) {
				t.Fatalf("round trip of %q: %+v became %+v", in, a, again)
			}
		}
	})
}
