package progress

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
)

// recorder is a Writer that keeps every update.
type recorder struct {
	mu       sync.Mutex
	statuses []*client.SolveStatus
}

func (r *recorder) Write(s *client.SolveStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, s)
}

func TestWrapVertexes(t *testing.T) {
	var r recorder
	_ = Wrap("parent", &r, func(s SubLogger) error {
		return s.Wrap("child", func() error { return nil })
	})
	var vs []*client.Vertex
	for _, s := range r.statuses {
		vs = append(vs, s.Vertexes...)
	}
	if len(vs) != 4 {
		t.Fatalf("want 4 vertex updates, got %d", len(vs))
	}
	parentStart, childStart, childDone, parentDone := vs[0], vs[1], vs[2], vs[3]
	if parentStart.Digest != parentDone.Digest || childStart.Digest != childDone.Digest || parentStart.Digest == childStart.Digest {
		t.Errorf("digests: parent %s/%s child %s/%s", parentStart.Digest, parentDone.Digest, childStart.Digest, childDone.Digest)
	}
	if len(childStart.Inputs) != 1 || childStart.Inputs[0] != parentStart.Digest {
		t.Errorf("child inputs %v, want the parent %s", childStart.Inputs, parentStart.Digest)
	}
	if parentStart.Completed != nil || parentDone.Completed == nil || !parentDone.Started.Equal(*parentStart.Started) {
		t.Errorf("parent start %+v done %+v", parentStart, parentDone)
	}
	if parentDone.Completed.Before(*childDone.Completed) {
		t.Errorf("parent completed before its child")
	}
	// Two vertexes with the same name are still two vertexes.
	a, b := OneOff(&r, "same"), OneOff(&r, "same")
	_, _ = a(nil), b(nil)
	n := len(r.statuses)
	if r.statuses[n-1].Vertexes[0].Digest == r.statuses[n-2].Vertexes[0].Digest {
		t.Errorf("same name, same digest")
	}
}

func TestLogAndStatusAreCopied(t *testing.T) {
	var r recorder
	_ = Wrap("v", &r, func(s SubLogger) error {
		buf := []byte("first\n")
		s.Log(2, buf)
		copy(buf, "XXXXX\n")
		st := &client.VertexStatus{ID: "a", Current: 1}
		s.SetStatus(st)
		st.Current = 2
		return nil
	})
	logs := r.statuses[1].Logs
	if len(logs) != 1 || string(logs[0].Data) != "first\n" || logs[0].Stream != 2 || logs[0].Vertex != r.statuses[0].Vertexes[0].Digest {
		t.Errorf("log %+v", logs)
	}
	st := r.statuses[2].Statuses[0]
	if st.Current != 1 || st.Vertex != r.statuses[0].Vertexes[0].Digest || st.Timestamp.IsZero() {
		t.Errorf("status %+v", st)
	}
}

func TestByteCounterThrottles(t *testing.T) {
	var r recorder
	const total = 1 << 20
	start := time.Now()
	_ = Wrap("push", &r, func(s SubLogger) error {
		c := NewByteCounter(s, "sha256:abcd", total)
		// 1024 small writes, as io.Copy through a TeeReader would make.
		if _, err := io.Copy(c, bytes.NewReader(bytes.Repeat([]byte{'x'}, total))); err != nil {
			return err
		}
		c.Done()
		return nil
	})
	elapsed := time.Since(start)

	var sts []*client.VertexStatus
	for _, s := range r.statuses {
		sts = append(sts, s.Statuses...)
	}
	if len(sts) < 2 {
		t.Fatalf("want a first and a final status, got %d", len(sts))
	}
	first, final := sts[0], sts[len(sts)-1]
	if first.Current != 0 || first.Completed != nil || first.Started == nil || first.Total != total || first.ID != "sha256:abcd" {
		t.Errorf("first status %+v", first)
	}
	if final.Current != total || final.Completed == nil || !final.Started.Equal(*first.Started) {
		t.Errorf("final status %+v", final)
	}
	// At most one update per 100ms between the first and the final one.
	if max := int(elapsed/byteUpdateInterval) + 2; len(sts) > max {
		t.Errorf("%d status updates in %s, want at most %d", len(sts), elapsed, max)
	}
	for i := 1; i < len(sts); i++ {
		if sts[i].Current < sts[i-1].Current {
			t.Errorf("count went back: %d then %d", sts[i-1].Current, sts[i].Current)
		}
	}
}

func TestByteCounterReportsSlowTransfers(t *testing.T) {
	var r recorder
	_ = Wrap("push", &r, func(s SubLogger) error {
		c := NewByteCounter(s, "blob", 0)
		for range 3 {
			time.Sleep(byteUpdateInterval + 10*time.Millisecond)
			_, _ = c.Write([]byte(strings.Repeat("x", 10)))
		}
		c.Done()
		return nil
	})
	var counts []int64
	for _, s := range r.statuses {
		for _, st := range s.Statuses {
			counts = append(counts, st.Current)
		}
	}
	// Every write comes more than 100ms after the previous report.
	want := []int64{0, 10, 20, 30, 30}
	if len(counts) != len(want) {
		t.Fatalf("counts %v, want %v", counts, want)
	}
	for i := range want {
		if counts[i] != want[i] {
			t.Fatalf("counts %v, want %v", counts, want)
		}
	}
}

func TestDiscard(t *testing.T) {
	if err := Wrap("x", Discard(), func(s SubLogger) error {
		s.Log(1, []byte("y\n"))
		NewByteCounter(s, "z", 1).Done()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
