package create

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// listingPlace answers Tags with tags and complete (or err), counting the
// calls; block, when set, holds each call until it is closed or the
// caller's ctx ends.
type listingPlace struct {
	place.Backend
	listTags bool
	tags     map[string]bool
	complete bool
	err      error
	block    chan struct{}
	calls    atomic.Int32
}

func (p *listingPlace) Capabilities(ref.Location) place.Capabilities {
	return place.Capabilities{ListTags: p.listTags}
}

func (p *listingPlace) Tags(ctx context.Context, _ ref.Location, limit int) (map[string]bool, bool, error) {
	p.calls.Add(1)
	if limit != tagListPage {
		return nil, false, errors.New("not one page")
	}
	if p.block != nil {
		select {
		case <-p.block:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	return p.tags, p.complete, p.err
}

func (p *listingPlace) Referrers(context.Context, ref.Location) ([]ocispec.Descriptor, bool, error) {
	return nil, false, nil
}

// TestTagListsMissing: a tag is known missing only from a complete list
// that lacks it; an incomplete list, a failed one, a place that reads
// tags by name and a nil TagLists know nothing. A repository is listed
// once however many ask at a time, and a list cut short by its reader's
// cancel is read again by the next.
func TestTagListsMissing(t *testing.T) {
	ctx := context.Background()
	loc, err := ref.Parse("registry.test/team/app:1")
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]bool{"1": true, "sha256-ab.sig": true}
	for _, c := range []struct {
		name         string
		pl           *listingPlace
		sig, att     bool // absent answers for the .sig and .att tags
		wantListings int32
	}{
		{"complete", &listingPlace{listTags: true, tags: tags, complete: true}, false, true, 1},
		{"incomplete", &listingPlace{listTags: true, tags: tags}, false, false, 1},
		{"failed", &listingPlace{listTags: true, err: errors.New("denied")}, false, false, 1},
		{"read by name", &listingPlace{tags: tags, complete: true}, false, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var lists TagLists
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					if got := lists.absent(ctx, c.pl, loc, "sha256-ab.sig"); got != c.sig {
						t.Errorf(".sig absent = %v, want %v", got, c.sig)
					}
					if got := lists.absent(ctx, c.pl, loc, "sha256-ab.att"); got != c.att {
						t.Errorf(".att absent = %v, want %v", got, c.att)
					}
				})
			}
			wg.Wait()
			if n := c.pl.calls.Load(); n != c.wantListings {
				t.Errorf("listed %d times, want %d", n, c.wantListings)
			}
		})
	}

	var none *TagLists
	if none.absent(ctx, &listingPlace{listTags: true, complete: true}, loc, "x") {
		t.Error("a nil TagLists knows a tag missing")
	}

	pl := &listingPlace{listTags: true, tags: tags, complete: true, block: make(chan struct{})}
	var lists TagLists
	cut, cancel := context.WithCancel(ctx)
	cancel()
	if lists.absent(cut, pl, loc, "sha256-ab.att") {
		t.Error("a list cut short by a cancel knows a tag missing")
	}
	close(pl.block)
	if !lists.absent(ctx, pl, loc, "sha256-ab.att") || pl.calls.Load() != 2 {
		t.Errorf("after a cancelled list: %d listings, want the list read again", pl.calls.Load())
	}
}
