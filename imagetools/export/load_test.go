package export

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/progress"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// enginetestEngine answers like the classic image store: it reads the whole
// tar, then reports every RepoTag of manifest.json ("Loaded image: " in the
// familiar form) or, for an entry without one, its image ID. answer, when
// set, replaces the report.
type enginetestEngine struct {
	os, arch string
	// multi plays the containerd image store in the engine's info.
	multi  bool
	answer func(reported string) string

	loads int
	tar   []byte
}

func (e *enginetestEngine) ServerVersion(context.Context, client.ServerVersionOptions) (client.ServerVersionResult, error) {
	return client.ServerVersionResult{Os: e.os, Arch: e.arch}, nil
}

func (e *enginetestEngine) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	var res client.SystemInfoResult
	res.Info.Driver = "vfs"
	if e.multi {
		res.Info.Driver = "overlayfs"
		res.Info.DriverStatus = [][2]string{{"driver-type", "io.containerd.snapshotter.v1"}}
	}
	return res, nil
}

func (e *enginetestEngine) ImageLoad(_ context.Context, r io.Reader, _ ...client.ImageLoadOption) (client.ImageLoadResult, error) {
	e.loads++
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	e.tar = data
	var (
		items []manifestItem
		index ocispec.Index
	)
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch hdr.Name {
		case manifestFile:
			err = json.NewDecoder(tr).Decode(&items)
		case "index.json":
			err = json.NewDecoder(tr).Decode(&index)
		}
		if err != nil {
			return nil, err
		}
	}
	var out strings.Builder
	if e.multi {
		// The containerd image store reads index.json: names, else the root's digest.
		for _, d := range index.Manifests {
			if name := d.Annotations["io.containerd.image.name"]; name != "" {
				ref, err := reference.ParseNormalizedNamed(name)
				if err != nil {
					return nil, err
				}
				fmt.Fprintf(&out, "Loaded image: %s\n", reference.FamiliarString(ref))
			} else {
				fmt.Fprintf(&out, "Loaded image ID: %s\n", d.Digest)
			}
		}
		items = nil
	}
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

// enginetestJSON wraps text as the engine's JSON message stream does.
func enginetestJSON(text string) string {
	data, _ := json.Marshal(map[string]string{"stream": text})
	return string(data) + "\r\n"
}

// enginetestSteps records the vertexes: name -> error ("" when done).
type enginetestSteps struct {
	mu    sync.Mutex
	order []string
	ended map[string]string
}

func (s *enginetestSteps) Write(st *bkclient.SolveStatus) {
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

func enginetestRun(t *testing.T, e *enginetestEngine, imgs []image, opts EngineOptions) (*enginetestSteps, result, error) {
	t.Helper()
	steps := &enginetestSteps{ended: map[string]string{}}
	opts.Progress = progress.Writer(steps)
	res, err := toEngine(context.Background(), e, imgs, opts)
	return steps, res, err
}

func TestToEngine(t *testing.T) {
	s := newExptestStore()
	app := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"a", "b"}})
	arm := s.image(t, exptestImageSpec{platform: "linux/arm64", layers: []string{"c"}})
	multi := exptestMulti(t, s)
	appImg := image{Fetcher: s, Desc: exptestRoot(app.manifest), Name: "localhost:5000/app:1"}
	multiImg := image{Fetcher: s, Desc: exptestRoot(multi.index), Name: "docker.io/library/multi:1"}
	windows := platforms.MustParse("windows/amd64")
	arm64 := platforms.MustParse("linux/arm64")
	amd64 := platforms.MustParse("linux/amd64")

	tests := []struct {
		name    string
		engine  enginetestEngine
		imgs    []image
		opts    EngineOptions
		wantErr error
		errHas  []string
		// steps that must end done ("") or with an error containing the value.
		steps map[string]string
		// noLoad: nothing may be sent to the engine.
		noLoad bool
		// warnings must each be part of a warning of the Result.
		warnings []string
	}{
		{
			name: "one image", imgs: []image{appImg},
			steps: map[string]string{"exporting layers": "", "writing image " + app.config.Digest.String(): "", "naming to localhost:5000/app:1": ""},
		},
		{
			name: "index picks the engine platform, familiar answer", imgs: []image{multiImg, appImg},
			steps: map[string]string{"writing image " + multi.amd64.config.Digest.String(): "", "naming to docker.io/library/multi:1": "", "naming to localhost:5000/app:1": ""},
		},
		{
			name: "arm64 engine", engine: enginetestEngine{os: "linux", arch: "arm64"}, imgs: []image{multiImg},
			steps: map[string]string{"writing image " + multi.arm64.config.Digest.String(): ""},
		},
		{
			name: "unnamed image reported by ID", imgs: []image{{Fetcher: s, Desc: exptestRoot(app.manifest)}},
			steps: map[string]string{"writing image " + app.config.Digest.String(): ""},
		},
		{
			name: "OS the engine cannot hold", imgs: []image{multiImg}, opts: EngineOptions{Platforms: []ocispec.Platform{windows}},
			wantErr: imagetools.ErrEnginePlatform, errHas: []string{"windows/amd64", "the engine runs linux/amd64 and holds linux images only"}, noLoad: true,
		},
		{
			name: "architecture under emulation", imgs: []image{multiImg}, opts: EngineOptions{Platforms: []ocispec.Platform{arm64}},
			warnings: []string{"linux/arm64 images run on this linux/amd64 engine only under emulation"},
			steps:    map[string]string{"writing image " + multi.arm64.config.Digest.String(): ""},
		},
		{
			name: "classic store refuses several platforms", imgs: []image{multiImg}, opts: EngineOptions{Platforms: []ocispec.Platform{amd64, arm64}},
			wantErr: imagetools.ErrEnginePlatform, errHas: []string{"load 2 platforms", "classic image store keeps one platform per image"}, noLoad: true,
		},
		{
			name: "classic store refuses all", imgs: []image{multiImg}, opts: EngineOptions{AllPlatforms: true},
			wantErr: imagetools.ErrEnginePlatform, errHas: []string{"load all platforms"}, noLoad: true,
		},
		{
			name: "containerd store keeps the index", engine: enginetestEngine{multi: true}, imgs: []image{{Fetcher: s, Desc: exptestRoot(multi.index)}},
			opts:  EngineOptions{AllPlatforms: true},
			steps: map[string]string{"writing image " + multi.index.Digest.String(): ""},
		},
		{
			name: "index without the engine platform", engine: enginetestEngine{os: "linux", arch: "s390x"}, imgs: []image{multiImg},
			errHas: []string{"no image for platform linux/s390x"}, noLoad: true,
		},
		{
			name: "single image of another architecture", imgs: []image{{Fetcher: s, Desc: exptestRoot(arm.manifest), Name: "localhost:5000/arm:1"}},
			warnings: []string{"linux/arm64 images run on this linux/amd64 engine only under emulation"},
			steps:    map[string]string{"naming to localhost:5000/arm:1": ""},
		},
		{
			name: "single image of another OS", engine: enginetestEngine{os: "windows", arch: "amd64"}, imgs: []image{{Fetcher: s, Desc: exptestRoot(arm.manifest), Name: "localhost:5000/arm:1"}},
			wantErr: imagetools.ErrEnginePlatform, errHas: []string{"localhost:5000/arm:1", "image is linux/arm64", "holds windows images only"}, noLoad: true,
		},
		{
			name: "name not reported", imgs: []image{appImg, multiImg},
			engine:  enginetestEngine{answer: func(string) string { return enginetestJSON("Loaded image: multi:1\n") }},
			wantErr: imagetools.ErrNotLoaded, errHas: []string{"load localhost:5000/app:1:", "the engine reported docker.io/library/multi:1"},
			steps: map[string]string{"naming to localhost:5000/app:1": imagetools.ErrNotLoaded.Error(), "naming to docker.io/library/multi:1": ""},
		},
		{
			name: "image ID not reported", imgs: []image{{Fetcher: s, Desc: exptestRoot(app.manifest)}},
			engine:  enginetestEngine{answer: func(string) string { return "" }},
			wantErr: imagetools.ErrNotLoaded, errHas: []string{"image ID " + app.config.Digest.String(), "reported nothing"},
		},
		{
			name: "engine error shown as written", imgs: []image{appImg},
			engine: enginetestEngine{answer: func(string) string {
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
				e.answer = func(text string) string { return enginetestJSON(text) }
			}
			steps, res, err := enginetestRun(t, &e, tc.imgs, tc.opts)
			for _, w := range tc.warnings {
				if !slices.ContainsFunc(res.Warnings, func(got string) bool { return strings.Contains(got, w) }) {
					t.Errorf("warnings %q, want one with %q", res.Warnings, w)
				}
			}
			wantFail := tc.wantErr != nil || len(tc.errHas) > 0
			if (err != nil) != wantFail {
				t.Fatalf("toEngine: %v, want failure %v", err, wantFail)
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

// TestToEngineSendsOnePlatform checks the tar the engine gets: the
// docker format, manifest.json with the chosen platform's image only.
func TestToEngineSendsOnePlatform(t *testing.T) {
	s := newExptestStore()
	multi := exptestMulti(t, s)
	e := &enginetestEngine{os: "linux", arch: "amd64", answer: enginetestJSON}
	if _, _, err := enginetestRun(t, e, []image{{Fetcher: s, Desc: exptestRoot(multi.index), Name: "localhost:5000/multi:1"}}, EngineOptions{}); err != nil {
		t.Fatal(err)
	}
	entries := exptestReadTar(t, e.tar)
	var items []manifestItem
	if err := json.Unmarshal(exptestFile(t, entries, manifestFile), &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Config != exptestBlobName(multi.amd64.config) || items[0].RepoTags[0] != "localhost:5000/multi:1" {
		t.Fatalf("manifest.json = %+v, want the amd64 image named localhost:5000/multi:1", items)
	}
	if exptestHasFile(entries, exptestBlobName(multi.arm64.config)) {
		t.Errorf("the arm64 image was sent too")
	}
}
