package export

import (
	"strings"
	"testing"

	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestBlobPath(t *testing.T) {
	good := digest.FromString("x")
	tests := []struct {
		dgst    digest.Digest
		want    string
		wantErr bool
	}{
		{dgst: good, want: "blobs/sha256/" + good.Encoded()},
		{dgst: "sha256:../../../etc/passwd", wantErr: true},
		{dgst: digest.Digest("sha256:" + strings.Repeat("A", 64)), wantErr: true},
		{dgst: digest.Digest("sha256:" + strings.Repeat("a", 63)), wantErr: true},
		{dgst: digest.Digest("sha256:" + strings.Repeat("a", 64) + "/x"), wantErr: true},
		{dgst: "sha512:" + digest.Digest(strings.Repeat("a", 128)), wantErr: true},
		{dgst: "", wantErr: true},
		{dgst: "/sha256:" + good[7:], wantErr: true},
	}
	for _, tc := range tests {
		got, err := blobPath(tc.dgst)
		if tc.wantErr {
			if err == nil {
				t.Errorf("blobPath(%q) = %q, want an error", tc.dgst, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("blobPath(%q) = %q, %v; want %q", tc.dgst, got, err, tc.want)
		}
	}
}

func TestParseImageName(t *testing.T) {
	dgst := digest.FromString("m")
	tests := []struct {
		in      string
		want    imageName
		wantErr bool
	}{
		{in: ""},
		{in: "localhost:5000/app:1", want: imageName{full: "localhost:5000/app:1", tag: "1", repoTag: "localhost:5000/app:1"}},
		{in: "docker.io/library/alpine:3", want: imageName{full: "docker.io/library/alpine:3", tag: "3", repoTag: "docker.io/library/alpine:3"}},
		{in: "localhost:5000/app:1@" + dgst.String(), want: imageName{full: "localhost:5000/app:1@" + dgst.String(), tag: "1", repoTag: "localhost:5000/app:1"}},
		{in: "localhost:5000/app@" + dgst.String(), want: imageName{full: "localhost:5000/app@" + dgst.String()}},
		{in: "app:1", wantErr: true},
		{in: "localhost:5000/App:1", wantErr: true},
		{in: "localhost:5000/app:bad tag", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseImageName(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("parseImageName(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseImageName(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestSelectChildren(t *testing.T) {
	child := func(name, plat string) ocispec.Descriptor {
		p := platforms.MustParse(plat)
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(name), Size: 1, Platform: &p}
	}
	att := func(name string, of ocispec.Descriptor) ocispec.Descriptor {
		d := ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(name), Size: 1,
			Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{
				oci.AnnotationReferenceType:   oci.AttestationManifestType,
				oci.AnnotationReferenceDigest: of.Digest.String(),
			},
		}
		return d
	}
	amd64 := child("amd64", "linux/amd64")
	i386 := child("386", "linux/386")
	arm64 := child("arm64", "linux/arm64")
	armv7 := child("armv7", "linux/arm/v7")
	win := child("win", "windows/amd64")
	noPlat := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("noplat"), Size: 1}
	attAmd64 := att("att-amd64", amd64)
	attArm64 := att("att-arm64", arm64)
	idx := ocispec.Index{Manifests: []ocispec.Descriptor{win, i386, amd64, arm64, armv7, attAmd64, attArm64}}

	names := func(ds []ocispec.Descriptor) string {
		var s []string
		for _, d := range ds {
			for n, c := range map[string]ocispec.Descriptor{"amd64": amd64, "386": i386, "arm64": arm64, "armv7": armv7, "win": win, "noplat": noPlat, "att-amd64": attAmd64, "att-arm64": attArm64} {
				if c.Digest == d.Digest {
					s = append(s, n)
				}
			}
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		name        string
		index       ocispec.Index
		want        []string
		all         bool
		needPrimary bool
		kept        string
		primary     string
		errContains string
	}{
		{name: "amd64 preferred over 386", index: idx, want: []string{"linux/amd64"}, kept: "amd64,att-amd64", primary: "amd64"},
		{name: "386 when no amd64", index: ocispec.Index{Manifests: []ocispec.Descriptor{arm64, i386}}, want: []string{"linux/amd64"}, kept: "386", primary: "386"},
		{name: "arm64", index: idx, want: []string{"linux/arm64"}, kept: "arm64,att-arm64", primary: "arm64"},
		{name: "two platforms, first is primary", index: idx, want: []string{"linux/arm64", "linux/amd64"}, kept: "amd64,arm64,att-amd64,att-arm64", primary: "arm64"},
		{name: "all", index: idx, want: []string{"linux/arm/v7"}, all: true, needPrimary: true, kept: "win,386,amd64,arm64,armv7,att-amd64,att-arm64", primary: "armv7"},
		{name: "child without platform kept", index: ocispec.Index{Manifests: []ocispec.Descriptor{amd64, noPlat}}, want: []string{"linux/amd64"}, kept: "amd64,noplat", primary: "amd64"},
		{name: "no match", index: idx, want: []string{"linux/s390x"}, errContains: "no image for platform linux/s390x; available: windows/amd64, linux/386, linux/amd64, linux/arm64, linux/arm/v7"},
		{name: "no match with all, primary needed", index: idx, want: []string{"linux/s390x"}, all: true, needPrimary: true, errContains: "linux/s390x"},
		{name: "no match with all, oci format", index: idx, want: []string{"linux/s390x"}, all: true, kept: "win,386,amd64,arm64,armv7,att-amd64,att-arm64"},
		{name: "only attestations", index: ocispec.Index{Manifests: []ocispec.Descriptor{attAmd64}}, want: []string{"linux/amd64"}, errContains: "available: none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := platforms.ParseAll(tc.want)
			if err != nil {
				t.Fatal(err)
			}
			sel, err := selectChildren(tc.index, want, tc.all, tc.needPrimary)
			if tc.errContains != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errContains) {
					t.Fatalf("got error %v, want one containing %q", err, tc.errContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := names(sel.kept); got != tc.kept {
				t.Errorf("kept %s, want %s", got, tc.kept)
			}
			var primary string
			if sel.primary != nil {
				primary = names([]ocispec.Descriptor{*sel.primary})
			}
			if primary != tc.primary {
				t.Errorf("primary %q, want %q", primary, tc.primary)
			}
		})
	}
}

func TestRenderIndexJSON(t *testing.T) {
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("i"), Size: 42,
		Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}, Annotations: map[string]string{"x": "y"}}
	named := imageName{full: "localhost:5000/app:1", tag: "1", repoTag: "localhost:5000/app:1"}
	got, err := renderIndexJSON([]indexEntry{{Desc: d, Name: named}, {Desc: d}, {Desc: d, Name: named}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"` + d.Digest.String() + `","size":42,"annotations":{"io.containerd.image.name":"localhost:5000/app:1","org.opencontainers.image.ref.name":"1"}},` +
		`{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"` + d.Digest.String() + `","size":42}]}`
	if string(got) != want {
		t.Errorf("index.json:\n got %s\nwant %s", got, want)
	}
}

func TestCheckConfig(t *testing.T) {
	layers := []ocispec.Descriptor{{Digest: digest.FromString("l1")}, {Digest: digest.FromString("l2")}}
	d1, d2 := digest.FromString("d1"), digest.FromString("d2")
	tests := []struct {
		name        string
		config      string
		errContains string
	}{
		{name: "ok", config: `{"rootfs":{"type":"layers","diff_ids":["` + d1.String() + `","` + d2.String() + `"]}}`},
		{name: "ok with history", config: `{"rootfs":{"diff_ids":["` + d1.String() + `","` + d2.String() + `"]},"history":[{},{"empty_layer":true},{}]}`},
		{name: "too few diff_ids", config: `{"rootfs":{"diff_ids":["` + d1.String() + `"]}}`, errContains: "image app (config " + digest.FromString("c").String() + "): config lists 1 diff_ids for 2 layers"},
		{name: "history mismatch", config: `{"rootfs":{"diff_ids":["` + d1.String() + `","` + d2.String() + `"]},"history":[{},{"empty_layer":true}]}`, errContains: "1 non-empty history entries for 2 layers"},
		{name: "bad diff_id", config: `{"rootfs":{"diff_ids":["` + d1.String() + `","sha256:nope"]}}`, errContains: "invalid diff_id"},
		{name: "not json", config: `nope`, errContains: "parse config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkConfig(dockerImage{name: "app", config: ocispec.Descriptor{Digest: digest.FromString("c")}, configData: []byte(tc.config), layers: layers})
			if tc.errContains == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("got %v, want an error containing %q", err, tc.errContains)
			}
		})
	}
}

func TestRecordsSorted(t *testing.T) {
	b1 := &blob{Desc: ocispec.Descriptor{Digest: digest.FromString("b"), Size: 3}}
	b2 := &blob{Desc: ocispec.Descriptor{Digest: digest.FromString("a"), Size: 5}, Data: []byte("aaaaa")}
	recs, err := records([]*blob{b1, b2, b1}, []byte("{}"), []byte("[]"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Header.Name)
	}
	first, second := b1.Desc.Digest.Encoded(), b2.Desc.Digest.Encoded()
	if second < first {
		first, second = second, first
	}
	want := []string{"blobs/", "blobs/sha256/", "blobs/sha256/" + first, "blobs/sha256/" + second, "index.json", "manifest.json", "oci-layout"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("records:\n got %v\nwant %v", got, want)
	}
	if _, err := records([]*blob{{Desc: ocispec.Descriptor{Digest: "sha256:../x"}}}, nil, nil); err == nil {
		t.Error("want an error for a malformed digest")
	}
}
