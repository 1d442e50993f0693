package tests

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

// rawStatus is a byte count in rawjson progress (BuildKit's VertexStatus).
type rawStatus struct {
	ID        string `json:"id"`
	Vertex    string `json:"vertex"`
	Current   int64  `json:"current"`
	Total     int64  `json:"total"`
	Completed string `json:"completed"`
}

// byteCounts reads rawjson progress and returns, per status id, its last
// count and the name of its vertex.
func byteCounts(t *testing.T, stderr string) (map[string]rawStatus, map[string]string) {
	t.Helper()
	last, names := map[string]rawStatus{}, map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct {
			Vertexes []struct{ Digest, Name string }
			Statuses []rawStatus
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("not a rawjson line: %q: %v", sc.Text(), err)
		}
		for _, v := range ev.Vertexes {
			names[v.Digest] = v.Name
		}
		for _, s := range ev.Statuses {
			last[s.ID] = s
		}
	}
	return last, names
}

// TestCreateShowsBytes: create copying a layer between two registries
// reports its bytes as export does (the same progress model): a status
// named by the blob's digest, counting to its size, then completed.
func TestCreateShowsBytes(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", LayerSize: 3 << 20, Seed: 93})
	pushImage(t, src, "test/big", "1", img)
	layer := img.Layers[0].Desc
	x := newImgx(t)
	for _, args := range [][]string{
		{"create", "--progress", "rawjson", "-t", dst.Host + "/test/big:1", src.Host + "/test/big:1"},
		{"export", "--progress", "rawjson", "-o", filepath.Join(t.TempDir(), "big.tar"), src.Host + "/test/big:1"},
	} {
		last, names := byteCounts(t, x.MustRun(args...).Stderr)
		s, ok := last[layer.Digest.String()]
		if !ok {
			t.Fatalf("%s: no byte count for the layer %s; counts: %v", args[0], layer.Digest, last)
		}
		if s.Current != layer.Size || s.Total != layer.Size || s.Completed == "" {
			t.Errorf("%s: the layer's count ends at %d of %d (completed %q), want %d of %d, completed", args[0], s.Current, s.Total, s.Completed, layer.Size, layer.Size)
		}
		t.Logf("%s: %s counted under %q", args[0], layer.Digest, names[s.Vertex])
	}
}
