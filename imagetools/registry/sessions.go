package registry

import (
	"net/url"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// sessionMaxAge is how long an upload session opened ahead (by a check or
// a refused mount) is kept for its push. Past it the registry may have
// dropped it; the push then opens its own rather than waste a round trip.
const sessionMaxAge = 10 * time.Minute

// sessionKey names the blob a session was opened for, in one repository.
type sessionKey struct {
	repo string
	dgst digest.Digest
}

type openSession struct {
	url    *url.URL
	opened time.Time
}

// sessions are the upload sessions the client opened ahead of a push and
// keeps for it (CheckBlob, MountBlob), taken back by PushBlob: the upload
// protocol stays inside the registry place, and callers hold no handle. A
// session never taken (its push failed first) is dropped once stale and
// left to the registry, which expires it, as containerd's pusher and ggcr
// leave theirs; a DELETE would add a request to every such path. The zero
// value is ready for use.
type sessions struct {
	mu   sync.Mutex
	open map[sessionKey][]openSession
}

// put keeps a session opened for the blob d of repo.
func (s *sessions) put(repo string, d digest.Digest, u *url.URL, now time.Time) {
	if u == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open == nil {
		s.open = map[sessionKey][]openSession{}
	}
	s.dropStale(now)
	k := sessionKey{repo, d}
	s.open[k] = append(s.open[k], openSession{url: u, opened: now})
}

// take returns a session kept for the blob d of repo, once, or nil.
func (s *sessions) take(repo string, d digest.Digest, now time.Time) *url.URL {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropStale(now)
	k := sessionKey{repo, d}
	open := s.open[k]
	if len(open) == 0 {
		return nil
	}
	last := open[len(open)-1]
	if len(open) == 1 {
		delete(s.open, k)
	} else {
		s.open[k] = open[:len(open)-1]
	}
	return last.url
}

// dropStale forgets sessions older than sessionMaxAge; s.mu is held.
func (s *sessions) dropStale(now time.Time) {
	for k, open := range s.open {
		fresh := open[:0]
		for _, o := range open {
			if now.Sub(o.opened) < sessionMaxAge {
				fresh = append(fresh, o)
			}
		}
		if len(fresh) == 0 {
			delete(s.open, k)
		} else {
			s.open[k] = fresh
		}
	}
}
