package create

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestCosignTags(t *testing.T) {
	d := digest.FromString("image")
	hex := d.Encoded()
	got := cosignTags(d)
	want := []string{"sha256-" + hex + ".att", "sha256-" + hex + ".sbom", "sha256-" + hex + ".sig"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cosignTags = %v, want %v", got, want)
	}
	if got := fallbackTag(d); got != "sha256-"+hex {
		t.Errorf("fallbackTag = %q", got)
	}
}

func TestMergeReferrerIndex(t *testing.T) {
	a := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("a"), Size: 1, ArtifactType: "x/a"}
	b := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("b"), Size: 1}
	list := func(t *testing.T, dt []byte) []digest.Digest {
		t.Helper()
		var idx ocispec.Index
		if err := json.Unmarshal(dt, &idx); err != nil {
			t.Fatal(err)
		}
		if idx.MediaType != ocispec.MediaTypeImageIndex || idx.SchemaVersion != 2 {
			t.Errorf("index header %q %d", idx.MediaType, idx.SchemaVersion)
		}
		var out []digest.Digest
		for _, d := range idx.Manifests {
			out = append(out, d.Digest)
		}
		return out
	}

	fresh, changed, err := mergeReferrerIndex(nil, []ocispec.Descriptor{a})
	if err != nil || !changed {
		t.Fatalf("new index: changed %v, %v", changed, err)
	}
	if got := list(t, fresh); !reflect.DeepEqual(got, []digest.Digest{a.Digest}) {
		t.Errorf("new index lists %v", got)
	}
	if !strings.Contains(string(fresh), `"artifactType": "x/a"`) {
		t.Errorf("artifact type lost:\n%s", fresh)
	}
	merged, changed, err := mergeReferrerIndex(fresh, []ocispec.Descriptor{b, a})
	if err != nil || !changed {
		t.Fatalf("merge: changed %v, %v", changed, err)
	}
	if got := list(t, merged); !reflect.DeepEqual(got, []digest.Digest{a.Digest, b.Digest}) {
		t.Errorf("merged index lists %v, want a then b", got)
	}
	same, changed, err := mergeReferrerIndex(merged, []ocispec.Descriptor{b})
	if err != nil || changed || string(same) != string(merged) {
		t.Errorf("nothing new: changed %v, %v", changed, err)
	}
	if _, _, err := mergeReferrerIndex([]byte("not json"), []ocispec.Descriptor{a}); err == nil {
		t.Error("a broken index merged without error")
	}
}

func TestReferrerSubjects(t *testing.T) {
	src := mustLoc(t, "r.example/team/app")
	child := imageNode("amd64", src, blobNode("layer", src))
	index := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("index")}
	manifest := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("manifest")}
	for _, c := range []struct {
		name  string
		c     pushInput
		plan  *repoPlan
		wants []digest.Digest
	}{
		{"same repository", pushInput{root: index, rootOrigin: src},
			&repoPlan{pl: testPlaces(), repo: mustLoc(t, "r.example/team/app")}, nil},
		{"new index: its children", pushInput{root: index, rootOrigin: src},
			&repoPlan{pl: testPlaces(), repo: mustLoc(t, "r.example/other"), manifests: []*node{child}}, []digest.Digest{child.desc.Digest}},
		{"source index kept: it too", pushInput{root: index, rootOrigin: src, known: map[digest.Digest][]byte{index.Digest: []byte("{}")}},
			&repoPlan{pl: testPlaces(), repo: mustLoc(t, "r.example/other"), manifests: []*node{child}}, []digest.Digest{index.Digest, child.desc.Digest}},
		{"manifest root", pushInput{root: manifest, rootOrigin: src},
			&repoPlan{pl: testPlaces(), repo: mustLoc(t, "r2.example/app")}, []digest.Digest{manifest.Digest}},
		{"layout target", pushInput{root: manifest, rootOrigin: src},
			&repoPlan{pl: testPlaces(), repo: mustLoc(t, "oci-layout://out")}, nil},
		{"layout origin", pushInput{root: manifest, rootOrigin: mustLoc(t, "oci-layout://in")},
			&repoPlan{pl: testPlaces(), repo: mustLoc(t, "r2.example/app")}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newReferrerFinder(testPlaces(), c.c, newGraphReader(testPlaces(), c.c.known, nil, 1), 1, nil)
			var got []digest.Digest
			for _, s := range f.subjects(c.plan) {
				got = append(got, s.digest)
			}
			if !reflect.DeepEqual(got, c.wants) {
				t.Errorf("subjects %v, want %v", got, c.wants)
			}
		})
	}
}

func TestPlanReferrers(t *testing.T) {
	src := mustLoc(t, "r.example/team/app")
	shared := blobNode("shared", src)
	p := &repoPlan{pl: testPlaces(), repo: mustLoc(t, "r.example/other"), blobs: []blobJob{{desc: shared.desc}}}
	subj := digest.FromString("image")
	sig := imageNode("sig", src, blobNode("sig-layer", src))
	ref := imageNode("ref", src, shared)
	ref.desc.ArtifactType = "x/sbom"
	found := []referrer{
		{subject: subj, n: sig, tag: fallbackTag(subj) + ".sig"},
		{subject: subj, n: ref},
		{subject: subj, n: ref}, // found twice (two targets' worth of discovery)
	}
	rp := planReferrers(p, found)
	if len(rp.tags) != 1 || rp.tags[0].n != sig {
		t.Errorf("tags %v, want the signature once", rp.tags)
	}
	var blobs []digest.Digest
	for _, b := range rp.content.blobs {
		blobs = append(blobs, b.desc.Digest)
		if !b.mount {
			t.Errorf("blob %s not mounted within one registry", b.desc.Digest)
		}
	}
	// The shared layer goes with the plan's own content, not twice.
	want := []digest.Digest{digest.FromString("sig-config"), digest.FromString("sig-layer"), digest.FromString("ref-config")}
	if !reflect.DeepEqual(blobs, want) {
		t.Errorf("blobs %v, want %v", blobs, want)
	}
	if len(rp.content.manifests) != 1 || rp.content.manifests[0] != ref {
		t.Errorf("manifests by digest: want the OCI referrer only (the signature goes to its tag)")
	}
	if got := rp.bySubject[subj]; len(got) != 1 || got[0].ArtifactType != "x/sbom" {
		t.Errorf("fallback entries %v, want the referrer once with its artifact type", got)
	}
	if (&referrerPlan{}).empty() != true || rp.empty() {
		t.Error("empty() wrong")
	}
}

// referrersAPIRegistry serves a repository through a registry that has the
// referrers API and pages its tags list, and counts what it is asked.
type referrersAPIRegistry struct {
	mu        sync.Mutex
	asked     map[string]int
	tags      [][]string
	manifests map[string][]byte
	referrers map[digest.Digest][]ocispec.Descriptor
}

func (f *referrersAPIRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.asked[r.Method+" "+r.URL.Path]++
	f.mu.Unlock()
	const base = "/v2/team/app/"
	switch p := strings.TrimPrefix(r.URL.Path, base); {
	case r.URL.Path == "/v2/":
	case p == "tags/list":
		page := 0
		if r.URL.Query().Get("last") != "" {
			page = 1
		} else {
			w.Header().Set("Link", `<`+base+`tags/list?last=x>; rel="next"`)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"name": "team/app", "tags": f.tags[page]})
	case strings.HasPrefix(p, "referrers/"):
		d := digest.Digest(strings.TrimPrefix(p, "referrers/"))
		w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
		_ = json.NewEncoder(w).Encode(ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: append([]ocispec.Descriptor{}, f.referrers[d]...)})
	case strings.HasPrefix(p, "manifests/") && f.manifests[strings.TrimPrefix(p, "manifests/")] != nil:
		dt := f.manifests[strings.TrimPrefix(p, "manifests/")]
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(dt).String())
		w.Header().Set("Content-Length", strconv.Itoa(len(dt)))
		if r.Method == http.MethodGet {
			_, _ = w.Write(dt)
		}
	default:
		http.NotFound(w, r)
	}
}

func TestFindReferrersAPI(t *testing.T) {
	manifest := func(name string) ([]byte, ocispec.Descriptor) {
		dt, _ := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
			Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: digest.FromString("{}"), Size: 2},
			Layers: []ocispec.Descriptor{{MediaType: "x/" + name, Digest: digest.FromString(name), Size: int64(len(name))}}})
		return dt, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	}
	signed, other := digest.FromString("signed"), digest.FromString("other")
	sig, sigDesc := manifest("sig")
	sbom, refDesc := manifest("sbom")
	refDesc.ArtifactType = "x/sbom"
	reg := &referrersAPIRegistry{asked: map[string]int{},
		tags:      [][]string{{"latest"}, {fallbackTag(signed) + ".sig", fallbackTag(signed)}},
		manifests: map[string][]byte{fallbackTag(signed) + ".sig": sig, refDesc.Digest.String(): sbom},
		referrers: map[digest.Digest][]ocispec.Descriptor{signed: {refDesc}},
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	origin := mustLoc(t, strings.TrimPrefix(srv.URL, "http://")+"/team/app")
	pl := testPlaces()
	if _, err := pl.Prepare([]ref.Location{origin}); err != nil {
		t.Fatal(err)
	}
	f := newReferrerFinder(pl, pushInput{}, newGraphReader(pl, nil, nil, 2), 2, nil)
	found, err := f.find(context.Background(), []subject{{digest: signed, origin: origin}, {digest: other, origin: origin}})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found[0].tag != fallbackTag(signed)+".sig" || found[0].n.desc.Digest != sigDesc.Digest ||
		found[1].tag != "" || found[1].n.desc.Digest != refDesc.Digest || found[1].subject != signed {
		t.Fatalf("found %+v, want the signature by tag, then the referrer", found)
	}
	if len(found[1].n.children) != 2 {
		t.Errorf("referrer's config and layer not listed: %+v", found[1].n.children)
	}
	base := "GET /v2/team/app/"
	for path, want := range map[string]int{
		"tags/list": 0, "referrers/" + signed.String(): 1, "referrers/" + other.String(): 1,
		"manifests/" + fallbackTag(signed): 0, // the registry answers the API: the fallback tag is not read
		// each cosign tag is asked for by name, once
		"manifests/" + fallbackTag(signed) + ".sig": 1, "manifests/" + fallbackTag(signed) + ".att": 1,
		"manifests/" + fallbackTag(other) + ".sbom": 1,
	} {
		if got := reg.asked[base+path]; got != want {
			t.Errorf("%s asked %d times, want %d (all: %v)", path, got, want, reg.asked)
		}
	}
}

func TestMergeCosignManifest(t *testing.T) {
	layer := func(sig string) string {
		return `{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"` + digest.FromString("payload").String() +
			`","size":7,"annotations":{"dev.cosignproject.cosign/signature":"` + sig + `"}}`
	}
	manifest := func(layers ...string) []byte {
		return []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
			digest.FromString("cfg").String() + `","size":3},"layers":[` + strings.Join(layers, ",") + `]}`)
	}
	cases := []struct {
		name          string
		existing, add []byte
		want          []byte
		changed       bool
	}{
		// Same payload signed by another key: another layer, kept beside.
		{"adds", manifest(layer("A")), manifest(layer("B")), manifest(layer("A"), layer("B")), true},
		{"keeps order, de-duplicates", manifest(layer("A"), layer("B")), manifest(layer("B"), layer("C")), manifest(layer("A"), layer("B"), layer("C")), true},
		{"nothing new", manifest(layer("A"), layer("B")), manifest(layer("B")), manifest(layer("A"), layer("B")), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, changed, err := mergeCosignManifest(c.existing, c.add)
			if err != nil {
				t.Fatal(err)
			}
			if changed != c.changed || string(got) != string(c.want) {
				t.Errorf("got %v\n%s\nwant %v\n%s", changed, got, c.changed, c.want)
			}
		})
	}
	if _, _, err := mergeCosignManifest([]byte(`{"schemaVersion":2,"manifests":[]}`), manifest(layer("A"))); err == nil {
		t.Error("an index in the target was merged into; want an error")
	}
}
