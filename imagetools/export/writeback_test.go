package export

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// exptestRange is one writeback asked for: n bytes from off.
type exptestRange struct{ off, n int64 }

// TestExportFileStartsWriteback checks that the writeback of every streamed
// blob starts as its content completes: in steps of writebackStep, then the
// rest, so that the ranges tile each blob's content exactly and the fsync
// before the rename has at most a step of each blob left.
func TestExportFileStartsWriteback(t *testing.T) {
	const size = 2*writebackStep + 12345
	f, manifest := exptestBigImage(t, 2, size)
	imgs := []image{{Fetcher: f, Desc: manifest, Name: "localhost:5000/app:1"}}
	opts, err := Options{Platforms: exptestLinux("amd64"), MaxConcurrency: 2}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pl, err := makePlan(ctx, imgs, opts, true)
	if err != nil {
		t.Fatal(err)
	}
	offs, err := offsetsOf(pl.records)
	if err != nil {
		t.Fatal(err)
	}
	var streamed []slot
	for _, s := range offs.slots {
		if s.rec.Blob != nil && s.rec.Data == nil {
			streamed = append(streamed, s)
		}
	}
	file, err := os.Create(filepath.Join(t.TempDir(), "out.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var mu sync.Mutex
	var got []exptestRange
	w := &offsetWriter{f: file, writeback: func(off, n int64) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, exptestRange{off, n})
	}}
	if err := fetchSlots(ctx, w, imgs, streamed, opts.MaxConcurrency, discard{}); err != nil {
		t.Fatal(err)
	}
	var want []exptestRange
	for _, s := range streamed {
		size := s.rec.Header.Size
		for done := int64(0); done < size; done += writebackStep {
			want = append(want, exptestRange{s.content() + done, min(writebackStep, size-done)})
		}
	}
	cmp := func(a, b exptestRange) int { return int(a.off - b.off) }
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	if len(streamed) != 3 || !slices.Equal(got, want) {
		t.Errorf("writeback of %d streamed blobs: got %v, want %v", len(streamed), got, want)
	}
}
