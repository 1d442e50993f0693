package place

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/docker-imgx/docker-imgx/imagetools"
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
func (f fakePlace) Tags(_ context.Context, loc ref.Location, _ int) (map[string]bool, bool, error) {
	f.record("tags", loc)
	return nil, false, nil
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
func (f fakePlace) CheckBlob(_ context.Context, to ref.Location, _ ocispec.Descriptor) (bool, error) {
	f.record("check", to)
	return false, nil
}
func (f fakePlace) MountBlob(_ context.Context, to, from ref.Location, _ ocispec.Descriptor) (bool, error) {
	f.record("mount", to, from)
	return false, nil
}
func (f fakePlace) PushBlob(_ context.Context, to ref.Location, _ Blob) error {
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

// readOnlyPlace is a place that only reads: the fake without its writer.
type readOnlyPlace struct{ Backend }

func newTestRouter(calls *[]string, failLayout bool) *Router {
	return NewRouter(map[string]Backend{
		"":                fakePlace{name: "registry", caps: Capabilities{Mount: true, Referrers: true, CheckFirst: true}, calls: calls},
		ref.SchemeLayout:  fakePlace{name: "layout", calls: calls, fail: failLayout},
		ref.SchemeArchive: readOnlyPlace{fakePlace{name: "archive", calls: calls}},
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
	_ = r.PushBlob(ctx, reg, Blob{})
	_, _ = r.MountBlob(ctx, reg, mustParse(t, "r.example/other"), ocispec.Descriptor{})
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

// TestRouterRefusesReadOnly: every write to a place without a writer is
// refused by the router, with one error, before the place sees it; reads
// and Prepare (a source's location) go through.
func TestRouterRefusesReadOnly(t *testing.T) {
	var calls []string
	r := newTestRouter(&calls, false)
	ctx := context.Background()
	tar, reg := mustParse(t, "archive://in.tar:app:1"), mustParse(t, "r.example/app:1")
	writes := map[string]func() error{
		"Writable":  func() error { return r.Writable(tar) },
		"CheckBlob": func() error { _, err := r.CheckBlob(ctx, tar, ocispec.Descriptor{}); return err },
		"MountBlob": func() error { _, err := r.MountBlob(ctx, tar, reg, ocispec.Descriptor{}); return err },
		"PushBlob":  func() error { return r.PushBlob(ctx, tar, Blob{}) },
		"PutManifest": func() error {
			_, err := r.PutManifest(ctx, tar, ocispec.Descriptor{}, nil)
			return err
		},
		"Tag":     func() error { return r.Tag(ctx, tar, ocispec.Descriptor{}, nil) },
		"ReadTag": func() error { _, _, err := r.ReadTag(ctx, tar); return err },
		"Untag":   func() error { _, err := r.Untag(ctx, tar); return err },
	}
	var msgs []string
	for name, write := range writes {
		err := write()
		if !errors.Is(err, imagetools.ErrReadOnly) {
			t.Fatalf("%s to a read-only place: %v, want ErrReadOnly", name, err)
		}
		msgs = append(msgs, err.Error())
	}
	slices.Sort(msgs)
	if msgs = slices.Compact(msgs); len(msgs) != 1 {
		t.Errorf("the refusals differ: %q", msgs)
	}
	if !strings.Contains(msgs[0], tar.String()) || !strings.Contains(msgs[0], "docker imgx export") {
		t.Errorf("refusal %q does not name the location and what writes tars", msgs[0])
	}
	if len(calls) != 0 {
		t.Errorf("the read-only place saw writes: %q", calls)
	}
	if err := r.Writable(reg); err != nil {
		t.Errorf("a registry is writable: %v", err)
	}
	_, _, _ = r.Manifest(ctx, tar)
	undo, err := r.Prepare([]ref.Location{tar, reg})
	if err != nil {
		t.Fatalf("Prepare with a source in a tar: %v", err)
	}
	undo()
	want := []string{"archive manifest " + tar.String(), "registry prepare r.example/app:1", "registry undo r.example/app:1"}
	if !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
}
