package daemon

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/docker-imgx/docker-imgx/imagetools/imagetar"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/moby/moby/client"
	"github.com/opencontainers/go-digest"
)

// fakeEngine answers ImageSave with a saved tar, or an error.
type fakeEngine struct {
	saves [][]string
	tar   []byte
	err   error
}

func (f *fakeEngine) ImageSave(_ context.Context, images []string, _ ...client.ImageSaveOption) (client.ImageSaveResult, error) {
	f.saves = append(f.saves, images)
	if f.err != nil {
		return nil, f.err
	}
	return io.NopCloser(bytes.NewReader(f.tar)), nil
}

func savedTar(t *testing.T) []byte {
	t.Helper()
	layer := "layer bytes"
	cfg := `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digest.FromString(layer).String() + `"]}}`
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range [][2]string{{"c.json", cfg}, {"l/layer.tar", layer}, {"manifest.json", `[{"Config":"c.json","RepoTags":["app:1"],"Layers":["l/layer.tar"]}]`}} {
		_ = tw.WriteHeader(&tar.Header{Name: f[0], Mode: 0o644, Size: int64(len(f[1])), Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte(f[1]))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestEngineSavesOnce(t *testing.T) {
	fe := &fakeEngine{tar: savedTar(t)}
	e := New(Options{Client: func() (Client, error) { return fe, nil }})
	defer e.Close()
	loc, err := ref.Parse("docker-daemon://app:1")
	if err != nil {
		t.Fatal(err)
	}
	desc, _, err := e.Manifest(context.Background(), loc)
	if err != nil {
		t.Fatal(err)
	}
	// The pinned location create reads children by is served by the same save.
	if _, _, err := e.Manifest(context.Background(), loc.WithDigest(desc.Digest)); err != nil {
		t.Fatal(err)
	}
	if len(fe.saves) != 1 || fe.saves[0][0] != "app:1" {
		t.Fatalf("saves %v, want one of app:1", fe.saves)
	}
}

func TestEngineSaveBounded(t *testing.T) {
	fe := &fakeEngine{tar: savedTar(t)}
	e := New(Options{Client: func() (Client, error) { return fe, nil }, Archive: imagetar.Options{MaxDecompressed: 1024, LimitHint: " (hint)"}})
	loc, _ := ref.Parse("docker-daemon://app:1")
	_, _, err := e.Manifest(context.Background(), loc)
	if err == nil || !strings.Contains(err.Error(), "the engine's save is over 1024 bytes, the limit of a save spooled to disk (hint)") {
		t.Fatalf("got %v, want the save refused", err)
	}
	fe = &fakeEngine{err: errors.New("Error response from daemon: \x1b[2Jcleared\nsecond line")}
	e = New(Options{Client: func() (Client, error) { return fe, nil }})
	if _, _, err := e.Manifest(context.Background(), loc); err == nil || !strings.HasSuffix(err.Error(), "save from the Docker engine: Error response from daemon: cleared second line") {
		t.Fatalf("got %q, want the engine's words as one safe line", err)
	}
}

func TestEngineMissingImage(t *testing.T) {
	fe := &fakeEngine{err: errdefs.ErrNotFound.WithMessage("No such image: nope:latest")}
	e := New(Options{Client: func() (Client, error) { return fe, nil }})
	loc, _ := ref.Parse("docker-daemon://nope")
	_, _, err := e.Manifest(context.Background(), loc)
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "the Docker engine has no image nope:latest") {
		t.Fatalf("got %v", err)
	}
}
