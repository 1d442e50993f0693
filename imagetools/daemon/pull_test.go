package daemon

import (
	"fmt"
	"slices"
	"testing"

	"github.com/docker-imgx/docker-imgx/progress"
	bkclient "github.com/moby/buildkit/client"
)

// statusLog records the status lines a SubLogger gets.
type statusLog struct{ lines []string }

func (s *statusLog) Wrap(_ string, fn func() error) error { return fn() }
func (s *statusLog) Log(int, []byte)                      {}
func (s *statusLog) SetStatus(st *bkclient.VertexStatus) {
	done := ""
	if st.Completed != nil {
		done = " done"
	}
	s.lines = append(s.lines, fmt.Sprintf("%s %d/%d%s", st.ID, st.Current, st.Total, done))
}

// TestPullLayers maps the engine's pull messages to byte counts: a layer
// is complete only when the engine says so, one already there is a line of
// its own, and an id with control characters is shown safe.
func TestPullLayers(t *testing.T) {
	log := &statusLog{}
	p := pullLayers{lines: progress.NewLines(log), totals: map[string]int64{}}
	total := func(c, n int64) *struct {
		Current int64 `json:"current"`
		Total   int64 `json:"total"`
	} {
		return &struct {
			Current int64 `json:"current"`
			Total   int64 `json:"total"`
		}{c, n}
	}
	for _, m := range []pullMessage{
		{Status: "Pulling from test/app", ID: "1"},
		{Status: "Pulling fs layer", ID: "aaaaaaaaaaaa"},
		{Status: "Downloading", ID: "aaaaaaaaaaaa", Progress: total(100, 100)},
		{Status: "Verifying Checksum", ID: "aaaaaaaaaaaa"},
		{Status: "Download complete", ID: "aaaaaaaaaaaa"},
		{Status: "Extracting", ID: "aaaaaaaaaaaa", Progress: total(50, 100)},
		{Status: "Pull complete", ID: "aaaaaaaaaaaa"},
		{Status: "Already exists", ID: "bbbbbbbbbbbb"},
		{Status: "Downloading", ID: "c\x1b[2J", Progress: total(0, 10)},
		{Status: "Digest: sha256:0000"},
	} {
		p.show(m)
	}
	want := []string{
		"layer aaaaaaaaaaaa 0/100",
		"layer aaaaaaaaaaaa 100/100 done",
		"layer bbbbbbbbbbbb already in the engine 0/0 done",
		"layer c 0/10",
	}
	if !slices.Equal(log.lines, want) {
		t.Errorf("status lines:\n%q\nwant\n%q", log.lines, want)
	}
}
