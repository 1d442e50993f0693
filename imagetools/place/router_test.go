package place

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakePlace records the calls it gets and the locations they name.
type fakePlace struct {
	name  string
	caps  Capabilities
	calls *[]string
	fail  bool
}

func (f fakePlace) record(call string, locs ...ref.Location) {
	parts := []string{f.name, call}
	for _, l := range locs {
		parts = append(parts, l.String())
	}
	*f.calls = append(*f.calls, strings.Join(parts, " "))
}

func (f fakePlace) Capabilities(ref.Location) Capabilities { return f.caps }
func (f fakePlace) Manifest(_ context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	f.record("manifest", loc)
	return ocispec.Descriptor{}, nil, nil
}
func (f fakePlace) Fetcher(_ context.Context, loc ref.Location) (remotes.Fetcher, error) {
	f.record("fetcher", loc)
	return nil, nil
}
func (f fakePlace) Tags(_ context.Context, loc ref.Location) (map[string]bool, error) {
	f.record("tags", loc)
	return nil, nil
}
func (f fakePlace) Referrers(_ context.Context, loc ref.Location) ([]ocispec.Descriptor, bool, error) {
	f.record("referrers", loc)
	return nil, false, nil
}
func (f fakePlace) Prepare(locs []ref.Location) (func(), error) {
	f.record("prepare", locs...)
	undo := func() { f.record("undo", locs...) }
	if f.fail {
		return undo, errors.New(f.name + " refused")
	}
	return undo, nil
}
func (f fakePlace) CheckBlob(_ context.Context, to ref.Location, _ ocispec.Descriptor) (bool, Upload, error) {
	f.record("check", to)
	return false, nil, nil
}
func (f fakePlace) MountBlob(_ context.Context, to, from ref.Location, _ ocispec.Descriptor) (bool, Upload, error) {
	f.record("mount", to, from)
	return false, nil, nil
}
func (f fakePlace) PushBlob(_ context.Context, to ref.Location, _ Blob, _ Upload) error {
	f.record("push", to)
	return nil
}
func (f fakePlace) PutManifest(_ context.Context, to ref.Location, _ ocispec.Descriptor, _ []byte) (bool, error) {
	f.record("put", to)
	return false, nil
}
func (f fakePlace) Tag(_ context.Context, to ref.Location, _ ocispec.Descriptor, _ []byte) error {
	f.record("tag", to)
	return nil
}
func (f fakePlace) Untag(_ context.Context, t ref.Location) (bool, error) {
	f.record("untag", t)
	return false, nil
}
func (f fakePlace) ReadTag(_ context.Context, t ref.Location) ([]byte, bool, error) {
	f.record("readtag", t)
	return nil, false, nil
}

func mustParse(t *testing.T, s string) ref.Location {
	t.Helper()
	l, err := ref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newTestRouter(calls *[]string, failLayout bool) *Router {
	return NewRouter(map[string]Place{
		"":               fakePlace{name: "registry", caps: Capabilities{Mount: true, Referrers: true, CheckFirst: true}, calls: calls},
		ref.SchemeLayout: fakePlace{name: "layout", calls: calls, fail: failLayout},
	})
}

// TestRouterDispatch: every call reaches the place of its location's scheme.
func TestRouterDispatch(t *testing.T) {
	var calls []string
	r := newTestRouter(&calls, false)
	ctx := context.Background()
	reg, layout := mustParse(t, "r.example/app:1"), mustParse(t, "oci-layout://out:1")
	_, _, _ = r.Manifest(ctx, reg)
	_, _, _ = r.Manifest(ctx, layout)
	_, _ = r.Fetcher(ctx, layout)
	_ = r.PushBlob(ctx, reg, Blob{}, nil)
	_, _, _ = r.MountBlob(ctx, reg, mustParse(t, "r.example/other"), ocispec.Descriptor{})
	_ = r.Tag(ctx, layout, ocispec.Descriptor{}, nil)
	want := []string{
		"registry manifest r.example/app:1", "layout manifest oci-layout://out:1", "layout fetcher oci-layout://out:1",
		"registry push r.example/app:1", "registry mount r.example/app:1 r.example/other", "layout tag oci-layout://out:1",
	}
	if !slices.Equal(calls, want) {
		t.Fatalf("calls\n%q\nwant\n%q", calls, want)
	}
	if got := r.Capabilities(layout); got != (Capabilities{}) {
		t.Errorf("layout capabilities %+v, want none", got)
	}
	if _, _, err := NewRouter(nil).Manifest(ctx, reg); err == nil || !strings.Contains(err.Error(), "no place reads") {
		t.Errorf("a scheme without a place: %v", err)
	}
}

// TestRouterPrepare: each place prepares its own locations, once; a failure
// returns an undo of what was prepared.
func TestRouterPrepare(t *testing.T) {
	var calls []string
	locs := []ref.Location{mustParse(t, "r.example/a:1"), mustParse(t, "oci-layout://out"), mustParse(t, "r.example/b:1")}
	undo, err := newTestRouter(&calls, false).Prepare(locs)
	if err != nil {
		t.Fatal(err)
	}
	undo()
	want := []string{"registry prepare r.example/a:1 r.example/b:1", "layout prepare oci-layout://out",
		"layout undo oci-layout://out", "registry undo r.example/a:1 r.example/b:1"}
	if !slices.Equal(calls, want) {
		t.Fatalf("calls %q, want %q", calls, want)
	}
	calls = nil
	undo, err = newTestRouter(&calls, true).Prepare(locs)
	if err == nil {
		t.Fatal("a place's refusal was lost")
	}
	undo()
	if want := "layout undo oci-layout://out"; !slices.Contains(calls, want) || !slices.Contains(calls, "registry undo r.example/a:1 r.example/b:1") {
		t.Errorf("after a failed prepare, calls %q, want both undone", calls)
	}
}

func TestMountable(t *testing.T) {
	var calls []string
	r := newTestRouter(&calls, false)
	for _, c := range []struct {
		from, to string
		want     bool
	}{
		{"r.example/a", "r.example/b", true},
		{"r.example/a", "other.example/b", false},
		{"oci-layout://in", "oci-layout://out", false},
		{"r.example/a", "oci-layout://out", false},
	} {
		if got := Mountable(r, mustParse(t, c.from), mustParse(t, c.to)); got != c.want {
			t.Errorf("Mountable(%s, %s) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
}
