package imagetools

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/progress"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/moby/client"
)

// loadtestEngine answers like the classic image store: it reads the whole
// tar, then reports every RepoTag of manifest.json ("Loaded image: " in the
// familiar form) or, for an entry without one, its image ID. answer, when
// set, replaces the report.
type loadtestEngine struct {
	os, arch string
	answer   func(reported string) string

	loads int
	tar   []byte
}

func (e *loadtestEngine) ServerVersion(context.Context, client.ServerVersionOptions) (client.ServerVersionResult, error) {
	return client.ServerVersionResult{Os: e.os, Arch: e.arch}, nil
}

func (e *loadtestEngine) ImageLoad(_ context.Context, r io.Reader, _ ...client.ImageLoadOption) (client.ImageLoadResult, error) {
	e.loads++
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	e.tar = data
	var items []exportManifestItem
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if hdr.Name == exportManifestFile {
			if err := json.NewDecoder(tr).Decode(&items); err != nil {
				return nil, err
			}
		}
	}
	var out strings.Builder
	for _, it := range items {
		if len(it.RepoTags) == 0 {
			fmt.Fprintf(&out, "Loaded image ID: sha256:%s\n", strings.TrimPrefix(it.Config, "blobs/sha256/"))
		}
		for _, tag := range it.RepoTags {
			ref, err := reference.ParseNormalizedNamed(tag)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(&out, "Loaded image: %s\n", reference.FamiliarString(ref))
		}
	}
	answer := out.String()
	if e.answer != nil {
		answer = e.answer(answer)
	}
	return io.NopCloser(strings.NewReader(answer)), nil
}

// loadtestJSON wraps text as the engine's JSON message stream does.
func loadtestJSON(text string) string {
	data, _ := json.Marshal(map[string]string{"stream": text})
	return string(data) + "\r\n"
}

// loadtestSteps records the vertexes: name -> error ("" when done).
type loadtestSteps struct {
	mu    sync.Mutex
	order []string
	ended map[string]string
}

func (s *loadtestSteps) Write(st *bkclient.SolveStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range st.Vertexes {
		if v.Completed == nil {
			s.order = append(s.order, v.Name)
			continue
		}
		s.ended[v.Name] = v.Error
	}
}

func loadtestRun(t *testing.T, e *loadtestEngine, imgs []ExportImage, opts EngineLoadOptions) (*loadtestSteps, error) {
	t.Helper()
	steps := &loadtestSteps{ended: map[string]string{}}
	opts.Progress = progress.Writer(steps)
	err := EngineLoad(context.Background(), e, imgs, opts)
	return steps, err
}

func TestEngineLoad(t *testing.T) {
	s := newExptestStore()
	app := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"a", "b"}})
	arm := s.image(t, exptestImageSpec{platform: "linux/arm64", layers: []string{"c"}})
	multi := exptestMulti(t, s)
	appImg := ExportImage{Fetcher: s, Desc: exptestRoot(app.manifest), Name: "localhost:5000/app:1"}
	multiImg := ExportImage{Fetcher: s, Desc: exptestRoot(multi.index), Name: "docker.io/library/multi:1"}
	s390x := platforms.MustParse("linux/s390x")
	arm64 := platforms.MustParse("linux/arm64")

	tests := []struct {
		name    string
		engine  loadtestEngine
		imgs    []ExportImage
		opts    EngineLoadOptions
		wantErr error
		errHas  []string
		// steps that must end done ("") or with an error containing the value.
		steps map[string]string
		// noLoad: nothing may be sent to the engine.
		noLoad bool
	}{
		{
			name: "one image", imgs: []ExportImage{appImg},
			steps: map[string]string{"exporting layers": "", "writing image " + app.config.Digest.String(): "", "naming to localhost:5000/app:1": ""},
		},
		{
			name: "index picks the engine platform, familiar answer", imgs: []ExportImage{multiImg, appImg},
			steps: map[string]string{"writing image " + multi.amd64.config.Digest.String(): "", "naming to docker.io/library/multi:1": "", "naming to localhost:5000/app:1": ""},
		},
		{
			name: "arm64 engine", engine: loadtestEngine{os: "linux", arch: "arm64"}, imgs: []ExportImage{multiImg},
			steps: map[string]string{"writing image " + multi.arm64.config.Digest.String(): ""},
		},
		{
			name: "unnamed image reported by ID", imgs: []ExportImage{{Fetcher: s, Desc: exptestRoot(app.manifest)}},
			steps: map[string]string{"writing image " + app.config.Digest.String(): ""},
		},
		{
			name: "platform the engine cannot run", imgs: []ExportImage{multiImg}, opts: EngineLoadOptions{Platform: &s390x},
			wantErr: ErrEnginePlatform, errHas: []string{"linux/s390x", "linux/amd64"}, noLoad: true,
		},
		{
			name: "index without the engine platform", engine: loadtestEngine{os: "linux", arch: "s390x"}, imgs: []ExportImage{multiImg},
			errHas: []string{"no image for platform linux/s390x"}, noLoad: true,
		},
		{
			name: "single image of another platform", imgs: []ExportImage{{Fetcher: s, Desc: exptestRoot(arm.manifest), Name: "localhost:5000/arm:1"}},
			opts: EngineLoadOptions{Platform: &arm64}, wantErr: ErrEnginePlatform, noLoad: true,
		},
		{
			name: "single image of another platform, engine default", imgs: []ExportImage{{Fetcher: s, Desc: exptestRoot(arm.manifest), Name: "localhost:5000/arm:1"}},
			wantErr: ErrEnginePlatform, errHas: []string{"localhost:5000/arm:1", "image is linux/arm64"}, noLoad: true,
		},
		{
			name: "name not reported", imgs: []ExportImage{appImg, multiImg},
			engine:  loadtestEngine{answer: func(string) string { return loadtestJSON("Loaded image: multi:1\n") }},
			wantErr: ErrNotLoaded, errHas: []string{"load localhost:5000/app:1:", "the engine reported docker.io/library/multi:1"},
			steps: map[string]string{"naming to localhost:5000/app:1": ErrNotLoaded.Error(), "naming to docker.io/library/multi:1": ""},
		},
		{
			name: "image ID not reported", imgs: []ExportImage{{Fetcher: s, Desc: exptestRoot(app.manifest)}},
			engine:  loadtestEngine{answer: func(string) string { return "" }},
			wantErr: ErrNotLoaded, errHas: []string{"image ID " + app.config.Digest.String(), "reported nothing"},
		},
		{
			name: "engine error shown as written", imgs: []ExportImage{appImg},
			engine: loadtestEngine{answer: func(string) string {
				return `{"errorDetail":{"message":"open /var/lib/docker/tmp/x: no space left on device"},"error":"open /var/lib/docker/tmp/x: no space left on device"}` + "\r\n"
			}},
			errHas: []string{"load into the Docker engine: open /var/lib/docker/tmp/x: no space left on device"},
			steps:  map[string]string{"writing image " + app.config.Digest.String(): "no space left on device"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.engine
			if e.os == "" {
				e.os, e.arch = "linux", "amd64"
			}
			if e.answer == nil {
				e.answer = func(text string) string { return loadtestJSON(text) }
			}
			steps, err := loadtestRun(t, &e, tc.imgs, tc.opts)
			wantFail := tc.wantErr != nil || len(tc.errHas) > 0
			if (err != nil) != wantFail {
				t.Fatalf("EngineLoad: %v, want failure %v", err, wantFail)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v is not %v", err, tc.wantErr)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if tc.noLoad && e.loads != 0 {
				t.Errorf("%d load requests sent, want none", e.loads)
			}
			for name, want := range tc.steps {
				got, ok := steps.ended[name]
				if !ok {
					t.Errorf("step %q did not end (steps: %v)", name, steps.order)
					continue
				}
				if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
					t.Errorf("step %q ended with %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestEngineLoadSendsOnePlatform checks the tar the engine gets: the
// docker format, manifest.json with the chosen platform's image only.
func TestEngineLoadSendsOnePlatform(t *testing.T) {
	s := newExptestStore()
	multi := exptestMulti(t, s)
	e := &loadtestEngine{os: "linux", arch: "amd64", answer: loadtestJSON}
	if _, err := loadtestRun(t, e, []ExportImage{{Fetcher: s, Desc: exptestRoot(multi.index), Name: "localhost:5000/multi:1"}}, EngineLoadOptions{}); err != nil {
		t.Fatal(err)
	}
	entries := exptestReadTar(t, e.tar)
	var items []exportManifestItem
	if err := json.Unmarshal(exptestFile(t, entries, exportManifestFile), &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Config != exptestBlobName(multi.amd64.config) || items[0].RepoTags[0] != "localhost:5000/multi:1" {
		t.Fatalf("manifest.json = %+v, want the amd64 image named localhost:5000/multi:1", items)
	}
	if exptestHasFile(entries, exptestBlobName(multi.arm64.config)) {
		t.Errorf("the arm64 image was sent too")
	}
}

func TestReadLoadAnswer(t *testing.T) {
	stream := loadtestJSON("Loaded image: app:1\n") +
		loadtestJSON("The image app:1 already exists, renaming the old one with ID sha256:aa to empty string\n") +
		loadtestJSON("Loaded image ID: sha256:bb\n") +
		loadtestJSON("Loaded image: localhost:5000/x/y:2\nLoaded image: z:3\n")
	a, err := readLoadAnswer(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	wantNames := "docker.io/library/app:1 localhost:5000/x/y:2 docker.io/library/z:3"
	if got := strings.Join(a.Names, " "); got != wantNames {
		t.Errorf("names %q, want %q", got, wantNames)
	}
	if len(a.IDs) != 1 || a.IDs[0] != "sha256:bb" {
		t.Errorf("IDs %v, want [sha256:bb]", a.IDs)
	}
	_, err = readLoadAnswer(strings.NewReader(loadtestJSON("Loaded image: a:1\n") + `{"error":"old style error"}`))
	var ee *EngineError
	if !errors.As(err, &ee) || ee.Message != "old style error" {
		t.Errorf("old error form: got %v", err)
	}
	if _, err := readLoadAnswer(strings.NewReader("not json")); err == nil {
		t.Errorf("a non-JSON answer was accepted")
	}
}

func TestLoadCause(t *testing.T) {
	engineErr := fmt.Errorf("load into the Docker engine: %w", &EngineError{Message: "bad tar"})
	registryErr := errors.New("fetch sha256:aa: 503")
	tests := []struct {
		name               string
		exportErr, loadErr error
		want               error
	}{
		{name: "both fine"},
		{name: "engine failed, export cut by it", exportErr: fmt.Errorf("export: write x: %w", engineErr), loadErr: engineErr, want: engineErr},
		{name: "engine failed, export cancelled", exportErr: context.Canceled, loadErr: engineErr, want: engineErr},
		{name: "registry failed first", exportErr: registryErr, loadErr: engineErr, want: registryErr},
		{name: "export failed alone", exportErr: registryErr, want: registryErr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := loadCause(context.Background(), tc.exportErr, tc.loadErr); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
