package create

import (
	"context"
	"sync"

	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
)

// tagListPage is how many tags the one list of a source repository asks
// for: a repository with more is read by name, as if it had no list.
const tagListPage = 1000

// TagLists lists the tags of each source repository once for a copy or a
// run of copies, one page of at most tagListPage tags (a registry's
// tags/list?n=1000, its answer read up to a bound: place.Reader.Tags), so
// that the referrer tags a subject lacks (three cosign tags and the
// fallback tag) are known without a read each. A repository whose list is
// longer than a page, or could not be listed, is read by name, as before:
// the list only ever saves reads. Only places where listing is a request
// (Capabilities.ListTags) are listed. The zero value is ready; a nil
// *TagLists lists nothing.
//
// A tag pushed to a source while the run goes on may be missed by a list
// read before it, as by a read by name made before it.
type TagLists struct {
	mu    sync.Mutex
	lists map[string]*tagList
}

// tagList is one repository's list, or the wait for it.
type tagList struct {
	done     chan struct{}
	tags     map[string]bool
	complete bool
}

// absent reports whether tag is known not to exist in loc's repository:
// its list is complete and lacks it. It is false when nothing is known.
func (l *TagLists) absent(ctx context.Context, pl place.Backend, loc ref.Location, tag string) bool {
	if l == nil || !pl.Capabilities(loc).ListTags {
		return false
	}
	list := l.get(ctx, pl, loc)
	return list != nil && list.complete && !list.tags[tag]
}

// prefetch starts the list of loc's repository, so that a later absent
// finds it read (Copy lists the source while it reads the source's root).
func (l *TagLists) prefetch(ctx context.Context, pl place.Backend, loc ref.Location) {
	if l != nil && pl.Capabilities(loc).ListTags {
		l.get(ctx, pl, loc)
	}
}

// get returns the list of loc's repository, read once by the first caller;
// nil when it failed, or when ctx ended first. A list cut short by the
// cancel of its reader's ctx is forgotten, to be read again by the next.
func (l *TagLists) get(ctx context.Context, pl place.Backend, loc ref.Location) *tagList {
	key := loc.Repository()
	l.mu.Lock()
	if l.lists == nil {
		l.lists = map[string]*tagList{}
	}
	list, ok := l.lists[key]
	if !ok {
		list = &tagList{done: make(chan struct{})}
		l.lists[key] = list
	}
	l.mu.Unlock()
	if ok {
		select {
		case <-list.done:
		case <-ctx.Done():
			return nil
		}
	} else {
		tags, complete, err := pl.Tags(ctx, loc.WithTag(""), tagListPage)
		list.tags, list.complete = tags, complete && err == nil
		if err != nil && ctx.Err() != nil {
			l.mu.Lock()
			delete(l.lists, key)
			l.mu.Unlock()
		}
		close(list.done)
	}
	return list
}
